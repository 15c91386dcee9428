-- Shared by the wrk scripts: done() prints one line "WRKJSON {...}" with the counts and
-- latency percentiles (microseconds), so the drivers need not parse wrk's text summary.
function wrk_report(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  local out = string.format(
    '{"requests": %d, "duration_s": %.3f, "rps": %.1f, "non_2xx_3xx": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, ' ..
    '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d}}',
    summary.requests, secs, summary.requests / secs, e.status,
    e.connect, e.read, e.write, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max)
  io.write("WRKJSON " .. out .. "\n")
end

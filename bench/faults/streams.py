#!/usr/bin/env python3
"""Idle event streams and slow clients (run through bench/faults/streams.sh). See README.md."""

import json
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from batonlib import (BENCH_DIR, Client, Server, finish, proc_cpu_seconds, remove_work_dir,  # noqa: E402
                      start_helper, stop_helper, wait_healthy, wait_ready)

sys.path.insert(0, BENCH_DIR)
from ingest import create_convs, wrk  # noqa: E402

E = os.environ.get
STREAMS = int(E("STREAMS", "1000"))
SLOW = int(E("SLOW_CLIENTS", "1000"))
TURNS_SECS = int(E("TURNS_SECS", "10"))
IDLE_SECS = float(E("IDLE_SECS", "10"))
SLOW_SECS = float(E("SLOW_SECS", "35"))  # past hyper's 30 s header timeout, if there is one
CONVS = int(E("CONVS", "1000"))
# What each stream follows: by default what an agent's console opens (the handoff's events);
# `/v1/events?after=-1` follows every event, so each routine turn is sent to every stream.
STREAM_PATH = E("STREAM_PATH", "/v1/events?after=-1&scope=handoff")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100))] if v else None


def idle_cpu(pid, secs):
    """Mean CPU share (% of one core) over `secs`, and the per-second samples."""
    a = proc_cpu_seconds(pid)
    samples, prev, t_prev = [], a, time.time()
    t_end = t_prev + secs
    while time.time() < t_end:
        time.sleep(min(1.0, max(0.0, t_end - time.time())))
        now, t = proc_cpu_seconds(pid), time.time()
        samples.append(round(100 * (now - prev) / (t - t_prev), 1))
        prev, t_prev = now, t
    return round(100 * (proc_cpu_seconds(pid) - a) / secs, 2), samples


def main():
    tmp = tempfile.mkdtemp(prefix="baton-streams.")
    srv = Server(os.path.join(tmp, "s.db"), os.path.join(tmp, "server.log"))
    holder = None
    slow = []
    out = {}
    problems = []
    try:
        port = srv.start()
        wait_healthy(port)
        create_convs(port, "r", CONVS)
        create_convs(port, "s", CONVS)
        create_convs(port, "n", 100)
        log(f"streams: idle CPU without streams, {IDLE_SECS / 2:.0f}s")
        out["idle_cpu_pct_no_streams"], out["idle_cpu_samples_no_streams"] = idle_cpu(srv.pid, IDLE_SECS / 2)
        log(f"streams: routine turns without streams, {TURNS_SECS}s")
        out["turns_without_streams"] = wrk(port, "turns.lua", TURNS_SECS, {"CONV_PREFIX": "r", "CONVS": str(CONVS),
                                                                         "ESCALATE_PCT": "0", "RUN_TAG": "nos"})
        ready = os.path.join(tmp, "streams.ready")
        holder = start_helper("streamholder.py", ["--port", str(port), "--n", str(STREAMS), "--path", STREAM_PATH], ready)
        t0 = time.time()
        wait_ready(holder, ready, timeout=90, interval=0.1)
        time.sleep(0.3)
        out["streams_ready"] = json.load(open(ready)) if os.path.exists(ready) else None
        out["streams_open_seconds"] = round(time.time() - t0, 2)
        log(f"streams: {out['streams_ready']} streams open; idle CPU with streams, {IDLE_SECS}s")
        out["idle_cpu_pct_with_streams"], out["idle_cpu_samples_with_streams"] = idle_cpu(srv.pid, IDLE_SECS)
        out["waiting_in_queues_at_idle"] = sum(q.get("waiting", 0) for q in Client(port).get("/v1/queues")[1]["queues"])
        log(f"streams: routine turns with {STREAMS} streams, {TURNS_SECS}s")
        out["turns_with_streams"] = wrk(port, "turns.lua", TURNS_SECS, {"CONV_PREFIX": "s", "CONVS": str(CONVS),
                                                                      "ESCALATE_PCT": "0", "RUN_TAG": "ws"})
        out["stream_holder"] = stop_helper(holder)
        holder = None
        if out["stream_holder"].get("opened", 0) < STREAMS:
            problems.append(f"only {out['stream_holder'].get('opened')} of {STREAMS} streams opened")

        # Slow clients: half a request header, then nothing.
        log(f"streams: {SLOW} slow clients; timing a normal client for {SLOW_SECS}s")
        refused = 0
        for i in range(SLOW):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"POST /v1/conversations/r1/turns HTTP/1.1\r\nHost: x\r\nContent-Ty")
                slow.append(s)
            except OSError:
                refused += 1
        c = Client(port, timeout=10)
        lat_h, lat_t, fails, why = [], [], 0, []
        t_end = time.time() + SLOW_SECS
        k = 0
        while time.time() < t_end:
            k += 1
            t = time.perf_counter()
            try:
                s, _ = c.get("/healthz")
                lat_h.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                s2, _ = c.post(f"/v1/conversations/n{k % 100}/turns",
                               {"role": "customer", "text": "hello", "client_turn_id": f"slow-{k}"})
                lat_t.append((time.perf_counter() - t) * 1000)
                if s != 200 or not 200 <= s2 < 300:
                    fails += 1
                    why.append(f"statuses {s}, {s2}")
            except Exception as e:
                fails += 1
                why.append(f"{time.strftime('%H:%M:%S')} {e!r}")
                c.close()
            time.sleep(0.01)
        # How many slow connections did the server close (a header timeout)?
        closed = 0
        for s in slow:
            s.setblocking(False)
            try:
                if s.recv(1024) == b"":
                    closed += 1
                else:
                    closed += 1  # it answered (e.g. 408) and will close
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
        out["slow_clients"] = {
            "opened": len(slow), "refused": refused, "closed_by_server_after_s": SLOW_SECS, "closed_by_server": closed,
            "normal_requests": k, "normal_failures": fails, "failure_reasons": why[:5],
            "healthz_ms": {"p50": round(pct(lat_h, 50), 2), "p99": round(pct(lat_h, 99), 2), "max": round(max(lat_h), 2)} if lat_h else None,
            "turn_ms": {"p50": round(pct(lat_t, 50), 2), "p99": round(pct(lat_t, 99), 2), "max": round(max(lat_t), 2)} if lat_t else None,
        }
        if fails:
            problems.append(f"{fails} normal requests failed while {SLOW} slow clients were connected")
        out["server_alive"] = srv.alive()
    except Exception as e:
        problems.append(f"error: {e!r}")
    finally:
        for s in slow:
            s.close()
        if holder:
            holder.kill()
        srv.stop()
        remove_work_dir(tmp)
    w, wo = out.get("turns_with_streams"), out.get("turns_without_streams")
    print(f"streams: {STREAMS} idle event streams ({STREAM_PATH}), {SLOW} slow clients")
    if wo:
        print(f"  routine turns/s without streams:  {wo['rps']:>9,.0f}  (p99 {wo['latency_us']['p99'] / 1000:.1f} ms, non-2xx {wo['non_2xx_3xx']})")
    if w:
        print(f"  routine turns/s with {STREAMS} streams: {w['rps']:>9,.0f}  (p99 {w['latency_us']['p99'] / 1000:.1f} ms, non-2xx {w['non_2xx_3xx']})"
              + (f"  = {w['rps'] / wo['rps']:.0%} of without" if wo and wo["rps"] else ""))
    if "idle_cpu_pct_with_streams" in out:
        print(f"  idle server CPU: {out['idle_cpu_pct_no_streams']}% of a core without streams, "
              f"{out['idle_cpu_pct_with_streams']}% with {STREAMS} streams open (over {IDLE_SECS:.0f} s; "
              f"per second: {out['idle_cpu_samples_with_streams']}; {out.get('waiting_in_queues_at_idle')} conversations waiting in queues)")
    if "stream_holder" in out:
        print(f"  streams: {json.dumps(out['stream_holder'])}")
    if "slow_clients" in out:
        print(f"  slow clients: {json.dumps(out['slow_clients'])}")
    for p in problems:
        print(f"  PROBLEM: {p}")
    out["problems"] = problems
    out["ok"] = not problems
    finish("streams", out)


if __name__ == "__main__":
    main()

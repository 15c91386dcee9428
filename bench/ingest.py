#!/usr/bin/env python3
"""Ingest benchmark (run through bench/ingest.sh). See bench/README.md."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from batonlib import BENCH_DIR, Client, Server, remove_work_dir, start_helper, stop_helper, wait_healthy, wait_ready

E = os.environ.get
THREADS = int(E("WRK_THREADS", "4"))
CONNS = int(E("WRK_CONNS", "64"))
HEALTHZ_SECS = int(E("HEALTHZ_SECS", "10"))
TURNS_SECS = int(E("TURNS_SECS", "10"))
ESC_SECS = int(E("ESC_SECS", str(TURNS_SECS)))
P99_SECS = float(E("P99_SECS", "10"))
P99_RATE = float(E("P99_RATE", "5000"))
CONVS = int(E("CONVS", "1000"))
ESC_PCT = int(E("ESCALATE_PCT", "10"))
AGENTS = int(E("AGENTS", "20"))
CAPACITY = int(E("AGENT_CAPACITY", "5"))
LUA = os.path.join(BENCH_DIR, "lua")

TARGET_RATIO = 0.25
TARGET_ESC = 10000
TARGET_P99_MS = 25


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def wrk(port, script, secs, env=None):
    e = dict(os.environ, BENCH_LUA_DIR=LUA, **(env or {}))
    cmd = ["wrk", "-t", str(THREADS), "-c", str(CONNS), "-d", f"{secs}s", "--timeout", "10s",
           "-s", os.path.join(LUA, script), f"http://127.0.0.1:{port}"]
    out = subprocess.run(cmd, env=e, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("WRKJSON "):
            r = json.loads(line[8:])
            r["command"] = " ".join(cmd)
            return r
    raise RuntimeError("wrk printed no WRKJSON line:\n" + out)


TEXTS = ["hi, where is my parcel?", "what are your opening hours", "can I change my delivery address",
         "do you ship to canada", "do you have this in a larger size", "thanks, and what about the colour options",
         "is the blue one in stock", "ok, and how long does shipping take"]


def fixed_rate(port, tmp):
    """p99 at P99_RATE turns/s over conversations p0..p(CONVS-1): with oha when it is installed
    (`cargo install oha --locked`; OHA=path to choose one), else with lib/openloop.py."""
    oha = E("OHA") or shutil.which("oha")
    if not oha:
        out = subprocess.run([sys.executable, os.path.join(BENCH_DIR, "lib", "openloop.py"), "--port", str(port),
                              "--rate", str(P99_RATE), "--duration", str(P99_SECS), "--convs", str(CONVS),
                              "--prefix", "p", "--tag", "p99"], capture_output=True, text=True, check=True).stdout
        return json.loads(out)
    # oha draws a URL and a body at random for each request: customer turns without a
    # client_turn_id (a drawn id could repeat in a conversation and be answered as a retry).
    urls = os.path.join(tmp, "urls.txt")
    bodies = os.path.join(tmp, "bodies.txt")
    with open(urls, "w") as f:
        f.writelines(f"http://127.0.0.1:{port}/v1/conversations/p{i}/turns\n" for i in range(CONVS))
    with open(bodies, "w") as f:
        f.writelines(json.dumps({"role": "customer", "text": t}) + "\n" for t in TEXTS)
    cmd = [oha, "--no-tui", "--output-format", "json", "-z", f"{P99_SECS}s", "-q", str(P99_RATE),
           "--latency-correction", "-c", str(max(64, int(P99_RATE) // 20)), "-m", "POST", "-T", "application/json",
           "-Z", bodies, "--urls-from-file", urls]
    d = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    statuses = d.get("statusCodeDistribution", {})
    answered = sum(statuses.values())
    unfinished = d.get("errorDistribution", {}).get("aborted due to deadline", 0)
    errors = sum(d.get("errorDistribution", {}).values()) - unfinished
    ms = lambda k: round(d["latencyPercentiles"][k] * 1000, 2) if d["latencyPercentiles"].get(k) is not None else None
    return {"tool": "oha (open loop, --latency-correction: latency from the scheduled send time)",
            "command": " ".join(cmd), "offered_rate": P99_RATE, "duration_s": P99_SECS,
            "sent": answered + errors + unfinished, "answered": answered,
            "achieved_rps": round(answered / d["summary"]["total"], 1), "unfinished": unfinished, "errors": errors,
            "non_2xx": sum(v for k, v in statuses.items() if not k.startswith("2")), "statuses": statuses,
            "latency_ms": {"p50": ms("p50"), "p90": ms("p90"), "p99": ms("p99"), "p999": ms("p99.9"),
                           "max": round(d["summary"]["slowest"] * 1000, 2)}}


def create_convs(port, prefix, n):
    def work(chunk):
        c = Client(port)
        bad = 0
        for i in chunk:
            s, _ = c.post("/v1/conversations", {"id": f"{prefix}{i}"})
            bad += not (200 <= s < 300)
        return bad
    with ThreadPoolExecutor(8) as ex:
        bad = sum(ex.map(work, [range(k, n, 8) for k in range(8)]))
    if bad:
        raise RuntimeError(f"{bad} conversations not created")


def state_counts(port, prefix, n):
    c = Client(port)
    counts = {}
    for i in range(0, n, max(1, n // 100)):
        s, b = c.get(f"/v1/conversations/{prefix}{i}")
        k = b.get("state") if s == 200 and b else f"http_{s}"
        counts[k] = counts.get(k, 0) + 1
    return counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true", help="JSON on stdout (the table goes to stderr)")
    ap.add_argument("--out", default=E("BENCH_OUT", ""), help="also write the JSON results here")
    a = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench: wrk not found (apt-get install wrk)")
    tmp = tempfile.mkdtemp(prefix="baton-ingest.")
    srv = Server(os.path.join(tmp, "ingest.db"), os.path.join(tmp, "server.log"))
    agents = None
    res = {"binary": srv.bin, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "config": {"wrk_threads": THREADS, "wrk_conns": CONNS, "healthz_s": HEALTHZ_SECS,
                      "turns_s": TURNS_SECS, "escalating_s": ESC_SECS, "p99_s": P99_SECS,
                      "p99_rate": P99_RATE, "conversations": CONVS, "escalate_pct": ESC_PCT,
                      "agents": AGENTS, "agent_capacity": CAPACITY}}
    try:
        port = srv.start()
        wait_healthy(port)
        log(f"ingest: server pid {srv.pid} port {port}; creating {3 * CONVS} conversations")
        t0 = time.time()
        for p in ("r", "e", "p"):
            create_convs(port, p, CONVS)
        res["create_conversations_per_s"] = round(3 * CONVS / (time.time() - t0), 1)

        log(f"ingest: /healthz, {HEALTHZ_SECS}s")
        res["healthz"] = wrk(port, "healthz.lua", HEALTHZ_SECS)
        log(f"ingest: routine turns, {TURNS_SECS}s")
        res["routine"] = wrk(port, "turns.lua", TURNS_SECS, {"CONV_PREFIX": "r", "CONVS": str(CONVS),
                                                           "ESCALATE_PCT": "0", "RUN_TAG": "routine"})
        res["routine"]["states_sampled"] = state_counts(port, "r", CONVS)

        log(f"ingest: {ESC_PCT}% escalating, {AGENTS} agents x {CAPACITY}, {ESC_SECS}s")
        ready = os.path.join(tmp, "agents.ready")
        agents = start_helper("agents.py", ["--port", str(port), "--agents", str(AGENTS), "--capacity", str(CAPACITY)],
                              ready)
        wait_ready(agents, ready, timeout=10)
        res["escalating"] = wrk(port, "turns.lua", ESC_SECS, {"CONV_PREFIX": "e", "CONVS": str(CONVS),
                                                             "ESCALATE_PCT": str(ESC_PCT), "RUN_TAG": "esc"})
        res["escalating"]["agents"] = stop_helper(agents)
        agents = None
        res["escalating"]["states_sampled"] = state_counts(port, "e", CONVS)

        log(f"ingest: p99 at {P99_RATE:.0f}/s open loop, {P99_SECS}s")
        res["fixed_rate"] = fixed_rate(port, tmp)
        res["server_log_errors"] = sum(1 for l in open(srv.log_path, errors="replace") if "ERROR" in l)
    finally:
        if agents:
            agents.kill()
        srv.stop()
        if not remove_work_dir(tmp):
            log(f"ingest: work dir kept: {tmp}")

    h, r, x, f = res["healthz"], res["routine"], res["escalating"], res["fixed_rate"]
    ratio = r["rps"] / h["rps"] if h["rps"] else 0
    res["ratio_routine_to_healthz"] = round(ratio, 4)
    p99 = f["latency_ms"]["p99"]
    res["targets"] = {
        "routine_ge_25pct_healthz": ratio >= TARGET_RATIO,
        "escalating_ge_10000_per_s": x["rps"] >= TARGET_ESC,
        "p99_lt_25ms_at_5000": p99 is not None and p99 < TARGET_P99_MS and f["achieved_rps"] >= 0.95 * P99_RATE,
    }
    # Correctness: non-2xx answers to valid turns should be (near) zero.
    checks = {}
    for k in ("routine", "escalating"):
        bad = res[k]["non_2xx_3xx"] + res[k]["connect_errors"] + res[k]["read_errors"] + res[k]["timeouts"]
        checks[f"{k}_non2xx_or_errors"] = bad
    checks["fixed_rate_non2xx_or_errors"] = f["non_2xx"] + f["errors"]
    checks["agents_server_errors"] = x["agents"].get("server_errors", 0)
    total_req = r["requests"] + x["requests"] + f["sent"]
    bad_total = sum(checks.values())
    res["checks"] = checks
    res["ok"] = bad_total <= 0.001 * total_req

    def lat(us):
        return f"{us / 1000:.2f} ms"
    mark = lambda ok: "MET" if ok else "missed"
    rows = [
        ("/healthz (wrk)", f"{h['rps']:,.0f} req/s", f"p99 {lat(h['latency_us']['p99'])}", f"non-2xx {h['non_2xx_3xx']}", ""),
        ("routine turns, 1,000 convs", f"{r['rps']:,.0f} turns/s", f"p99 {lat(r['latency_us']['p99'])}",
         f"non-2xx {r['non_2xx_3xx']}, sock err {r['connect_errors'] + r['read_errors'] + r['timeouts']}", ""),
        ("routine / healthz", f"{ratio:.1%}", "", "", f"target >= 25%: {mark(res['targets']['routine_ge_25pct_healthz'])}"),
        (f"{ESC_PCT}% escalating + {AGENTS} agents", f"{x['rps']:,.0f} turns/s", f"p99 {lat(x['latency_us']['p99'])}",
         f"non-2xx {x['non_2xx_3xx']}, sock err {x['connect_errors'] + x['read_errors'] + x['timeouts']}",
         f"target >= 10,000/s: {mark(res['targets']['escalating_ge_10000_per_s'])}"),
        ("  agents: claimed/resolved", f"{x['agents'].get('claimed', 0)}/{x['agents'].get('resolved', 0)}",
         f"claim 409s {x['agents'].get('claim_conflict', 0)}", f"5xx {x['agents'].get('server_errors', 0)}", ""),
        (f"fixed {P99_RATE:,.0f}/s open loop", f"{f['achieved_rps']:,.0f} answered/s",
         f"p50 {f['latency_ms']['p50']} ms, p99 {f['latency_ms']['p99']} ms, max {f['latency_ms']['max']} ms",
         f"non-2xx {f['non_2xx']}, err {f['errors']}, unfinished {f['unfinished']}",
         f"target p99 < 25 ms: {mark(res['targets']['p99_lt_25ms_at_5000'])}"),
    ]
    w = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["", f"baton ingest benchmark ({srv.bin})", ""]
    for row in rows:
        lines.append("  ".join(c.ljust(w[i]) for i, c in enumerate(row)).rstrip())
    lines.append("")
    lines.append(f"fixed-rate tool: {f['tool']}")
    lines.append(f"correctness: {'OK' if res['ok'] else 'FAILED'} ({bad_total} bad answers of {total_req} requests)")
    text = "\n".join(lines)
    if a.json:
        log(text)
        print(json.dumps(res, indent=2))
    else:
        print(text)
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(res, fh, indent=2)
    sys.exit(0 if res["ok"] else 1)


if __name__ == "__main__":
    main()

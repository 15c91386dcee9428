#!/usr/bin/env python3
"""Open-loop fixed-rate driver: customer turns at RATE/s for DURATION s, round-robin over
pre-created conversations PREFIX0..PREFIX(N-1), unique client_turn_ids.

Requests are sent on their schedule whether or not earlier ones have been answered (new
connections are opened as needed, up to --max-conns; beyond that they wait for a free one),
and each latency is measured from the request's scheduled time, so a slow server cannot hide
its queueing delay (no coordinated omission). Prints one JSON object on stdout.
Several processes (--procs) share the rate, to keep the client's own delay small.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


async def drive(a):
    loop = asyncio.get_running_loop()
    idle = []
    nconns = 0
    conn_waiters = []
    lat = []
    statuses = {}
    errors = 0
    client_late = 0
    texts = ["hi, where is my parcel?", "what are your opening hours", "can I change my delivery address",
             "do you ship to canada", "is the blue one in stock"]

    async def get_conn():
        nonlocal nconns
        if idle:
            return idle.pop()
        if nconns < a.max_conns:
            nconns += 1
            try:
                return await asyncio.open_connection("127.0.0.1", a.port)
            except OSError:
                nconns -= 1
                raise
        fut = loop.create_future()
        conn_waiters.append(fut)
        return await fut

    def put_conn(c):
        while conn_waiters:
            f = conn_waiters.pop(0)
            if not f.done():
                f.set_result(c)
                return
        idle.append(c)

    def drop_conn(c):
        nonlocal nconns
        nconns -= 1
        try:
            c[1].close()
        except Exception:
            pass

    async def one(i, sched):
        nonlocal errors
        conv = f"{a.prefix}{(i * a.procs + a.index) % a.convs}"
        body = json.dumps({"role": "customer", "text": texts[i % len(texts)],
                           "client_turn_id": f"{a.tag}-{a.index}-{i}"}).encode()
        req = (f"POST /v1/conversations/{conv}/turns HTTP/1.1\r\nHost: x\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        try:
            c = await get_conn()
        except OSError:
            errors += 1
            return
        r, w = c
        try:
            w.write(req)
            head = await r.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            cl = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    cl = int(v)
                elif k == b"connection" and v.strip().lower() == b"close":
                    close = True
            if cl:
                await r.readexactly(cl)
            lat.append(loop.time() - sched)
            statuses[status] = statuses.get(status, 0) + 1
            if close:
                drop_conn(c)
            else:
                put_conn(c)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            drop_conn(c)

    total = int(a.rate * a.duration)
    start = loop.time() + 0.2
    tasks = set()
    i = 0
    while i < total:
        now = loop.time()
        while i < total and start + i / a.rate <= now:
            sched = start + i / a.rate
            if now - sched > 0.005:
                client_late += 1
            t = asyncio.ensure_future(one(i, sched))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            i += 1
        nxt = start + i / a.rate
        await asyncio.sleep(max(0.0, min(0.002, nxt - loop.time())))
    sent_done = loop.time()
    if tasks:
        done, pending = await asyncio.wait(tasks, timeout=a.drain)
        for t in pending:
            t.cancel()
        unfinished = len(pending)
    else:
        unfinished = 0
    elapsed = loop.time() - start
    return {"sent": total, "answered": len(lat), "unfinished": unfinished, "errors": errors,
            "statuses": statuses, "elapsed_s": elapsed, "send_s": sent_done - start,
            "client_late_5ms": client_late, "max_conns_used": nconns,
            "lat_us": [int(x * 1e6) for x in lat]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--convs", type=int, default=1000)
    ap.add_argument("--prefix", default="p")
    ap.add_argument("--tag", default="ol")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--index", type=int, default=-1, help=argparse.SUPPRESS)
    ap.add_argument("--max-conns", type=int, default=512)
    ap.add_argument("--drain", type=float, default=15.0)
    a = ap.parse_args()
    if a.index >= 0:
        a.rate = a.rate / a.procs
        a.max_conns = max(1, a.max_conns // a.procs)
        res = asyncio.run(drive(a))
        json.dump(res, sys.stdout)
        return
    procs = []
    for k in range(a.procs):
        args = [sys.executable, os.path.abspath(__file__), "--port", str(a.port), "--rate", str(a.rate),
                "--duration", str(a.duration), "--convs", str(a.convs), "--prefix", a.prefix,
                "--tag", a.tag, "--procs", str(a.procs), "--index", str(k),
                "--max-conns", str(a.max_conns), "--drain", str(a.drain)]
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE))
    parts = [json.loads(p.communicate()[0]) for p in procs]
    lat = sorted(x for p in parts for x in p["lat_us"])
    statuses = {}
    for p in parts:
        for k, v in p["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    sent = sum(p["sent"] for p in parts)
    answered = sum(p["answered"] for p in parts)
    elapsed = max(p["elapsed_s"] for p in parts)
    non2xx = sum(v for k, v in statuses.items() if not str(k).startswith("2"))
    out = {
        "tool": "bench/lib/openloop.py (python asyncio open-loop, latency from scheduled send time)",
        "offered_rate": a.rate, "duration_s": a.duration, "sent": sent, "answered": answered,
        "achieved_rps": round(answered / elapsed, 1) if elapsed else 0,
        "unfinished": sum(p["unfinished"] for p in parts), "errors": sum(p["errors"] for p in parts),
        "non_2xx": non2xx, "statuses": statuses,
        "client_late_5ms": sum(p["client_late_5ms"] for p in parts),
        "max_conns_used": sum(p["max_conns_used"] for p in parts),
        "latency_ms": {k: (round(pct(lat, q) / 1000, 2) if lat else None)
                       for k, q in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9), ("max", 100))},
    }
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()

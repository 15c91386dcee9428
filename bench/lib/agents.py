#!/usr/bin/env python3
"""Scripted agents: registers N agents (capacity C, every skill the policy's queues ask for),
then polls GET /v1/queues/{name}, claims (accepts) what routing offered to them, and resolves each claimed conversation after --hold-ms. Runs until SIGTERM/SIGINT
or --duration, then prints a JSON summary on stdout.
"""

import argparse
import json
import queue
import signal
import sys
import threading
import time

from batonlib import Client, agent_skills, queues

stop = threading.Event()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--capacity", type=int, default=5)
    ap.add_argument("--hold-ms", type=float, default=0)
    ap.add_argument("--poll-ms", type=float, default=50)
    ap.add_argument("--duration", type=float, default=0, help="0: until signalled")
    ap.add_argument("--prefix", default="bench-agent-")
    ap.add_argument("--ready-file", default="")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    skills = agent_skills(a.port)
    qnames = [q["name"] for q in queues(a.port)]
    c = Client(a.port)
    ids = [f"{a.prefix}{i}" for i in range(a.agents)]
    for aid in ids:
        s, b = c.post("/v1/agents", {"id": aid, "name": aid, "skills": skills, "capacity": a.capacity})
        assert s in (200, 201), (s, b)
    stats = {"claimed": 0, "claim_conflict": 0, "resolved": 0, "resolve_failed": 0, "server_errors": 0,
             "transport_errors": 0, "polls": 0, "statuses": {}, "claim_conflict_codes": {}}
    lock = threading.Lock()
    inbox = {aid: queue.Queue() for aid in ids}
    load = {aid: 0 for aid in ids}
    busy = set()  # conversations being handled

    def count(k, n=1):
        with lock:
            stats[k] += n

    def status(s):
        with lock:
            stats["statuses"][str(s)] = stats["statuses"].get(str(s), 0) + 1
            if s >= 500:
                stats["server_errors"] += 1

    def agent(aid):
        cl = Client(a.port)
        while not stop.is_set():
            try:
                cid = inbox[aid].get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                s, b = cl.post(f"/v1/conversations/{cid}/claim", {"agent_id": aid})
                status(s)
                if 200 <= s < 300:
                    count("claimed")
                    if a.hold_ms:
                        time.sleep(a.hold_ms / 1000)
                    s, _ = cl.post(f"/v1/conversations/{cid}/resolve", {"agent_id": aid, "disposition": "bench"})
                    status(s)
                    count("resolved" if 200 <= s < 300 else "resolve_failed")
                else:
                    count("claim_conflict")
                    code = (b or {}).get("error", {}).get("code", str(s)) if isinstance(b, dict) else str(s)
                    with lock:
                        stats["claim_conflict_codes"][code] = stats["claim_conflict_codes"].get(code, 0) + 1
            except Exception:
                count("transport_errors")
            finally:
                with lock:
                    load[aid] -= 1
                    busy.discard(cid)

    threads = [threading.Thread(target=agent, args=(aid,), daemon=True) for aid in ids]
    for t in threads:
        t.start()
    if a.ready_file:
        open(a.ready_file, "w").write("ready\n")
    t_end = time.time() + a.duration if a.duration else None
    poller = Client(a.port)
    while not stop.is_set() and (t_end is None or time.time() < t_end):
        for qn in qnames:
            try:
                s, body = poller.get(f"/v1/queues/{qn}")
            except Exception:
                count("transport_errors")
                continue
            count("polls")
            if s != 200 or not isinstance(body, dict):
                status(s)
                continue
            for item in body.get("waiting", []):
                cid = item["conversation_id"]
                with lock:
                    if cid in busy:
                        continue
                    # Routing offers what an agent has room for; a conversation still queued is
                    # waiting for room, which a claim cannot make (it would answer not_eligible).
                    to = item.get("offered_to")
                    if to is None or to not in load:
                        continue
                    who = to
                    busy.add(cid)
                    load[who] += 1
                inbox[who].put(cid)
        stop.wait(a.poll_ms / 1000)
    stop.set()
    for t in threads:
        t.join(2)
    json.dump(stats, sys.stdout)
    print()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Clients that hang up mid-request. See bench/README.md.

HANGUP_TURNS (1,000) turns and HANGUP_CLAIMS (300) claims are sent on raw sockets that close
0-20 ms after the request is written, before the answer is read (half of them with an RST).
Afterwards: every conversation is consistent (queued ones have a position; each queue's
waiting count matches its conversations in queued/offered), every queued one can be claimed by
an agent with room, and every conversation answers a normal turn with 2xx.
"""

import json
import os
import random
import socket
import struct
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from batonlib import (Server, add_agents, agent_skills, create_conversations, customer_turn, finish,  # noqa: E402
                      print_fields, queues, remove_work_dir, start_client)

E = os.environ.get
TURNS = int(E("HANGUP_TURNS", "1000"))
CLAIMS = int(E("HANGUP_CLAIMS", "300"))
CONVS = int(E("CONVS", "100"))
AGENTS = int(E("AGENTS", "6"))
CAPACITY = int(E("AGENT_CAPACITY", "3"))
WORKERS = int(E("WORKERS", "16"))
SEED = int(E("SEED", str(int(time.time()))))


def hangup(port, method, path, obj, wait_s, rst):
    body = json.dumps(obj).encode()
    req = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(req)
        time.sleep(wait_s)
        if rst:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        s.close()


def main():
    rng = random.Random(SEED)
    tmp = tempfile.mkdtemp(prefix="baton-hangups.")
    srv = Server(os.path.join(tmp, "h.db"), os.path.join(tmp, "server.log"))
    problems = []
    out = {"seed": SEED}
    try:
        port, c = start_client(srv)
        skills = agent_skills(port)
        agents = [f"h-agent{i}" for i in range(AGENTS)]
        add_agents(c, agents, skills, CAPACITY, check=True)
        convs = [f"h{i}" for i in range(CONVS)]
        create_conversations(c, convs)
        # A third escalates normally first, so claims have something to act on.
        for cid in convs[::3]:
            c.post(f"/v1/conversations/{cid}/turns", customer_turn("", escalate=True))

        jobs = []
        for k in range(TURNS):
            cid = rng.choice(convs)
            if rng.random() < 0.2:
                t = customer_turn("", f"hu-{k}", escalate=True)
            else:
                t = customer_turn(rng.choice(["where is my parcel", "ok thanks", "what about returns"]), f"hu-{k}")
            jobs.append(("POST", f"/v1/conversations/{cid}/turns", t))
        for k in range(CLAIMS):
            jobs.append(("POST", f"/v1/conversations/{rng.choice(convs)}/claim", {"agent_id": rng.choice(agents)}))
        rng.shuffle(jobs)
        sent = {"ok": 0, "transport_error": 0}
        lock = threading.Lock()

        def run(job):
            m, p, o = job
            r = random.Random(hash(p) ^ rng.random().__hash__())
            try:
                hangup(port, m, p, o, r.uniform(0, 0.020), r.random() < 0.5)
                k = "ok"
            except OSError:
                k = "transport_error"
            with lock:
                sent[k] += 1
        t0 = time.time()
        with ThreadPoolExecutor(WORKERS) as ex:
            list(ex.map(run, jobs))
        out["hung_up"] = {"turns": TURNS, "claims": CLAIMS, "sent": sent, "seconds": round(time.time() - t0, 2)}
        time.sleep(1.0)  # let handlers whose clients left finish
        alive = srv.alive()
        out["server_alive_after"] = alive
        if not alive:
            problems.append("server died during the hang-ups")
            raise RuntimeError("server died")

        # Consistency.
        states = {}
        by_queue = {}
        for cid in convs:
            s, b = c.get(f"/v1/conversations/{cid}")
            if s != 200:
                problems.append(f"{cid}: GET answered {s}")
                continue
            st = b.get("state")
            states[st] = states.get(st, 0) + 1
            if st == "queued" and b.get("position") is None:
                problems.append(f"{cid}: queued without a position")
            if st in ("queued", "offered"):
                by_queue.setdefault(b.get("queue"), set()).add(cid)
        out["states"] = states
        for q in queues(port):
            s, b = c.get(f"/v1/queues/{q['name']}")
            listed = {w["conversation_id"] for w in b.get("waiting", [])}
            mine = by_queue.get(q["name"], set())
            if listed != mine:
                problems.append(f"queue {q['name']}: lists {len(listed)} waiting, conversations say {len(mine)} "
                                f"(only listed: {sorted(listed - mine)[:5]}, only in conversations: {sorted(mine - listed)[:5]})")
            if q.get("waiting") is not None and q["waiting"] != len(mine):
                problems.append(f"queue {q['name']}: GET /v1/queues waiting={q['waiting']}, conversations say {len(mine)}")
        s, b = c.get("/v1/agents")
        for a in b.get("agents", []):
            if a.get("assigned", 0) > a.get("capacity", 0):
                problems.append(f"agent {a['id']} holds {a['assigned']} > capacity {a['capacity']}")

        # A claim on each queued conversation by an agent with room succeeds.
        queued = [cid for cid in convs if c.get(f"/v1/conversations/{cid}")[1].get("state") == "queued"]
        c.post("/v1/agents", {"id": "h-fresh", "name": "Fresh", "skills": skills, "capacity": 10000})
        claim_ok = claim_bad = 0
        for cid in queued:
            s, b = c.post(f"/v1/conversations/{cid}/claim", {"agent_id": "h-fresh"})
            if 200 <= s < 300:
                claim_ok += 1
            else:
                claim_bad += 1
                if claim_bad <= 5:
                    problems.append(f"claim of queued {cid} by an agent with room answered {s}: {json.dumps(b)[:200]}")
        out["queued_claims"] = {"queued": len(queued), "ok": claim_ok, "failed": claim_bad}

        # Every conversation answers a normal turn.
        turn_bad = 0
        for cid in convs:
            s, b = c.post(f"/v1/conversations/{cid}/turns", {"role": "customer", "text": "hello again"})
            if not 200 <= s < 300:
                turn_bad += 1
                if turn_bad <= 5:
                    problems.append(f"{cid}: normal turn answered {s}: {json.dumps(b)[:200]}")
        # Those that failed: still failing on three more tries means stuck, not a passing hiccup.
        stuck = 0
        for cid in convs:
            fails = 0
            for _ in range(3):
                s, b = c.post(f"/v1/conversations/{cid}/turns", {"role": "customer", "text": "anyone there?"})
                fails += not 200 <= s < 300
            stuck += fails == 3
        if stuck:
            problems.append(f"{stuck} conversations answer every normal turn with an error (stuck)")
        out["normal_turns"] = {"sent": len(convs), "failed": turn_bad, "stuck_after_3_more_tries": stuck}
        out["server_log_errors"] = sum(1 for l in open(srv.log_path, errors="replace") if "ERROR" in l or "panick" in l)
    except Exception as e:
        problems.append(f"error: {e!r}")
    finally:
        srv.stop()
        remove_work_dir(tmp)
    out["problems"] = problems
    out["ok"] = not problems
    print(f"hangups: {TURNS} turns + {CLAIMS} claims hung up after 0-20 ms (seed {SEED})")
    print_fields(out, ("hung_up", "server_alive_after", "states", "queued_claims", "normal_turns", "server_log_errors"))
    print(f"  problems: {len(problems)}")
    for p in problems[:15]:
        print(f"    {p}")
    finish("hangups", out)


if __name__ == "__main__":
    main()

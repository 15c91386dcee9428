#!/usr/bin/env python3
"""kill -9 trials (run through bench/faults/kill9.sh). See bench/README.md.

Each trial: a fresh SQLite file; conversations and two small agents; W concurrent clients post
customer turns (ESCALATE_PCT% `request_human`) with unique client_turn_ids and record every
answer; the server is killed with SIGKILL at a random moment, restarted on the same file, and:
  - every acknowledged (2xx) turn is stored exactly once, no turn is stored twice, and no turn
    answered 4xx is stored;
  - every `queued` conversation has a running first_response SLA timer and a `position`;
  - unacknowledged turns, retried unchanged with the same client_turn_id, answer 2xx and are
    then stored exactly once.
"""

import json
import os
import random
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from batonlib import (Client, Server, add_agents, agent_skills, client_turns, count_stored,  # noqa: E402
                      create_conversations, customer_turn, lost_and_duplicated, remove_work_dir,
                      report_stored_twice_or_refused, sla_running_first_response, start_client, start_threads,
                      stored_turns)

E = os.environ.get
TRIALS = int(E("TRIALS", "20"))
CONVS = int(E("CONVS", "30"))
CLIENTS = int(E("CLIENTS", "6"))
ESC_PCT = int(E("ESCALATE_PCT", "10"))
KILL_MIN = float(E("KILL_MIN_S", "0.3"))
KILL_MAX = float(E("KILL_MAX_S", "2.0"))
SEED = int(E("SEED", str(int(time.time()))))
VERBOSE = bool(E("VERBOSE"))

TEXTS = ["hi, where is my parcel?", "what are your opening hours", "can I change my delivery address",
         "my card was charged twice for order 8812", "do you ship to canada", "is the blue one in stock"]


def trial(n, rng, tmp):
    db = os.path.join(tmp, f"trial{n}.db")
    srv = Server(db, os.path.join(tmp, f"trial{n}.log"))
    res = {"trial": n}
    try:
        port, c = start_client(srv)
        add_agents(c, [f"k9-agent{i}" for i in range(2)], agent_skills(port), 2, name="A")
        convs = [f"k{n}-c{i}" for i in range(CONVS)]
        create_conversations(c, convs)
        acked, unacked, rejected = {}, {}, {}
        lock = threading.Lock()
        stop = threading.Event()

        def client(w):
            r = random.Random(rng.random())
            cl = Client(port, timeout=10)
            for cid, ctid in client_turns(r, convs, f"t{n}-{w}", stop):
                if r.randrange(100) < ESC_PCT:
                    turn = customer_turn("", ctid, escalate=True)
                else:
                    turn = customer_turn(r.choice(TEXTS), ctid)
                try:
                    s, b = cl.post(f"/v1/conversations/{cid}/turns", turn)
                except ConnectionRefusedError:
                    return  # never reached the server
                except Exception:
                    with lock:
                        unacked[ctid] = (cid, turn)
                    return
                with lock:
                    if 200 <= s < 300:
                        acked[ctid] = (cid, turn)
                    else:
                        rejected[ctid] = (cid, turn, s, b)

        threads = start_threads(client, CLIENTS)
        delay = rng.uniform(KILL_MIN, KILL_MAX)
        time.sleep(delay)
        stop.set()  # no new requests; those in flight meet the kill
        srv.kill9()
        for t in threads:
            t.join(15)
        res.update(kill_after_s=round(delay, 3), acked=len(acked), unacked=len(unacked), rejected=len(rejected))
        res["rejected_statuses"] = sorted({v[2] for v in rejected.values()})

        port, c = start_client(srv)
        problems = []
        queued = queued_bad = 0

        def check_queued(cid, conv, ids):
            nonlocal queued, queued_bad
            if conv.get("state") == "queued":
                queued += 1
                if not sla_running_first_response(conv) or conv.get("position") is None:
                    queued_bad += 1
                    problems.append(f"{cid}: queued with position={conv.get('position')} sla={json.dumps(conv.get('sla'))}")
        stored = count_stored(c, convs, problems, check_queued)
        lost, dup = lost_and_duplicated(acked, stored)
        rejected_stored = [k for k in rejected if stored.get(k, 0) > 0]
        unacked_stored = sum(1 for k in unacked if stored.get(k, 0) == 1)
        for k in lost[:3]:
            problems.append(f"acknowledged turn {k} ({acked[k][0]}) lost")
        report_stored_twice_or_refused(problems, stored, dup, rejected_stored, rejected)
        # Retry the unacknowledged ones, unchanged.
        retry_fail = 0
        for ctid, (cid, turn) in unacked.items():
            try:
                s, b = c.post(f"/v1/conversations/{cid}/turns", turn)
            except Exception as e:
                s, b = None, str(e)
            if not (s and 200 <= s < 300):
                retry_fail += 1
                if retry_fail <= 3:
                    problems.append(f"retry of {ctid} answered {s}: {json.dumps(b)[:200]}")
        after = {}
        for cid in {v[0] for v in unacked.values()}:
            _, ids = stored_turns(c, cid)
            for x in ids or []:
                if x:
                    after[x] = after.get(x, 0) + 1
        retry_not_once = [k for k in unacked if after.get(k, 0) != 1]
        for k in retry_not_once[:3]:
            problems.append(f"retried turn {k} stored {after.get(k, 0)} times")
        res.update(stored=sum(stored.values()), unacked_found_stored=unacked_stored, lost=len(lost),
                   duplicated=len(dup), rejected_but_stored=len(rejected_stored), queued=queued,
                   queued_inconsistent=queued_bad, retried=len(unacked), retry_failed=retry_fail,
                   retry_not_stored_once=len(retry_not_once), problems=problems)
        res["ok"] = not (lost or dup or rejected_stored or queued_bad or retry_fail or retry_not_once
                         or any("GET failed" in p for p in problems))
    except Exception as e:
        res["ok"] = False
        res["problems"] = res.get("problems", []) + [f"trial error: {e!r}"]
    finally:
        srv.stop()
    return res


def main():
    rng = random.Random(SEED)
    tmp = tempfile.mkdtemp(prefix="baton-kill9.")
    print(f"kill9: {TRIALS} trials, {CONVS} conversations, {CLIENTS} clients, {ESC_PCT}% escalating, seed {SEED}")
    hdr = f"{'trial':>5} {'kill@s':>6} {'acked':>6} {'unack':>5} {'4xx':>4} {'lost':>4} {'dup':>4} {'queued':>6} {'q-bad':>5} {'retry':>5} {'r-bad':>5}  result"
    print(hdr)
    results = []
    try:
        for n in range(TRIALS):
            r = trial(n, rng, tmp)
            results.append(r)
            print(f"{n:>5} {r.get('kill_after_s', 0):>6} {r.get('acked', 0):>6} {r.get('unacked', 0):>5} "
                  f"{r.get('rejected', 0):>4} {r.get('lost', 0):>4} {r.get('duplicated', 0):>4} {r.get('queued', 0):>6} "
                  f"{r.get('queued_inconsistent', 0):>5} {r.get('retried', 0):>5} "
                  f"{r.get('retry_failed', 0) + r.get('retry_not_stored_once', 0):>5}  {'ok' if r['ok'] else 'FAIL'}",
                  flush=True)
            for p in r.get("problems", [])[: (20 if VERBOSE else 4)]:
                print(f"        {p}")
    finally:
        if not remove_work_dir(tmp):
            print(f"kill9: work dir kept: {tmp}")
    tot = {k: sum(r.get(k, 0) for r in results) for k in
           ("acked", "unacked", "rejected", "lost", "duplicated", "rejected_but_stored", "queued", "queued_inconsistent",
            "retried", "retry_failed", "retry_not_stored_once", "unacked_found_stored")}
    failed = sum(1 for r in results if not r["ok"])
    print(f"totals: trials {len(results)}, failed {failed}; " + ", ".join(f"{k} {v}" for k, v in tot.items()))
    statuses = sorted({s for r in results for s in r.get("rejected_statuses", [])})
    if statuses:
        print(f"non-2xx statuses seen while driving: {statuses}")
    if E("BENCH_OUT"):
        json.dump({"seed": SEED, "totals": tot, "failed_trials": failed, "trials": results}, open(E("BENCH_OUT"), "w"), indent=2)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

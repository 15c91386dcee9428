#!/usr/bin/env python3
"""SIGTERM with open event streams and turns in flight (run through bench/faults/sigterm.sh).

STREAMS (50) event streams are open and CLIENTS (16) clients post turns (ESCALATE_PCT%
escalating) when SIGTERM arrives. Measures the time to exit (target < 5 s; after
TERM_TIMEOUT_S the server is killed with SIGKILL and that is reported). Then restarts on the
same file and checks that every turn answered 2xx is stored exactly once, no turn answered 4xx
or left unanswered is stored (when the exit was graceful), and every conversation's state
agrees with the last answer its client got (escalated or not; queued ones with a position and a
running first-response SLA timer).
"""

import json
import os
import random
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from batonlib import (Client, Server, add_agents, agent_skills, count_stored, create_conversations,  # noqa: E402
                      customer_turn, finish, lost_and_duplicated, print_fields, remove_work_dir,
                      report_stored_twice_or_refused, sla_running_first_response, start_client, start_helper,
                      start_threads, stop_helper, wait_ready)

E = os.environ.get
STREAMS = int(E("STREAMS", "50"))
CLIENTS = int(E("CLIENTS", "16"))
CONVS = int(E("CONVS", "60"))
ESC_PCT = int(E("ESCALATE_PCT", "15"))
DRIVE_S = float(E("DRIVE_S", "2"))
TERM_TIMEOUT = float(E("TERM_TIMEOUT_S", "20"))
TARGET_S = 5.0
SEED = int(E("SEED", str(int(time.time()))))
ROUTED = ("queued", "offered", "assigned")


def main():
    rng = random.Random(SEED)
    tmp = tempfile.mkdtemp(prefix="baton-sigterm.")
    srv = Server(os.path.join(tmp, "t.db"), os.path.join(tmp, "server.log"))
    holder = None
    problems = []
    out = {"seed": SEED}
    try:
        port, c = start_client(srv)
        add_agents(c, [f"st-agent{i}" for i in range(3)], agent_skills(port), 3, name="A")
        convs = [f"st{i}" for i in range(CONVS)]
        create_conversations(c, convs, check=False)
        ready = os.path.join(tmp, "ready")
        holder = start_helper("streamholder.py", ["--port", str(port), "--n", str(STREAMS)], ready)
        wait_ready(holder, ready)
        out["streams"] = json.load(open(ready))
        acked, unacked, rejected = {}, {}, {}
        last_answer = {}  # conversation -> (order, state in the answer)
        lock = threading.Lock()
        order = [0]
        term_at = [None]
        after_term = {"acked": 0, "unacked": 0, "rejected": 0}

        def client(w):
            r = random.Random(rng.random())
            cl = Client(port, timeout=30)
            k = 0
            while True:
                k += 1
                cid = convs[(w + k * CLIENTS) % CONVS] if r.random() < 0.5 else r.choice(convs)
                ctid = f"st-{w}-{k}"
                turn = customer_turn("where is my parcel?", ctid, escalate=r.randrange(100) < ESC_PCT)
                try:
                    s, b = cl.post(f"/v1/conversations/{cid}/turns", turn)
                except Exception:
                    with lock:
                        unacked[ctid] = (cid, turn)
                        if term_at[0]:
                            after_term["unacked"] += 1
                    if term_at[0]:
                        return
                    continue
                with lock:
                    order[0] += 1
                    if 200 <= s < 300:
                        acked[ctid] = (cid, turn)
                        last_answer[cid] = (order[0], (b or {}).get("state"))
                    else:
                        rejected[ctid] = (cid, turn, s)
                    if term_at[0]:
                        after_term["acked" if 200 <= s < 300 else "rejected"] += 1
                if term_at[0] and time.monotonic() - term_at[0] > TERM_TIMEOUT + 5:
                    return

        threads = start_threads(client, CLIENTS, daemon=True)
        time.sleep(DRIVE_S)
        with lock:
            term_at[0] = time.monotonic()
            in_flight_acked_before = len(acked)
        took = srv.term(TERM_TIMEOUT)
        out["exit_seconds"] = None if took is None else round(took, 3)
        out["exited_gracefully"] = took is not None
        out["exit_code"] = srv.proc.returncode
        for t in threads:
            t.join(10)
        out["stream_holder"] = stop_helper(holder)
        holder = None
        out.update(acked=len(acked), unacked=len(unacked), rejected=len(rejected),
                   acked_before_term=in_flight_acked_before, after_term=after_term)

        port, c = start_client(srv)
        inconsistent = 0

        def check_state(cid, conv, ids):
            nonlocal inconsistent
            st = conv.get("state")
            if st == "queued" and (conv.get("position") is None or not sla_running_first_response(conv)):
                inconsistent += 1
                problems.append(f"{cid}: queued, position={conv.get('position')}, sla={json.dumps(conv.get('sla'))[:200]}")
            la = last_answer.get(cid)
            last_stored = ids[-1] if ids else None
            if la and last_stored in acked and (la[1] in ROUTED) != (st in ROUTED):
                inconsistent += 1
                problems.append(f"{cid}: last answer said {la[1]}, stored state is {st}")
        stored = count_stored(c, convs, problems, check_state)
        lost, dup = lost_and_duplicated(acked, stored)
        rej_stored = [k for k in rejected if stored.get(k, 0)]
        unacked_stored = [k for k in unacked if stored.get(k, 0)]
        for k in lost[:3]:
            problems.append(f"acknowledged turn {k} lost")
        report_stored_twice_or_refused(problems, stored, dup, rej_stored, rejected)
        # Every client had stopped long before any SIGKILL, so a stored turn that its client never
        # saw answered was written and then dropped on the way out.
        for k in unacked_stored[:3]:
            problems.append(f"turn {k} never acknowledged but stored")
        out.update(lost=len(lost), duplicated=len(dup), rejected_but_stored=len(rej_stored),
                   unacked_but_stored=len(unacked_stored), inconsistent_conversations=inconsistent)
    except Exception as e:
        problems.append(f"error: {e!r}")
    finally:
        if holder:
            holder.kill()
        srv.stop()
        remove_work_dir(tmp)
    if out.get("exit_seconds", 0) is None:
        problems.append(f"the server did not exit within {TERM_TIMEOUT:.0f} s of SIGTERM (a hang, not a slow exit)")
    correctness = [p for p in problems]
    out["problems"] = problems
    out["ok"] = not correctness
    es = out.get("exit_seconds")
    print(f"sigterm: {STREAMS} event streams, {CLIENTS} clients posting turns, SIGTERM after {DRIVE_S} s (seed {SEED})")
    print(f"  exit after SIGTERM: " + (f"{es} s" if es is not None else f"did NOT exit within {TERM_TIMEOUT} s (killed with SIGKILL)")
          + f"  target < {TARGET_S:.0f} s: {'MET' if es is not None and es < TARGET_S else 'missed'}")
    print_fields(out, ("exit_code", "streams", "stream_holder", "acked", "unacked", "rejected", "after_term", "lost",
                       "duplicated", "rejected_but_stored", "unacked_but_stored", "inconsistent_conversations"))
    for p in problems[:15]:
        print(f"  PROBLEM: {p}")
    finish("sigterm", out)


if __name__ == "__main__":
    main()

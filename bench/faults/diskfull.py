#!/usr/bin/env python3
"""Disk full (run through bench/faults/diskfull.sh, which mounts the tmpfs). See README.md.

The database lives on a small tmpfs (DISKFULL_DIR). A filler file leaves FREE_KB free; CLIENTS
clients post turns (~1 KB of text each) until writes fail, and FAIL_TURNS more after that.
Reports: the status and body of every failed write (the contract wants 503 with a JSON error
body), whether reads still work, the time from deleting the filler to normal service, and
after a kill -9 and restart on the same file: every acknowledged turn stored exactly once.
"""

import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from batonlib import (Client, Server, client_turns, count_stored, create_conversations, customer_turn,  # noqa: E402
                      finish, lost_and_duplicated, print_fields, start_client, start_threads)

E = os.environ.get
DIR = E("DISKFULL_DIR") or sys.exit("diskfull: set DISKFULL_DIR (diskfull.sh mounts a tmpfs)")
FREE_KB = int(E("FREE_KB", "1536"))
CLIENTS = int(E("CLIENTS", "4"))
CONVS = int(E("CONVS", "40"))
FAIL_TURNS = int(E("FAIL_TURNS", "300"))
MAX_FILL_S = float(E("MAX_FILL_S", "60"))
FULL_WINDOW_S = float(E("FULL_WINDOW_S", "8"))  # how long to keep writing once writes fail
RECOVERY_WAIT_S = float(E("RECOVERY_WAIT_S", "20"))
SEED = int(E("SEED", str(int(time.time()))))


def main():
    rng = random.Random(SEED)
    logdir = E("LOG_DIR", "/tmp")
    srv = Server(os.path.join(DIR, "full.db"), os.path.join(logdir, "diskfull-server.log"))
    filler = os.path.join(DIR, "filler")
    problems = []
    out = {"seed": SEED}
    try:
        port, c = start_client(srv)
        convs = [f"df{i}" for i in range(CONVS)]
        create_conversations(c, convs)
        st = os.statvfs(DIR)
        free = st.f_bavail * st.f_frsize
        with open(filler, "wb") as f:
            f.write(b"\0" * max(0, free - FREE_KB * 1024))
        st = os.statvfs(DIR)
        out["free_kb_at_start"] = st.f_bavail * st.f_frsize // 1024

        acked, failed, unanswered, acked_at = {}, [], {}, {}
        lock = threading.Lock()
        stop = threading.Event()
        first_fail = [None]

        def client(w):
            r = random.Random(rng.random())
            cl = Client(port, timeout=15)
            for cid, ctid in client_turns(r, convs, f"df-{w}", stop):
                text = "my order " + str(r.randrange(10 ** 6)) + " " + " ".join(
                    r.choice(["parcel", "late", "where", "is", "the", "box", "delivery", "please", "help"]) for _ in range(150))
                turn = customer_turn(text, ctid, escalate=r.random() < 0.05)
                try:
                    status, _, data = cl.raw("POST", f"/v1/conversations/{cid}/turns", json.dumps(turn).encode())
                except Exception as e:
                    with lock:
                        unanswered[ctid] = (cid, turn, repr(e))
                    continue
                with lock:
                    if 200 <= status < 300:
                        acked[ctid] = (cid, turn)
                        acked_at[ctid] = time.time()
                    else:
                        failed.append((status, data[:300], cid, turn))
                        if first_fail[0] is None:
                            first_fail[0] = time.time()
                        if len(failed) >= FAIL_TURNS:
                            stop.set()

        t0 = time.time()
        threads = start_threads(client, CLIENTS, daemon=True)
        while not stop.is_set() and time.time() - t0 < MAX_FILL_S:
            if first_fail[0] and time.time() - first_fail[0] > FULL_WINDOW_S:
                break
            time.sleep(0.1)
        # While full: do reads still work?
        reads_ok = 0
        for cid in convs[:10]:
            s, _ = c.get(f"/v1/conversations/{cid}")
            reads_ok += s == 200
        hs, _ = c.get("/healthz")
        stop.set()
        for t in threads:
            t.join(20)
        out["fill_seconds"] = round((first_fail[0] or time.time()) - t0, 2)
        out["acked_before_full"] = len(acked)
        out["failed_writes"] = len(failed)
        out["unanswered_writes"] = len(unanswered)
        by = {}
        for status, data, _, _ in failed:
            try:
                v = json.loads(data)
                shape = "json_error" if isinstance(v.get("error"), dict) and {"code", "message"} <= set(v["error"]) else "json_other"
                code = v.get("error", {}).get("code") if isinstance(v.get("error"), dict) else None
            except ValueError:
                shape, code = "not_json", None
            key = f"{status} {shape} {code}"
            by[key] = by.get(key, 0) + 1
        out["failed_by_status_shape_code"] = by
        out["failed_sample"] = [f"{s} {d.decode(errors='replace')}" for s, d, _, _ in failed[:2]]
        out["while_full"] = {"reads_ok_of_10": reads_ok, "healthz": hs}
        not503 = sum(v for k, v in by.items() if not k.startswith("503 json_error"))
        out["failed_not_503_json"] = not503
        if failed and not503:
            problems.append(f"{not503} of {len(failed)} failed writes were not answered 503 with a JSON error body "
                            f"({json.dumps(by)})")
        if not failed:
            problems.append(f"no write failed within {MAX_FILL_S:.0f} s (disk never filled?)")

        # Space returns: how long until turns are accepted again (10 in a row)?
        os.unlink(filler)
        t_free = time.time()
        in_row, recovered_at, k = 0, None, 0
        while time.time() - t_free < RECOVERY_WAIT_S:
            k += 1
            cid = convs[k % CONVS]
            turn = customer_turn("hello after space returned", f"df-after-{k}")
            try:
                s, _ = c.post(f"/v1/conversations/{cid}/turns", turn)
            except Exception:
                s = None
            if s and 200 <= s < 300:
                acked[turn["client_turn_id"]] = (cid, turn)
                in_row += 1
                if recovered_at is None:
                    recovered_at = time.time()
                if in_row >= 10:
                    break
            else:
                in_row, recovered_at = 0, None
                time.sleep(0.05)
        out["recovery_seconds"] = None if recovered_at is None else round(recovered_at - t_free, 3)
        if recovered_at is None:
            problems.append(f"writes did not recover within {RECOVERY_WAIT_S:.0f} s of space returning")
            out["recovery_last_status"] = s

        # kill -9, restart on the same file: every acknowledged turn stored once.
        srv.kill9()
        port, c = start_client(srv)
        stored = count_stored(c, convs, problems)
        lost, dup = lost_and_duplicated(acked, stored)
        failed_stored = [t["client_turn_id"] for _, _, _, t in failed if stored.get(t["client_turn_id"], 0)]
        ff = first_fail[0] or float("inf")
        out["lost_acked_after_first_failure"] = sum(1 for k in lost if acked_at.get(k, 0) >= ff)
        out["lost_sample"] = [{"client_turn_id": k, "conversation": acked[k][0],
                               "acked_s_after_first_failure": round(acked_at[k] - ff, 3) if k in acked_at and ff != float("inf") else None}
                              for k in lost[:5]]
        out.update(acked_total=len(acked), lost=len(lost), duplicated=len(dup), failed_but_stored=len(failed_stored))
        if lost:
            problems.append(f"{len(lost)} acknowledged turns lost after kill -9 and restart, e.g. {lost[:3]}")
        if dup:
            problems.append(f"{len(dup)} turns stored twice, e.g. {dup[:3]}")
        if failed_stored:
            problems.append(f"{len(failed_stored)} turns answered with an error but stored, e.g. {failed_stored[:3]}")
        # And the server works normally again.
        s, _ = c.post(f"/v1/conversations/{convs[0]}/turns", {"role": "customer", "text": "all good now?"})
        out["turn_after_restart"] = s
        if not (s and 200 <= s < 300):
            problems.append(f"a turn after the restart answered {s}")
    except Exception as e:
        problems.append(f"error: {e!r}")
    finally:
        srv.stop()
        if os.path.exists(filler):
            os.unlink(filler)
    out["problems"] = problems
    # A 500 instead of a 503 is reported, not a failed check: lost or doubled turns are.
    hard = [p for p in problems if "not answered 503" not in p]
    out["ok"] = not hard
    print(f"diskfull: database on a {E('DISKFULL_SIZE', '?')} tmpfs, {FREE_KB} KB left free, {CLIENTS} clients (seed {SEED})")
    print_fields(out, ("free_kb_at_start", "fill_seconds", "acked_before_full", "failed_writes", "unanswered_writes",
                       "failed_by_status_shape_code", "failed_sample", "while_full", "recovery_seconds", "acked_total",
                       "lost", "lost_acked_after_first_failure", "lost_sample", "recovery_last_status",
                       "duplicated", "failed_but_stored", "turn_after_restart"))
    for p in problems:
        print(f"  {'PROBLEM' if p in hard else 'CONTRACT MISS'}: {p}")
    finish("diskfull", out)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Sign-in throttling under a password-guessing flood (run through bench/faults/logins.sh).

1. Timing: TRIES (200) sign-ins to unknown accounts and TRIES with a wrong password to known
   ones, interleaved, each from its own loopback address (127.0.0.2-41, so no address waits);
   the medians must be within 10% of each other (no account enumeration by timing).
2. Flood: FLOODERS (8) threads send wrong passwords for one account from 127.0.0.1 for
   DRIVE_S seconds while CLIENTS (4) bot clients post routine turns; the same turns are
   measured for DRIVE_S without the flood first. Reports the guesses answered 401 (checked)
   per second, those refused 429, and the turns/s with and without the flood (target: within
   10%).
3. Lockout: after 7 wrong passwords an account waits longer than an attempt is held, so the
   right password too is refused (429 with Retry-After); it signs in once the wait is over.
"""

import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from batonlib import Client, Server, baton_bin, finish, print_fields, remove_work_dir, wait_healthy  # noqa: E402

E = os.environ.get
TRIES = int(E("TRIES", "200"))
ACCOUNTS = int(E("ACCOUNTS", "50"))
FLOODERS = int(E("FLOODERS", "8"))
CLIENTS = int(E("CLIENTS", "4"))
DRIVE_S = float(E("DRIVE_S", "5"))
PASSWORD = "the right password"


def login(port, account, password, source):
    """(status, headers dict, seconds) of one sign-in on a fresh connection from `source`."""
    c = Client(port, source=source)
    body = json.dumps({"agent_id": account, "password": password}).encode()
    started = time.perf_counter()
    status, headers, _ = c.raw("POST", "/v1/login", body)
    took = time.perf_counter() - started
    c.close()
    return status, {k.lower(): v for k, v in headers}, took


def drive_turns(port, key, convs, stop, counts, i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    k = 0
    while not stop.is_set():
        k += 1
        body = json.dumps({"role": "customer", "text": f"where is my parcel {k}"})
        c.request("POST", f"/v1/conversations/{convs[(i + k) % len(convs)]}/turns", body=body, headers=h)
        r = c.getresponse()
        r.read()
        if r.status == 200:
            counts[i] += 1


def turns_per_second(port, key, convs, flood=None):
    stop = threading.Event()
    counts = [0] * CLIENTS
    threads = [threading.Thread(target=drive_turns, args=(port, key, convs, stop, counts, i)) for i in range(CLIENTS)]
    threads += flood(stop) if flood else []
    for t in threads:
        t.start()
    time.sleep(DRIVE_S)
    stop.set()
    for t in threads:
        t.join()
    return round(sum(counts) / DRIVE_S, 1)


def main():
    tmp = tempfile.mkdtemp(prefix="baton-logins.")
    db = os.path.join(tmp, "baton.db")
    url = f"sqlite://{db}"
    # u0 .. u{ACCOUNTS-1} for the timing and the flood; "locked" for the lockout alone.
    for name in [f"u{i}" for i in range(ACCOUNTS)] + ["locked"]:
        subprocess.run([baton_bin(), "agents", "add", name, "--name", name, "--password-stdin",
                        "--database-url", url], input=PASSWORD + "\n", text=True, check=True,
                       capture_output=True)
    key = subprocess.run([baton_bin(), "keys", "add", "--name", "bench", "--scope", "bot", "--database-url", url],
                         text=True, check=True, capture_output=True).stdout.strip()
    srv = Server(db, os.path.join(tmp, "server.log"))
    port = srv.start()
    wait_healthy(port)
    out = {"ok": True, "problems": []}
    try:
        # 1. Timing, unknown against known accounts.
        unknown, known = [], []
        for i in range(TRIES):
            source = f"127.0.0.{2 + i % 40}"
            s1, _, t1 = login(port, f"nobody{i}", "a wrong guess", source)
            s2, _, t2 = login(port, f"u{i % ACCOUNTS}", "a wrong guess", source)
            if (s1, s2) != (401, 401):
                out["problems"].append(f"timing try {i}: {s1}, {s2}")
            unknown.append(t1)
            known.append(t2)
        mu, mk = statistics.median(unknown), statistics.median(known)
        out["median_ms_unknown_account"] = round(mu * 1000, 2)
        out["median_ms_wrong_password"] = round(mk * 1000, 2)
        out["timing_ratio"] = round(max(mu, mk) / min(mu, mk), 3)
        if out["timing_ratio"] > 1.10:
            out["problems"].append("unknown and known accounts answer more than 10% apart")

        # 2. Turns with and without a flood of guesses.
        convs = [f"c{i}" for i in range(100)]
        bot = Client(port)
        for cid in convs:
            bot.raw("POST", "/v1/conversations", json.dumps({"id": cid}).encode(), {"authorization": f"Bearer {key}"})
        out["turns_per_s_quiet"] = turns_per_second(port, key, convs)
        answered = {"checked": 0, "refused": 0, "other": 0}

        def flood(stop):
            def guess():
                while not stop.is_set():
                    s, _, _ = login(port, "u0", "guess", "127.0.0.1")
                    answered["checked" if s == 401 else "refused" if s == 429 else "other"] += 1
            return [threading.Thread(target=guess) for _ in range(FLOODERS)]

        out["turns_per_s_flood"] = turns_per_second(port, key, convs, flood)
        out["guesses_checked_per_s"] = round(answered["checked"] / DRIVE_S, 1)
        out["guesses_refused_per_s"] = round(answered["refused"] / DRIVE_S, 1)
        out["guesses_other"] = answered["other"]
        out["turns_flood_share"] = round(out["turns_per_s_flood"] / max(out["turns_per_s_quiet"], 0.1), 3)
        if out["turns_flood_share"] < 0.90:
            out["problems"].append("the flood slowed other clients' turns by more than 10%")
        if out["guesses_checked_per_s"] > 5:
            out["problems"].append("more than 5 guesses a second were checked")

        # 3. The right password after the wait.
        source = "127.0.0.99"
        for _ in range(7):
            login(port, "locked", "wrong", source)
        s, h, _ = login(port, "locked", PASSWORD, source)
        wait = int(h.get("retry-after", "0"))
        out["lockout_status"] = s
        out["retry_after_s"] = wait
        time.sleep(wait)
        s, _, _ = login(port, "locked", PASSWORD, source)
        out["after_wait_status"] = s
        if out["lockout_status"] != 429 or s != 200:
            out["problems"].append("the lockout did not hold, or the right password failed after it")
    finally:
        srv.stop()
    out["ok"] = not out["problems"]
    print_fields(out, ["median_ms_unknown_account", "median_ms_wrong_password", "timing_ratio",
                       "turns_per_s_quiet", "turns_per_s_flood", "turns_flood_share", "guesses_checked_per_s",
                       "guesses_refused_per_s", "guesses_other", "lockout_status", "retry_after_s",
                       "after_wait_status", "problems"])
    remove_work_dir(tmp)
    finish("logins", out)


if __name__ == "__main__":
    main()

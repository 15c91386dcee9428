"""Shared helpers for the bench/ scripts: find the binary, run `baton serve`, talk HTTP.

Python 3 standard library only.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.dirname(BENCH_DIR)


def baton_bin() -> str:
    """BATON_BIN, else $CARGO_TARGET_DIR/release/baton, else <repo>/target/release/baton."""
    b = os.environ.get("BATON_BIN")
    if not b:
        t = os.environ.get("CARGO_TARGET_DIR")
        b = os.path.join(t, "release", "baton") if t else os.path.join(REPO_DIR, "target", "release", "baton")
    if not os.access(b, os.X_OK):
        sys.exit(f"bench: no baton binary at {b} (set BATON_BIN)")
    return b


class Server:
    """One `baton serve` process on a SQLite file; restartable on the same file."""

    def __init__(self, db_path: str, log_path: str, extra_env: dict | None = None):
        self.db_path = db_path
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.extra_env = extra_env or {}
        self.bin = baton_bin()

    def start(self, timeout: float = 30.0) -> int:
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        env.update(self.extra_env)
        log = open(self.log_path, "ab")
        log.write(f"\n=== start {time.strftime('%H:%M:%S')} ===\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [self.bin, "serve", "--listen", "127.0.0.1:0", "--database-url", f"sqlite://{self.db_path}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.PIPE, env=env,
        )
        deadline = time.time() + timeout
        buf = b""
        os.set_blocking(self.proc.stderr.fileno(), True)
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                if self.proc.poll() is not None:
                    break
                continue
            log.write(line)
            log.flush()
            buf += line
            m = re.search(rb"listening on http://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                # Keep draining stderr into the log so the server never blocks on a full pipe.
                def drain(src=self.proc.stderr, dst=log):
                    for l in iter(src.readline, b""):
                        try:
                            dst.write(l)
                            dst.flush()
                        except ValueError:
                            break
                threading.Thread(target=drain, daemon=True).start()
                return self.port
        raise RuntimeError(f"baton serve did not start: {buf.decode(errors='replace')[-2000:]}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait()

    def term(self, timeout: float = 30.0) -> float | None:
        """SIGTERM; seconds until exit, or None (then SIGKILL) when it outlived `timeout`."""
        if not self.alive():
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
            return time.monotonic() - t0
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def stop(self):
        if self.alive():
            try:
                self.proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


class Client:
    """A keep-alive HTTP/1.1 client for one server; reconnects after errors."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 30.0, source: str | None = None):
        """`source`: the local address to connect from (e.g. 127.0.0.7), else any."""
        self.host, self.port, self.timeout = host, port, timeout
        self.source = (source, 0) if source else None
        self.conn: http.client.HTTPConnection | None = None

    def _conn(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout,
                                                   source_address=self.source)
        return self.conn

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def raw(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """(status, headers, body bytes); raises OSError / http.client errors on transport failure."""
        h = {"content-type": "application/json"} if body is not None else {}
        h.update(headers or {})
        c = self._conn()
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            if r.getheader("connection", "").lower() == "close":
                self.close()
            return r.status, r.getheaders(), data
        except Exception:
            self.close()
            raise

    def req(self, method: str, path: str, obj=None):
        """(status, parsed JSON or None)."""
        body = None if obj is None else json.dumps(obj).encode()
        status, _, data = self.raw(method, path, body)
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, None

    def get(self, path):
        return self.req("GET", path)

    def post(self, path, obj):
        return self.req("POST", path, obj)


def wait_healthy(port: int, timeout: float = 20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            s, _ = Client(port, timeout=2).get("/healthz")
            if s == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("server not healthy")


def queues(port: int) -> list[dict]:
    s, body = Client(port).get("/v1/queues")
    assert s == 200, (s, body)
    return body["queues"] if isinstance(body, dict) and "queues" in body else body


def agent_skills(port: int) -> list[str]:
    """Every skill any queue asks for (so one agent with all of them serves every queue)."""
    skills = set()
    for q in queues(port):
        for sk in q.get("skills") or []:
            skills.add(sk["name"] if isinstance(sk, dict) else sk)
    return sorted(skills)


def proc_cpu_seconds(pid: int) -> float:
    """utime+stime of a process, in seconds (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def is_error_shape(data: bytes) -> bool:
    try:
        v = json.loads(data)
    except ValueError:
        return False
    return (isinstance(v, dict) and isinstance(v.get("error"), dict)
            and isinstance(v["error"].get("code"), str) and isinstance(v["error"].get("message"), str))


def raw_http(port: int, payload: bytes, timeout: float = 10.0) -> tuple[int | None, bytes]:
    """Sends raw bytes on a fresh connection, reads the whole answer (Connection: close)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(payload)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    finally:
        s.close()
    data = b"".join(chunks)
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return (int(m.group(1)) if m else None), data


def start_client(srv: Server) -> tuple[int, Client]:
    """Starts `srv` (again), waits until /healthz answers; its port and a Client on it."""
    port = srv.start()
    wait_healthy(port)
    return port, Client(port)


def add_agents(c: Client, ids, skills: list[str], capacity: int, name: str | None = None, check: bool = False):
    """Registers an agent per id (named `name`, else its id); with `check`, each must answer 200/201."""
    for a in ids:
        s, _ = c.post("/v1/agents", {"id": a, "name": name or a, "skills": skills, "capacity": capacity})
        if check:
            assert s in (200, 201), s


def create_conversations(c: Client, ids, check: bool = True):
    """Creates a conversation per id; with `check`, each must answer 200/201."""
    for cid in ids:
        s, _ = c.post("/v1/conversations", {"id": cid})
        if check:
            assert s in (200, 201), s


def customer_turn(text: str, client_turn_id: str | None = None, escalate: bool = False) -> dict:
    """A customer turn; `escalate` makes it an empty `request_human` one (then `text` is unused)."""
    turn = {"role": "customer", "text": "" if escalate else text}
    if escalate:
        turn["action"] = "request_human"
    if client_turn_id is not None:
        turn["client_turn_id"] = client_turn_id
    return turn


def client_turns(r, convs: list[str], tag: str, stop):
    """A driving client's turns until `stop` is set: (conversation picked by `r`, client_turn_id TAG-k)
    for k = 1, 2, …"""
    k = 0
    while not stop.is_set():
        k += 1
        yield r.choice(convs), f"{tag}-{k}"


def start_threads(target, n: int, daemon: bool = False) -> list:
    """Starts `n` threads running target(0) … target(n-1)."""
    threads = [threading.Thread(target=target, args=(w,), daemon=daemon) for w in range(n)]
    for t in threads:
        t.start()
    return threads


def stored_turns(c: Client, cid: str):
    """(conversation, its turns' client_turn_ids in order), or (None, None) when GET fails."""
    s, b = c.get(f"/v1/conversations/{cid}")
    if s != 200:
        return None, None
    ids = [t.get("body", {}).get("client_turn_id") for t in b.get("turns", [])]
    return b, ids


def sla_running_first_response(conv: dict) -> bool:
    for t in conv.get("sla") or []:
        kind = str(t.get("kind", t.get("name", "")))
        if "first" in kind and not t.get("stopped_at") and not t.get("met_at") and not t.get("done") \
                and t.get("stopped", False) is False:
            return True
    return False


def count_stored(c: Client, convs, problems: list[str], each=None) -> dict[str, int]:
    """How often each client_turn_id is stored in `convs` (after a restart). A conversation that
    does not answer GET is a problem; each(cid, conversation, ids) sees every one that does."""
    stored: dict[str, int] = {}
    for cid in convs:
        conv, ids = stored_turns(c, cid)
        if conv is None:
            problems.append(f"{cid}: GET failed after restart")
            continue
        for x in ids:
            if x:
                stored[x] = stored.get(x, 0) + 1
        if each:
            each(cid, conv, ids)
    return stored


def lost_and_duplicated(acked, stored: dict[str, int]) -> tuple[list, list]:
    """The acknowledged client_turn_ids not stored, and the ids stored more than once."""
    return [k for k in acked if stored.get(k, 0) == 0], [k for k, v in stored.items() if v > 1]


def report_stored_twice_or_refused(problems: list[str], stored: dict[str, int], dup, rejected_stored, rejected):
    """Up to three examples each: turns stored more than once, and turns answered non-2xx (rejected:
    id -> (conversation, turn, status, …)) but stored."""
    for k in dup[:3]:
        problems.append(f"turn {k} stored {stored[k]} times")
    for k in rejected_stored[:3]:
        problems.append(f"turn {k} answered {rejected[k][2]} but stored")


def start_helper(script: str, args: list[str], ready: str) -> subprocess.Popen:
    """Runs bench/lib/SCRIPT ARGS --ready-file READY; its stdout (a JSON summary) piped as text."""
    return subprocess.Popen([sys.executable, os.path.join(BENCH_DIR, "lib", script), *args, "--ready-file", ready],
                            stdout=subprocess.PIPE, text=True)


def wait_ready(proc: subprocess.Popen, ready: str, timeout: float | None = None, interval: float = 0.05) -> bool:
    """Waits until the helper writes its ready file (or exits, or `timeout` passes); True when ready."""
    t0 = time.time()
    while not os.path.exists(ready) and proc.poll() is None and (timeout is None or time.time() - t0 < timeout):
        time.sleep(interval)
    return os.path.exists(ready)


def stop_helper(proc: subprocess.Popen) -> dict:
    """SIGTERM to a helper started with start_helper; the JSON summary it prints on the way out."""
    proc.terminate()
    return json.loads(proc.communicate(timeout=30)[0] or "{}")


def remove_work_dir(tmp: str) -> bool:
    """Removes the work dir unless KEEP_WORK is set; True when removed."""
    if os.environ.get("KEEP_WORK"):
        return False
    shutil.rmtree(tmp, ignore_errors=True)
    return True


def print_fields(out: dict, keys) -> None:
    """`  key: JSON` for each of `keys` that `out` holds, in that order."""
    for k in keys:
        if k in out:
            print(f"  {k}: {json.dumps(out[k])}")


def finish(name: str, out: dict) -> None:
    """Prints `NAME: OK|FAILED` by out["ok"], writes `out` to BENCH_OUT if set, and exits 0 or 1."""
    print(f"{name}:", "OK" if out["ok"] else "FAILED")
    if os.environ.get("BENCH_OUT"):
        json.dump(out, open(os.environ["BENCH_OUT"], "w"), indent=2)
    sys.exit(0 if out["ok"] else 1)

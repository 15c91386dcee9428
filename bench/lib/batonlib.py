"""Shared helpers for the bench/ scripts: find the binary, run `baton serve`, talk HTTP.

Python 3 standard library only.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
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
                import threading

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

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 30.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def _conn(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
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

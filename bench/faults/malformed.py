#!/usr/bin/env python3
"""Malformed requests over every route. See bench/README.md.

MALFORMED_REQUESTS (300,000) requests from WORKERS (4) processes on keep-alive raw sockets:
bad JSON, wrong types, huge bodies, bad methods, bad query strings, random bytes, bad
percent-encoding in paths. Counts every 5xx and every error answer (4xx/5xx) whose body is not
JSON of the shape {"error": {"code", "message"}}, by kind, and prints the first offenders.
Answers that the HTTP layer gives to bytes that are not HTTP at all (a 400 with an empty body
before any route is reached) are counted apart, as `protocol_level`.
"""

import json
import multiprocessing as mp
import os
import random
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from batonlib import BENCH_DIR, REPO_DIR, Client, Server, agent_skills, is_error_shape, wait_healthy  # noqa: E402

E = os.environ.get
TOTAL = int(E("MALFORMED_REQUESTS", "300000"))
WORKERS = int(E("WORKERS", "4"))
SEED = int(E("SEED", str(int(time.time()))))
SHOW = int(E("SHOW", "12"))


def routes(port):
    """(method, path template) for every route the running server documents at /openapi.json,
    plus the console/widget ones."""
    status, spec = Client(port).get("/openapi.json")
    if status != 200 or not isinstance(spec, dict) or not spec.get("paths"):
        raise SystemExit(f"malformed: GET /openapi.json answered {status} without paths")
    out = []
    for path, ms in spec.get("paths", {}).items():
        for m in ms:
            if m.lower() in ("get", "post", "put", "delete", "patch"):
                out.append((m.upper(), path))
    extra = [("GET", "/console"), ("GET", "/widget"), ("GET", "/assets/{file}"), ("POST", "/widget/api/start"),
             ("POST", "/widget/api/say"), ("POST", "/widget/api/rate"), ("POST", "/widget/api/followup"),
             ("GET", "/widget/api/state"), ("GET", "/widget/api/events"), ("GET", "/healthz"), ("GET", "/openapi.json")]
    for r in extra:
        if r not in out:
            out.append(r)
    return out


FIELDS = ["id", "role", "text", "client_turn_id", "action", "agent_id", "disposition", "name", "skills", "capacity",
          "status", "queue", "customer", "ai_confidence", "kb_similarity", "kb_articles", "token", "rating",
          "password", "channel", "languages", "target_queue", "tier", "score", "after", "note"]
WEIRD = [None, True, False, 0, -1, 1e308, -1e308, 2 ** 63, -(2 ** 64), 1.5, "", " ", "x" * 5000, "\u0000", "\ud7ff",
         "é", "😀", [], [1, 2], {}, {"a": {"b": []}}, "NaN", "../../etc/passwd", "%00", "<script>", "' OR 1=1 --"]
BAD_JSON = [b"{", b"}", b"{\"role\":", b"{\"role\": \"customer\",}", b"[1,2,", b"nul", b"{'a': 1}", b"\xff\xfe\xfd",
            b"{\"text\": \"\xc3\x28\"}", b"{\"a\":1}{\"b\":2}", b"NaN", b"1e99999", b"{\"a\": 1e99999}", b"\"str\"",
            b"[]", b"null", b"0", b"", b" ", b"{\"role\":\"customer\",\"text\":\"\\ud800\"}", b"{\"a\":" * 2000,
            b"[" * 5000 + b"]" * 5000, b"{\"role\":\"customer\",\"text\":\"hi\",\"role\":\"ai\"}"]
BAD_PCT = ["%", "%Z", "%ZZ", "%C3%28", "%FF", "%00", "%2F", "%2e%2e", "a%", "%%", "%E2%82", "%C0%AF", "..", ".", "%20",
           "x" * 3000, "\u00e9", "%F0%9F%98%80", "a/b", "%0d%0a", "%3Fx=1"]
BAD_QUERY = ["?", "?&&&", "?after=abc", "?after=-999999999999999999999", "?after=1e5", "?after=%ZZ", "?format=%ZZ",
             "?format=pdf", "?format=", "?conversation=%00", "?conversation=" + "x" * 5000, "?token=%C3%28",
             "?token=", "?a=1&a=2&a=3", "?after=1&after=2", "?%=%", "?==", "?after[]=1", "?conversation=..%2F..",
             "?format=markdown&format=json", "?" + "&".join(f"k{i}=v" for i in range(500)), "?after=0x10"]
METHODS = ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO", "HEAD", "CONNECT", "GET", "POST", "get", "P0ST"]


def fill(template, rng, good_ids):
    p = template
    for k in ("{id}", "{name}", "{agent}", "{file}"):
        if k in p:
            v = rng.choice(good_ids[k] + [rng.choice(BAD_PCT), "nope-" + str(rng.randrange(1000))])
            p = p.replace(k, v)
    return p


def make_request(rng, rts, good_ids):
    """(kind, raw request bytes)."""
    method, tmpl = rng.choice(rts)
    path = fill(tmpl, rng, good_ids)
    kind = rng.choices(["bad_json", "wrong_types", "huge_body", "bad_method", "bad_query", "random_bytes",
                        "bad_path", "bad_headers"], weights=[22, 25, 1, 12, 14, 6, 14, 6])[0]
    headers = {"Host": "x", "Content-Type": "application/json"}
    body = b""
    if kind == "bad_json":
        method = "POST" if rng.random() < 0.8 else method
        body = rng.choice(BAD_JSON)
        if rng.random() < 0.3:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    elif kind == "wrong_types":
        obj = {}
        for f in rng.sample(FIELDS, rng.randrange(1, 6)):
            obj[f] = rng.choice(WEIRD)
        if rng.random() < 0.5:
            obj["role"] = rng.choice(["customer", "ai", "agent", "bot", 7, None])
        try:
            body = json.dumps(obj).encode()
        except (ValueError, OverflowError):
            body = b"{}"
        if rng.random() < 0.1:
            body = json.dumps(rng.choice(WEIRD)).encode()
    elif kind == "huge_body":
        n = rng.choice([256 * 1024 + 1, 300_000, 1_000_000, 4_000_000])
        body = (b'{"role":"customer","text":"' + b"a" * n + b'"}')
    elif kind == "bad_method":
        method = rng.choice(METHODS)
        if rng.random() < 0.5:
            body = b"{}"
    elif kind == "bad_query":
        path = path + rng.choice(BAD_QUERY)
    elif kind == "random_bytes":
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        if rng.random() < 0.5:
            return kind, raw + b"\r\n\r\n"
        # Random bytes in the request line's path.
        junk = "".join(rng.choice("abc%/?#&=;:@!$'()*+,~ \t\"<>[]\\^`{|}") for _ in range(rng.randrange(1, 30)))
        path = "/" + junk.replace(" ", "%20").replace("\t", "%09")
    elif kind == "bad_path":
        parts = path.split("/")
        i = rng.randrange(1, len(parts))
        parts[i] = rng.choice(BAD_PCT)
        path = "/".join(parts)
        if rng.random() < 0.3:
            path = path + "/" + rng.choice(BAD_PCT)
        if method == "POST":
            body = b"{}"
    elif kind == "bad_headers":
        body = b'{"role":"customer","text":"hi"}'
        v = rng.randrange(5)
        if v == 0:
            headers["Content-Type"] = rng.choice(["text/plain", "application/xml", "", "application/json; charset=latin1",
                                                  "multipart/form-data; boundary=x"])
        elif v == 1:
            headers["Authorization"] = rng.choice(["Bearer ", "Bearer x", "Basic Zm9vOmJhcg==", "Bearer " + "x" * 4000])
        elif v == 2:
            headers["Cookie"] = rng.choice(["session=", "session=%ZZ", "session=" + "a" * 4000, "x"])
        elif v == 3:
            headers["Last-Event-ID"] = rng.choice(["abc", "-1", "99999999999999999999", ""])
        else:
            headers.pop("Content-Type")
    req_line = f"{method} {path} HTTP/1.1\r\n".encode("utf-8", "surrogateescape")
    h = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if body or method in ("POST", "PUT", "PATCH"):
        h += f"Content-Length: {len(body)}\r\n"
    return kind, req_line + h.encode() + b"\r\n" + body


class Conn:
    def __init__(self, port):
        self.port = port
        self.s = None
        self.buf = b""

    def open(self):
        self.s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.buf = b""

    def close(self):
        if self.s:
            try:
                self.s.close()
            except OSError:
                pass
        self.s = None

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError
        self.buf += d

    def exchange(self, raw):
        """(status, headers dict, body bytes, closed). A reused connection that the server had
        already closed is retried once on a fresh one (that is no fault of this request)."""
        reused = self.s is not None
        try:
            return self._exchange(raw)
        except (EOFError, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
            self.close()
            return self._exchange(raw)

    def _exchange(self, raw):
        if self.s is None:
            self.open()
        try:
            self.s.sendall(raw)
        except OSError:
            pass  # the server may answer (413) and close before the body is all sent
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0][9:12])
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(b":")
            hdrs[k.strip().lower().decode("latin1")] = v.strip().decode("latin1")
        if "text/event-stream" in hdrs.get("content-type", ""):
            self.close()
            return status, hdrs, b"", True
        body = b""
        if raw.startswith(b"HEAD "):
            pass
        elif "content-length" in hdrs:
            n = int(hdrs["content-length"])
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                n = int(size_line.split(b";")[0], 16)
                while len(self.buf) < n + 2:
                    self._fill()
                body += self.buf[:n]
                self.buf = self.buf[n + 2:]
                if n == 0:
                    break
        elif status not in (204, 304) and not 100 <= status < 200:
            # No length: the body runs to the end of the connection.
            try:
                while True:
                    self._fill()
            except (EOFError, OSError):
                pass
            body, self.buf = self.buf, b""
            self.close()
            return status, hdrs, body, True
        closed = hdrs.get("connection", "").lower() == "close"
        if closed:
            self.close()
        return status, hdrs, body, closed


def worker(args):
    idx, n, port, seed, good_ids = args
    rng = random.Random(seed * 1000 + idx)
    rts = routes(port)
    c = Conn(port)
    seen = set()
    st = {"sent": 0, "answered": 0, "no_answer": 0, "statuses": {}, "by_kind": {}, "server_errors": 0,
          "bad_shape": 0, "protocol_level": 0, "streams": 0, "offenders": []}
    for _ in range(n):
        kind, raw = make_request(rng, rts, good_ids)
        st["sent"] += 1
        k = st["by_kind"].setdefault(kind, {"sent": 0, "5xx": 0, "bad_shape": 0, "protocol_level": 0, "no_answer": 0})
        k["sent"] += 1
        try:
            status, hdrs, body, closed = c.exchange(raw)
        except (EOFError, OSError, ValueError, IndexError):
            c.close()
            st["no_answer"] += 1
            k["no_answer"] += 1
            continue
        st["answered"] += 1
        st["statuses"][str(status)] = st["statuses"].get(str(status), 0) + 1
        if "text/event-stream" in hdrs.get("content-type", ""):
            st["streams"] += 1
            continue
        bad5 = status >= 500
        badshape = status >= 400 and not is_error_shape(body) and not raw.startswith(b"HEAD ")
        # Answers the HTTP layer gives before routing (not HTTP at all): counted apart.
        protocol = badshape and not bad5 and status == 400 and body == b"" and kind == "random_bytes" and closed
        if protocol:
            st["protocol_level"] += 1
            k["protocol_level"] += 1
            continue
        if bad5:
            st["server_errors"] += 1
            k["5xx"] += 1
        if badshape:
            st["bad_shape"] += 1
            k["bad_shape"] += 1
        key = (kind, status, hdrs.get("content-type"), body[:60])
        if (bad5 or badshape) and key not in seen and len(seen) < 200:
            seen.add(key)
            st["offenders"].append({"kind": kind, "status": status, "request": raw[:160].decode("latin1"),
                                    "body": body[:160].decode("latin1"),
                                    "content_type": hdrs.get("content-type")})
    c.close()
    return st


def main():
    tmp = tempfile.mkdtemp(prefix="baton-malformed.")
    srv = Server(os.path.join(tmp, "m.db"), os.path.join(tmp, "server.log"))
    ok = False
    try:
        port = srv.start()
        wait_healthy(port)
        c = Client(port)
        skills = agent_skills(port)
        c.post("/v1/agents", {"id": "m-agent", "name": "M", "skills": skills, "capacity": 1000})
        for i in range(5):
            c.post("/v1/conversations", {"id": f"m{i}"})
        c.post("/v1/conversations/m1/turns", {"role": "customer", "text": "", "action": "request_human"})
        c.post("/v1/conversations/m1/claim", {"agent_id": "m-agent"})
        c.post("/v1/conversations/m2/turns", {"role": "customer", "text": "", "action": "request_human"})
        good = {"{id}": [f"m{i}" for i in range(5)], "{name}": ["general", "billing", "vip"], "{agent}": ["m-agent"],
                "{file}": ["console.js", "widget.js", "style.css"]}
        per = TOTAL // WORKERS
        t0 = time.time()
        print(f"malformed: {per * WORKERS} requests, {WORKERS} workers, seed {SEED}, {len(routes(port))} routes", flush=True)
        with mp.Pool(WORKERS) as pool:
            parts = pool.map(worker, [(i, per, port, SEED, good) for i in range(WORKERS)])
        secs = time.time() - t0
        alive = srv.alive()
        tot = {"sent": 0, "answered": 0, "no_answer": 0, "server_errors": 0, "bad_shape": 0, "protocol_level": 0,
               "streams": 0}
        statuses, kinds, offenders = {}, {}, []
        for p in parts:
            for k in tot:
                tot[k] += p[k]
            for s, v in p["statuses"].items():
                statuses[s] = statuses.get(s, 0) + v
            for kind, v in p["by_kind"].items():
                d = kinds.setdefault(kind, {})
                for kk, vv in v.items():
                    d[kk] = d.get(kk, 0) + vv
            offenders += p["offenders"]
        print(f"  {tot['sent']} sent in {secs:.0f} s ({tot['sent'] / secs:,.0f}/s); server alive afterwards: {alive}")
        print(f"  totals: {json.dumps(tot)}")
        print(f"  statuses: {json.dumps(dict(sorted(statuses.items())))}")
        print(f"  {'kind':<13} {'sent':>7} {'5xx':>6} {'bad-shape':>9} {'protocol':>8} {'no-answer':>9}")
        for kind, v in sorted(kinds.items()):
            print(f"  {kind:<13} {v['sent']:>7} {v['5xx']:>6} {v['bad_shape']:>9} {v['protocol_level']:>8} {v['no_answer']:>9}")
        # Distinct offenders first: one per (kind, status, content type, body start).
        seen, shown = set(), []
        for o in offenders:
            key = (o["status"], o["content_type"], o["body"][:60])
            if key not in seen:
                seen.add(key)
                shown.append(o)
        if shown:
            print(f"  first offenders (distinct, of {tot['server_errors']} 5xx and {tot['bad_shape']} non-JSON-shaped errors):")
            for o in shown[:SHOW]:
                print(f"    [{o['kind']}] {o['status']} {o['content_type']!r} body={o['body']!r}\n      request={o['request']!r}")
        ok = alive and tot["server_errors"] == 0 and tot["bad_shape"] == 0
        if E("BENCH_OUT"):
            json.dump({"seed": SEED, "seconds": secs, "totals": tot, "statuses": statuses, "by_kind": kinds,
                       "offenders": shown[:50], "server_alive": alive}, open(E("BENCH_OUT"), "w"), indent=2)
    finally:
        srv.stop()
        if not E("KEEP_WORK"):
            shutil.rmtree(tmp, ignore_errors=True)
    print("malformed:", "OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

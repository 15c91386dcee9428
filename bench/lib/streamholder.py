#!/usr/bin/env python3
"""Holds N idle event streams (GET PATH, default /v1/events?after=-1) open until SIGTERM, then
prints a JSON summary: how many opened with 200 text/event-stream, closed early by the server,
events and bytes received. Writes --ready-file once all have answered (or failed).
"""

import argparse
import asyncio
import json
import signal
import sys


async def main(a):
    st = {"wanted": a.n, "opened": 0, "failed": 0, "statuses": {}, "closed_by_server": 0,
          "events": 0, "bytes": 0}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    answered = 0
    all_answered = asyncio.Event()
    writers = []

    async def one():
        nonlocal answered
        try:
            r, w = await asyncio.open_connection("127.0.0.1", a.port)
            writers.append(w)
            w.write(f"GET {a.path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
            head = await r.readuntil(b"\r\n\r\n")
            status = head[9:12].decode()
            st["statuses"][status] = st["statuses"].get(status, 0) + 1
            ok = status == "200" and b"text/event-stream" in head.lower()
            st["opened" if ok else "failed"] += 1
        except Exception:
            st["failed"] += 1
            return
        finally:
            answered += 1
            if answered == a.n:
                all_answered.set()
        if not ok:
            return
        try:
            while True:
                chunk = await r.read(65536)
                if not chunk:
                    if not stop.is_set():
                        st["closed_by_server"] += 1
                    return
                st["bytes"] += len(chunk)
                st["events"] += chunk.count(b"\nid:") + chunk.startswith(b"id:")
        except Exception:
            if not stop.is_set():
                st["closed_by_server"] += 1

    tasks = []
    for i in range(a.n):
        tasks.append(asyncio.ensure_future(one()))
        if i % 50 == 49:
            await asyncio.sleep(0.01)
    try:
        await asyncio.wait_for(all_answered.wait(), 60)
    except asyncio.TimeoutError:
        pass
    if a.ready_file:
        with open(a.ready_file, "w") as f:
            json.dump({"opened": st["opened"], "failed": st["failed"]}, f)
    await stop.wait()
    st["still_open_at_stop"] = sum(1 for t in tasks if not t.done())
    for w in writers:
        try:
            w.close()
        except Exception:
            pass
    for t in tasks:
        t.cancel()
    json.dump(st, sys.stdout)
    print()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--path", default="/v1/events?after=-1")
    ap.add_argument("--ready-file", default="")
    asyncio.run(main(ap.parse_args()))

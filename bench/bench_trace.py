"""Trace writer/reader throughput and size.

    python bench/bench_trace.py [--requests N] [--out PATH]

Records a synthetic but typical workload (concurrent requests into one
instance: task lifecycle, thread switches, waitable-set waits, stream copies,
an outgoing import per request) through the real :class:`Recorder` with the
default real clock, then reads it back with :class:`TraceReader`. Prints a
markdown table: writer events/s (target >= 1,000,000), reader events/s
(target >= 2,000,000), bytes per event (target <= 24), with ratios to target.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import deque

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from callscope.trace import Recorder, TraceReader  # noqa: E402

ROUTES = ["GET /users", "GET /items", "POST /orders", "GET /health"]


def record(path: str, requests: int) -> int:
    rec = Recorder(path, guest={"name": "bench.wasm", "size": 0, "sha256": "0" * 64}, seed=1, argv=["bench"])
    rec.instance_new(0, "root", None)
    rec.instance_new(1, "app", 0)
    rec.waitable_set_new(1, 1)
    for r in range(requests):
        task = 2 * r + 1
        thread = task
        rec.task_new(task, 1, "wasi:http/handler.handle", None, task, ROUTES[r & 3], False)
        rec.taint_plant(task, f"tok{r:x}")
        rec.call_queued(task)
        rec.call_admitted(task)
        rec.task_start(task)
        rec.thread_new(thread, task)
        rec.thread_switch(thread - 2 if r else None, thread)
        rec.copy("stream", "new", 10 + r % 50, None, 11 + r % 50, 1)
        rec.handle_new("stream", 1, 10 + r % 50, task)
        rec.import_call(r, 1, "wasi:http/outgoing-handler.handle", [task], [r, "GET"], [f"tok{r:x}"], [task])
        rec.waitable_join(1, 10 + r % 50, 1)
        rec.waitable_set_wait(thread, 1)
        rec.thread_switch(thread, None)
        rec.import_return(r, r)
        rec.event_delivered(thread, 2, 10 + r % 50, 0x10)
        rec.thread_switch(None, thread)
        for i in range(8):
            rec.copy("stream", "read", 10 + r % 50, 64, 0x400, 1)
            rec.copy("stream", "write", 11 + r % 50, 64, 0x400, 1)
        rec.copy("stream", "drop-readable", 10 + r % 50, None, None, 1)
        rec.subtask_state(task + 1, 3, 2)
        rec.task_return(task, 200)
        rec.task_resolved(task)
        rec.task_exit(task)
    n = rec.events_written
    rec.close()
    return n


def read(path: str) -> int:
    n = 0
    with TraceReader(path) as r:
        for ev in r:  # touch every event the way a consumer does
            n += 1
            ev[1]
    return n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=50_000)
    ap.add_argument("--out", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    path = a.out or os.path.join(tempfile.mkdtemp(), "bench.cstrace")
    w_best = r_best = float("inf")
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        n = record(path, a.requests)
        w_best = min(w_best, time.perf_counter() - t0)
        t0 = time.perf_counter()
        m = read(path)
        r_best = min(r_best, time.perf_counter() - t0)
        assert m == n, (m, n)
    size = os.path.getsize(path)
    with TraceReader(path) as r:
        header_etc = r.chunks[0].offset if r.chunks else size
    bpe = size / n
    bpe_body = (size - header_etc) / n
    w = n / w_best
    rd = n / r_best
    print(f"{n:,} events, {size:,} bytes, {len(ROUTES)} routes, best of {a.repeat}\n")
    print("| metric | value | target | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| writer events/s | {w:,.0f} | 1,000,000 | {w / 1e6:.2f}x |")
    print(f"| reader events/s | {rd:,.0f} | 2,000,000 | {rd / 2e6:.2f}x |")
    print(f"| bytes/event (whole file) | {bpe:.1f} | 24 | {24 / bpe:.2f}x |")
    print(f"| bytes/event (chunks only) | {bpe_body:.1f} | 24 | {24 / bpe_body:.2f}x |")
    if not a.out:
        os.unlink(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

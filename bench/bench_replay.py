"""Replay on a big trace: indexing, memory, steps and jumps.

    python bench/bench_replay.py [--requests N] [--trace PATH]

Records bench_trace.py's synthetic workload (~40 events a request; the
default 25,000 requests make ~1,000,000 events) and measures, in one run,
against a full decode of the same trace (every event read by TraceReader):

* index: ReplaySource.index() (findings, task table, snapshots); target <= 2 s
* memory: peak Python allocation while indexing (tracemalloc) over the trace
  file's size; target: a small constant
* step / jump / seek: ReplaySource.state_after for the next event, a random
  event, and the app's whole seek (state, tree, event list, details) in a
  headless app; target <= 50 ms each (max over the samples)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from bench_trace import record  # noqa: E402
from callscope.replay.source import ReplaySource  # noqa: E402
from callscope.trace import TraceReader  # noqa: E402


def ms(s: float) -> str:
    return f"{s * 1e3:.1f} ms"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=25_000)
    ap.add_argument("--trace", help="use this trace instead of recording one")
    ap.add_argument("--samples", type=int, default=40)
    args = ap.parse_args()
    tmp = None
    path = args.trace
    if path is None:
        tmp = tempfile.mkdtemp()
        path = os.path.join(tmp, "big.cstrace")
        record(path, args.requests)
    size = os.path.getsize(path)

    t0 = time.perf_counter()
    with TraceReader(path) as r:
        total = 0
        for _ in r.events():
            total += 1
    decode = time.perf_counter() - t0

    # memory first, in its own source (tracemalloc slows allocation several times over)
    msrc = ReplaySource(path)
    tracemalloc.start()
    msrc.index()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    msrc.close()
    del msrc

    src = ReplaySource(path)
    marks = []
    t0 = time.perf_counter()
    src.index(findings_done=lambda: marks.append(time.perf_counter() - t0))
    index = time.perf_counter() - t0
    findings_t = marks[0]

    rng = random.Random(1)
    # steps: from a random place, 10 steps forward
    steps, jumps = [], []
    for _ in range(args.samples):
        n = rng.randrange(total)
        src.state_after(n)
        for k in range(1, 6):
            t0 = time.perf_counter()
            src.state_after(min(total - 1, n + k))
            steps.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        src.state_after(max(0, n - 1))  # one step back
        steps.append(time.perf_counter() - t0)
    for _ in range(args.samples):
        n = rng.randrange(total)
        t0 = time.perf_counter()
        src.state_after(n)
        jumps.append(time.perf_counter() - t0)

    seeks = asyncio.run(app_seeks(src, total, rng, args.samples))
    src.close()

    print(f"trace: {total:,} events, {size / 1e6:.1f} MB; full decode {ms(decode)}")
    print()
    print("| measure | value | ratio to full decode | target |")
    print("|---|---:|---:|---|")
    print(f"| findings indexed (findings, task table) | {ms(findings_t)} | {findings_t / decode:.2f}x | <= 2 s |")
    print(f"| index done (+ snapshots, in the background) | {ms(index)} | {index / decode:.2f}x | |")
    print(f"| index peak memory | {peak / 1e6:.1f} MB | {peak / size:.1f}x trace size | small constant |")
    for name, xs in (("step (state after next/previous event)", steps), ("jump (state at a random event)", jumps),
                     ("app seek (state + tree + list + details)", seeks)):
        print(f"| {name} | median {ms(statistics.median(xs))}, max {ms(max(xs))} | "
              f"{max(xs) / decode:.3f}x | <= 50 ms |")
    if tmp:
        os.unlink(path)
        os.rmdir(tmp)
    return 0


async def app_seeks(src, total, rng, samples) -> list:
    from callscope.replay.app import ReplayApp

    app = ReplayApp(src, index=False)
    out = []
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        for _ in range(samples):
            n = rng.randrange(total)
            t0 = time.perf_counter()
            app.seek(n)
            out.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            app.seek(n + 1)
            out.append(time.perf_counter() - t0)
    return out


if __name__ == "__main__":
    sys.exit(main())

"""The cost of ``callscope check`` (the recorded run + the oracle's serial
run + matching) against ``callscope run`` (the recorded run only) on the same
guest, interleaved repetition by repetition; medians and their ratio. The
issue's goal: check <= 2.2x run.

    python bench/bench_oracle.py                  # the built-in demo, and fanout when built
    python bench/bench_oracle.py --repeat 5 --demo-calls 2000

Timed: the whole ``callscope.run.run`` (instantiation, the runs, closing the
trace) plus reading the trace for the summary, as the CLI does. Read ratios,
not seconds: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _one(opts) -> float:
    from callscope.run import run
    from callscope.run_cli import _findings
    t = time.perf_counter()
    res = run(opts, out=open(os.devnull, "w"))
    _findings(res.trace_path)
    return time.perf_counter() - t


def bench(name: str, make, repeat: int) -> tuple:
    runs, checks = [], []
    for _ in range(repeat):
        runs.append(_one(make(False)))
        checks.append(_one(make(True)))
    r, c = statistics.median(runs), statistics.median(checks)
    return name, r, c, c / r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--demo-calls", type=int, default=1000)
    ap.add_argument("--fanout-requests", type=int, default=16)
    a = ap.parse_args(argv)
    from callscope.run import RunOptions
    tmp = tempfile.mkdtemp(prefix="callscope-bench-oracle-")
    rows = []

    def demo(oracle):
        return RunOptions(output=os.path.join(tmp, "demo.trace"), invokes=['handle({i}, "https://upstream.test/req-{i}")'],
                          repeat=a.demo_calls, concurrency=4, oracle=oracle)

    rows.append(bench(f"demo, {a.demo_calls} calls at concurrency 4", demo, a.repeat))
    fanout = None
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
        import build  # examples/build.py: cached by source hash
        fanout = build.build("fanout") if hasattr(build, "build") else None
    except Exception as e:  # no componentize-py: the row is skipped
        print(f"fanout skipped: {type(e).__name__}: {e}", file=sys.stderr)
    if fanout:
        def fan(oracle):
            return RunOptions(guest=str(fanout), output=os.path.join(tmp, "fanout.trace"),
                              repeat=a.fanout_requests, concurrency=4, oracle=oracle)
        rows.append(bench(f"examples/fanout, {a.fanout_requests} requests at concurrency 4", fan, a.repeat))
    print("| guest | run (s) | check (s) | check / run (goal <= 2.2x) |")
    print("|---|---:|---:|---:|")
    for name, r, c, ratio in rows:
        print(f"| {name} | {r:.2f} | {c:.2f} | {ratio:.2f}x ({'met' if ratio <= 2.2 else 'missed'}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where `callscope serve`'s memory goes under load (issue 13): tracemalloc
inside the serve process, snapshots after A and after B requests (default
2,000 and 10,000), and the allocation sites that grew most between them.

    .venv/bin/python bench/serve_tracemalloc.py [--at 2000 10000] [--concurrency 32]
                                                [--frames 12] [--top 25] [--guest service]

The server is ``python -X tracemalloc=FRAMES -m callscope serve`` with a
thread of this file's own started first (``_HOOK`` below: run as the
``-c`` program, nothing of it lives in callscope); the thread reads
``snap PATH`` lines on the server's stdin and dumps a snapshot there (after
a ``gc.collect()``). The clients (``--concurrency`` keep-alive connections,
GET ``/echo/K``) pause at each checkpoint until the snapshot is written, so
each one sees the server idle. Printed: the snapshots' traced totals, the
RSS at each, the trace file's size at each, and the top sites by growth
(grouped by traceback; the innermost frames of each shown). Slow: tracemalloc
costs several times the run's speed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_serve import get_client, rss_kib, run_clients, trace_size  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

_HOOK = r"""
import gc, os, sys, threading, tracemalloc
def _snapper():
    for line in sys.stdin:
        cmd, _, path = line.strip().partition(" ")
        if cmd == "snap" and path:
            gc.collect()
            tracemalloc.take_snapshot().dump(path + ".tmp")
            os.replace(path + ".tmp", path)
threading.Thread(target=_snapper, name="tracemalloc-snapper", daemon=True).start()
sys.argv = ["callscope"] + sys.argv[1:]
from callscope.cli import main
sys.exit(main())
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--at", type=int, nargs=2, default=[2000, 10000], metavar=("A", "B"))
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--show-frames", type=int, default=6, help="frames of each site printed (innermost last)")
    ap.add_argument("--guest", default="service")
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    import build
    import tracemalloc

    guest = a.guest if os.path.exists(a.guest) else str(build.build(a.guest))
    with tempfile.TemporaryDirectory() as d:
        trace = os.path.join(d, "t.trace")
        proc = subprocess.Popen([sys.executable, "-X", f"tracemalloc={a.frames}", "-c", _HOOK, "serve", guest,
                                 "--port", "0", "-o", trace],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if m is None:
            print(f"serve did not start: {line!r}", file=sys.stderr)
            return 1
        port = int(m.group(1))
        lock = threading.Lock()
        sent = [0]
        bad = [0]

        def answered(st, err) -> None:
            if st != 200:
                with lock:
                    bad[0] += 1

        def clients(upto: int) -> None:
            run_clients(get_client, a.concurrency, port, upto, lock, sent, answered)

        def partial_size() -> int:
            return trace_size(d, "t.trace")

        snaps = []
        t0 = time.perf_counter()
        for n in a.at:
            clients(n)
            time.sleep(0.5)  # (answers written, the loop idle; the trace's 100 ms flush done)
            path = os.path.join(d, f"snap-{n}")
            proc.stdin.write(f"snap {path}\n")
            proc.stdin.flush()
            while not os.path.exists(path):
                time.sleep(0.1)
            snaps.append((n, tracemalloc.Snapshot.load(path), rss_kib(proc.pid), partial_size()))
            print(f"  {n} requests ({time.perf_counter() - t0:.0f} s): RSS {snaps[-1][2] / 1024:.1f} MiB, "
                  f"trace {snaps[-1][3]:,} B", file=sys.stderr, flush=True)
        proc.send_signal(2)
        proc.communicate(timeout=300)  # (closes stdin: the snapper thread ends)

    (n1, s1, r1, f1), (n2, s2, r2, f2) = snaps
    per = n2 - n1
    tot1 = sum(st.size for st in s1.statistics("filename"))
    tot2 = sum(st.size for st in s2.statistics("filename"))
    print(f"{per} requests between the snapshots ({n1} -> {n2}, concurrency {a.concurrency}; {bad[0]} not 200):")
    print(f"  traced Python memory {tot1 / 2**20:.2f} -> {tot2 / 2**20:.2f} MiB: "
          f"{(tot2 - tot1) / per:.0f} B/request")
    print(f"  RSS (under tracemalloc) {r1 / 1024:.1f} -> {r2 / 1024:.1f} MiB: {(r2 - r1) * 1024 / per:.0f} B/request")
    print(f"  trace file {f1:,} -> {f2:,} B: {(f2 - f1) / per:.0f} B/request")
    print(f"top {a.top} sites by growth (traceback, innermost frame last):")
    stats = s2.compare_to(s1, "traceback")
    for st in stats[:a.top]:
        if st.size_diff <= 0:
            break
        print(f"  {st.size_diff / per:+8.1f} B/request  {st.count_diff / per:+6.2f} blocks/request  "
              f"(now {st.size / 1024:.0f} KiB in {st.count} blocks)")
        for fr in list(st.traceback)[-a.show_frames:]:
            print(f"        {os.path.relpath(fr.filename, ROOT) if fr.filename.startswith(ROOT) else fr.filename}"
                  f":{fr.lineno}")
    print("by line (innermost frame):")
    for st in s2.compare_to(s1, "lineno")[:a.top]:
        if st.size_diff <= 0:
            break
        fr = st.traceback[0]
        fn = os.path.relpath(fr.filename, ROOT) if fr.filename.startswith(ROOT) else fr.filename
        print(f"  {st.size_diff / per:+8.1f} B/request  {st.count_diff / per:+6.2f} blocks/request  {fn}:{fr.lineno}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Peak memory of summary / export / replay indexing against the trace's
size, on crafted amplifying traces (issue 13). Each consumer runs in its own
process; the table gives its peak RSS and the ratio to the file size.

    .venv/bin/python bench/bounds.py [N_EVENTS]
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def craft(path: str, shape: str, n: int) -> None:
    from callscope.trace import Recorder

    if shape == "recorded":  # not crafted: the built-in demo, recorded as callscope run does (~36 events a request)
        subprocess.run([sys.executable, "-m", "callscope", "run", "--repeat", str(max(1, n // 36)),
                        "--concurrency", "8", "-o", path], check=True, capture_output=True)
        return

    t = [0]

    def clock():
        t[0] += 10
        return t[0]

    with Recorder(path, clock=clock, flush_clock=clock) as rec:
        rec.instance_new(0, "app", None)
        if shape == "live-tasks":  # tasks that never exit
            for i in range(1, n):
                rec.task_new(i, 0, "f", None, i, "GET /x", False)
        elif shape == "joins":  # many waitable sets, a join per event
            sets = max(1, n // 4)
            for s in range(1, sets + 1):
                rec.waitable_set_new(0, s)
            for i in range(n - sets):
                rec.waitable_join(0, i % 1000 + 1, i % sets + 1)
        elif shape == "misattributed":  # every import carries another root's token: a finding each
            rec.task_new(1, 0, "f", None, 1, "GET /a", False)
            rec.task_new(2, 0, "f", None, 2, "GET /b", False)
            rec.taint_plant(1, "req-0001")
            for i in range(n // 2):
                rec.import_call(i, 0, "wasi:http/client@0.3.0#send", [2], ["req-0001"], ["req-0001"], [], None)
        elif shape == "imports":  # imports in flight under one root
            rec.task_new(1, 0, "f", None, 1, "GET /", False)
            for i in range(n // 2):
                rec.import_call(i, 0, "wasi:http/client@0.3.0#send", [1], ["x"], [], [], None)


CONSUMERS = {
    "summary": "from callscope.trace.commands import *; import sys;"
               "from callscope.cli import main; main(['summary', sys.argv[1]])",
    # (not -o /dev/null: that exits 2 at once, "no extension is not an output format")
    "export": "from callscope.cli import main; import sys; main(['export', sys.argv[1], '-o', sys.argv[1] + '.dot'])",
    "perfetto": "from callscope.cli import main; import sys;"
                "main(['export', sys.argv[1], '--format', 'perfetto', '-o', sys.argv[1] + '.json'])",
    "replay-index": "from callscope.replay.source import ReplaySource; import sys;"
                    "s = ReplaySource(sys.argv[1]); s.index(); s.state_after(s.total - 1); s.close()",
}


def peak(code: str, path: str) -> int:
    r = subprocess.run([sys.executable, "-c", code + "\nimport resource, sys\n"
                        "sys.stderr.write('RSS %d\\n' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)",
                        path], capture_output=True, text=True)
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("RSS ")]
    return int(line[-1].split()[1]) * 1024 if line else -1


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    base = peak("import callscope.replay.source, callscope.export.graph, callscope.model", os.devnull)
    print(f"baseline process (imports only): {base / 2**20:.0f} MiB; {n} events per trace")
    print(f"{'trace':<12} {'file':>9} {'consumer':<13} {'peak RSS':>9} {'over baseline / file':>22}")
    with tempfile.TemporaryDirectory() as d:
        for shape in ("live-tasks", "joins", "imports", "misattributed", "recorded"):
            p = os.path.join(d, shape + ".trace")
            craft(p, shape, n)
            size = os.path.getsize(p)
            for name, code in CONSUMERS.items():
                rss = peak(code, p)
                print(f"{shape:<12} {size / 2**20:7.1f}MB {name:<13} {rss / 2**20:7.0f}MB {(rss - base) / size:20.1f}x")


if __name__ == "__main__":
    main()

"""bench/run.py's demo row (d) once, recording or not, for counting
instructions a request (docs/performance.md, "Recording"):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/callgrind_record.py N [--no-record]

Per request: (total at N=450 - total at N=50) / 400, recording and not.
With --no-exit the interpreter's own exit (its last full GC, ~7k
instructions a request more when recording) is counted too; without, the
process ends right after the run, as bench/run.py's timing does."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from run import _callscope_run  # noqa: E402  (bench/run.py)

_callscope_run("--no-record" not in sys.argv[2:], demo="event-loop",
               repeat=int(sys.argv[1]), concurrency=8)

if "--no-exit" not in sys.argv[2:]:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

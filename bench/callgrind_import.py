"""bench/run.py's import loop row (b) once, recording or not, for counting
instructions a crossing:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/callgrind_import.py N [--no-record]

Per crossing: (total at 2N - total at N) / N, recording and not."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from run import IMPORT_WAT, callscope_call, step  # noqa: E402  (bench/run.py)

callscope_call(IMPORT_WAT, "run", int(sys.argv[1]), "--no-record" not in sys.argv[2:],
               imports={"step": (["u32"], "u32", step)}, info={})
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)

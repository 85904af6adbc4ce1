"""bench/run.py's componentize-py rows (e: examples/service, f:
examples/fanout) once, N requests at concurrency 8, recording or not, for
counting instructions a request:

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=OUT \\
        .venv/bin/python bench/callgrind_guest.py fanout|service N [--no-record]

Per request: (total at 60 - total at 20) / 40, recording and not."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(0, os.path.join(os.path.dirname(_HERE), "examples"))

import build  # noqa: E402  (examples/build.py: cached builds)
from run import _callscope_run  # noqa: E402  (bench/run.py)

wasm = str(build.build(sys.argv[1]))
_callscope_run("--no-record" not in sys.argv[3:], guest=wasm, repeat=int(sys.argv[2]), concurrency=8)
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)

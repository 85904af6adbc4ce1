"""One recorded demo run as bench/run.py's row (d) makes it, for counting
instructions: the taint forms' cost a request (docs/performance.md, "The
taint forms").

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/callgrind_forms.py N [--no-forms]

Per request: (total at N=450 - total at N=50) / 400, with and without
--no-forms (which plans the requests with ``forms=False``)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import callscope.run as crun  # noqa: E402

if "--no-forms" in sys.argv[2:]:
    _plan = crun.plan_invocations
    crun.plan_invocations = lambda *a, forms=True, **k: _plan(*a, forms=False, **k)

from run import _callscope_run  # noqa: E402  (bench/run.py)

_callscope_run(True, demo="event-loop", repeat=int(sys.argv[1]), concurrency=8)

"""Regenerate screenshots/export.png and export.svg: the call graph
`callscope export` draws of the recorded demo trace (recordings/
demo-event-loop.trace), through the same entry point as the CLI:

    python screenshots/make_export.py

(the same as `callscope export recordings/demo-event-loop.trace -o screenshots/export.png`;
renders with a system Graphviz when one is on PATH, else graphviz-pure).
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from callscope.export import export_view  # noqa: E402


def main() -> None:
    trace = os.path.join(HERE, "..", "recordings", "demo-event-loop.trace")
    for ext in ("png", "svg"):
        out = os.path.join(HERE, f"export.{ext}")
        export_view(trace, None, out, title="recordings/demo-event-loop.trace")
        print(out)


if __name__ == "__main__":
    main()

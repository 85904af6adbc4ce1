"""Regenerate the recorded traces in this folder (test fixtures):

    python recordings/make.py

Each is `callscope run` on the built-in demo, 8 requests at concurrency 4,
seed 0: the misattributing event loop, its fix by backpressure, and a
well-behaved guest. The recorder stamps a wall-clock start time into each
header, so regenerating changes the files even when nothing else did.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

RECORDINGS = {
    "demo-event-loop.trace": ["--demo", "event-loop"],
    "demo-backpressure.trace": ["--demo", "backpressure"],
    "demo-well-behaved.trace": ["--demo", "well-behaved"],
}


def main() -> int:
    from callscope.cli import main as callscope
    for name, args in RECORDINGS.items():
        status = callscope(["run", *args, "--repeat", "8", "--concurrency", "4", "--seed", "0",
                            "-o", str(HERE / name)])
        if status != 0:
            print(f"make.py: {name}: callscope run exited {status}", file=sys.stderr)
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Regenerate the replay screenshots from the recordings in recordings/:

    .venv/bin/python screenshots/make_replay.py

screenshots/replay.svg: the demo's trace at its first misattributed import,
200x50; screenshots/replay-80x24.svg: the same at 80x24;
screenshots/replay-waitfor.svg: the wait-for view. The screens are the ones
the snapshot tests check (tests/replay_screens.py). The title names the app,
never a machine path. SVG only: a PNG conversion drops the spaces of Rich's
text runs, and every browser (and GitHub) shows the SVG.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from replay_screens import capture  # noqa: E402

SHOTS = {
    "replay.svg": "main-200x50",
    "replay-80x24.svg": "main-80x24",
    "replay-waitfor.svg": "waitfor-200x50",
}


def main() -> int:
    for name, screen in SHOTS.items():
        path = os.path.join(HERE, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(capture(screen, title="callscope replay recordings/demo-event-loop.trace"))
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Regenerate the replay app's snapshot goldens (tests/snapshots/replay/*.svg)
from the recordings in recordings/, and note the Textual version they were
made with (the test skips under another one):

    .venv/bin/python tests/snapshots/make.py

Review the result as images (any browser opens the SVGs) before committing.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import textual  # noqa: E402

from replay_screens import SCREENS, capture, normalize  # noqa: E402

OUT = os.path.join(HERE, "replay")


def main() -> int:
    os.makedirs(OUT, exist_ok=True)
    for name in SCREENS:
        path = os.path.join(OUT, f"{name}.svg")
        with open(path, "w", encoding="utf-8") as f:
            f.write(normalize(capture(name)))
        print(path)
    with open(os.path.join(OUT, "TEXTUAL_VERSION"), "w") as f:
        f.write(textual.__version__ + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Regenerate screenshots/replay.svg (and replay.png when rsvg-convert exists)
from the recorded demo trace, at its first misattributed import:

    python screenshots/make_replay.py
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from callscope.replay.app import ReplayApp  # noqa: E402
from callscope.replay.source import ReplaySource  # noqa: E402


async def main() -> None:
    path = os.path.join(HERE, "..", "recordings", "demo-event-loop.trace")
    src = ReplaySource(path)
    app = ReplayApp(src)
    async with app.run_test(size=(160, 46)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        app.save_screenshot("replay.svg", HERE)
    src.close()
    svg = os.path.join(HERE, "replay.svg")
    if shutil.which("rsvg-convert"):
        subprocess.run(["rsvg-convert", "-o", os.path.join(HERE, "replay.png"), svg], check=True)
    print(svg)


if __name__ == "__main__":
    asyncio.run(main())

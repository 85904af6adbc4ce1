"""Regenerate screenshots/replay.svg (and replay.png when rsvg-convert exists):

    python screenshots/make_replay.py
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from test_replay import MIS_N, write_trace  # noqa: E402

from callscope.replay.app import ReplayApp  # noqa: E402
from callscope.replay.source import ReplaySource  # noqa: E402


async def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = write_trace(os.path.join(d, "requests.cstrace"))
        src = ReplaySource(path)
        app = ReplayApp(src)
        async with app.run_test(size=(150, 44)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            await pilot.press("n")
            await pilot.pause()
            assert app.cursor == MIS_N
            app.save_screenshot("replay.svg", HERE)
        src.close()
    svg = os.path.join(HERE, "replay.svg")
    if shutil.which("rsvg-convert"):
        subprocess.run(["rsvg-convert", "-o", os.path.join(HERE, "replay.png"), svg], check=True)
    print(svg)


if __name__ == "__main__":
    asyncio.run(main())

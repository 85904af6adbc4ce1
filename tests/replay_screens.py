"""The replay screens the snapshot tests and screenshots/ show, each made
from a recording in recordings/: (trace, size, keys pressed after indexing).
Used by tests/snapshots/make.py (goldens), tests/test_replay_snapshots.py and
screenshots/make_replay.py."""

from __future__ import annotations

import asyncio
import os
import re
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDINGS = os.path.join(ROOT, "recordings")

# name -> (recording, (columns, rows), keys)
SCREENS = {
    "main-80x24": ("demo-event-loop.trace", (80, 24), ["n"]),
    "main-200x50": ("demo-event-loop.trace", (200, 50), ["n"]),
    "help-80x24": ("demo-event-loop.trace", (80, 24), ["question_mark"]),
    "filter-200x50": ("demo-event-loop.trace", (200, 50), ["f", "down", "down", "down", "enter", "n"]),
    "waitfor-80x24": ("demo-backpressure.trace", (80, 24), ["end", "w"]),
    "waitfor-200x50": ("demo-event-loop.trace", (200, 50), ["n", "w"]),
}


def normalize(svg: str) -> str:
    """An SVG screenshot without what changes from run to run of the same
    screen (Rich's per-export ids)."""
    return re.sub(r"terminal-\d+", "terminal", svg)


async def _capture(name: str, title: Optional[str] = None) -> str:
    from callscope.replay.app import ReplayApp
    from callscope.replay.source import ReplaySource

    trace, size, keys = SCREENS[name]
    src = ReplaySource(os.path.join(RECORDINGS, trace))
    app = ReplayApp(src)
    try:
        async with app.run_test(size=size) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            for k in keys:
                await pilot.press(k)
                await pilot.pause()
                await app.workers.wait_for_complete()
            await pilot.pause()
            app.clear_notifications()
            await pilot.pause()
            return app.export_screenshot(title=title)
    finally:
        src.close()


def capture(name: str, title: Optional[str] = None) -> str:
    return asyncio.run(_capture(name, title))

"""Live replay: ``replay --follow`` on a trace that is still being written,
and ``run --tui`` (the recording in a child process, the app on its trace)
driven through a pseudo-terminal."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

pytest.importorskip("textual")

from callscope.replay.app import ReplayApp  # noqa: E402
from callscope.replay.live import default_trace  # noqa: E402
from callscope.replay.source import ReplaySource  # noqa: E402
from callscope.replay.widgets import CallTree, EventList  # noqa: E402
from callscope.trace import Recorder  # noqa: E402

from test_replay import FakeClock, tree_lines  # noqa: E402


def test_follow_shows_new_events_as_the_trace_grows(tmp_path):
    path = str(tmp_path / "growing.cstrace")
    rec = Recorder(path, clock=FakeClock(), flush_clock=FakeClock(), seed=1, argv=["test"], chunk_events=4)
    rec.instance_new(1, "app", None)
    rec.task_new(1, 1, "handle", None, 1, "GET /a", False)
    rec.task_start(1)
    rec.flush()
    src = ReplaySource(path)
    assert src.truncated  # no footer yet: the writer is still writing

    async def run():
        app = ReplayApp(src, follow=True, follow_interval=0.05)
        async with app.run_test(size=(120, 36)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert "following" in str(app.query_one("#chips").render())
            assert not any("truncated" in n.message for n in app._notifications)
            scr = str(app.query_one("#scrubber").render())
            assert "being written" in scr and "TRUNCATED" not in scr
            await pilot.press("end")
            first_total = src.total
            assert app.cursor == first_total - 1
            # the writer goes on: a second request arrives
            rec.task_new(2, 1, "handle", None, 2, "GET /b", False)
            rec.task_start(2)
            rec.import_call(1, 1, "wasi:http/outgoing-handler.handle", [2], ["x"], [], [], None)
            rec.flush()
            for _ in range(400):  # up to 20 s: the machine may be busy
                await pilot.pause(0.05)
                if src.total > first_total:
                    break
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert src.total == first_total + 3
            assert app.cursor == src.total - 1  # at the end it follows the end
            assert app.query_one(EventList).row_count == src.total
            text = "\n".join(p for p, _ in tree_lines(app.query_one(CallTree)))
            assert '"GET /b"' in text and "outgoing-handler.handle" in text
            rec.close()  # the footer appears: the trace is complete
            for _ in range(400):  # up to 20 s: the machine may be busy
                await pilot.pause(0.05)
                if not src.truncated:
                    break
            assert not src.truncated

    asyncio.run(run())
    src.close()


def test_default_trace_names():
    class A:
        output = None
        guest = "/x/y/guest.wasm"
        demo = "event-loop"

    assert default_trace(A()) == "guest.trace"
    A.guest = None
    assert default_trace(A()) == "demo-event-loop.trace"
    A.output = "o.trace"
    assert default_trace(A()) == "o.trace"


def _read_until(fd, needle: bytes, timeout: float) -> bytes:
    buf = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            if needle in buf:
                return buf
    return buf


def test_run_tui_in_a_terminal(tmp_path):
    trace = tmp_path / "live.trace"
    pid, fd = pty.fork()
    if pid == 0:  # the child: callscope run --tui in the pseudo-terminal
        os.chdir(tmp_path)
        os.execv(sys.executable, [sys.executable, "-m", "callscope", "run", "--tui", "-o", str(trace)])
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        out = _read_until(fd, b"recorded", 60)
        assert b"callscope replay" in out and b"recorded" in out, out[-2000:]
        os.write(fd, b"q")
        rest = _read_until(fd, b"\x00never", 30)  # to the end of its output
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert b"callscope: ran built-in demo" in out + rest
        assert trace.exists()
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.close(fd)

"""Terminal escaping (issue 13): trace strings, paths and user input never
reach a terminal raw, and are never parsed as Rich/Textual markup."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys

import pytest

from callscope.escape import escape_controls, escape_json
from callscope.trace import Recorder, TraceReader

HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x9b31m[/][bold]x[/bold]\u202eevil\nfake line"


def test_escape_controls():
    assert escape_controls("a\x1bb") == "a\\x1bb"
    assert escape_controls("\x9b\x7f\x00\t") == "\\x9b\\x7f\\x00\\x09"
    assert escape_controls("\u202e\u2028") == "\\u202e\\u2028"
    assert escape_controls("a\nb") == "a\\x0ab" and escape_controls("a\nb", keep_newlines=True) == "a\nb"
    assert escape_controls("é ü → [b]") == "é ü → [b]"
    s = escape_json(json.dumps({"k": "\x7f\x9b\u202e\x1b"}, ensure_ascii=False))
    assert json.loads(s) == {"k": "\x7f\x9b\u202e\x1b"} and all(0x20 <= ord(c) < 0x7f for c in s)


class Clock:
    t = 0

    def __call__(self):
        self.t += 100
        return self.t


def hostile_trace(path):
    c = Clock()
    with Recorder(path, clock=c, flush_clock=c, guest={"name": HOSTILE, "size": 1, "sha256": "x"}) as rec:
        rec.instance_new(0, HOSTILE, None)
        rec.task_new(1, 0, HOSTILE, None, 1, HOSTILE, False)
        rec.task_start(1)
        rec.thread_new(1, 1)
        rec.thread_switch(None, 1)
        rec.taint_plant(1, HOSTILE)
        rec.import_call(1, 0, HOSTILE, [1], [HOSTILE], [HOSTILE], [], None)
        rec.import_return(1, HOSTILE)
        rec.note(HOSTILE)
        rec.trap(1, HOSTILE)
        rec.task_exit(1)


def no_raw_controls(text: str) -> None:
    for bad in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert bad not in text, repr(text)


@pytest.mark.parametrize("argv", [["summary"], ["events"], ["events", "--json"]])
def test_cli_output_has_no_raw_controls(tmp_path, argv):
    p = tmp_path / "t.trace"
    hostile_trace(p)
    r = subprocess.run([sys.executable, "-m", "callscope", argv[0], str(p), *argv[1:]],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    no_raw_controls(r.stdout + r.stderr)
    assert "\\x1b" in r.stdout or "\\u001b" in r.stdout
    if argv == ["summary"]:
        assert "fake line" not in [ln.strip() for ln in r.stdout.splitlines()]


def test_error_naming_a_hostile_path_is_escaped(tmp_path):
    p = tmp_path / "x\x1b]0;t\x07.trace"
    p.write_bytes(b"junk")
    r = subprocess.run([sys.executable, "-m", "callscope", "summary", str(p)], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    no_raw_controls(r.stderr)


def test_escaping_reader_escapes_every_string(tmp_path):
    p = tmp_path / "t.trace"
    hostile_trace(p)
    with TraceReader(p, escape=True) as r:
        evs = list(r.events())
        no_raw_controls(repr(r.header["guest"]))
        assert "\x1b" not in r.header["guest"]["name"]
        for ev in evs:
            for v in ev.fields:
                if isinstance(v, str):
                    no_raw_controls(v)
                    assert "\n" not in v
    with TraceReader(p) as r:  # (without escape: the data as recorded)
        assert any(ev.get("text") == HOSTILE for ev in r.events())


def test_replay_shows_hostile_strings_escaped_and_parses_no_markup(tmp_path):
    pytest.importorskip("textual")
    from textual.widgets import Input, Static

    from callscope.replay.app import ReplayApp
    from callscope.replay.source import ReplaySource

    p = tmp_path / "[bold]x[ \x1b]0;t\x07.trace"
    hostile_trace(p)
    src = ReplaySource(str(p))

    async def go():
        app = ReplayApp(src)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.pause()
            for _ in range(8):
                await pilot.press("right")
            await pilot.pause()
            title = app.query_one("#title", Static)
            shown = str(title.render())
            assert "[bold]x[" in shown and "\\x1b" in shown
            details = str(app.query_one("#details", Static).render())
            no_raw_controls(details)
            await pilot.press("g")
            inp = app.query_one("#goto", Input)
            inp.value = "[/"
            await pilot.press("enter")
            await pilot.pause()
        return app

    app = asyncio.run(go())
    src.close()
    assert app.return_code in (None, 0)


def test_replay_failure_is_one_line_and_non_zero(tmp_path, capsys, monkeypatch):
    """Replay's own failures: one line, exit 1 (2 when the trace is bad),
    never a traceback and never 0."""
    pytest.importorskip("textual")
    import argparse

    from callscope.replay import app as app_mod
    from callscope.replay.cli import cmd_replay
    from callscope.trace import TraceError

    p = tmp_path / "t.trace"
    hostile_trace(p)
    for err, code in ((RuntimeError("boom\nsecond line"), 1), (TraceError("t.trace: bad chunk at offset 9"), 2)):
        monkeypatch.setattr(app_mod.ReplayApp, "run", lambda self, err=err: setattr(self, "failure", err))
        assert cmd_replay(argparse.Namespace(trace=str(p), at=0, screenshot_dir=None, follow=False)) == code
        out, errout = capsys.readouterr()
        assert len(errout.splitlines()) == 1 and "second line" not in errout and "Traceback" not in errout
    from callscope.cli import main

    assert main(["replay", str(p), "--at", "-1"]) == 2


def test_replay_app_keeps_its_failure(tmp_path):
    pytest.importorskip("textual")
    from callscope.replay.app import ReplayApp
    from callscope.replay.source import ReplaySource

    p = tmp_path / "t.trace"
    hostile_trace(p)
    src = ReplaySource(str(p))
    app = ReplayApp(src, index=False)

    def broken(n):
        raise ValueError("state broke")

    async def go():
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            src.state_after = broken
            await pilot.press("right")
            await pilot.pause()

    with pytest.raises(Exception):
        asyncio.run(go())
    src.close()
    assert isinstance(app.failure, ValueError) and app.return_code == 1


def test_export_of_a_hostile_trace_injects_no_dot_attributes(tmp_path, capsys):
    """Trace strings reach DOT only quoted (the export's quoting layer): no
    URL/href attribute and no raw ESC come from them."""
    from callscope.cli import main

    t = [0]

    def clock():
        t[0] += 10
        return t[0]

    evil = 'x"] [URL="javascript:alert(1)" href="javascript:x" label="\x1b]0;t\x07'
    p = tmp_path / "h.trace"
    with Recorder(p, clock=clock, flush_clock=clock) as rec:
        rec.instance_new(0, evil, None)
        rec.task_new(1, 0, evil, None, 1, evil, False)
        rec.task_start(1)
        rec.import_call(1, 0, evil, [1], [evil], [], [], None)
        rec.import_return(1, evil)
        rec.task_exit(1)
    out = tmp_path / "h.dot"
    assert main(["export", str(p), "-o", str(out)]) == 0
    dot = out.read_text()
    assert 'URL="javascript' not in dot and 'href="javascript' not in dot
    assert "\x1b" not in dot and "\x07" not in dot

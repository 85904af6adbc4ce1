"""The replay app (Textual, driven with Pilot) and its data source."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys

import pytest

from callscope.replay.source import ReplaySource
from callscope.trace import Recorder, TraceReader

pytest.importorskip("textual")

from callscope.replay.app import ReplayApp  # noqa: E402
from callscope.replay.widgets import CallTree, EventList, Scrubber  # noqa: E402


class FakeClock:
    def __init__(self, t: int = 1_000):
        self.t = t

    def __call__(self) -> int:
        self.t += 250
        return self.t


def misattribution_script(rec: Recorder) -> None:
    """Two concurrent requests into instance 1 ("GET /a" task 1, "GET /b"
    task 2); task 1 calls task 3 in instance 2, which makes an import carrying
    request B's taint token while its async call stack is [3, 1]: the import
    is misattributed to "GET /a", its true origin is "GET /b"."""
    rec.instance_new(0, "root", None)
    rec.instance_new(1, "app", 0)
    rec.instance_new(2, "lib", 1)
    rec.waitable_set_new(1, 1)
    for task, label in ((1, "GET /a"), (2, "GET /b")):
        rec.task_new(task, 1, "wasi:http/handler.handle", None, task, label, False)
        rec.taint_plant(task, f"tok-{task}")
        rec.task_start(task)
        rec.thread_new(task, task)
    rec.backpressure(1, 1, "set")
    rec.task_new(4, 1, "wasi:http/handler.handle", None, 4, "GET /c", False)
    rec.call_queued(4)
    rec.task_new(3, 2, "fetch", 1, 1, None, False)
    rec.task_start(3)
    rec.subtask_state(3, 1, 1)
    rec.thread_new(3, 3)
    rec.waitable_join(1, 1, 1)
    rec.waitable_set_wait(1, 1)
    rec.import_call(10, 2, "wasi:http/outgoing-handler.handle", [3, 1], {"url": "https://b.example/"},
                    ["tok-2"], [2], None)  # event 21: the misattributed import
    for i in range(150):  # some traffic to step through
        rec.note(f"tick {i}")
    rec.import_return(10, 0)
    rec.task_return(3, "ok")
    rec.subtask_state(3, 1, 2)
    rec.task_exit(3)
    rec.backpressure(1, 0, "set")
    rec.call_admitted(4)
    for task in (1, 2, 4):
        rec.task_return(task, 200)
        rec.task_resolved(task)
        rec.task_exit(task)


MIS_N = 21  # event number of the misattributed import.call


def write_trace(path, script=misattribution_script, close=True) -> str:
    rec = Recorder(str(path), clock=FakeClock(), flush_clock=FakeClock(), seed=1, argv=["test"], chunk_events=64)
    script(rec)
    if close:
        rec.close()
    else:
        rec.flush()  # writer "killed": complete chunks, no footer
        rec._file.close()
    return str(path)


@pytest.fixture
def trace(tmp_path):
    return write_trace(tmp_path / "mis.cstrace")


def tree_lines(tree: CallTree) -> list[tuple[str, str]]:
    """(plain label, styles) of every node."""
    out = []

    def walk(node):
        for c in node.children:
            lab = c.label
            out.append((lab.plain, " ".join(str(s.style) for s in lab.spans)))
            walk(c)

    walk(tree.root)
    return out


async def ready(app, pilot):
    await app.workers.wait_for_complete()
    await pilot.pause()


# ------------------------------------------------------------------ source


def test_source_state_and_findings(trace):
    src = ReplaySource(trace)
    assert src.total > MIS_N
    src.index()
    assert [f.lint for f in src.findings] == ["misattributed"]
    assert src.next_finding(0).n == MIS_N and src.prev_finding(MIS_N) is None
    st = src.state_after(MIS_N)
    assert 10 in st.imports and st.imports[10].stack == (3, 1)
    # stepping back and forth gives the same state as from scratch
    for n in (MIS_N + 5, 3, src.total - 1, MIS_N):
        st = src.state_after(n)
        fresh = ReplaySource(trace).state_after(n)
        assert sorted(st.tasks) == sorted(fresh.tasks) and sorted(st.imports) == sorted(fresh.imports)
    assert src.task_stack(3) == [3, 1]
    src.close()


# --------------------------------------------------------------------- app


def test_step_jump_to_finding_and_tree(trace):
    async def run():
        src = ReplaySource(trace)
        app = ReplayApp(src)
        async with app.run_test(size=(160, 48)) as pilot:
            await ready(app, pilot)
            assert app.cursor == 0
            await pilot.press("right", "right", "right")
            assert app.cursor == 3
            await pilot.press("left")
            assert app.cursor == 2
            await pilot.press("shift+right")
            assert app.cursor == 102
            await pilot.press("home")
            assert app.cursor == 0
            # next finding: the misattributed import
            await pilot.press("n")
            await pilot.pause()
            assert app.cursor == MIS_N
            lines = tree_lines(app.query_one(CallTree))
            text = "\n".join(p for p, _ in lines)
            assert '▶ root task 1 wasi:http/handler.handle "GET /a"  [started]' in text
            assert 'root task 2 wasi:http/handler.handle "GET /b"' in text
            assert '⏸ root task 4 wasi:http/handler.handle "GET /c"  [waiting on backpressure]' in text
            assert "task 3 fetch" in text
            mis = [(p, s) for p, s in lines if "misattributed" in p]
            assert len(mis) == 2  # the import's line and its verdict line below it
            plain, styles = mis[0]
            assert plain.startswith("⚠ import wasi:http/outgoing-handler.handle (call 10)")
            assert 'true origin "GET /b" (task 2) ≠ stack root "GET /a" (task 1)' in plain
            assert "red" in styles
            assert mis[1][0].startswith("↳ misattributed: taint token 'tok-2' planted in task 2")
            # the import sits under task 3, which sits under root task 1
            tree = app.query_one(CallTree)
            node = tree._by_data[("import", 10)]
            assert node.parent.data == ("task", 3) and node.parent.parent.data == ("task", 1)
            assert tree.cursor_node is node
            details = str(app.query_one("#details").render())
            assert "MISATTRIBUTED" in details
            assert "async call stack" in details
            stack_part = details.split("async call stack", 1)[1]
            i3 = stack_part.index("task 3 fetch")
            i1 = stack_part.index('task 1 wasi:http/handler.handle "GET /a"')
            assert i3 < i1  # current task first, root export task last
            assert "root export task" in stack_part
            assert "tok-2" in details and "b.example" in details
            # the scrubber tells where we are
            scr = str(app.query_one(Scrubber).render())
            assert f"#{MIS_N}" in scr and "1 finding" in scr
            # no more findings after it; p goes back to it
            await pilot.press("n")
            assert app.cursor == MIS_N
            await pilot.press("end")
            assert app.cursor == src.total - 1
            await pilot.press("p")
            assert app.cursor == MIS_N
            # after the import returned it is no longer in the tree
            await pilot.press("shift+right", "shift+right")
            assert not any("misattributed" in p for p, _ in tree_lines(app.query_one(CallTree)))
        src.close()

    asyncio.run(run())


def test_findings_panel_selects_and_jumps(trace):
    async def run():
        src = ReplaySource(trace)
        app = ReplayApp(src)
        async with app.run_test(size=(160, 48)) as pilot:
            await ready(app, pilot)
            findings = app.query_one("#findings")
            assert findings.option_count == 1
            assert "warning[misattributed]" in str(findings.get_option_at_index(0).prompt)
            findings.focus()
            findings.highlighted = 0
            await pilot.press("enter")
            await pilot.pause()
            assert app.cursor == MIS_N
        src.close()

    asyncio.run(run())


def test_goto_event_number(trace):
    async def run():
        src = ReplaySource(trace)
        app = ReplayApp(src)
        async with app.run_test(size=(160, 48)) as pilot:
            await ready(app, pilot)
            await pilot.press("g")
            # typing digits and n/p/g goes to the input, not the scrubber
            await pilot.press("1", "2", "0")
            assert app.cursor == 0
            await pilot.press("enter")
            await pilot.pause()
            assert app.cursor == 120
            assert app.query_one(EventList).cursor == 120
            await pilot.press("g", "9", "9", "9", "9", "enter")
            await pilot.pause()
            assert app.cursor == src.total - 1  # clamped, with a notice
            await pilot.press("left")
            assert app.cursor == src.total - 2
        src.close()

    asyncio.run(run())


def test_truncated_trace_opens_with_notice(tmp_path):
    path = write_trace(tmp_path / "cut.cstrace", close=False)
    with open(path, "ab") as f:
        f.write(b"C\x10\x00")  # a partial frame after the complete chunks
    src = ReplaySource(path)
    assert src.truncated

    async def run():
        app = ReplayApp(src)
        async with app.run_test(size=(120, 40)) as pilot:
            await ready(app, pilot)
            notes = [n.message for n in app._notifications]
            assert any("truncated" in m for m in notes)
            assert "TRUNCATED" in str(app.query_one(Scrubber).render())
            await pilot.press("end")
            assert app.cursor == src.total - 1

    asyncio.run(run())
    src.close()


def test_event_list_is_virtual(tmp_path):
    def many(rec):
        rec.instance_new(1, "app", None)
        for i in range(20_000):
            rec.note(f"n{i}")

    path = write_trace(tmp_path / "many.cstrace", many)
    src = ReplaySource(path)

    async def run():
        app = ReplayApp(src, index=False)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause()
            ev = app.query_one(EventList)
            assert ev.virtual_size.height == 20_001
            await pilot.press("end")
            await pilot.pause()
            # only the blocks around the rows shown were read
            assert len(ev._rows) <= 2
            assert app.cursor == 20_000

    asyncio.run(run())
    src.close()


# --------------------------------------------------------------------- CLI


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "callscope", *args], capture_output=True, text=True, timeout=60)


def test_cli_missing_file_is_one_line_exit_2(tmp_path):
    p = _cli("replay", str(tmp_path / "nope.cstrace"))
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "no such file" in p.stderr
    assert "Traceback" not in p.stderr


def test_cli_bad_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.cstrace"
    bad.write_bytes(b"not a trace at all")
    p = _cli("replay", str(bad))
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "not a callscope trace" in p.stderr
    assert "Traceback" not in p.stderr


def test_empty_trace_and_clicks(tmp_path, trace):
    empty = ReplaySource(write_trace(tmp_path / "empty.cstrace", lambda rec: None))

    async def run_empty():
        app = ReplayApp(empty)
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(app, pilot)
            await pilot.press("right", "end", "n")
            assert "empty trace" in str(app.query_one(Scrubber).render())

    asyncio.run(run_empty())
    empty.close()

    src = ReplaySource(trace)

    async def run_click():
        app = ReplayApp(src)
        async with app.run_test(size=(160, 48)) as pilot:
            await ready(app, pilot)
            ev = app.query_one(EventList)
            await pilot.click(EventList, offset=(5, 5))  # border row + 4 rows: event 4
            assert app.cursor == int(ev.scroll_offset.y) + 4
            await pilot.click(Scrubber, offset=(app.query_one(Scrubber).size.width - 2, 1))
            assert app.cursor > src.total * 3 // 4

    asyncio.run(run_click())
    src.close()


def test_index_reads_only_the_kinds_it_needs_and_finds_the_same(tmp_path):
    """The index builds only the events the lints and its tables read (per
    chunk, in C); its findings are those of a full pass over every event."""
    from callscope.model import check_all
    from test_replay_keys import mixed_script

    def busy(rec):  # both scripts, with traffic the lints never read in between
        misattribution_script(rec)
        for i in range(300):
            rec.thread_switch(None, 1)
            rec.copy("stream", "read", 5, 64, 0x400, 1)
        rec.note("tail")

    for script in (misattribution_script, mixed_script, busy):
        path = write_trace(tmp_path / f"{script.__name__}.cstrace", script)
        src = ReplaySource(path)
        seen = []
        src.index(findings_done=lambda: seen.append(len(src.findings)))
        with TraceReader(path) as r:
            full = check_all(r.events())
        assert [(f.lint, f.n, f.message, f.details) for f in src.findings] == \
               [(f.lint, f.n, f.message, f.details) for f in full]
        assert seen == [len(full)] and src.indexed
        with TraceReader(path) as r:
            evs = list(r.events())
        assert src.import_calls == {e[3][0]: e[0] for e in evs if e[1] == "import.call"}
        assert src.import_returns == {e[3][0]: e[0] for e in evs if e[1] == "import.return"}
        src.close()


def test_index_twice_gives_the_same_tables(trace):
    src = ReplaySource(trace)
    src.index()
    first = (list(src.findings), dict(src.findings_at), dict(src.misattributed))
    src.index()  # --follow re-indexes a grown trace
    assert (list(src.findings), dict(src.findings_at), dict(src.misattributed)) == first
    assert len(src.findings_at[MIS_N]) == 1
    src.close()

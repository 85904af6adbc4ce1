"""Why is it stuck: the wait-for view over recorded states: blocked threads,
what each waits on and who could wake it, the cycle or the missing waker at a
recorded deadlock (a real guest's and a scripted one), and the app opening
it by itself there."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytest.importorskip("textual")

from callscope.replay.app import ReplayApp  # noqa: E402
from callscope.replay.source import ReplaySource  # noqa: E402
from callscope.replay.waitfor import wait_for, wait_for_text  # noqa: E402

from test_replay import write_trace  # noqa: E402

HERE = Path(__file__).resolve().parent


def cycle_script(rec) -> None:
    """Root task 1 in instance 1 sets backpressure, calls task 2 (an export
    of the same instance, so it is queued behind that backpressure) and
    waits on a waitable set holding the subtask: 1 waits on 2, 2 waits on 1."""
    rec.instance_new(1, "app", None)
    rec.task_new(1, 1, "run", None, 1, "GET /x", False)
    rec.task_start(1)
    rec.thread_new(1, 1)
    rec.thread_switch(None, 1)
    rec.backpressure(1, 1, "set")
    rec.task_new(2, 1, "helper", 1, 1, None, False)
    rec.call_queued(2)
    rec.subtask_state(2, 7, 0)
    rec.waitable_set_new(1, 3)
    rec.waitable_join(1, 7, 3)
    rec.waitable_set_wait(1, 3)
    rec.thread_switch(1, None)
    rec.deadlock("deadlock detected")


def test_wait_for_names_the_cycle(tmp_path):
    src = ReplaySource(write_trace(tmp_path / "cycle.cstrace", cycle_script))
    st = src.state_after(src.total - 1)
    w = wait_for(st)
    assert w.deadlock == "deadlock detected"
    by_task = {b.task: b for b in w.blocked}
    assert "waitable set 3" in by_task[1].what and by_task[1].waits_on == [2]
    assert "subtask 7: task 2 helper" in by_task[1].wakers[0]
    assert "backpressure of instance 1 (counter 1)" in by_task[2].what and by_task[2].waits_on == [1]
    assert sorted(w.cycle) == [1, 2]
    text = wait_for_text(st, src.total - 1).plain
    assert "DEADLOCK" in text and "cycle: task" in text and "waits on" in text
    src.close()


def test_app_opens_the_wait_for_view_at_a_deadlock(tmp_path):
    src = ReplaySource(write_trace(tmp_path / "cycle.cstrace", cycle_script))

    async def run():
        app = ReplayApp(src)
        async with app.run_test(size=(120, 40)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert not app.waitfor
            await pilot.press("n")  # no findings: n goes to the recorded deadlock
            await pilot.pause()
            assert src.event(app.cursor)[1] == "deadlock"
            assert app.waitfor
            details = str(app.query_one("#details").render())
            assert "cycle:" in details and "DEADLOCK" in details
            await pilot.press("escape")  # closes it
            assert not app.waitfor
            await pilot.press("w")
            assert app.waitfor
            await pilot.press("home")
            details = str(app.query_one("#details").render())
            assert "nothing is blocked" in details

    asyncio.run(run())
    src.close()


def test_real_guest_deadlock_names_the_missing_waker(tmp_path):
    wasmtime = pytest.importorskip("wasmtime")
    from callscope.cli import main

    wasm = tmp_path / "faults.wasm"
    wasm.write_bytes(wasmtime.wat2wasm((HERE / "guests" / "faults.wat").read_text()))
    trace = tmp_path / "stuck.trace"
    assert main(["run", str(wasm), "--invoke", "stuck()", "-o", str(trace)]) == 3
    src = ReplaySource(str(trace))
    src.index()
    assert src.deadlocks
    st = src.state_after(src.deadlocks[0])
    w = wait_for(st)
    assert w.deadlock is not None and not w.cycle
    assert len(w.missing) == 1 and "which is empty" in w.missing[0].what
    text = wait_for_text(st).plain
    assert "missing waker: task 1 stuck" in text and "nothing live can wake it" in text
    src.close()

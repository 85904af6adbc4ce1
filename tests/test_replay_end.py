"""End (and any far jump) in the replay app does not compute the state on
the UI thread (issue 13: 12.8 s on a big trace): a state more than ``every``
events from any at hand is computed by a worker thread, the app keeps
handling keys meanwhile, and the view shows the state once it is there."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("textual")

from textual.widgets import Input  # noqa: E402

from callscope.replay.app import ReplayApp  # noqa: E402
from callscope.replay.source import ReplaySource  # noqa: E402
from callscope.replay.widgets import CallTree  # noqa: E402

from test_replay import tree_lines, write_trace  # noqa: E402

TICKS = 3000


def long_script(rec) -> None:
    """A request that runs through TICKS notes and returns at the end, so the
    state after the last event differs from the state early on."""
    rec.instance_new(1, "app", None)
    rec.task_new(1, 1, "wasi:http/handler.handle", None, 1, "GET /long", False)
    rec.task_start(1)
    rec.thread_new(1, 1)
    rec.task_new(2, 1, "wasi:http/handler.handle", None, 2, "GET /late", False)
    for i in range(TICKS):
        rec.note(f"tick {i}")
    rec.task_return(1, 200)
    rec.task_exit(1)


@pytest.fixture
def long_trace(tmp_path):
    return write_trace(tmp_path / "long.cstrace", long_script)


def test_state_now_is_none_far_from_any_state_at_hand(long_trace):
    src = ReplaySource(long_trace, every=64)
    try:
        last = src.total - 1
        assert src.state_now(10) is not None  # (near the start: at hand)
        assert src.state_now(last) is None  # (far: for a worker)
        assert src.timeline.cost(last + 1) == last + 1
        state = src.compute_state(last)
        assert state.n == src.total and 1 not in state.tasks and 2 in state.tasks  # (task 1 exited at the end)
        near = src.state_after(20)
        assert 1 in near.tasks
        state = src.compute_state(last)
        src.adopt(state)
        assert src.state_now(last) is state  # (adopted: at hand now)
        with src.lock:  # (the index busy taking snapshots: not waited for)
            assert src.state_now(5) is None
    finally:
        src.close()


def test_end_computes_off_the_ui_thread_and_keys_still_work(long_trace):
    async def main():
        src = ReplaySource(long_trace, every=64)
        app = ReplayApp(src, index=False)
        try:
            async with app.run_test(size=(160, 48)) as pilot:
                await app.workers.wait_for_complete()
                await pilot.pause()
                last = src.total - 1
                tree = app.query_one(CallTree)
                before = tree_lines(tree)
                # hold the timeline as a busy index does: the state after the
                # last event cannot be had now, so End must not wait for it
                src.lock.acquire()
                try:
                    await pilot.press("end")
                    assert app.cursor == last
                    assert "computing" in str(tree.border_title)
                    await pilot.press("g")  # a key right after End is handled
                    await pilot.pause()
                    goto = app.query_one("#goto", Input)
                    assert goto.display and app.focused is goto
                    await pilot.press("escape")
                    await pilot.pause()
                    assert app.focused is not goto
                finally:
                    src.lock.release()
                await app.workers.wait_for_complete()
                await pilot.pause()
                assert app.cursor == last
                assert str(tree.border_title) == f"async call tree after event #{last:,}"
                after = tree_lines(tree)
                assert after != before  # (task 1 returned at the end)
                # the same tree as a state computed directly
                ref = ReplayApp(ReplaySource(long_trace), index=False, start_at=last)
                async with ref.run_test(size=(160, 48)) as p2:
                    await ref.workers.wait_for_complete()
                    await p2.pause()
                    assert tree_lines(ref.query_one(CallTree)) == after
                    ref.source.close()
                # Home is at hand again (the first snapshot), computed at once
                await pilot.press("home")
                assert app.cursor == 0 and tree_lines(tree) == before
        finally:
            src.close()

    asyncio.run(main())


def test_a_far_jump_then_a_near_one_shows_the_near_state(long_trace):
    """The cursor moved on before the worker finished: its result is not shown."""
    async def main():
        src = ReplaySource(long_trace, every=64)
        app = ReplayApp(src, index=False)
        try:
            async with app.run_test(size=(160, 48)) as pilot:
                await app.workers.wait_for_complete()
                await pilot.pause()
                src.lock.acquire()
                try:
                    await pilot.press("end")
                    await pilot.press("home")
                finally:
                    src.lock.release()
                await app.workers.wait_for_complete()
                await pilot.pause()
                assert app.cursor == 0
                assert str(app.query_one(CallTree).border_title) == "async call tree after event #0"
        finally:
            src.close()

    asyncio.run(main())


def big_script(rec) -> None:
    rec.instance_new(1, "app", None)
    rec.task_new(1, 1, "wasi:http/handler.handle", None, 1, "GET /long", False)
    for i in range(20000):
        rec.note(f"tick {i}")
    rec.task_return(1, 200)
    rec.task_exit(1)


def test_a_cancelled_computation_stops_early_and_keeps_its_progress(tmp_path):
    path = write_trace(tmp_path / "big.cstrace", big_script)
    src = ReplaySource(path, every=64)
    ref = ReplaySource(path, every=64)
    try:
        last = src.total - 1
        asks = []
        assert src.compute_state(last, cancelled=lambda: asks.append(1) or True) is None
        assert len(asks) == 1  # (stopped at the first ask)
        done = src.timeline._done
        assert 0 < done < src.total  # (the snapshots taken so far are kept)
        state = src.compute_state(last)  # (goes on from there)
        expect = ref.compute_state(last)
        assert state.n == expect.n == src.total
        assert sorted(state.tasks) == sorted(expect.tasks) and 1 not in state.tasks
        assert state.taint == expect.taint
    finally:
        src.close()
        ref.close()


def test_a_newer_far_jump_cancels_the_older_computation(tmp_path):
    """End, Home, End: the first End's computation is cancelled by the second
    (Textual's exclusive worker) and stops early instead of running to the end
    first; the view shows the end state once."""
    import threading

    path = write_trace(tmp_path / "big.cstrace", big_script)

    async def main():
        src = ReplaySource(path, every=64)
        real = src.compute_state
        gate, first_done = threading.Event(), threading.Event()
        calls, results = [], []

        def wrapped(n, cancelled=None):
            calls.append(n)
            first = len(calls) == 1
            if first:
                gate.wait(10)  # (held until the second jump's worker runs)
            else:
                gate.set()
                first_done.wait(10)  # (so the older one cannot ride on the newer's work)
            result = real(n, cancelled)
            results.append((first, result, src.timeline._done))
            if first:
                first_done.set()
            return result

        src.compute_state = wrapped
        app = ReplayApp(src, index=False)
        try:
            async with app.run_test(size=(160, 48)) as pilot:
                await app.workers.wait_for_complete()
                await pilot.pause()
                last = src.total - 1
                await pilot.press("end")
                await pilot.pause()
                await pilot.press("home")
                await pilot.pause()
                await pilot.press("end")
                await app.workers.wait_for_complete()
                await pilot.pause()
                assert calls == [last, last]
                (first, older, done), (_, newer, _) = results
                assert first and older is None  # (the older computation gave up)
                assert done < src.total // 2  # (early: at its first ask)
                assert newer is not None and newer.n == src.total
                assert app.cursor == last
                assert str(app.query_one(CallTree).border_title) == f"async call tree after event #{last:,}"
        finally:
            src.close()

    asyncio.run(main())

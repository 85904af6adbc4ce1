"""A finished run leaves nothing behind: its store, observer and recorder
are garbage once `run` returns, even when they form cycles (the store holds
the observer; a host resource type's destructor holds the store; the C
core's caches hold the function types that hold those resource types). The
cycles are the garbage collector's to break, which it can only do when every
C type visits every reference it holds (tp_traverse): one reference not
visited keeps the whole run alive, one more run's worth per run of a process
that runs many (a test suite, a bench, a library user)."""

from __future__ import annotations

import gc
import os

import pytest

from callscope.run import RunOptions, run
from callscope.runtime.instance import Store
from callscope.runtime.observe import RecordingObserver
from callscope.trace.recorder import Recorder


def _alive() -> dict:
    gc.collect()
    counts = {"observers": 0, "stores": 0, "recorders": 0}
    for o in gc.get_objects():
        if isinstance(o, RecordingObserver):
            counts["observers"] += 1
        elif isinstance(o, Store):
            counts["stores"] += 1
        elif isinstance(o, Recorder):
            counts["recorders"] += 1
    return counts


def _runs(tmp_path, n: int, **what) -> None:
    out = tmp_path / "t.trace"
    for _ in range(n):
        if out.exists():
            out.unlink()
        with open(os.devnull, "w") as sink:
            r = run(RunOptions(record=True, output=str(out), argv=["test"], repeat=3, concurrency=2, **what),
                    out=sink)
        assert r.fault is None, r.fault_message
        del r


def _assert_nothing_left(tmp_path, **what) -> None:
    _runs(tmp_path, 1, **what)  # (the first run's module-level caches, made once)
    before = _alive()
    _runs(tmp_path, 3, **what)
    after = _alive()
    assert after == before, f"recorded runs left objects behind: {before} before, {after} after three more"


def test_a_recorded_demo_run_leaves_nothing_behind(tmp_path):
    _assert_nothing_left(tmp_path, demo="event-loop")


@pytest.mark.slow
def test_a_recorded_run_of_a_guest_taking_host_resources_leaves_nothing_behind(tmp_path):
    # examples/fanout's export takes an own<request> (a host resource): the
    # core's last task.new type held it, and through it the store, unvisited
    from test_examples import example
    p = tmp_path / "fanout.wasm"
    p.write_bytes(example("fanout"))
    _assert_nothing_left(tmp_path, guest=str(p))


def test_the_flush_timer_thread_does_not_keep_a_closed_recorder(tmp_path):
    """close() tells the flush timer's thread to return and does not wait
    for it; until that thread gets the GIL again it must not hold the
    recorder (which holds the run's store and observer through its sink)."""
    import sys
    import weakref

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)  # (the timer thread runs only when this one waits)
    try:
        rec = Recorder(str(tmp_path / "t.trace"), argv=["test"])
        rec.start_flush_timer()
        ref = weakref.ref(rec)
        rec.close()
        del rec
        gc.collect()
        assert ref() is None
    finally:
        sys.setswitchinterval(interval)

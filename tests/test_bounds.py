"""Memory bounded by the input (issue 13): crafted amplifying traces.

A state that grows with the trace (tasks that never exit, handles never
dropped) must not be copied every K events: the Timeline's snapshots hold
about as many objects as there are events, not events^2 / K. Joins leave the
previous set in O(1)."""

from __future__ import annotations

import io

from callscope.model.state import State, Timeline
from callscope.trace import Recorder, TraceReader


def growing_trace(n: int) -> bytes:
    t = [0]

    def clock():
        t[0] += 10
        return t[0]

    buf = io.BytesIO()
    with Recorder(buf, clock=clock, flush_clock=clock) as rec:
        rec.instance_new(0, "app", None)
        for i in range(1, n):
            rec.task_new(i, 0, "f", None, i, None, False)  # never exits: the state keeps them all
    return buf.getvalue()


def test_snapshots_hold_about_as_much_as_the_trace():
    n = 30_000
    with TraceReader(growing_trace(n)) as r:
        tl = Timeline(r, every=64)
        last = tl.state_at(n)
        assert len(last.tasks) == n - 1
        held = sum(s.size() for s in tl._snaps)
        # every-64 snapshots of a growing state would hold ~n^2/128 = 7M
        assert held <= 3 * n, held
        # and seeking still works everywhere, with a bounded replay after a snapshot
        for k in (0, 1, 63, 64, 1000, n // 2, n - 1, n):
            assert tl.state_at(k).n == k and len(tl.state_at(k).tasks) == max(0, k - 1)


def test_join_moves_a_waitable_between_sets():
    s = State()
    evs = [("waitable-set.new", (1, 10)), ("waitable-set.new", (1, 11)), ("waitable.join", (1, 5, 10)),
           ("waitable.join", (1, 5, 11)), ("waitable.join", (1, 6, 10)), ("waitable.join", (1, 6, 0))]
    for i, (k, f) in enumerate(evs):
        s.apply((i, k, i, f))
    assert s.waitable_sets[(1, 10)].members == set() and s.waitable_sets[(1, 11)].members == {5}
    c = s.copy()
    c.apply((9, "waitable.join", 9, (1, 5, 10)))
    assert s.waitable_sets[(1, 11)].members == {5} and c.waitable_sets[(1, 10)].members == {5}

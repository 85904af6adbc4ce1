"""Memory bounded by the input (issue 13): crafted amplifying traces.

A state that grows with the trace (tasks that never exit, handles never
dropped) must not be copied every K events: the Timeline's snapshots hold
about as many objects as there are events, not events^2 / K. Joins leave the
previous set in O(1)."""

from __future__ import annotations

import io
from dataclasses import replace

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


def _dump(s: State) -> tuple:
    """Everything a state holds, as plain values (to compare two states)."""
    return (s.n, sorted((k, repr(v)) for k, v in s.instances.items()), sorted((k, repr(replace(v, children=list(v.children)))) for k, v in s.tasks.items()),
            sorted(s.threads.items()), s.current_thread,
            sorted((k, sorted(v.members), sorted(v.waiting)) for k, v in s.waitable_sets.items()),
            sorted(s.joined.items()), sorted(s.waiting.items()), sorted(s.imports), sorted(s.queued.items()),
            sorted(s.handles.items()), sorted(s.taint.items()), list(s.traps), list(s.deadlocks))


def test_copy_on_write_states_equal_a_fresh_replay():
    """Snapshots share task, waitable-set and instance objects with the live
    state (copy-on-write): at every event, the Timeline's state (a snapshot
    and the events after it) equals applying every event from the start to
    a fresh State; and walking the timeline back and forth changes nothing."""
    import random

    rng = random.Random(7)
    evs = [(0, "instance.new", 0, (0, "app", None))]
    tasks, sets, threads = [], [], []
    for n in range(1, 3000):
        r = rng.random()
        if r < 0.15 or not tasks:
            tid = n
            caller = rng.choice(tasks) if tasks and rng.random() < 0.5 else None
            evs.append((n, "task.new", n, (tid, 0, "f", caller, caller or tid, None, False)))
            tasks.append(tid)
        elif r < 0.25:
            evs.append((n, rng.choice(["task.start", "task.return", "task.resolved"]), n,
                        (rng.choice(tasks), None)))
        elif r < 0.3:
            tid = tasks.pop(rng.randrange(len(tasks)))
            evs.append((n, "task.exit", n, (tid,)))
        elif r < 0.36:
            evs.append((n, "waitable-set.new", n, (0, n)))
            sets.append(n)
        elif r < 0.55 and sets:
            evs.append((n, "waitable.join", n, (0, rng.randrange(40), rng.choice(sets + [0]))))
        elif r < 0.62 and tasks:
            th = rng.randrange(20)
            evs.append((n, "thread.new", n, (th, rng.choice(tasks))))
            threads.append(th)
        elif r < 0.7 and threads and sets:
            evs.append((n, "waitable-set.wait", n, (rng.choice(threads), rng.choice(sets))))
        elif r < 0.76 and threads:
            evs.append((n, "event.delivered", n, (rng.choice(threads), 1, 2, 3)))
        elif r < 0.82 and tasks:
            evs.append((n, rng.choice(["call.queued", "call.admitted", "subtask.cancel"]), n, (rng.choice(tasks),)))
        elif r < 0.88 and tasks:
            evs.append((n, "subtask.state", n, (rng.choice(tasks), rng.randrange(5), rng.randrange(4))))
        elif r < 0.93:
            evs.append((n, "backpressure.set", n, (0, rng.randrange(3))))
        elif sets and rng.random() < 0.5:
            evs.append((n, "waitable-set.drop", n, (0, sets.pop(rng.randrange(len(sets))))))
        else:
            evs.append((n, "thread.switch", n, (None, rng.randrange(20))))

    tl = Timeline(evs, every=16)
    fresh = State()
    want = [_dump(fresh)]
    for ev in evs:
        fresh.apply(ev)
        want.append(_dump(fresh))
    order = list(range(len(evs) + 1))
    for k in order + rng.sample(order, 600) + order[::-1]:
        assert _dump(tl.state_at(k)) == want[k], k

"""The core's small events (trace/_sink.c's small_event: thread.new,
thread.switch, task.start, task.exit, subtask.state, waitable-set.wait,
event.delivered, packed by one routine from a table of their fields) write
what the sink's emitters and the Python sink write, for every kind of value a
field can hold: ints at each msgpack width and past 64 bits, None, bools,
strings, floats, containers, other objects (the fallback); ids read at a
slot, as a plain attribute and through a property; times that go back or
jump; chunks cut between any two events. The observer's methods are called
directly (what _fiber.c's calls reach), each path recording the same calls."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from callscope.runtime.observe import RecordingObserver
from callscope.trace import Recorder, TraceReader
from callscope.trace import format as F
from callscope.trace.sink import CSink, Core, PySink


needs_c = pytest.mark.skipif(CSink is None or Core is None,
                             reason="callscope.trace._sink is not built (no C compiler at install)")


class Clock:
    __slots__ = ("now_ns",)

    def __init__(self):
        self.now_ns = 0


class SlotTask:
    __slots__ = ("id", "tokens")

    def __init__(self, id):
        self.id = id
        self.tokens = None


class DictTask:  # (its id a plain attribute: read the generic way)
    def __init__(self, id):
        self.id = id
        self.tokens = ()


class PropTask:  # (its id a property)
    __slots__ = ("_id", "tokens")

    def __init__(self, id):
        self._id = id
        self.tokens = None

    @property
    def id(self):
        return self._id


class SlotThread:
    __slots__ = ("tid",)

    def __init__(self, tid):
        self.tid = tid


class DictThread:
    def __init__(self, tid):
        self.tid = tid


class Other:  # (packed by the fallback: the recorder's summarizer)
    def __repr__(self):
        return "Other()"


VALUES = [0, 1, 31, 127, 128, -1, -32, -33, -128, -129, 255, 256, 65535, 65536, -32768, -32769,
          2 ** 31, 2 ** 32 - 1, 2 ** 32, -2 ** 31 - 1, 2 ** 40, 2 ** 59, 2 ** 60, 2 ** 62, -2 ** 62, 2 ** 63 - 1,
          2 ** 64 - 1, -2 ** 63, 2 ** 70, -2 ** 70, None, True, False, "", "s", "é" * 40, 1.5, b"xy",
          [1, 2], (3,), {"k": 1}, Other()]


class _WrappedHooks(RecordingObserver):
    """Its hooks called through Python functions: the emitters pack."""

    def set_hooks(self, hooks):
        super().set_hooks(tuple((lambda h: (lambda *a: h(*a)))(h) for h in hooks))


def _chunks(path) -> bytes:
    data = Path(path).read_bytes()
    n = len(F.MAGIC)
    header_len = struct.unpack_from(F.FRAME_HEADER, data, n)[1]
    footer_at = struct.unpack_from(F.TRAILER, data, len(data) - F.TRAILER_SIZE)[0]
    return data[n + F.FRAME_HEADER_SIZE + header_len:footer_at]


def _calls(seed: int, n: int):
    """n observer calls (method name, args, time step before it), from seed."""
    rnd = random.Random(seed)
    val = lambda: rnd.choice(VALUES)  # noqa: E731
    task = lambda: rnd.choice([SlotTask, SlotTask, DictTask, PropTask])(val())  # noqa: E731
    thread = lambda: rnd.choice([SlotThread, SlotThread, DictThread])(val())  # noqa: E731
    tid = lambda: rnd.choice([None, None, 0, 1, 7, 300, 70000, 2 ** 33, val()])  # noqa: E731
    out = []
    for _ in range(n):
        k = rnd.randrange(8)
        if k == 0:
            call = ("thread_new", (val(), val()))
        elif k <= 2:
            call = ("thread_switch", (tid(), tid()))
        elif k == 3:
            call = ("task_start", (task(),))
        elif k == 4:
            call = ("task_exit", (task(),))
        elif k == 5:
            call = ("subtask_new", (task(), val(), "name", val()))
        elif k == 6:
            call = ("waitable_set_wait", (thread(), val()))
        else:
            call = ("event_delivered", (thread(), val(), val(), val()))
        step = rnd.choice([0, 1, 5, 100, 127, 128, 1000, 65535, 65536, 10 ** 6, 10 ** 10, -3, -1000])
        out.append((call, step))
    return out


def _record(path, make_observer, calls, sink=None, chunk_events=16, decode=False):
    clock = Clock()
    kw = {"sink": sink} if sink is not None else {}
    rec = Recorder(str(path), clock=clock, clock_attr="now_ns", seed=1, argv=["t"], chunk_events=chunk_events,
                   flush_interval_ns=10 ** 15, **kw)
    obs = make_observer(rec)
    for (name, args), step in calls:
        clock.now_ns += step
        getattr(obs, name)(*args)
    rec.close()
    events = None
    if decode:  # (the reader checks the fields' types: only for calls of the types the runtime makes)
        with TraceReader(str(path)) as rd:
            events = list(rd.events())
    return obs, _chunks(path), events


@needs_c
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("chunk_events", [3, 16, 16384])
def test_small_events_write_the_emitters_and_the_python_sinks_bytes(tmp_path, seed, chunk_events):
    calls = _calls(seed, 400)
    obs, direct, _ = _record(tmp_path / "d.cstrace", RecordingObserver, calls, chunk_events=chunk_events)
    assert obs.typed_hooks == (1 << len(Core.HOOKS)) - 1
    wrapped, emitters, _ = _record(tmp_path / "e.cstrace", _WrappedHooks, calls, chunk_events=chunk_events)
    assert wrapped.typed_hooks == 0
    _, py, _ = _record(tmp_path / "p.cstrace", RecordingObserver, calls, sink=PySink, chunk_events=chunk_events)
    assert direct == emitters
    assert direct == py
    assert len(direct) > 400 * 3


@needs_c
def test_a_switch_pair_merges_on_every_path(tmp_path):
    # X -> loop then loop -> Y (one X -> Y), with other events, values and
    # chunk ends between them
    calls = []
    for i, (a, b) in enumerate([(1, None), (None, 2), (2, None), (None, None), (None, 3), (3, None),
                                (None, 2 ** 40), (2 ** 40, None), (None, 2 ** 62), (2 ** 62, None), (None, 5)]):
        calls.append((("thread_switch", (a, b)), i % 3))
        if i % 4 == 3:
            calls.append((("task_start", (SlotTask(i),)), 1))
    for chunk_events in (1, 2, 3, 16384):
        _, direct, events = _record(tmp_path / "d.cstrace", RecordingObserver, calls, chunk_events=chunk_events,
                                    decode=True)
        _, emitters, _ = _record(tmp_path / "e.cstrace", _WrappedHooks, calls, chunk_events=chunk_events)
        _, py, _ = _record(tmp_path / "p.cstrace", RecordingObserver, calls, sink=PySink,
                           chunk_events=chunk_events)
        assert direct == emitters == py, chunk_events
        if chunk_events == 16384:
            switches = [e for e in events if e[1] == "thread.switch"]
            assert len(switches) < 11  # (some pairs merged)


@needs_c
def test_a_failing_read_leaves_no_event(tmp_path):
    class NoId:
        __slots__ = ("tokens",)

        def __init__(self):
            self.tokens = None

    for make in (RecordingObserver, _WrappedHooks):
        clock = Clock()
        rec = Recorder(str(tmp_path / "f.cstrace"), clock=clock, clock_attr="now_ns", seed=1, argv=["t"],
                       flush_interval_ns=10 ** 15)
        obs = make(rec)
        obs.task_start(SlotTask(1))
        with pytest.raises(AttributeError):
            obs.task_start(NoId())
        with pytest.raises(AttributeError):
            obs.event_delivered(NoId(), 1, 2, 3)
        obs.task_start(SlotTask(2))
        rec.close()
        with TraceReader(str(tmp_path / "f.cstrace")) as rd:
            got = [(e[1], e[2]) for e in rd.events() if e[1] in ("task.start", "event.delivered")]
        assert [k for k, _ in got] == ["task.start", "task.start"], make

"""The observer calls made from C reach the recording core directly, and
write what the method calls write.

runtime/_fiber.c calls the observer's transitions (thread_switch,
event_delivered, waitable_set_wait, subtask_new, ...) through one helper: when
the observer is trace/_sink.c's Core (RecordingObserver with the C sink) and
its type still finds Core's own method, the call goes straight to Core's code
(callscope/_sinkapi.h), which packs the events itself when the hooks it was
given have the shapes it knows (Core.typed_hooks). Anything else is the method
call: a subclass's override, an instance attribute of that name, another
observer class, the Python sink. These tests record the same runs through
each path and compare the chunk bytes, and check that overrides are called."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from callscope.host import Host
from callscope.runtime.observe import RecordingObserver
from callscope.trace import Recorder, TraceReader
from callscope.trace import format as F
from callscope.trace.sink import CSink, Core, PySink


needs_c = pytest.mark.skipif(CSink is None or Core is None,
                             reason="callscope.trace._sink is not built (no C compiler at install)")


def _chunks(path) -> bytes:
    """The trace's chunk frames, as bytes: the file between its header frame
    and its footer frame (both hold times of the wall clock)."""
    data = Path(path).read_bytes()
    n = len(F.MAGIC)
    header_len = struct.unpack_from(F.FRAME_HEADER, data, n)[1]
    footer_at = struct.unpack_from(F.TRAILER, data, len(data) - F.TRAILER_SIZE)[0]
    return data[n + F.FRAME_HEADER_SIZE + header_len:footer_at]


def _record(bench, path, make_observer, sink=None, n=40, chunk_events=64):
    """Ping-pong (n subtasks) and then the import loop (n crossings), recorded
    to path with the observer make_observer(recorder) gives: (observer,
    chunk bytes, events)."""
    host = Host(seed=3)
    # (no flush by real time: every run cuts its chunks at the same events)
    kw = {"sink": sink} if sink is not None else {}
    rec = Recorder(str(path), clock=host.store, clock_attr="now_ns", seed=3, argv=["test"], chunk_events=chunk_events,
                   flush_interval_ns=10 ** 12, **kw)
    obs = make_observer(rec)
    host.store.observer = obs
    try:
        exports = host.instantiate(bench.wasm(bench.PINGPONG_WAT), name="t")
        assert host.call(exports.func("run"), [n]) == [bench.expected_pingpong(n)]
        imp = {"step": bench.host_import(host, "step", ["u32"], "u32", bench.step)}
        exports2 = host.instantiate(bench.wasm(bench.IMPORT_WAT), imports=imp, name="u")
        assert host.call(exports2.func("run"), [n]) == [bench.expected_import(n)]
        rec.close()
    finally:
        host.close()
    with TraceReader(str(path)) as rd:
        events = list(rd.events())
    return obs, _chunks(path), events


class _WrappedHooks(RecordingObserver):
    """Its hooks wrapped in Python functions: the core packs none of the
    transitions itself (typed_hooks 0); the sink's emitters do, called
    through the wrappers."""

    def set_hooks(self, hooks):
        def wrap(h):
            return lambda *a: h(*a)
        super().set_hooks(tuple(wrap(h) for h in hooks))


# the observer methods _fiber.c calls (callscope/_sinkapi.h's names)
_C_CALLED = ("thread_switch", "event_delivered", "waitable_set_wait", "subtask_new", "task_new", "thread_new",
             "task_start", "task_exit", "task_return", "import_call", "import_return", "next_call_id")


def _with_instance_attributes(rec):
    """A RecordingObserver whose methods are its instance attributes (each
    the bound method itself): calls from C look them up and call them."""
    obs = RecordingObserver(rec)
    for name in _C_CALLED:
        setattr(obs, name, getattr(obs, name))
    return obs


@needs_c
def test_direct_and_method_paths_write_the_same_bytes(bench, tmp_path):
    got = {}
    obs, got["direct"], events = _record(bench, tmp_path / "direct.cstrace", RecordingObserver)
    assert obs.typed_hooks == (1 << len(Core.HOOKS)) - 1  # (every transition packed by the core itself)
    wrapped, got["emitters"], _ = _record(bench, tmp_path / "emitters.cstrace", _WrappedHooks)
    assert wrapped.typed_hooks == 0
    _, got["methods"], _ = _record(bench, tmp_path / "methods.cstrace", _with_instance_attributes)
    _, got["python sink"], _ = _record(bench, tmp_path / "py.cstrace", RecordingObserver, sink=PySink)
    kinds = {e[1] for e in events}
    for k in ("thread.switch", "event.delivered", "waitable-set.wait", "subtask.state", "task.new",
              "thread.new", "task.start", "task.return", "task.exit", "import.call", "import.return"):
        assert k in kinds, k
    assert len(got["direct"]) > 5000
    for name, data in got.items():
        assert data == got["direct"], name


@needs_c
@pytest.mark.parametrize("chunk_events", [5, 6, 7, 8, 9, 11])
def test_switch_pairs_cut_by_a_chunk_end_are_the_same_on_every_path(bench, tmp_path, chunk_events):
    """A thread's switch back to the loop and the loop's switch to the next
    thread (X -> loop, loop -> Y) are one event, merged by the sink, unless
    a chunk ends after X -> loop: then they stay two. Chunks of a few events
    put their ends at every place of a subtask's events; the typed core, the
    emitters, the method calls and the Python sink write the same bytes."""
    got = {}
    _, got["direct"], events = _record(bench, tmp_path / "direct.cstrace", RecordingObserver, n=20,
                                       chunk_events=chunk_events)
    _, got["emitters"], _ = _record(bench, tmp_path / "emitters.cstrace", _WrappedHooks, n=20,
                                    chunk_events=chunk_events)
    _, got["methods"], _ = _record(bench, tmp_path / "methods.cstrace", _with_instance_attributes, n=20,
                                   chunk_events=chunk_events)
    _, got["python sink"], _ = _record(bench, tmp_path / "py.cstrace", RecordingObserver, sink=PySink, n=20,
                                       chunk_events=chunk_events)
    # (a pair left apart by a chunk's end: X -> loop, then loop -> Y)
    sw = [(e.get("from_thread"), e.get("to_thread")) if e.kind == "thread.switch" else None for e in events]
    assert any(a and b and a[0] is not None and a[1] is None and b[0] is None and b[1] is not None
               for a, b in zip(sw, sw[1:]))
    for name, data in got.items():
        assert data == got["direct"], name


@needs_c
def test_an_overriding_subclass_and_a_class_changed_later_are_called(bench, tmp_path):
    told: list = []

    class Spy(RecordingObserver):
        def thread_switch(self, a, b):
            told.append(("thread_switch", a, b))
            super().thread_switch(a, b)

        def event_delivered(self, thread, code, p1, p2):
            told.append(("event_delivered", code))
            super().event_delivered(thread, code, p1, p2)

        def subtask_new(self, task, handle, name, state):
            told.append(("subtask_new", name))
            super().subtask_new(task, handle, name, state)

    n = 12
    _, spied, _ = _record(bench, tmp_path / "spy.cstrace", Spy, n=n)
    _, direct, _ = _record(bench, tmp_path / "direct.cstrace", RecordingObserver, n=n)
    assert spied == direct  # (the overrides called Core's methods: the same events)
    calls = [t[0] for t in told]
    assert calls.count("subtask_new") == n
    assert calls.count("event_delivered") >= n
    assert calls.count("thread_switch") > 4 * n

    # a method set on the class after its instances were used: the next calls
    # from C find it (the type's version changed)
    waits: list = []

    class Later(RecordingObserver):
        pass

    _record(bench, tmp_path / "later1.cstrace", Later, n=3)

    def waitable_set_wait(self, thread, set_handle):
        waits.append(set_handle)
        RecordingObserver.waitable_set_wait(self, thread, set_handle)

    Later.waitable_set_wait = waitable_set_wait
    _, later, _ = _record(bench, tmp_path / "later2.cstrace", Later, n=n)
    assert len(waits) == n
    _, direct_n, _ = _record(bench, tmp_path / "direct2.cstrace", RecordingObserver, n=n)
    assert later == direct_n


@needs_c
def test_an_instance_attribute_set_after_use_is_called(bench, tmp_path):
    """A spy set on a ready observer's instance after calls from C took the
    direct path (the method's lookup is what that path skips)."""
    host = Host(seed=3)
    rec = Recorder(str(tmp_path / "t.cstrace"), clock=host.store, clock_attr="now_ns", seed=3, argv=["test"])
    obs = RecordingObserver(rec)
    host.store.observer = obs
    seen: list = []
    try:
        exports = host.instantiate(bench.wasm(bench.PINGPONG_WAT), name="t")
        assert host.call(exports.func("run"), [3]) == [bench.expected_pingpong(3)]
        told = obs.event_delivered

        def event_delivered(*a):
            seen.append(a[1])
            told(*a)

        obs.event_delivered = event_delivered
        assert host.call(exports.func("run"), [5]) == [bench.expected_pingpong(5)]
        rec.close()
    finally:
        host.close()
    assert len(seen) >= 5


def test_other_observers_get_the_method_calls(bench):
    """An observer of another class (no Core) gets every call from C as a
    method call, with the same arguments."""

    class Counting:
        def __init__(self):
            self.calls: dict = {}

        def __getattr__(self, name):
            if name.startswith("_"):
                raise AttributeError(name)

            def f(*a):
                self.calls[name] = self.calls.get(name, 0) + 1
                return 1 if name in ("import_call", "next_call_id") else None
            return f

    host = Host(seed=3)
    obs = Counting()
    host.store.observer = obs
    try:
        exports = host.instantiate(bench.wasm(bench.PINGPONG_WAT), name="t")
        assert host.call(exports.func("run"), [6]) == [bench.expected_pingpong(6)]
    finally:
        host.close()
    assert obs.calls.get("subtask_new") == 6
    assert obs.calls.get("event_delivered", 0) >= 6
    assert obs.calls.get("thread_switch", 0) > 12

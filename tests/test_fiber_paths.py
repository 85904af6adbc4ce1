"""The fast paths of the fiber glue do what the plain ones do.

Two switches in callscope/runtime/fiber.py choose how core calls run: the
host-function trampoline, the poll of a call into wasm and ``Thread._drive``
in C (``_fiber.c``) or in ctypes and Python (``C_TRAMPOLINE = None``,
``_poll = _poll_ctypes``, ``thread.DRIVE = Thread._drive``), and drivers (long-lived fibers that run one core call after another,
``USE_DRIVERS``) or a new ``call_async`` per core call. Every combination must
give the same results, the same traps and the same trace."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from callscope.host import Host
from callscope.runtime import fiber, thread as thread_mod
from callscope.runtime.errors import Trap
from callscope.runtime.observe import RecordingObserver
from callscope.trace import Recorder, TraceReader

BENCH = Path(__file__).resolve().parents[1] / "bench" / "run.py"


@pytest.fixture(scope="module")
def bench():
    name = "callscope_bench_run"
    if name in sys.modules:
        return sys.modules[name]
    saved = list(sys.path)
    spec = importlib.util.spec_from_file_location(name, BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path[:] = saved
    return mod


CONFIGS = [(c, d) for c in (True, False) for d in (True, False)]


@pytest.fixture
def config(request, monkeypatch):
    c_trampoline, drivers = request.param
    if c_trampoline and fiber.C_TRAMPOLINE is None:
        pytest.skip("callscope.runtime._fiber is not built (no C compiler at install)")
    if not c_trampoline:
        monkeypatch.setattr(fiber, "C_TRAMPOLINE", None)
        monkeypatch.setattr(fiber, "_poll", fiber._poll_ctypes)
        monkeypatch.setattr(thread_mod, "DRIVE", thread_mod.Thread._drive)
    monkeypatch.setattr(fiber, "USE_DRIVERS", drivers)
    return request.param


def _events(bench, text, export, n, tmp_path, imports=None):
    path = tmp_path / "t.cstrace"
    host = Host(seed=3)
    rec = Recorder(str(path), clock=host.store, clock_attr="now_ns", seed=3, argv=["test"])
    host.store.observer = RecordingObserver(rec)
    try:
        imp = {k: bench.host_import(host, k, *spec) for k, spec in (imports or {}).items()}
        exports = host.instantiate(bench.wasm(text), imports=imp, name="t")
        r = host.call(exports.func(export), [n])
        rec.close()
    finally:
        host.close()
    with TraceReader(str(path)) as rd:
        # (thread.switch events left out: the sink merges X -> loop, loop -> Y
        # into X -> Y only within one chunk, and chunks are cut by the wall
        # clock's 100 ms rule, so where they fall differs from run to run)
        return r, [(e[1], e[2], tuple(e[3])) for e in rd if e[1] != "thread.switch"]


@pytest.mark.parametrize("config", CONFIGS, indirect=True, ids=lambda c: f"c={c[0]},drivers={c[1]}")
def test_pingpong_and_imports_same_results_and_trace(bench, config, tmp_path):
    r, events = _events(bench, bench.PINGPONG_WAT, "run", 50, tmp_path)
    assert r == [bench.expected_pingpong(50)]
    r2, events2 = _events(bench, bench.IMPORT_WAT, "run", 30, tmp_path,
                          imports={"step": (["u32"], "u32", bench.step)})
    assert r2 == [bench.expected_import(30)]
    # the same trace under every configuration (the first one computed is kept)
    ref = _REF.setdefault("pingpong", events)
    assert events == ref
    ref2 = _REF.setdefault("import", events2)
    assert events2 == ref2


_REF: dict = {}


def test_import_loop_trace_same_with_both_sinks(bench, tmp_path):
    """bench/run.py's import loop (b) recorded with the C sink (its Core
    packing import.call and import.return) and with the Python one (the
    observer's Python methods, msgpack): the same events, byte for byte in
    every event's fields."""
    import struct

    from callscope.trace import format as F
    from callscope.trace.sink import CSink, PySink
    if CSink is None:
        pytest.skip("callscope.trace._sink is not built (no C compiler at install)")
    got = {}
    for cls in (CSink, PySink):
        path = tmp_path / f"{cls.__name__}.cstrace"
        host = Host(seed=3)
        # (no flush by real time: both cut their chunks at the same events)
        rec = Recorder(str(path), clock=host.store, clock_attr="now_ns", seed=3, argv=["test"], sink=cls,
                       chunk_events=64, flush_interval_ns=10 ** 12)
        host.store.observer = RecordingObserver(rec)
        try:
            imp = {"step": bench.host_import(host, "step", ["u32"], "u32", bench.step)}
            exports = host.instantiate(bench.wasm(bench.IMPORT_WAT), imports=imp, name="t")
            assert host.call(exports.func("run"), [300]) == [bench.expected_import(300)]
            rec.close()
        finally:
            host.close()
        with TraceReader(str(path)) as rd:
            events = list(rd.events())
        # the chunk frames, as bytes: the file between its header frame and
        # its footer frame (both hold times of the wall clock)
        data = path.read_bytes()
        n = len(F.MAGIC)
        header_len = struct.unpack_from(F.FRAME_HEADER, data, n)[1]
        footer_at = struct.unpack_from(F.TRAILER, data, len(data) - F.TRAILER_SIZE)[0]
        got[cls] = (events, data[n + F.FRAME_HEADER_SIZE + header_len:footer_at])
    events = got[CSink][0]
    assert sum(1 for e in events if e[1] == "import.call") == 300
    assert len(got[CSink][1]) > 5000
    assert got[PySink] == got[CSink]


def test_drivers_are_reused(bench, monkeypatch):
    monkeypatch.setattr(fiber, "USE_DRIVERS", True)
    made = []
    orig = fiber.CallFuture.__init__

    def counting(self, *a):
        made.append(a[1])
        orig(self, *a)

    monkeypatch.setattr(fiber.CallFuture, "__init__", counting)
    r = bench.callscope_call(bench.PINGPONG_WAT, "run", 200, False)[0]
    assert r == bench.expected_pingpong(200)
    # three core calls a subtask (A's callback, B's export, B's callback):
    # a few drivers for all of them, not 600 calls
    assert len(made) <= 4, len(made)


@pytest.mark.parametrize("config", CONFIGS, indirect=True, ids=lambda c: f"c={c[0]},drivers={c[1]}")
def test_a_finished_subtask_leaves_no_cyclic_garbage(bench, config):
    """A subtask's Task, Thread, Subtask, closures and contexts are freed by
    reference counting once it is dropped (no Task <-> Thread or Subtask <->
    Task cycle left to the cyclic GC: ~31 objects a subtask before)."""
    import gc
    run = bench.CallscopeRun(False)
    try:
        exports = run.host.instantiate(bench.wasm(bench.PINGPONG_WAT), imports={}, name="bench")
        assert run.call(exports, "run", [5])[0] == [bench.expected_pingpong(5)]
        gc.collect()
        was = gc.isenabled()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            r = run.call(exports, "run", [300])[0]
            gc.collect()
            garbage = list(gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            if was:
                gc.enable()
        assert r == [bench.expected_pingpong(300)]
        from callscope.runtime.thread import Task, Thread
        from callscope.runtime.waitables import Subtask
        left = [o for o in garbage if isinstance(o, (Task, Thread, Subtask))]
        # (the host's one call of `run` may leave its own few; not one a subtask)
        assert len(left) < 10, (len(left), len(garbage))
    finally:
        run.close()


TRAP_WAT = r"""
(component
  (core module $M
    (import "" "task.return" (func $task.return (param i32)))
    (func (export "run") (param i32) (result i32)
      (i32.const 1 (; YIELD ;)))
    (func (export "run-cb") (param i32 i32 i32) (result i32)
      unreachable))
  (canon task.return (result u32) (core func $task.return))
  (core instance $m (instantiate $M (with "" (instance (export "task.return" (func $task.return))))))
  (func (export "run") async (param "n" u32) (result u32)
    (canon lift (core func $m "run") async (callback (core func $m "run-cb"))))
)
"""


@pytest.mark.parametrize("config", CONFIGS, indirect=True, ids=lambda c: f"c={c[0]},drivers={c[1]}")
def test_a_trap_in_a_driven_callback_is_the_callbacks_trap(bench, config):
    host = Host(seed=0)
    try:
        exports = host.instantiate(bench.wasm(TRAP_WAT), name="t")
        with pytest.raises(Trap) as e:
            host.call(exports.func("run"), [1])
        assert "unreachable" in str(e.value)
    finally:
        host.close()


@pytest.mark.parametrize("config", CONFIGS, indirect=True, ids=lambda c: f"c={c[0]},drivers={c[1]}")
def test_a_trap_is_recorded_the_same_under_every_configuration(bench, config, tmp_path):
    """The trap's event (told by the innermost thread it came through, once)
    and everything before it are the same whichever code drove the threads."""
    path = tmp_path / "t.cstrace"
    host = Host(seed=3)
    rec = Recorder(str(path), clock=host.store, clock_attr="now_ns", seed=3, argv=["test"])
    host.store.observer = RecordingObserver(rec)
    try:
        exports = host.instantiate(bench.wasm(TRAP_WAT), name="t")
        with pytest.raises(Trap) as e:
            host.call(exports.func("run"), [1])
        assert "unreachable" in str(e.value) and e.value.recorded
        rec.close()
    finally:
        host.close()
    with TraceReader(str(path)) as rd:
        events = [(e[1], e[2], tuple(e[3])) for e in rd if e[1] != "thread.switch"]
    assert sum(1 for e in events if e[0] == "trap") == 1, events
    assert events == _REF.setdefault("trap", events)


def test_a_host_exception_surfaces_through_the_c_trampoline(bench, monkeypatch):
    if fiber.C_TRAMPOLINE is None:
        pytest.skip("callscope.runtime._fiber is not built")

    class Boom(Exception):
        pass

    def step(x):
        if x > 5:
            raise Boom("step failed")
        return x + 1

    # host code that raises is a trap of that import call (issue 13), named
    from callscope.runtime.errors import Trap
    with pytest.raises(Trap, match="host import step raised Boom: step failed"):
        bench.callscope_call(bench.IMPORT_WAT, "run", 10, False, imports={"step": (["u32"], "u32", step)})


def _body(cc, f):
    r = yield from cc(f, [1, 2])
    return ("got", r)


def _traced(fn):
    import sys

    def tracer(frame, event, arg):
        return tracer

    sys.settrace(tracer)
    try:
        return fn()
    finally:
        sys.settrace(None)


@pytest.mark.parametrize("traced", [False, True], ids=["plain", "settrace"])
def test_call_core_in_c_behaves_as_the_generator(traced):
    """thread.call_core in C (a CoreCall that is its own one-shot iterator)
    and the Python generator: the same request yielded, the same value
    returned, a throw raised in the delegating body; also with a tracer set
    (the interpreter then uses the iterator's send method)."""
    if fiber._cfiber is None:
        pytest.skip("callscope.runtime._fiber is not built")
    from callscope.runtime.thread import CoreFunc

    f = CoreFunc(None, object(), ("i32", "i32"), ("i32",), "f")
    seen = []
    for cc in (thread_mod._call_core_py, thread_mod.call_core):
        def run():
            g = _body(cc, f)
            req = g.send(None)
            got = (req.__class__ is thread_mod.CoreCall, req.func is f.func, req.args, req.params, req.results)
            with pytest.raises(StopIteration) as stop:
                g.send([7])
            g2 = _body(cc, f)
            g2.send(None)
            with pytest.raises(ValueError, match="boom"):
                g2.throw(ValueError("boom"))
            g3 = _body(cc, f)
            next(g3)
            with pytest.raises(StopIteration) as stop3:
                next(g3)  # (None sent: call_core returns None)
            return got, stop.value.value, stop3.value.value

        seen.append(_traced(run) if traced else run())
    assert seen[0] == seen[1] == ((True, True, [1, 2], ("i32", "i32"), ("i32",)), ("got", [7]), ("got", None))


def test_c_drive_keeps_reference_counts():
    """A thread whose pass through ``_drive`` starts with no core call in
    flight and ends at once (it blocks, or its body returns) leaves every
    reference count as it found it (the C loop once dropped a reference to
    None it did not hold there)."""
    if fiber._cfiber is None:
        pytest.skip("callscope.runtime._fiber is not built")
    import sys
    from callscope.runtime.thread import Block, Thread

    switch_to = object()

    def blocks():
        yield Block(switch_to)

    def returns():
        return
        yield

    t = Thread.__new__(Thread)
    t.future = t.driver = t.host_call = t.block_arg = t.ready_func = t.task = t.index = t.tid = None
    t.is_running = t.cancellable = False
    t.storage = [0, 0]
    for body, want in ((blocks, switch_to), (returns, None)):
        before = (sys.getrefcount(None), sys.getrefcount(switch_to))
        for _ in range(2000):
            t.gen = body()
            t.started = t.done = False
            assert thread_mod.DRIVE(t, None) is want
            assert not t.is_running and t.done == (want is None)
        t.gen = None
        after = (sys.getrefcount(None), sys.getrefcount(switch_to))
        assert abs(after[0] - before[0]) < 100 and after[1] == before[1], (body.__name__, before, after)


def test_c_drive_goes_through_replaced_methods(bench, monkeypatch):
    """``_fiber.drive`` does a CallFuture's poll and a Driver's park itself
    only while they are the methods it stands for: replaced (here, counted),
    the replacement is what runs."""
    if fiber._cfiber is None:
        pytest.skip("callscope.runtime._fiber is not built")
    monkeypatch.setattr(fiber, "USE_DRIVERS", True)
    seen = {"poll": 0, "park": 0}
    poll, park = fiber.CallFuture.poll, fiber.Driver.park

    def counted_poll(self):
        seen["poll"] += 1
        return poll(self)

    def counted_park(self, call):
        seen["park"] += 1
        return park(self, call)

    monkeypatch.setattr(fiber.CallFuture, "poll", counted_poll)
    monkeypatch.setattr(fiber.Driver, "park", counted_park)
    r = bench.callscope_call(bench.PINGPONG_WAT, "run", 20, False)[0]
    assert r == bench.expected_pingpong(20)
    # three core calls a subtask, each one poll and one park
    assert seen["poll"] >= 60 and seen["park"] >= 60, seen

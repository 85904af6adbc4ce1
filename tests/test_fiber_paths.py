"""The fast paths of the fiber glue do what the plain ones do.

Two switches in callscope/runtime/fiber.py choose how core calls run: the
host-function trampoline, the poll of a call into wasm and ``Thread._drive``
in C (``_fiber.c``) or in ctypes and Python (``C_TRAMPOLINE = None``,
``_poll = _poll_ctypes``, ``thread.DRIVE = Thread._drive``, canon_lift's
callback loop ``canon.CALLBACK_THREAD = None``, ``Thread.resume`` and
``Store.tick`` the Python methods ``thread._resume_py``, ``instance._tick_py``,
``Table.get/add/remove`` those in ``handles._table_py``, ``Thread.wait_until``
and ``WaitableSet.wait_for_event_and`` the generators ``thread._wait_until_py``
and ``waitables._wait_for_event_and_py``, ``canon_lift`` and lift's func_inst
the Python ones (``canon._canon_lift_py``, ``canon.LIFT_CALL = None``),
``abi.lift_values`` the Python ``abi._lift_values_py``,
waitable.join and subtask.drop ``canon._canon_waitable_join_py`` and
``canon._canon_subtask_drop_py`` in the linker's table, task.return's
``canon._canon_task_return_py`` in the linker's table, ``canon_lower`` the
Python ``canon._canon_lower_py``), and drivers (long-lived fibers that run one core call after another,
``USE_DRIVERS``) or a new ``call_async`` per core call. Every combination must
give the same results, the same traps and the same trace."""

from __future__ import annotations

import sys

import pytest

from callscope.host import Host
from callscope.component import abi as abi_mod, linker as linker_mod
from callscope.runtime import (canon as canon_mod, fiber, handles as handles_mod, instance as instance_mod,
                               thread as thread_mod, waitables as waitables_mod)
from callscope.runtime.errors import Trap
from callscope.runtime.observe import RecordingObserver
from callscope.trace import Recorder, TraceReader



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
        monkeypatch.setattr(canon_mod, "CALLBACK_THREAD", None)
        monkeypatch.setattr(canon_mod, "canon_lower", canon_mod._canon_lower_py)
        monkeypatch.setattr(thread_mod.Thread, "resume", thread_mod._resume_py)
        monkeypatch.setattr(instance_mod.Store, "tick", instance_mod._tick_py)
        monkeypatch.setitem(linker_mod._BUILTINS, linker_mod.A.CanonTaskReturn,
                            (canon_mod._canon_task_return_py, linker_mod._task_return))
        for name, method in zip(("get", "add", "remove"), handles_mod._table_py):
            monkeypatch.setattr(handles_mod.Table, name, method)
        monkeypatch.setattr(canon_mod, "canon_lift", canon_mod._canon_lift_py)
        monkeypatch.setattr(canon_mod, "LIFT_CALL", None)
        monkeypatch.setitem(linker_mod._BUILTINS, linker_mod.A.CanonWaitableJoin,
                            (canon_mod._canon_waitable_join_py, linker_mod._none))
        monkeypatch.setitem(linker_mod._BUILTINS, linker_mod.A.CanonSubtaskDrop,
                            (canon_mod._canon_subtask_drop_py, linker_mod._none))
        monkeypatch.setattr(abi_mod, "lift_values", abi_mod._lift_values_py)
        monkeypatch.setattr(thread_mod.Thread, "wait_until", thread_mod._wait_until_py)
        monkeypatch.setattr(waitables_mod.WaitableSet, "wait_for_event_and", waitables_mod._wait_for_event_and_py)
    monkeypatch.setattr(fiber, "USE_DRIVERS", drivers)
    return request.param


def _recording_host(path, seed=3, **recorder_kw):
    """A Host whose store records to ``path`` on its own clock: (host, recorder)."""
    host = Host(seed=seed)
    rec = Recorder(str(path), clock=host.store, clock_attr="now_ns", seed=seed, argv=["test"], **recorder_kw)
    host.store.observer = RecordingObserver(rec)
    return host, rec


def _events(bench, text, export, n, tmp_path, imports=None):
    path = tmp_path / "t.cstrace"
    host, rec = _recording_host(path)
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


# two loops, one calling `big` (a u64, beyond 2**60 after the first calls:
# not a small int), one `two` (two u32s): the C core packs a repeated call
# of one import from what it kept of the last one, its small ints itself and
# anything else through the summarizers
WIDE_WAT = r"""
(component
  (import "big" (func $big (param "x" u64) (result u64)))
  (import "two" (func $two (param "a" u32) (param "b" u32) (result u32)))
  (core func $big-lower (canon lower (func $big)))
  (core func $two-lower (canon lower (func $two)))
  (core module $M
    (import "" "big" (func $big (param i64) (result i64)))
    (import "" "two" (func $two (param i32 i32) (result i32)))
    (func (export "run") (param $n i32) (result i32)
      (local $i i32) (local $acc i64) (local $s i32)
      (block $done
        (loop $l
          (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
          (local.set $acc (call $big (i64.add (local.get $acc)
                                              (i64.mul (i64.extend_i32_u (local.get $i)) (i64.const 0x0800000000000001)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $l)))
      (local.set $i (i32.const 0))
      (block $done2
        (loop $l2
          (br_if $done2 (i32.ge_u (local.get $i) (local.get $n)))
          (local.set $s (call $two (local.get $s) (local.get $i)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $l2)))
      (i32.add (local.get $s) (i32.wrap_i64 (local.get $acc)))))
  (core instance $m (instantiate $M (with "" (instance (export "big" (func $big-lower))
                                                       (export "two" (func $two-lower))))))
  (func (export "run") (param "n" u32) (result u32) (canon lift (core func $m "run")))
)
"""


def _wide_imports(bench, host):
    big = lambda x: (x * 3 + 1) & ((1 << 64) - 1)  # noqa: E731
    two = lambda a, b: (a * 7 + b) & 0xFFFFFFFF  # noqa: E731
    return {"big": bench.host_import(host, "big", ["u64"], "u64", big),
            "two": bench.host_import(host, "two", ["u32", "u32"], "u32", two)}


def _step_imports(bench, host):
    return {"step": bench.host_import(host, "step", ["u32"], "u32", bench.step)}


@pytest.mark.parametrize("guest", ["import", "wide"])
def test_import_loop_trace_same_with_both_sinks(bench, tmp_path, guest):
    """bench/run.py's import loop (b) (and WIDE_WAT's two loops) recorded
    with the C sink (its Core packing import.call and import.return) and
    with the Python one (the observer's Python methods, msgpack): the same
    events, byte for byte in every event's fields."""
    import struct

    from callscope.trace import format as F
    from callscope.trace.sink import CSink, PySink
    if CSink is None:
        pytest.skip("callscope.trace._sink is not built (no C compiler at install)")
    text, imports = (bench.IMPORT_WAT, _step_imports) if guest == "import" else (WIDE_WAT, _wide_imports)
    got = {}
    results = []
    for cls in (CSink, PySink):
        path = tmp_path / f"{cls.__name__}.cstrace"
        # (no flush by real time: both cut their chunks at the same events)
        host, rec = _recording_host(path, sink=cls, chunk_events=64, flush_interval_ns=10 ** 12)
        try:
            exports = host.instantiate(bench.wasm(text), imports=imports(bench, host), name="t")
            results.append(host.call(exports.func("run"), [300]))
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
    if guest == "import":
        assert results[0] == [bench.expected_import(300)]
    assert results[1] == results[0]
    calls = [e for e in events if e[1] == "import.call"]
    assert len(calls) == (300 if guest == "import" else 600)
    if guest == "wide":  # (both kinds of argument were recorded: small ints and ones beyond 2**60)
        big = [e[3][4][0] for e in calls[:300]]
        assert big[0] < 1 << 30 and max(big) >= 1 << 60
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
    host, rec = _recording_host(path)
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


# A callback-lifted export whose callback answers what ``run`` is given:
# 5 (no such callback code), WAIT on handle 7 (no waitable set there), or
# YIELD twice and then EXIT with task.return; ``run`` itself YIELDs.
CALLBACK_CODES_WAT = r"""
(component
  (core module $M
    (import "" "task.return" (func $task.return (param i32)))
    (global $mode (mut i32) (i32.const 0))
    (global $n (mut i32) (i32.const 0))
    (func (export "run") (param $m i32) (result i32)
      (global.set $mode (local.get $m))
      (i32.const 1 (; YIELD ;)))
    (func (export "run-cb") (param $e i32) (param $p1 i32) (param $p2 i32) (result i32)
      (global.set $n (i32.add (global.get $n) (i32.const 1)))
      (if (i32.eq (global.get $mode) (i32.const 0))
        (then (return (i32.const 5))))
      (if (i32.eq (global.get $mode) (i32.const 1))
        (then (return (i32.or (i32.const 2 (; WAIT ;)) (i32.shl (i32.const 7) (i32.const 4))))))
      (if (i32.lt_u (global.get $n) (i32.const 3))
        (then (return (i32.const 1 (; YIELD ;)))))
      (call $task.return (i32.add (local.get $e) (global.get $n)))
      (i32.const 0 (; EXIT ;))))
  (canon task.return (result u32) (core func $task.return))
  (core instance $m (instantiate $M (with "" (instance (export "task.return" (func $task.return))))))
  (func (export "run") async (param "mode" u32) (result u32)
    (canon lift (core func $m "run") async (callback (core func $m "run-cb"))))
)
"""


@pytest.mark.parametrize("mode,message", [(0, "^unsupported callback code: 5$"),
                                          (1, "unknown handle index 7$"), (2, None)])
@pytest.mark.parametrize("config", CONFIGS, indirect=True, ids=lambda c: f"c={c[0]},drivers={c[1]}")
def test_the_callback_loop_traps_and_returns_the_same_in_c_and_python(bench, config, tmp_path, mode, message):
    """canon_lift's callback loop (``_fiber.CallbackThread`` or the
    generator): the same traps with the same messages, the same result, the
    same trace."""
    path = tmp_path / "t.cstrace"
    host, rec = _recording_host(path)
    try:
        exports = host.instantiate(bench.wasm(CALLBACK_CODES_WAT), name="t")
        if message is None:
            assert host.call(exports.func("run"), [mode]) == [3]  # (EventCode.NONE + 3 callbacks)
        else:
            with pytest.raises(Trap, match=message) as e:
                host.call(exports.func("run"), [mode])
            assert e.value.recorded
            assert _REF.setdefault(("message", mode), e.value.message) == e.value.message
        rec.close()
    finally:
        host.close()
    with TraceReader(str(path)) as rd:
        events = [(e[1], e[2], tuple(e[3])) for e in rd if e[1] != "thread.switch"]
    assert events == _REF.setdefault(("codes", mode), events)


def test_the_c_callback_loop_is_what_runs_when_built():
    from callscope.runtime import canon
    if fiber._cfiber is None:
        assert canon.CALLBACK_THREAD is None
        pytest.skip("callscope.runtime._fiber is not built")
    assert canon.CALLBACK_THREAD is fiber._cfiber.CallbackThread


def test_resume_and_tick_are_the_c_descriptors_when_built():
    from callscope.runtime import instance, thread
    if fiber._cfiber is None:
        assert thread.Thread.resume is thread._resume_py and instance.Store.tick is instance._tick_py
        pytest.skip("callscope.runtime._fiber is not built")
    assert thread.Thread.resume is not thread._resume_py
    assert instance.Store.tick is not instance._tick_py


@pytest.mark.parametrize("config", CONFIGS, indirect=True, ids=lambda c: f"c={c[0]},drivers={c[1]}")
@pytest.mark.parametrize("policy", ["fifo", "random"])
def test_the_event_loop_runs_the_same_under_either_policy(bench, config, policy, tmp_path):
    """Store.tick (C or Python; a policy other than fifo goes to the Python
    method) and Thread.resume: the same results and trace, with a recorder
    told of every switch."""
    path = tmp_path / "t.cstrace"
    host, rec = _recording_host(path, seed=5)
    host.store.policy = policy
    try:
        exports = host.instantiate(bench.wasm(bench.PINGPONG_WAT), name="t")
        assert host.call(exports.func("run"), [40]) == [bench.expected_pingpong(40)]
        exports2 = host.instantiate(bench.wasm(CALLBACK_CODES_WAT), name="u")
        assert host.call(exports2.func("run"), [2]) == [3]
        assert host.store.nesting_depth == 0
        rec.close()
    finally:
        host.close()
    with TraceReader(str(path)) as rd:
        events = [(e[1], e[2], tuple(e[3])) for e in rd if e[1] != "thread.switch"]
    assert events == _REF.setdefault(("policy", policy), events)


@pytest.mark.parametrize("config", CONFIGS, indirect=True, ids=lambda c: f"c={c[0]},drivers={c[1]}")
def test_resume_tells_the_same_switches_and_tick_unwinds_a_trap(bench, config, tmp_path):
    """Every thread_switch Thread.resume tells the observer, in order (the
    trace's thread.switch events are merged by chunk, so they are compared
    here as told); a trap out of a tick leaves nesting_depth as it was."""
    switches = []

    host = Host(seed=3)
    rec = Recorder(str(tmp_path / "t.cstrace"), clock=host.store, clock_attr="now_ns", seed=3, argv=["test"])
    obs = RecordingObserver(rec)
    told = obs.thread_switch  # (an instance attribute: the sink's own switch)

    def thread_switch(a, b):
        switches.append((a, b))
        told(a, b)

    obs.thread_switch = thread_switch
    host.store.observer = obs
    try:
        exports = host.instantiate(bench.wasm(bench.PINGPONG_WAT), name="t")
        assert host.call(exports.func("run"), [7]) == [bench.expected_pingpong(7)]
        exports2 = host.instantiate(bench.wasm(TRAP_WAT), name="u")
        with pytest.raises(Trap, match="unreachable"):
            host.call(exports2.func("run"), [1])
        assert host.store.nesting_depth == 0
        rec.close()
    finally:
        host.close()
    assert len(switches) > 20
    assert switches == _REF.setdefault("switches", switches)


def _table_ops(table_cls, get, add, remove):
    """A run of Table operations through the given methods; what each gave
    (a value, or the exception's type and message)."""
    out = []
    t = table_cls()

    def do(f, *a):
        try:
            out.append(("ok", f(t, *a)))
        except Exception as e:  # noqa: BLE001  (compared, not hidden)
            out.append((type(e).__name__, str(e)))

    for i in (0, 1, -1, 2 ** 70, -(2 ** 70), 4294967295):
        do(get, i)
    for v in "abcde":
        do(add, v)
    for i in (2, 2, 4, 0, 9, -3, 2 ** 64):
        do(remove, i)
    for v in "fgh":
        do(add, v)
    for i in range(8):
        do(get, i)
    do(get, True)  # (not an exact int: the Python method, in C's case too)
    do(remove, 1)
    out.append(("state", list(t.array), list(t.free), len(t), list(t)))
    return out


def test_the_c_table_methods_do_what_the_python_ones_do(monkeypatch):
    from callscope.runtime.handles import Table, _table_py
    if Table.get is _table_py[0]:
        pytest.skip("callscope.runtime._fiber is not built")
    c = _table_ops(Table, Table.get, Table.add, Table.remove)
    py = _table_ops(Table, *_table_py)
    assert c == py
    assert ("Trap", "unknown handle index 18446744073709551616") in c
    # a full table: the same trap (MAX_LENGTH read from the class each add)
    monkeypatch.setattr(Table, "MAX_LENGTH", 3)
    for methods in ((Table.get, Table.add, Table.remove), _table_py):
        t = Table()
        got = [methods[1](t, x) for x in "abc"]
        with pytest.raises(Trap, match="^handle table is full$"):
            methods[1](t, "d")
        assert got == [1, 2, 3] and t.array == [None, "a", "b", "c"]

    class Sub(Table):
        __slots__ = ()

        def get(self, i):  # a subclass's own get: remove goes through it
            raise Trap("sub get %d" % i)

    with pytest.raises(Trap, match="^sub get 1$"):
        Sub().remove(1)


# task.return's checks: twice (after the task returned), from a sync-lifted
# export, with a result type that is not the export's, and once (42).
TASK_RETURN_WAT = r"""
(component
  (core module $M
    (import "" "ret" (func $ret (param i32)))
    (import "" "ret-none" (func $ret-none))
    (func (export "twice") (param i32) (result i32)
      (call $ret (i32.const 1)) (call $ret (i32.const 2)) (i32.const 0))
    (func (export "sync") (param i32) (result i32)
      (call $ret (i32.const 1)) (i32.const 0))
    (func (export "wrong") (param i32) (result i32)
      (call $ret-none) (i32.const 0))
    (func (export "once") (param i32) (result i32)
      (call $ret (i32.add (local.get 0) (i32.const 41))) (i32.const 0))
    (func (export "cb") (param i32 i32 i32) (result i32) unreachable))
  (core func $ret (canon task.return (result u32)))
  (core func $ret-none (canon task.return))
  (core instance $m (instantiate $M (with "" (instance (export "ret" (func $ret))
                                                       (export "ret-none" (func $ret-none))))))
  (func (export "twice") async (param "x" u32) (result u32)
    (canon lift (core func $m "twice") async (callback (core func $m "cb"))))
  (func (export "sync") (param "x" u32) (result u32) (canon lift (core func $m "sync")))
  (func (export "wrong") async (param "x" u32) (result u32)
    (canon lift (core func $m "wrong") async (callback (core func $m "cb"))))
  (func (export "once") async (param "x" u32) (result u32)
    (canon lift (core func $m "once") async (callback (core func $m "cb"))))
)
"""


@pytest.mark.parametrize("export", ["twice", "sync", "wrong", "once"])
@pytest.mark.parametrize("config", CONFIGS, indirect=True, ids=lambda c: f"c={c[0]},drivers={c[1]}")
def test_task_return_checks_the_same_in_c_and_python(bench, config, export):
    host = Host(seed=0)
    try:
        exports = host.instantiate(bench.wasm(TASK_RETURN_WAT), name="t")
        try:
            got = ("ok", host.call(exports.func(export), [1]))
        except Trap as e:
            got = ("trap", e.message)
    finally:
        host.close()
    assert got == _REF.setdefault(("task.return", export), got)
    if export == "once":
        assert got == ("ok", [42])
    else:
        assert got[0] == "trap" and "task.return" in got[1], got


def _lower_cases():
    from callscope.component.types import F64Type, ListType, StringType, TupleType, U8Type, U32Type, U64Type
    u32, u64, f64, s = U32Type(), U64Type(), F64Type(), StringType()
    return [
        ([u32], [7], False, None),                      # flat
        ([u32, s, f64], [1, "héllo", 2.5], False, None),  # flat, touching memory (the string)
        ([u32] * 17, list(range(17)), False, None),     # spilled through realloc (the Python path)
        ([u32, u64], [5, 2 ** 40], True, 64),           # packed through out_param
        ([u32, u64], [5, 2 ** 40], True, 66),           # misaligned out pointer
        ([u32, u64], [5, 2 ** 40], True, 65528),        # out of bounds
        ([u32, u64], [5, 2 ** 40], True, 2 ** 32 + 64),  # masked to 64
        ([TupleType((u32, u8)) for u8 in [U8Type()]], [{"0": 1, "1": 2}], True, 8),  # no packer: Python path
        ([ListType(U8Type()), u32], [[1, 2, 3], 9], True, 128),
    ]


@pytest.mark.parametrize("host", [False, True])
def test_the_c_lower_values_does_what_the_python_one_does(host):
    from callscope.component import abi
    from callscope.component.abi import CanonicalOptions, CoreValueIter, LiftLowerContext
    from callscope.component.memory import BytesMemory
    if abi.lower_values is abi._lower_values_py:
        pytest.skip("callscope.runtime._fiber is not built")

    class Inst:
        def __init__(self):
            self.handles = handles_mod.Table()
            self.may_leave = True

    def run(fn):
        out = []
        for ts, vs, use_out, at in _lower_cases():
            for max_flat in (1, 16):
                mem = BytesMemory(1 << 16)
                nxt = [1024]

                def realloc(old, old_size, align, new_size):
                    ptr = (nxt[0] + align - 1) // align * align
                    nxt[0] = ptr + new_size
                    return ptr

                opts = CanonicalOptions(string_encoding="utf8", memory=mem, realloc=realloc)
                cx = LiftLowerContext(opts, Inst(), host=host)
                plan = abi.values_plan(ts, cx.ptr_type, max_flat)
                vi = CoreValueIter([at, 99]) if use_out else None
                try:
                    got = ("ok", fn(cx, plan, vs, vi) if vi is not None else fn(cx, plan, vs))
                except Trap as e:
                    got = ("trap", e.message)
                out.append((got, bytes(mem.view()[:2048]), bytes(mem.view()[-16:]), vi.i if vi else None))
        return out

    c, py = run(abi.lower_values), run(abi._lower_values_py)
    assert c == py
    assert any(g[0][0] == "trap" for g in c) and any(g[0] == ("ok", []) for g in c)


@pytest.mark.parametrize("config", [(True, True), (False, False)], indirect=True,
                         ids=lambda c: f"c={c[0]},drivers={c[1]}")
def test_the_async_reference_tests_pass_the_same_in_c_and_python(config):
    """The spec's async reference tests (cancellation before and after a
    subtask starts, lowers that return at once, waits, yields, traps) under
    the C pieces and under their Python definitions: every assertion passes
    and the counts are the same."""
    conformance = pytest.importorskip("test_conformance")
    files = conformance._files("async")
    counts = []
    for path in files:
        c, failures = conformance._run(path, seed=1)
        assert c.failed == 0, f"{path.name}:\n" + "\n".join(failures)
        counts.append((path.name, c.passed, c.failed))
    assert counts == _REF.setdefault("async group", counts)


# Async lowers that return at once: of a host import (recorded: its call and
# return events) and of a component function that returns before it exits.
ASYNC_AT_ONCE_WAT = r"""
(component
  (import "step" (func $step (param "x" u32) (result u32)))
  (component $B
    (core module $CB
      (import "" "task.return" (func $task.return (param i32)))
      (func (export "now") (param $x i32) (result i32)
        (call $task.return (i32.add (local.get $x) (i32.const 100)))
        (i32.const 0 (; EXIT ;)))
      (func (export "now-cb") (param i32 i32 i32) (result i32) unreachable))
    (canon task.return (result u32) (core func $task.return))
    (core instance $cb (instantiate $CB (with "" (instance (export "task.return" (func $task.return))))))
    (func (export "now") async (param "x" u32) (result u32)
      (canon lift (core func $cb "now") async (callback (core func $cb "now-cb")))))
  (component $A
    (import "step" (func $step (param "x" u32) (result u32)))
    (import "b" (instance $b (export "now" (func async (param "x" u32) (result u32)))))
    (core module $Mem (memory (export "mem") 1))
    (core instance $mem (instantiate $Mem))
    (core func $step-lower (canon lower (func $step) async (memory (core memory $mem "mem"))))
    (core func $now-lower (canon lower (func $b "now") async (memory (core memory $mem "mem"))))
    (core module $M
      (import "" "mem" (memory 1))
      (import "" "step" (func $step (param i32 i32) (result i32)))
      (import "" "now" (func $now (param i32 i32) (result i32)))
      (func (export "run") (param $n i32) (result i32)
        (local $i i32) (local $acc i32)
        (block $done
          (loop $l
            (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
            (if (i32.ne (call $step (i32.add (local.get $acc) (local.get $i)) (i32.const 16)) (i32.const 2))
              (then unreachable))
            (if (i32.ne (call $now (i32.load (i32.const 16)) (i32.const 32)) (i32.const 2))
              (then unreachable))
            (local.set $acc (i32.load (i32.const 32)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $l)))
        (local.get $acc)))
    (core instance $m (instantiate $M (with "" (instance (export "mem" (memory $mem "mem"))
                                                         (export "step" (func $step-lower))
                                                         (export "now" (func $now-lower))))))
    (func (export "run") (param "n" u32) (result u32) (canon lift (core func $m "run"))))
  (instance $b (instantiate $B))
  (instance $a (instantiate $A (with "step" (func $step)) (with "b" (instance $b))))
  (func (export "run") (alias export $a "run"))
)
"""


@pytest.mark.parametrize("config", CONFIGS, indirect=True, ids=lambda c: f"c={c[0]},drivers={c[1]}")
def test_async_lowers_that_return_at_once_are_the_same_in_c_and_python(bench, config, tmp_path):
    r, events = _events(bench, ASYNC_AT_ONCE_WAT, "run", 6, tmp_path,
                        imports={"step": (["u32"], "u32", bench.step)})
    acc = 0
    for i in range(6):
        acc = bench.step(acc + i) + 100
    assert r == [acc]
    assert any(e[0] == "import.call" for e in events), sorted({e[0] for e in events})
    assert events == _REF.setdefault("at once", events)


@pytest.mark.parametrize("config", CONFIGS, indirect=True, ids=lambda c: f"c={c[0]},drivers={c[1]}")
def test_a_host_result_its_type_cannot_hold_is_the_same_trap_through_an_async_lower(bench, config):
    host = Host(seed=0)
    try:
        imp = {"step": bench.host_import(host, "step", ["u32"], "u32", lambda x: "not a u32")}
        exports = host.instantiate(bench.wasm(ASYNC_AT_ONCE_WAT), imports=imp, name="t")
        with pytest.raises(Trap) as e:
            host.call(exports.func("run"), [3])
    finally:
        host.close()
    assert e.value.message.startswith("host import step returned a value its result type cannot hold:")
    assert e.value.__cause__ is None and e.value.__suppress_context__
    assert e.value.message == _REF.setdefault("cannot hold", e.value.message)


def test_the_c_made_lift_lower_context_is_what_the_class_makes(monkeypatch):
    from callscope.component import abi
    from callscope.component.abi import CanonicalOptions, LiftLowerContext
    if fiber._cfiber is None:
        pytest.skip("callscope.runtime._fiber is not built")
    opts = CanonicalOptions()

    def slots(cx):
        return [(k, getattr(cx, k, "<unset>")) for k in LiftLowerContext.__slots__]

    for args in ((opts, "inst", "scope", True, "i32", 0xFFFF_FFFF), (opts, None, None, False, "i64", 7),
                 (opts, "inst", None, 0, "i32", 1)):
        made = fiber._cfiber.make_cx(LiftLowerContext, *args)
        assert type(made) is LiftLowerContext
        assert slots(made) == slots(LiftLowerContext(*args))
    # the budget and the words as they are at the call
    monkeypatch.setattr(abi.CopyBudget, "LIMIT", 1234)
    assert fiber._cfiber.make_cx(LiftLowerContext, opts, None, None, False, "i32", 1).budget == 1234
    # no ptr_type, a subclass, another __init__: the class is called
    assert fiber._cfiber.make_cx(LiftLowerContext, opts, None, None, False, None, 0).mv is None

    class Sub(LiftLowerContext):
        __slots__ = ("extra",)

        def __init__(self, *a):
            super().__init__(*a)
            self.extra = 1

    assert fiber._cfiber.make_cx(Sub, opts, None, None, False, "i32", 1).extra == 1
    monkeypatch.setattr(LiftLowerContext, "__init__", lambda self, *a: setattr(self, "mv", "patched"))
    assert fiber._cfiber.make_cx(LiftLowerContext, opts, None, None, False, "i32", 1).mv == "patched"


# -- the waiting helpers (Thread.wait_until, WaitableSet.wait_for_event_and)

WAIT_IMPLS = ["c", "py"]


def _wait_impls(which):
    if which == "c" and fiber._cfiber is None:
        pytest.skip("callscope.runtime._fiber is not built")
    if which == "c":
        return thread_mod.Thread.wait_until, waitables_mod.WaitableSet.wait_for_event_and
    return thread_mod._wait_until_py, waitables_mod._wait_for_event_and_py


def _a_thread():
    """A real store, instance, task and (not started) thread to wait on."""
    from callscope.runtime.instance import ComponentInstance, Store

    class FT:
        async_ = True
        result = ()

    class Opts:
        async_ = True
        callback = None

    store = Store(None)
    inst = ComponentInstance(store)
    task = thread_mod.Task(FT(), Opts(), inst, lambda: [], lambda r: None)
    return store, task, thread_mod.Thread(task, lambda: iter(()))


def _gen_end(g, value=None):
    """What a send into ``g`` ends with: ("yield", v), ("return", v) or ("raise", type, message)."""
    try:
        return ("yield", g.send(value))
    except StopIteration as e:
        return ("return", e.value)
    except Exception as e:  # noqa: BLE001 (compared as they come)
        return ("raise", type(e), str(e))


def _wait_until_story(wait_until):
    C = thread_mod.Cancelled
    out = []
    store, task, th = _a_thread()
    # a pending cancel, delivered when the wait may be cancelled
    task.state = thread_mod.Task.State.PENDING_CANCEL
    first = _gen_end(wait_until(th, lambda: False))  # (not cancellable: it blocks)
    out.append((first[0], first[1] is thread_mod._BLOCK, task.state, store.waiting == [th]))
    th.stop_waiting_internal(False)
    out.append(_gen_end(wait_until(th, lambda: False, cancellable=True)))
    out.append((task.state, len(store.waiting), th.ready_func is None))
    task.state = thread_mod.Task.State.STARTED
    # the condition holds: at once, unless always_block
    calls = []
    out.append(_gen_end(wait_until(th, lambda: calls.append(1) or 1)))
    out.append((len(calls), len(store.waiting)))
    # blocking: the thread waits, with its condition, then gets what is sent
    ready = lambda: True  # noqa: E731
    g = wait_until(th, ready, True, always_block=True)
    out.append((store.waiting == [], th.ready_func is None))
    first = _gen_end(g)
    out.append((first[0], first[1] is thread_mod._BLOCK, store.waiting == [th], th.ready_func is ready, th.cancellable))
    out.append(_gen_end(g, C.TRUE))
    out.append(_gen_end(g))  # (finished)
    # (the thread is still as the wait left it: waiting)
    th.stop_waiting_internal(False)
    out.append((len(store.waiting), th.ready_func))
    # a trap thrown in at the wait
    g = wait_until(th, lambda: 0)
    g.send(None)
    try:
        g.throw(Trap("boom"))
    except Trap as e:
        out.append(("trap", e.message))
    th.stop_waiting_internal(False)
    # a value sent to a wait not started; the condition raising; bad arguments
    out.append(_gen_end(wait_until(th, lambda: 0), 5))
    out.append(_gen_end(wait_until(th, lambda: 1 // 0)))
    for bad in [(), (1, 2, 3, 4)]:
        try:
            wait_until(th, *bad)
            out.append("no error")
        except TypeError:
            out.append("TypeError")
    g = wait_until(th, lambda: 0)
    g.close()
    out.append(_gen_end(g))
    out.append(len(store.waiting))
    # start_waiting_internal's assert: a thread already waiting cannot wait again
    th.start_waiting_internal(ready)
    out.append(_gen_end(wait_until(th, lambda: 0))[:2])
    return out


@pytest.mark.parametrize("impl", WAIT_IMPLS)
def test_wait_until_in_c_does_what_the_generator_does(impl):
    wait_until, _ = _wait_impls(impl)
    assert _wait_until_story(wait_until) == _REF.setdefault("wait_until", _wait_until_story(_wait_impls("py")[0]))


def _wait_for_event_story(wait_until, wait_for_event_and):
    from callscope.runtime.waitables import EventCode, Subtask, WaitableSet
    out = []
    store, task, th = _a_thread()
    saved = thread_mod.Thread.wait_until
    thread_mod.Thread.wait_until = wait_until
    thread_mod.STACK.append(th)
    try:
        ws = WaitableSet()
        s1, s2 = Subtask(), Subtask()
        s1.join(ws)
        s2.join(ws)
        gate = [False]
        g = wait_for_event_and(ws, lambda: gate[0], True)
        out.append(ws.num_waiting)
        first = _gen_end(g)
        out.append((first[0], first[1] is thread_mod._BLOCK, ws.num_waiting, store.waiting == [th]))
        rahe = th.ready_func
        out.append(rahe())  # (not ready: ready_func's own value)
        gate[0] = 1
        out.append(rahe())  # (ready, no event)
        s2.pending_event = lambda: (EventCode.SUBTASK, 2, 2)
        out.append(rahe())
        th.stop_waiting_internal(False)
        out.append(_gen_end(g, False))  # the event
        out.append((ws.num_waiting, s2.pending_event))
        # cancelled at the wait
        g = wait_for_event_and(ws, lambda: True, True)
        g.send(None)
        th.stop_waiting_internal(False)
        out.append(_gen_end(g, True))
        out.append(ws.num_waiting)
        # a trap thrown in, and a close: the finally runs either way
        g = wait_for_event_and(ws, lambda: True, True)
        g.send(None)
        try:
            g.throw(Trap("thrown"))
        except Trap as e:
            out.append(("trap", e.message, ws.num_waiting))
        th.stop_waiting_internal(False)
        g = wait_for_event_and(ws, lambda: True, False)
        g.send(None)
        g.close()
        out.append(("closed", ws.num_waiting, _gen_end(g)))
        th.stop_waiting_internal(False)
        # no pending event after all: the assertion
        g = wait_for_event_and(ws, lambda: True, False)
        g.send(None)
        th.stop_waiting_internal(False)
        out.append((_gen_end(g, False), ws.num_waiting))
        # a pending cancel: no wait at all
        task.state = thread_mod.Task.State.PENDING_CANCEL
        out.append((_gen_end(wait_for_event_and(ws, lambda: True, True)), ws.num_waiting, task.state))
        # a wait never resumed and let go of: its finally still runs
        g = wait_for_event_and(ws, lambda: True, False)
        g.send(None)
        out.append(ws.num_waiting)
        del g
        import gc
        gc.collect()
        out.append(ws.num_waiting)
        th.stop_waiting_internal(False)
    finally:
        thread_mod.STACK.remove(th)
        thread_mod.Thread.wait_until = saved
    return out


@pytest.mark.parametrize("impl", WAIT_IMPLS)
def test_wait_for_event_and_in_c_does_what_the_generator_does(impl):
    ref = _REF.get("wait_for_event")
    if ref is None:
        ref = _REF["wait_for_event"] = _wait_for_event_story(*_wait_impls("py"))
    assert _wait_for_event_story(*_wait_impls(impl)) == ref


def test_the_c_waits_go_through_replaced_methods(bench, monkeypatch):
    """The C waits do deliver_pending_cancel, start/stop_waiting_internal,
    has/get_pending_event and a subtask's resolved/deliver_resolve themselves
    only while they are the methods they stand for: replaced (here,
    counted), the replacement is what runs, and the results are the same."""
    if fiber._cfiber is None:
        pytest.skip("callscope.runtime._fiber is not built")
    from callscope.runtime.waitables import Subtask, Waitable, WaitableSet
    seen = {}
    for cls, name in [(thread_mod.Task, "deliver_pending_cancel"), (thread_mod.Thread, "start_waiting_internal"),
                      (thread_mod.Thread, "stop_waiting_internal"), (WaitableSet, "has_pending_event"),
                      (WaitableSet, "get_pending_event"), (Waitable, "get_pending_event"),
                      (Subtask, "resolved"), (Subtask, "deliver_resolve")]:
        orig = getattr(cls, name)

        def counted(*a, _orig=orig, _key=f"{cls.__name__}.{name}"):
            seen[_key] = seen.get(_key, 0) + 1
            return _orig(*a)

        monkeypatch.setattr(cls, name, counted)
    r = bench.callscope_call(bench.PINGPONG_WAT, "run", 20, False)[0]
    assert r == bench.expected_pingpong(20)
    # each a subtask at least once (Subtask's inherit Waitable.get_pending_event's replacement)
    for key in ["Task.deliver_pending_cancel", "Thread.start_waiting_internal", "Thread.stop_waiting_internal",
                "WaitableSet.has_pending_event", "WaitableSet.get_pending_event", "Waitable.get_pending_event",
                "Subtask.resolved", "Subtask.deliver_resolve"]:
        assert seen.get(key, 0) >= 20, (key, seen)


def test_the_c_waits_are_what_run_when_built():
    if fiber._cfiber is None:
        assert thread_mod.Thread.wait_until is thread_mod._wait_until_py
        pytest.skip("callscope.runtime._fiber is not built")
    assert thread_mod.Thread.wait_until is not thread_mod._wait_until_py
    assert waitables_mod.WaitableSet.wait_for_event_and is not waitables_mod._wait_for_event_and_py


# -- canon_lift, lift's func_inst, waitable.join and subtask.drop in C

def _slot_view(o, seen_ids):
    """An object's __slots__ as comparable values (objects by type and by the
    order they were first seen)."""
    out = {}
    for cls in type(o).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if name in ("__weakref__", "__dict__") or name in out:
                continue
            try:
                v = getattr(o, name)
            except AttributeError:
                out[name] = "<unset>"
                continue
            if v is None or isinstance(v, (int, str, float, tuple)) and not hasattr(v, "__slots__"):
                out[name] = v
            elif isinstance(v, list):
                out[name] = ("list", len(v))
            elif callable(v) and not hasattr(type(v), "__slots__"):
                # (canon_lower's closures: Python functions or their C twins)
                out[name] = ("callable", seen_ids.setdefault(id(v), len(seen_ids)))
            else:
                out[name] = (type(v).__name__, seen_ids.setdefault(id(v), len(seen_ids)))
    return out


@pytest.mark.parametrize("config", CONFIGS, indirect=True, ids=lambda c: f"c={c[0]},drivers={c[1]}")
def test_tasks_and_threads_are_made_the_same_in_c_and_python(bench, config, tmp_path):
    """The Task and Thread canon_lift makes (C: their __init__'s steps; Python:
    the classes called) hold the same values when the observer is told of
    them, the root task takes the host's label and tokens, and the call's
    result and trace are the same."""
    from callscope.runtime.observe import RecordingObserver

    views = []
    keep = {}

    class Snap(RecordingObserver):
        def task_new(self, task):
            keep[id(task)] = task
            views.append(("task", _slot_view(task, ids)))
            return super().task_new(task)

        def thread_new(self, tid, task_id):
            views.append(("thread", tid, task_id))
            return super().thread_new(tid, task_id)

    ids: dict = {}
    path = tmp_path / "t.cstrace"
    host, rec = _recording_host(path)
    host.store.observer = Snap(rec)
    try:
        exports = host.instantiate(bench.wasm(bench.PINGPONG_WAT), name="t")
        host.store.next_root = ("req-1", ("tok-a",))
        r = host.call(exports.func("run"), [4])
        rec.close()
    finally:
        host.close()
    assert r == [bench.expected_pingpong(4)]
    root = next(t for t in keep.values() if t.caller is None)
    assert (root.label, root.tokens) == ("req-1", ("tok-a",)) and host.store.next_root is None
    assert len(views) == 10  # (5 tasks, 5 threads)
    assert views == _REF.setdefault("made", views)


def test_the_c_lift_goes_through_replaced_methods(bench, monkeypatch):
    """canon_lift in C makes the Task and Thread itself, numbers them, and
    canon_lower calls a FuncInst's call, only while Task.__init__,
    Thread.__init__, Store.new_id and FuncInst.__call__ are the ones it
    stands for: replaced (here, counted), the replacements run."""
    if fiber._cfiber is None:
        pytest.skip("callscope.runtime._fiber is not built")
    from callscope.runtime.canon import FuncInst
    from callscope.runtime.instance import Store
    seen = {}
    for cls, name in [(thread_mod.Task, "__init__"), (thread_mod.Thread, "__init__"), (Store, "new_id"),
                      (FuncInst, "__call__")]:
        orig = getattr(cls, name)

        def counted(*a, _orig=orig, _key=f"{cls.__name__}.{name}", **kw):
            seen[_key] = seen.get(_key, 0) + 1
            return _orig(*a, **kw)

        monkeypatch.setattr(cls, name, counted)
    r = bench.callscope_call(bench.PINGPONG_WAT, "run", 20, False)[0]
    assert r == bench.expected_pingpong(20)
    assert seen["Task.__init__"] >= 21 and seen["Thread.__init__"] >= 21, seen
    assert seen["Store.new_id"] >= 42 and seen["FuncInst.__call__"] >= 20, seen


def test_the_c_lift_and_builtins_are_what_run_when_built():
    from callscope.component import linker
    if fiber._cfiber is None:
        assert canon_mod.LIFT_CALL is None and canon_mod.canon_lift is canon_mod._canon_lift_py
        pytest.skip("callscope.runtime._fiber is not built")
    assert canon_mod.LIFT_CALL is fiber._cfiber.LiftCall
    assert canon_mod.canon_lift is fiber._cfiber.canon_lift
    assert linker._BUILTINS[linker.A.CanonWaitableJoin][0] is fiber._cfiber.waitable_join
    assert linker._BUILTINS[linker.A.CanonSubtaskDrop][0] is fiber._cfiber.subtask_drop


# A callback-lifted export whose callback EXITs without task.return.
NO_RESULT_WAT = r"""
(component
  (core module $M
    (func (export "run") (param $m i32) (result i32) (i32.const 1 (; YIELD ;)))
    (func (export "run-cb") (param i32 i32 i32) (result i32) (i32.const 0 (; EXIT ;))))
  (core instance $m (instantiate $M))
  (func (export "run") async (param "mode" u32) (result u32)
    (canon lift (core func $m "run") async (callback (core func $m "run-cb"))))
)
"""


@pytest.mark.parametrize("config", CONFIGS, indirect=True, ids=lambda c: f"c={c[0]},drivers={c[1]}")
def test_a_task_that_exits_without_a_result_traps_the_same_in_c_and_python(bench, config, tmp_path):
    """Task.exit_implicit_thread / unregister_thread (done in C for the C
    callback loop): a task left with no thread before it returned traps
    with wasmtime's words, recorded the same."""
    path = tmp_path / "t.cstrace"
    host, rec = _recording_host(path)
    try:
        exports = host.instantiate(bench.wasm(NO_RESULT_WAT), name="t")
        with pytest.raises(Trap, match="async-lifted export failed to produce a result$") as e:
            host.call(exports.func("run"), [0])
        assert e.value.recorded
        rec.close()
    finally:
        host.close()
    with TraceReader(str(path)) as rd:
        events = [(e[1], e[2], tuple(e[3])) for e in rd if e[1] != "thread.switch"]
    assert events == _REF.setdefault("no result", events)


def test_the_c_callback_loop_goes_through_replaced_task_methods(bench, monkeypatch):
    """The C callback loop and task.return do Task's enter_implicit_thread,
    register_thread, needs_exclusive, start, exit_implicit_thread,
    unregister_thread and return_ themselves only while they are the
    methods they stand for: replaced (here, counted), the replacements run
    and the result is the same."""
    if fiber._cfiber is None:
        pytest.skip("callscope.runtime._fiber is not built")
    Task = thread_mod.Task
    seen = {}
    names = ["enter_implicit_thread", "register_thread", "needs_exclusive", "start", "exit_implicit_thread",
             "unregister_thread", "return_"]
    for name in names:
        orig = getattr(Task, name)

        def counted(*a, _orig=orig, _key=name):
            seen[_key] = seen.get(_key, 0) + 1
            return _orig(*a)

        monkeypatch.setattr(Task, name, counted)
    r = bench.callscope_call(bench.PINGPONG_WAT, "run", 20, False)[0]
    assert r == bench.expected_pingpong(20)
    for name in names:
        assert seen.get(name, 0) >= 20, (name, seen)


def _lift_cases():
    from callscope.component.types import (BoolType, F64Type, ListType, S8Type, S32Type, StringType, U8Type,
                                           U16Type, U32Type, U64Type)
    u32 = U32Type()
    return [
        ([u32], [7, 99]),
        ([u32], [2 ** 32 + 5]),                            # masked by the unsigned lifter
        ([U8Type(), U16Type(), U64Type()], [300, 70000, 2 ** 64 + 1]),
        ([S8Type(), S32Type(), BoolType(), F64Type()], [255, 2 ** 32 - 1, 2, 1.5]),
        ([u32, StringType()], [1, 16, 5]),                 # touching memory
        ([ListType(U8Type())], [16, 70000]),               # out of bounds
        ([u32] * 17, [64]),                                # spilled (the Python path)
        ([u32] * 17, [65530]),                             # spilled, out of bounds
        ([u32, u32], [1]),                                 # too few values
    ]


def test_the_c_lift_values_does_what_the_python_one_does():
    """abi.lift_values in C (with the unsigned lifter done by its steps and
    CoreValueIter's next) and the Python one: the same values, traps and
    errors, and the iterator left at the same place."""
    from callscope.component.abi import CanonicalOptions, CoreValueIter, LiftLowerContext
    from callscope.component.memory import BytesMemory
    if abi_mod.lift_values is abi_mod._lift_values_py:
        pytest.skip("callscope.runtime._fiber is not built")

    class Inst:
        def __init__(self):
            self.handles = handles_mod.Table()
            self.may_leave = True

    def run(fn):
        out = []
        for ts, flat in _lift_cases():
            mem = BytesMemory(1 << 16)
            mem.view()[16:21] = b"hello"
            for k in range(17):
                mem.view()[64 + 4 * k:68 + 4 * k] = (k * 3).to_bytes(4, "little")
            cx = LiftLowerContext(CanonicalOptions(string_encoding="utf8", memory=mem), Inst())
            plan = abi_mod.values_plan(ts, cx.ptr_type, 16)
            vi = CoreValueIter(list(flat))
            try:
                got = ("ok", [str(v) if isinstance(v, str) else v for v in fn(cx, plan, vi)])
            except Trap as e:
                got = ("trap", e.message)
            except Exception as e:  # noqa: BLE001 (compared as they come)
                got = ("error", type(e).__name__, str(e))
            out.append((got, vi.i))
        return out

    c, py = run(abi_mod.lift_values), run(abi_mod._lift_values_py)
    assert c == py
    assert ("ok", [5]) in [g for g, _ in c] and any(g[0] == "trap" for g, _ in c)
    assert any(g[0] == "error" for g, _ in c)


def test_the_c_lift_and_lower_values_call_lifters_they_do_not_know(monkeypatch):
    """A lifter or lowerer the C functions do not recognize (here a plan's,
    replaced) is called as it is; a CoreValueIter whose next was replaced
    has that next called."""
    from callscope.component.abi import CanonicalOptions, CoreValueIter, LiftLowerContext
    from callscope.component.types import U32Type
    if abi_mod.lift_values is abi_mod._lift_values_py:
        pytest.skip("callscope.runtime._fiber is not built")
    cx = LiftLowerContext(CanonicalOptions(), None)
    plan = abi_mod.ValuesPlan((U32Type(), U32Type()), cx.ptr_type, 16)
    plan.lifters = [plan.lifters[0], lambda cx, vi: ("mine", vi.next())]
    plan.lowerers = [plan.lowerers[0], lambda cx, v, out: out.append(("mine", v))]
    assert abi_mod.lift_values(cx, plan, CoreValueIter([3, 4])) == [3, ("mine", 4)]
    assert abi_mod.lower_values(cx, plan, [3, 4]) == [3, ("mine", 4)]
    calls = []
    nxt = CoreValueIter.next

    def counted(self, t=None):
        calls.append(t)
        return nxt(self, t)

    monkeypatch.setattr(CoreValueIter, "next", counted)
    assert abi_mod.lift_values(cx, plan, CoreValueIter([2 ** 32 + 1, 4])) == [1, ("mine", 4)]
    assert len(calls) == 2


def test_the_c_subtask_is_what_the_class_makes_and_replaced_steps_run(bench, monkeypatch):
    """canon_lower's Subtask (made by Subtask.__init__'s steps) holds what the
    class makes; with Subtask.__init__, Subtask.resolve and
    LiftLowerContext.refresh replaced (counted), the replacements run and
    the result is the same."""
    if fiber._cfiber is None:
        pytest.skip("callscope.runtime._fiber is not built")
    from callscope.component.abi import LiftLowerContext
    from callscope.runtime.waitables import Subtask
    made = []
    orig_add = handles_mod.Table.add

    def spy(self, e):  # (canon_lower adds the subtask once its callee has started)
        if isinstance(e, Subtask):
            made.append(_slot_view(e, {}))
        return orig_add(self, e)

    monkeypatch.setattr(handles_mod.Table, "add", spy)
    r = bench.callscope_call(bench.PINGPONG_WAT, "run", 3, False)[0]
    assert r == bench.expected_pingpong(3)
    fresh = _slot_view(Subtask(), {})
    monkeypatch.setattr(handles_mod.Table, "add", orig_add)
    seen = {}
    for cls, name in [(Subtask, "__init__"), (Subtask, "resolve"), (LiftLowerContext, "refresh")]:
        orig = getattr(cls, name)

        def counted(*a, _orig=orig, _key=f"{cls.__name__}.{name}"):
            seen[_key] = seen.get(_key, 0) + 1
            return _orig(*a)

        monkeypatch.setattr(cls, name, counted)
    r = bench.callscope_call(bench.PINGPONG_WAT, "run", 20, False)[0]
    assert r == bench.expected_pingpong(20)
    assert all(seen.get(k, 0) >= 20 for k in ["Subtask.__init__", "Subtask.resolve", "LiftLowerContext.refresh"]), seen
    # each subtask as the class makes it, but for its state (STARTED once the
    # callee started) and on_cancel (the callee's, set once it returned)
    assert len(made) == 3
    for m in made:
        assert m["state"] == Subtask.State.STARTED and m["on_cancel"][0] == "callable", m
        assert {k: v for k, v in m.items() if k not in ("state", "on_cancel")} == \
            {k: v for k, v in fresh.items() if k not in ("state", "on_cancel")}


@pytest.mark.parametrize("config", CONFIGS, indirect=True, ids=lambda c: f"c={c[0]},drivers={c[1]}")
def test_calls_held_back_by_backpressure_run_the_same_in_c_and_python(config, tmp_path, capsys):
    """The built-in backpressure demo (callback-lifted calls queued while
    others wait to enter: Task.enter_implicit_thread's waiting path, which
    the C loop must leave to the method while any call is queued): every
    queued call admitted, in order, and the same events in C and Python."""
    from callscope.cli import main
    trace = tmp_path / "t.trace"
    assert main(["check", "--demo", "backpressure", "--repeat", "12", "--concurrency", "4", "-o", str(trace)]) == 0
    capsys.readouterr()
    with TraceReader(str(trace)) as rd:
        events = [(e[1], tuple(e[3])) for e in rd if e[1] not in ("thread.switch",)]
    admitted = [f[0] for k, f in events if k == "call.admitted"]
    assert len(admitted) == 11 and admitted == sorted(admitted)
    kinds = [k for k, _ in events]
    assert kinds == _REF.setdefault("backpressure demo", kinds)

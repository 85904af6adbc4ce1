"""A sync ``canon lower`` of a host function, in C (_fiber.canon_lower doing
canon._call_host_sync's steps) and in Python (canon._canon_lower_py, linked in
its place): the same results, traps and trace bytes.

The C path reaches the recording core's import_call and import_return with no
Python frame (callscope/_sinkapi.h); for the core's last-call memo (a loop
calling one import with small ints) it keeps the call's id as a number
(import_call_n, import_return_n) and packs both events in one function. These
tests record guests that take that case, leave it (other callees in turn, ints
beyond 2**60, no result, a tuple result, a result resolved by the host itself
or later) and compare the chunk bytes with the Python path's; and check that
an observer's overrides of import_call / import_return are still called."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from callscope.component.ast import Sort
from callscope.component.types import FuncType, PRIMITIVES
from callscope.host import Host
from callscope.runtime import canon as canon_mod, fiber
from callscope.runtime.errors import Trap
from callscope.runtime.hostfunc import HostFunction
from callscope.runtime.observe import RecordingObserver
from callscope.trace import Recorder, TraceReader
from callscope.trace import format as F
from callscope.trace.sink import CSink, Core


needs_c = pytest.mark.skipif(fiber.C_TRAMPOLINE is None or CSink is None or Core is None,
                             reason="callscope's C extensions are not built (no C compiler at install)")


# a loop calling, in turn: a(i) (u32 -> u32), a again, b(acc, i) (two u32 ->
# u32), c(i) (u32, no result), d(x) (u64 -> u64: beyond 2**60 soon), t(i)
# (u32 -> u32, the host returning a tuple), r(i) (u32 -> u32, the host
# resolving the call itself before it returns)
MIX_WAT = r"""
(component
  (import "a" (func $a (param "x" u32) (result u32)))
  (import "b" (func $b (param "x" u32) (param "y" u32) (result u32)))
  (import "c" (func $c (param "x" u32)))
  (import "d" (func $d (param "x" u64) (result u64)))
  (import "t" (func $t (param "x" u32) (result u32)))
  (import "r" (func $r (param "x" u32) (result u32)))
  (core func $a-lower (canon lower (func $a)))
  (core func $b-lower (canon lower (func $b)))
  (core func $c-lower (canon lower (func $c)))
  (core func $d-lower (canon lower (func $d)))
  (core func $t-lower (canon lower (func $t)))
  (core func $r-lower (canon lower (func $r)))
  (core module $M
    (import "" "a" (func $a (param i32) (result i32)))
    (import "" "b" (func $b (param i32 i32) (result i32)))
    (import "" "c" (func $c (param i32)))
    (import "" "d" (func $d (param i64) (result i64)))
    (import "" "t" (func $t (param i32) (result i32)))
    (import "" "r" (func $r (param i32) (result i32)))
    (func (export "run") (param $n i32) (result i32)
      (local $i i32) (local $acc i32) (local $w i64)
      (block $done
        (loop $l
          (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
          (local.set $acc (i32.add (local.get $acc) (call $a (local.get $i))))
          (local.set $acc (i32.add (local.get $acc) (call $a (local.get $acc))))
          (local.set $acc (call $b (local.get $acc) (local.get $i)))
          (call $c (local.get $i))
          (local.set $w (call $d (i64.add (local.get $w)
                                          (i64.mul (i64.extend_i32_u (local.get $i)) (i64.const 0x0800000000000001)))))
          (local.set $acc (i32.add (local.get $acc) (call $t (local.get $i))))
          (local.set $acc (i32.add (local.get $acc) (call $r (local.get $i))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $l)))
      (i32.add (local.get $acc) (i32.wrap_i64 (local.get $w)))))
  (core instance $m (instantiate $M (with "" (instance (export "a" (func $a-lower)) (export "b" (func $b-lower))
                                                       (export "c" (func $c-lower)) (export "d" (func $d-lower))
                                                       (export "t" (func $t-lower)) (export "r" (func $r-lower))))))
  (func (export "run") (param "n" u32) (result u32) (canon lift (core func $m "run")))
)
"""

M32 = 0xFFFFFFFF


def _host_fn(host, name, params, result, impl):
    ft = FuncType(tuple((f"p{i}", PRIMITIVES[p]) for i, p in enumerate(params)),
                  (PRIMITIVES[result],) if result else ())
    return (Sort.FUNC, HostFunction(name, ft, impl).func_inst(host.store))


def _mix_imports(host, seen):
    def c(hc, args):
        seen.append(args[0])
        return None

    def r(hc, args):
        hc.resolve([(args[0] * 5) & M32])
        return [12345]  # (what it returns after resolving is not the result)

    return {
        "a": _host_fn(host, "a", ["u32"], "u32", lambda hc, args: [(args[0] * 3 + 1) & M32]),
        "b": _host_fn(host, "b", ["u32", "u32"], "u32", lambda hc, args: [(args[0] * 7 + args[1]) & M32]),
        "c": _host_fn(host, "c", ["u32"], None, c),
        "d": _host_fn(host, "d", ["u64"], "u64", lambda hc, args: [(args[0] * 3 + 1) & ((1 << 64) - 1)]),
        "t": _host_fn(host, "t", ["u32"], "u32", lambda hc, args: ((args[0] + 9) & M32,)),
        "r": _host_fn(host, "r", ["u32"], "u32", r),
    }


def _chunks(path) -> bytes:
    """The trace's chunk frames: the file between its header frame and its
    footer frame (both hold times of the wall clock)."""
    data = Path(path).read_bytes()
    n = len(F.MAGIC)
    header_len = struct.unpack_from(F.FRAME_HEADER, data, n)[1]
    footer_at = struct.unpack_from(F.TRAILER, data, len(data) - F.TRAILER_SIZE)[0]
    return data[n + F.FRAME_HEADER_SIZE + header_len:footer_at]


def _record(bench, path, guest, n, make_observer=RecordingObserver):
    """guest ("step": bench/run.py's import loop, or "mix") run with n,
    recorded to path with chunks cut at the same events every run: (result,
    chunk bytes, events, observer, what c was told)."""
    host = Host(seed=3)
    rec = Recorder(str(path), clock=host.store, clock_attr="now_ns", seed=3, argv=["test"], chunk_events=64,
                   flush_interval_ns=10 ** 12)
    obs = make_observer(rec)
    host.store.observer = obs
    seen: list = []
    try:
        if guest == "step":
            imp = {"step": bench.host_import(host, "step", ["u32"], "u32", bench.step)}
            text = bench.IMPORT_WAT
        else:
            imp = _mix_imports(host, seen)
            text = MIX_WAT
        exports = host.instantiate(bench.wasm(text), imports=imp, name="t")
        r = host.call(exports.func("run"), [n])
        rec.close()
    finally:
        host.close()
    with TraceReader(str(path)) as rd:
        events = list(rd.events())
    return r, _chunks(path), events, obs, seen


@pytest.fixture
def python_lower(monkeypatch):
    """canon_lower as the Python function for what is linked from now on."""
    def use():
        monkeypatch.setattr(canon_mod, "canon_lower", canon_mod._canon_lower_py)
    return use


@needs_c
@pytest.mark.parametrize("guest,n", [("step", 300), ("mix", 60)])
def test_the_c_sync_host_path_writes_the_python_paths_bytes(bench, tmp_path, python_lower, guest, n):
    r_c, c_bytes, events, obs, seen_c = _record(bench, tmp_path / "c.cstrace", guest, n)
    python_lower()
    r_py, py_bytes, _, obs_py, seen_py = _record(bench, tmp_path / "py.cstrace", guest, n)
    assert r_c == r_py
    assert seen_c == seen_py == (list(range(n)) if guest == "mix" else [])
    calls = [e for e in events if e[1] == "import.call"]
    returns = [e for e in events if e[1] == "import.return"]
    assert len(calls) == len(returns) == (n if guest == "step" else 7 * n)
    if guest == "mix":  # (every kind of call was there: the tuple's and the resolved one's results as lists)
        names = {e[3][2] for e in calls}
        assert names == {"a", "b", "c", "d", "t", "r"}, names
        assert max(e[3][4][0] for e in calls if e[3][2] == "d") >= 1 << 60
    assert obs.last_call_id == obs_py.last_call_id == len(calls)
    assert len(c_bytes) > 5000
    assert c_bytes == py_bytes


@needs_c
def test_the_c_sync_host_path_is_what_runs(bench, tmp_path, monkeypatch):
    """With the extension built, a sync lower of a host function does not go
    through canon._call_host_sync (nor canon_lower's Python function)."""
    def boom(*a):
        raise AssertionError("the Python sync host path ran")

    monkeypatch.setattr(canon_mod, "_call_host_sync", boom)
    r, _, events, _, _ = _record(bench, tmp_path / "c.cstrace", "step", 20)
    assert r == [bench.expected_import(20)]
    assert sum(1 for e in events if e[1] == "import.call") == 20


@needs_c
def test_overrides_of_import_call_and_return_are_called(bench, tmp_path):
    """A subclass's import_call / import_return (and instance attributes set
    after calls took the direct path) are called for each sync host call,
    with the ids the core gave; the bytes are the direct path's."""
    told: list = []

    class Spy(RecordingObserver):
        def import_call(self, task, callee, args):
            call_id = super().import_call(task, callee, args)
            told.append(("call", call_id, list(args)))
            return call_id

        def import_return(self, call_id, result):
            told.append(("return", call_id, list(result)))
            super().import_return(call_id, result)

    n = 40
    _, spied, _, _, _ = _record(bench, tmp_path / "spy.cstrace", "step", n, Spy)
    _, direct, _, _, _ = _record(bench, tmp_path / "direct.cstrace", "step", n)
    assert spied == direct
    assert [t[0] for t in told] == ["call", "return"] * n
    assert [t[1] for t in told] == [i // 2 + 1 for i in range(2 * n)]

    # instance attributes set part way through a run: the calls after it go
    # to them (Core marks the names; the direct path steps aside)
    host = Host(seed=3)
    rec = Recorder(str(tmp_path / "attr.cstrace"), clock=host.store, clock_attr="now_ns", seed=3, argv=["test"])
    obs = RecordingObserver(rec)
    host.store.observer = obs
    seen: list = []
    try:
        imp = {"step": bench.host_import(host, "step", ["u32"], "u32", bench.step)}
        exports = host.instantiate(bench.wasm(bench.IMPORT_WAT), imports=imp, name="t")
        assert host.call(exports.func("run"), [5]) == [bench.expected_import(5)]
        real_call, real_return = obs.import_call, obs.import_return

        def import_call(*a):
            seen.append("call")
            return real_call(*a)

        def import_return(*a):
            seen.append("return")
            return real_return(*a)

        obs.import_call = import_call
        obs.import_return = import_return
        assert host.call(exports.func("run"), [7]) == [bench.expected_import(7)]
        assert obs.last_call_id == 12
        rec.close()
    finally:
        host.close()
    assert seen == ["call", "return"] * 7


@needs_c
def test_only_import_return_overridden(bench, tmp_path):
    """import_call taken directly (its id a number in the core) and
    import_return overridden: the override gets the id as an int."""
    got: list = []

    class Half(RecordingObserver):
        def import_return(self, call_id, result):
            got.append(call_id)
            super().import_return(call_id, result)

    _, half, _, _, _ = _record(bench, tmp_path / "half.cstrace", "step", 30, Half)
    _, direct, _, _, _ = _record(bench, tmp_path / "direct.cstrace", "step", 30)
    assert half == direct
    assert got == list(range(1, 31)) and all(type(i) is int for i in got)


@needs_c
@pytest.mark.parametrize("record", [False, True])
def test_host_failures_trap_the_same_in_c_and_python(bench, python_lower, tmp_path, record):
    class Boom(Exception):
        pass

    def raising(hc, args):
        if args[0] > 5:
            raise Boom("step failed")
        return [args[0] + 1]

    cases = [("raises", raising), ("wrong type", lambda hc, args: ["not a u32"]),
             ("not a list", lambda hc, args: 7)]

    def run(tag):
        out = []
        for name, impl in cases:
            host = Host(seed=0)
            rec = None
            if record:
                rec = Recorder(str(tmp_path / f"{tag}-{name}.cstrace"), clock=host.store, clock_attr="now_ns",
                               seed=0, argv=["test"])
                host.store.observer = RecordingObserver(rec)
            try:
                imp = {"step": _host_fn(host, "step", ["u32"], "u32", impl)}
                exports = host.instantiate(bench.wasm(bench.IMPORT_WAT), imports=imp, name="t")
                with pytest.raises(Trap) as e:
                    host.call(exports.func("run"), [10])
                if rec is not None:
                    rec.close()
            finally:
                host.close()
            out.append((e.value.message, e.value.__cause__ is None, e.value.__suppress_context__,
                        type(e.value.__context__).__name__))
        return out

    c = run("c")
    python_lower()
    assert run("py") == c
    assert c[0][0] == "host import step raised Boom: step failed"
    assert c[1][0].startswith("host import step returned a value its result type cannot hold:")
    assert all(t[1] and t[2] for t in c)

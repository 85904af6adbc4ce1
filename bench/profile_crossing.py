"""Where one host-import crossing's time goes in callscope.

    python bench/profile_crossing.py [--calls N] [--top K] [--record] [--pingpong]

Runs benchmark (b) of bench/run.py (a sync export calling the sync host
import ``step: func(x: u32) -> u32`` N times) under cProfile and prints the
functions with the most *own* time (tottime), each with its share of the
profiled total and its own time per crossing. cProfile's own overhead
inflates every Python function call (roughly doubles a run like this), so
read shares, not absolute microseconds; the unprofiled µs/crossing of the
same run is printed first for scale.

``--pingpong`` profiles benchmark (c) instead (per subtask).

``--layers`` measures the crossing in layers instead of profiling it (no
profiler distortion): the same loop of N calls of ``step`` as

- (reference) a core module under wasmtime-py with a plain sync
   ``wasmtime.Func`` import (wasmtime-py's own path for a Python import);
1. a core module with the import defined through callscope's async trampoline
   (``fiber.define_host``, ``wasmtime_func_call_async``), ``impl`` returning
   a list: the cost of callscope's glue before any component-model work;
2. the same with ``impl`` a generator that returns at once (the shape of
   ``canon_lower``, which may block);
3. the whole component under callscope (benchmark (b));
4. the same with recording;
- (reference) the component natively (wasmtime-py ``add_func``).

Differences between consecutive layers say what each adds. Layers are
interleaved, median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time


def _load_bench():
    """bench/run.py, under a name that cannot collide with anything else."""
    import importlib.util
    name = "callscope_bench_run"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(os.path.dirname(os.path.abspath(__file__)), "run.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


bench = _load_bench()


def setup(record: bool, pingpong: bool):
    r = bench.CallscopeRun(record)
    if pingpong:
        exports = r.host.instantiate(bench.wasm(bench.PINGPONG_WAT), name="bench")
    else:
        imp = {"step": bench.host_import(r.host, "step", ["u32"], "u32", bench.step)}
        exports = r.host.instantiate(bench.wasm(bench.IMPORT_WAT), imports=imp, name="bench")
    return r, exports


def profile(calls: int, record: bool, pingpong: bool, top: int) -> str:
    export = "run"
    # unprofiled, for scale
    r, ex = setup(record, pingpong)
    _, dt = r.call(ex, export, [calls])
    r.close()
    unit = "subtask" if pingpong else "crossing"
    lines = [f"{calls:,} {unit}s, {'recording' if record else 'no observer'}: "
             f"{dt / calls * 1e6:.2f} µs/{unit} unprofiled"]
    r, ex = setup(record, pingpong)
    f = ex.func(export)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    r.host.call(f, [calls])
    prof.disable()
    wall = time.perf_counter() - t0
    if r.rec is not None:
        r.rec.close()
    r.close()
    st = pstats.Stats(prof)
    total = sum(v[2] for v in st.stats.values())  # sum of tottime
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)
    lines.append(f"profiled: {wall / calls * 1e6:.2f} µs/{unit} (cProfile overhead included); "
                 f"own-time total {total:.3f} s")
    lines.append("")
    lines.append(f"| function (file:line) | calls/{unit} | own time share | own µs/{unit} (profiled) | cumulative share |")
    lines.append("|---|---:|---:|---:|---:|")
    for (file, line, name), (cc, nc, tt, ct, callers) in rows[:top]:
        short = file.replace(bench._ROOT + os.sep, "")
        if "site-packages" in short:
            short = short.split("site-packages" + os.sep, 1)[1]
        where = f"`{name}` ({short}:{line})" if line else f"`{name}`"
        lines.append(f"| {where} | {nc / calls:.2f} | {tt / total * 100:.1f}% | {tt / calls * 1e6:.2f} | "
                     f"{ct / total * 100:.1f}% |")
    return "\n".join(lines)


CORE_WAT = r"""
(module
  (import "" "step" (func $step (param i32) (result i32)))
  (func (export "run") (param $n i32) (result i32)
    (local $i i32) (local $acc i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $acc (call $step (i32.add (local.get $acc) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.get $acc)))
"""


def layer_core_sync(n: int):
    import wasmtime
    eng = wasmtime.Engine()
    store = wasmtime.Store(eng)
    step = bench.step
    fn = wasmtime.Func(store, wasmtime.FuncType([wasmtime.ValType.i32()], [wasmtime.ValType.i32()]),
                       lambda x: step(x & 0xFFFFFFFF))
    inst = wasmtime.Instance(store, wasmtime.Module(eng, CORE_WAT), [fn])
    run = inst.exports(store)["run"]
    t0 = time.perf_counter()
    r = run(store, n) & 0xFFFFFFFF
    return r, time.perf_counter() - t0


def layer_trampoline(n: int, generator: bool):
    import wasmtime
    from callscope.runtime import fiber
    eng = bench.native_engine()
    store = bench.native_store(eng)
    linker = wasmtime.Linker(eng)
    step = bench.step
    if generator:
        def gen(args):
            return [step(args[0])]
            yield  # noqa: unreachable: makes this a generator

        impl = gen
    else:
        def impl(args):
            return [step(args[0])]
    fiber.define_host(linker, "", "step", fiber.HostFunc(["i32"], ["i32"], impl, "step"))
    inst = fiber.instantiate(store, linker, wasmtime.Module(eng, CORE_WAT))
    run = inst.exports(store)["run"]
    t0 = time.perf_counter()
    fut = fiber.CallFuture(store, run, [n], ["i32"], ["i32"])
    while not fut.poll():
        raise RuntimeError("blocked")
    r = fut.outcome()[0]
    return r, time.perf_counter() - t0


def layers(n: int, repeat: int) -> str:
    import gc
    import statistics
    names = [
        ("(reference) wasmtime-py core import (sync `wasmtime.Func`)", lambda: layer_core_sync(n)),
        ("1. callscope async trampoline, core module (impl returns a list)", lambda: layer_trampoline(n, False)),
        ("2. + impl is a generator (canon_lower's shape)", lambda: layer_trampoline(n, True)),
        ("3. callscope component crossing (canon lower -> HostFunction)",
         lambda: bench.callscope_call(bench.IMPORT_WAT, "run", n, False,
                                      imports={"step": (["u32"], "u32", bench.step)})),
        ("4. + recording", lambda: bench.callscope_call(bench.IMPORT_WAT, "run", n, True,
                                                        imports={"step": (["u32"], "u32", bench.step)})),
        ("(native component: wasmtime-py `LinkerInstance.add_func`)",
         lambda: bench.native_sync(bench.IMPORT_WAT, "run", n, {"step": lambda store, x: bench.step(x)})),
    ]
    times: list[list[float]] = [[] for _ in names]
    results = set()
    for rep in range(repeat + 1):
        for i, (_, f) in enumerate(names):
            gc.collect()
            r, dt = f()
            results.add(r)
            if rep:
                times[i].append(dt)
    assert len(results) == 1, results
    med = [statistics.median(t) / n * 1e6 for t in times]
    out = [f"{n:,} calls per run, median of {repeat} interleaved runs", "",
           "| layer | µs/crossing | added by this layer |", "|---|---:|---:|"]
    for i, (name, _) in enumerate(names):
        added = "" if i in (0, 1, len(names) - 1) else f"{med[i] - med[i - 1]:+.2f}"
        out.append(f"| {name} | {med[i]:.2f} | {added} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--pingpong", action="store_true")
    ap.add_argument("--layers", action="store_true")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)
    if a.layers:
        print(layers(a.calls, a.repeat))
        return 0
    calls = a.calls if not a.pingpong or a.calls != 100_000 else 10_000
    print(profile(calls, a.record, a.pingpong, a.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())

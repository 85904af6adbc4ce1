"""bench/run.py at tiny sizes: every benchmark runs, and the native and
callscope variants of each guest benchmark return the same result. No timing
is asserted (the machines are noisy; the bench reports ratios for people)."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str):
    modname = "callscope_bench_run" if name == "run" else f"callscope_bench_{name}"
    if modname in sys.modules:
        return sys.modules[modname]
    spec = importlib.util.spec_from_file_location(modname, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench():
    saved = list(sys.path)
    try:
        yield _load("run")
    finally:
        sys.path[:] = saved


@pytest.mark.parametrize("key,n", [("compute", 1000), ("import", 50), ("pingpong", 20)])
def test_guest_benchmarks_agree(bench, key, n):
    b = {"compute": bench.bench_compute, "import": bench.bench_import, "pingpong": bench.bench_pingpong}[key](n)
    assert [v.name for v in b.variants] == ["native", "callscope", "callscope+rec"]
    bench.measure([b], repeat=1, warmup=0)  # raises when the variants disagree
    results = {v.name: v.result for v in b.variants}
    assert len(set(results.values())) == 1, results
    assert results["native"] == b.expected
    rec = b.variants[2]
    assert rec.info["events"] > 0 and rec.info["bytes"] > 0
    rows = bench.guest_rows(b)
    assert len(rows) == 3 and all(r.startswith("| ") for r in rows)


def test_expected_values_match_the_guests_arithmetic(bench):
    # the Python models the native runs are checked against
    assert bench.expected_compute(3) == (0 * 31 + 0) * 31 * 31 + 1 * 31 + 2
    assert bench.expected_pingpong(2) == 4
    assert bench.expected_import(1) == bench.step(0)


def test_demo_and_componentize_py_run_or_say_why_not(bench):
    for make in (bench.bench_demo, bench.bench_componentize_py):
        b = make(True)
        if b.skipped:
            assert isinstance(b.skipped, str) and b.skipped
            assert bench.guest_rows(b)[0].count("skipped") == 1
            continue
        if b.key == "demo":
            b = bench.Bench(b.key, b.title, 4, b.unit,
                            [bench.Variant("callscope", lambda: bench.run_demo(4, False)),
                             bench.Variant("callscope+rec", lambda: bench.run_demo(4, True))])
        bench.measure([b], repeat=1, warmup=0)
        assert len({repr(v.result) for v in b.variants}) == 1


def test_trace_replay_and_dot(bench, tmp_path):
    rows, path = bench.bench_trace_io(40, 1, str(tmp_path))
    assert len(rows) == 4 and os.path.getsize(path) > 0
    rows = bench.bench_replay(path, 1, seeks=3)
    assert len(rows) == 5
    rows = bench.bench_dot(40, 1, str(tmp_path))
    assert rows and all(r.startswith("| ") for r in rows)


def test_quick_table_end_to_end_subset(bench):
    out = bench.run(quick=True, repeat=1, only={"compute"})
    assert "| (a) compute-bound" in out and "native" in out and "callscope+rec" in out
    assert "Machine:" in out


def test_profile_crossing_layers_and_profile_run(bench):
    prof = _load("profile_crossing")
    out = prof.layers(30, 1)
    assert "callscope component crossing" in out
    out = prof.profile(30, record=False, pingpong=False, top=5)
    assert "own time share" in out
    out = prof.profile(5, record=True, pingpong=True, top=5)
    assert "subtask" in out


def test_fanout_row_runs_or_says_why_not(bench):
    b = bench.bench_fanout(True, n=4)
    if b.skipped:
        assert bench.guest_rows(b)[0].count("skipped") == 1
        pytest.skip(b.skipped)
    bench.measure([b], repeat=1, warmup=0)  # raises when recording changes the result
    assert len({repr(v.result) for v in b.variants}) == 1 and b.variants[0].result == 4
    rows = bench.guest_rows(b)
    assert len(rows) == 2 and "1.05x of callscope" in rows[1]


def test_serve_bench_answers_every_request(bench):
    serve = _load("bench_serve")
    try:
        wasm = serve.guest_wasm("service")
    except Exception as e:  # no componentize-py, no ../shared
        pytest.skip(f"cannot build examples/service: {e}")
    r = serve.measure(wasm, 40, 4)
    assert r["statuses"] == {200: 40}, (r["statuses"], r["errors"])
    assert r["samples"] and all(kib > 0 for _, kib in r["samples"])
    assert r["trace_bytes"] > 0


def test_the_recording_ratio_pairs_each_repetitions_runs(bench):
    # the machine at half speed from the middle of the third repetition on:
    # every pair but that one is 1.04x, the medians say 2.08x
    off = [1.0, 1.0, 1.0, 2.0, 2.0]
    rec = [1.04, 1.04, 2.08, 2.08, 2.08]
    assert bench.paired_ratio(rec, off) == pytest.approx(1.04)
    assert bench.statistics.median(rec) / bench.statistics.median(off) == pytest.approx(2.08)
    b = bench.Bench("x", "(x) a guest", 10, "request",
                    [bench.Variant("callscope", None), bench.Variant("callscope+rec", None)])
    b.variants[0].times, b.variants[1].times = off, rec
    row = bench.guest_rows(b)[1]
    assert "1.04x (paired; of the medians 2.08x)" in row and "**met**" in row

"""Memory bounded by the input (issue 13; docs/trace-format.md, "Memory
bound"): ``summary``, ``export`` and replay's index on crafted amplifying
traces (tasks that never exit, many waitable sets, imports in flight), each
in a process of its own (bench/bounds.py's traces and consumers).

What is asserted is the slope: the growth of peak RSS between a trace and
one four times longer, over the growth of the file. It is the constant of
"a constant times the file size plus a constant", without the process's
own baseline in it. The limits are the measured slopes (2026-12-04) with
some headroom, per consumer: a change that brings back an object per event
that is not needed, or copies of the world per snapshot, breaks them."""

from __future__ import annotations

import importlib.util
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("bench_bounds", os.path.join(HERE, "..", "bench", "bounds.py"))
bounds = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bounds)

N = 40_000
# measured slopes at 40k -> 160k events (live tasks / joins / imports in flight):
# summary 11.1 / 2.0 / 11.0, export 21.7 / 2.1 / 19.9, replay index 32.5 / 28.7 / 47.3,
# perfetto 31.2 / 0.9 / 26.7 (its JSON alone is ~10x the trace)
LIMIT = {"summary": 14.0, "export": 26.0, "perfetto": 38.0, "replay-index": 52.0}


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    d = tmp_path_factory.mktemp("bounds")
    out = {}
    for shape in ("live-tasks", "joins", "imports"):
        pair = []
        for n in (N, 4 * N):
            p = str(d / f"{shape}-{n}.trace")
            bounds.craft(p, shape, n)
            pair.append(p)
        out[shape] = pair
    return out


@pytest.mark.parametrize("consumer", sorted(LIMIT))
@pytest.mark.parametrize("shape", ["live-tasks", "joins", "imports"])
def test_memory_grows_at_most_a_constant_times_the_file(traces, shape, consumer):
    small, big = traces[shape]
    code = bounds.CONSUMERS[consumer]
    r_small, r_big = bounds.peak(code, small), bounds.peak(code, big)
    assert r_small > 0 and r_big > 0, "the consumer did not finish"
    slope = (r_big - r_small) / (os.path.getsize(big) - os.path.getsize(small))
    assert slope <= LIMIT[consumer], f"{consumer} on {shape}: {slope:.1f}x the file's growth"

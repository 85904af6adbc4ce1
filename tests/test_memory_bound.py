"""Memory bounded by the input (issue 13; docs/trace-format.md, "Memory
bound"): ``summary``, ``export`` and replay's index on crafted amplifying
traces (tasks that never exit, many waitable sets, imports in flight, every
import misattributed), each
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
LIMIT = {"summary": 14.0, "export": 26.0, "perfetto": 38.0, "replay-index": 44.0}
# every import misattributed: a finding (its verdict and evidence) per import
MIS_LIMIT = {"summary": 26.0, "export": 52.0, "perfetto": 44.0, "replay-index": 54.0}


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    d = tmp_path_factory.mktemp("bounds")
    out = {}
    for shape in ("live-tasks", "joins", "imports", "misattributed"):
        pair = []
        for n in (N, 4 * N):
            p = str(d / f"{shape}-{n}.trace")
            bounds.craft(p, shape, n)
            pair.append(p)
        out[shape] = pair
    return out


@pytest.mark.parametrize("consumer", sorted(LIMIT))
@pytest.mark.parametrize("shape", ["live-tasks", "joins", "imports", "misattributed"])
def test_memory_grows_at_most_a_constant_times_the_file(traces, shape, consumer):
    small, big = traces[shape]
    code = bounds.CONSUMERS[consumer]
    r_small, r_big = bounds.peak(code, small), bounds.peak(code, big)
    assert r_small > 0 and r_big > 0, "the consumer did not finish"
    slope = (r_big - r_small) / (os.path.getsize(big) - os.path.getsize(small))
    limit = (MIS_LIMIT if shape == "misattributed" else LIMIT)[consumer]
    assert slope <= limit, f"{consumer} on {shape}: {slope:.1f}x the file's growth"


def test_kept_findings_are_the_first_of_all_and_counts_are_of_all(tmp_path):
    """check_all(keep=K): the first K findings of the whole list (by event,
    then in the order found), and counts of every lint's findings, here
    with misattributed imports (decided at the end) interleaved with
    imports made after their root returned (found on the way)."""
    from callscope.model.findings import check_all, default_lints, summary
    from callscope.trace import Recorder, TraceReader

    t = [0]

    def clock():
        t[0] += 10
        return t[0]

    p = str(tmp_path / "mixed.trace")
    with Recorder(p, clock=clock, flush_clock=clock) as rec:
        rec.instance_new(0, "app", None)
        rec.task_new(1, 0, "f", None, 1, "GET /a", False)
        rec.task_new(2, 0, "f", None, 2, "GET /b", False)
        rec.task_new(3, 0, "f", None, 3, "GET /c", False)
        rec.taint_plant(1, "req-0001")
        rec.task_return(2, None)
        for i in range(300):
            if i % 3:
                rec.import_call(i, 0, "wasi:http/client@0.3.0#send", [3], ["req-0001"], ["req-0001"], [], None)
            else:  # on the returned root: import-after-root-returned
                rec.import_call(i, 0, "wasi:http/client@0.3.0#send", [2], None, [], [], None)
    with TraceReader(p) as r:
        evs = list(r.events())
    every = check_all(evs, default_lints())
    assert len({f.lint for f in every}) >= 2 and every.total == len(every)
    for keep in (0, 1, 7, 50, len(every), len(every) + 5):
        kept = check_all(evs, default_lints(keep_verdicts=False), keep=keep)
        assert [(f.lint, f.n, f.message) for f in kept] == [(f.lint, f.n, f.message) for f in every[:keep]]
        assert kept.counts == every.counts and kept.total == len(every)
        assert summary(kept) == summary(every)

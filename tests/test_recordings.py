"""The recorded demo traces in recordings/ (made by recordings/make.py)
read with this version's reader and show what each demo is for."""

from pathlib import Path

import pytest

from callscope.model.summary import summarize_trace
from callscope.trace.reader import TraceReader

REC = Path(__file__).resolve().parents[1] / "recordings"


def _summary(name):
    r = TraceReader(str(REC / name))
    try:
        assert not r.truncated
        return summarize_trace(r)
    finally:
        r.close()


def test_event_loop_demo_misattributes():
    s = _summary("demo-event-loop.trace")
    assert s.findings_by_lint["misattributed"] >= 1
    assert s.root_tasks == 8 and s.imports == 8 and s.traps == 0


@pytest.mark.parametrize("name", ["demo-backpressure.trace", "demo-well-behaved.trace"])
def test_fixed_demos_do_not(name):
    s = _summary(name)
    assert s.findings_by_lint["misattributed"] == 0
    assert s.root_tasks == 8 and s.imports == 8 and s.traps == 0


def test_backpressure_demo_queues_calls():
    s = _summary("demo-backpressure.trace")
    assert s.kinds["call.queued"] > 0 and s.kinds["backpressure.inc"] > 0


def test_demo_trace_is_compact(tmp_path, capsys):
    """Issue 4's budget: at most 24 bytes per event on the demo's trace.
    Measured on a longer demo run, whole file (header, string table and
    footer included): a trace's fixed costs dominate an 8-request run."""
    from callscope.cli import main
    path = tmp_path / "demo.trace"
    assert main(["run", "--repeat", "200", "-o", str(path)]) == 0
    r = TraceReader(str(path))
    try:
        n = r.event_count
    finally:
        r.close()
    assert n > 3000
    assert path.stat().st_size / n <= 24

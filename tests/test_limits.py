"""Limits (issue 13): --max-memory (wasmtime's store limiter),
--max-events / --max-trace-size (recording stops with a note, the run stops,
the trace stays complete and readable)."""

from __future__ import annotations

import pytest
import wasmtime

from callscope.cli import main
from callscope.trace import TraceReader

GROW = """
(component
  (core module $M
    (memory 1)
    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))
  (core instance $m (instantiate $M))
  (func (export "grow") (param "pages" u32) (result s32) (canon lift (core func $m "grow"))))
"""


def notes(path):
    with TraceReader(path) as r:
        assert not r.truncated and r.footer is not None
        return r.event_count, [ev.get("text") for ev in r.events() if ev.kind == "note"]


@pytest.mark.parametrize("flag, value", [("--max-events", "40"), ("--max-trace-size", "4K")])
def test_trace_limits_stop_the_run_with_a_complete_trace(tmp_path, capsys, flag, value):
    out = tmp_path / "t.trace"
    code = main(["run", "--demo", "well-behaved", "--repeat", "2000", flag, value, "-o", str(out)])
    text = capsys.readouterr().out
    assert code == 3 and "guest limit:" in text and flag in text
    n, ns = notes(out)
    assert any(x.startswith("limit: recording stopped: the trace reached " + flag) for x in ns), ns
    if flag == "--max-events":
        assert n <= 40 + 16384  # (checked per chunk)


def test_no_limit_by_default_for_a_small_run(tmp_path, capsys):
    out = tmp_path / "t.trace"
    assert main(["run", "--demo", "well-behaved", "-o", str(out)]) == 0


def test_max_memory_makes_memory_grow_fail(tmp_path, capsys):
    wasm = tmp_path / "grow.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(GROW))
    out = tmp_path / "t.trace"
    assert main(["run", str(wasm), "--invoke", "grow(100)", "--max-memory", "1M", "-o", str(out)]) == 0
    with TraceReader(out) as r:
        assert [ev.get("value") for ev in r.events() if ev.kind == "task.return"] in ([-1], [(-1,)])
    assert main(["run", str(wasm), "--invoke", "grow(10)", "--max-memory", "1M", "-o", str(out)]) == 0
    with TraceReader(out) as r:
        assert [ev.get("value") for ev in r.events() if ev.kind == "task.return"] in ([1], [(1,)])


@pytest.mark.parametrize("argv", [["--max-memory", "12Q"], ["--max-memory", "10"], ["--max-trace-size", "-1"],
                                  ["--max-events", "-5"]])
def test_bad_limits_are_usage_errors(argv, capsys):
    assert main(["run", *argv]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1

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


def test_per_call_copy_budget_traps_on_aliased_nested_lists(monkeypatch):
    """list<list<u8>> whose inner lists all point at the same 64 KiB: the
    guest's memory does not bound what lifting copies; the budget does."""
    import struct

    from callscope.component import abi
    from callscope.component import types as T
    from callscope.runtime.errors import Trap
    from tests.test_abi import make_cx

    monkeypatch.setattr(abi.CopyBudget, "LIMIT", 1 << 20)
    cx, mem, _ = make_cx(size=1 << 18)
    n = 64  # 64 inner lists x 32 KiB = 2 MiB lifted from 32 KiB of memory
    table = 1 << 16
    for i in range(n):
        struct.pack_into("<II", mem.data if hasattr(mem, "data") else cx.mv, table + 8 * i, 1 << 17, 32 << 10)
    cx.refresh()
    with pytest.raises(Trap, match="copy budget"):
        abi.load_list_from_range(cx, table, n, T.ListType(T.U8Type()))
    cx2, mem2, _ = make_cx(size=1 << 18)
    for i in range(1):  # one inner list: under the budget (CopyBudget charges 16 bytes an element)
        struct.pack_into("<II", mem2.data if hasattr(mem2, "data") else cx2.mv, table + 8 * i, 1 << 17, 32 << 10)
    cx2.refresh()
    assert len(abi.load_list_from_range(cx2, table, 1, T.ListType(T.U8Type()))) == 1

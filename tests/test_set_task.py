"""thread.set-task (the spec's task-switch branch, component-model #659):
decoding and assembling it from text, its validation, its semantics on our
own components, its trace event, the demo that uses it and the lint for its
misuse. The spec's own test (thread-set-task.wast) runs in test_conformance."""

from __future__ import annotations

import pytest
import wasmtime

from callscope.component import ast as A
from callscope.component.binary import decode
from callscope.component.linker import LinkError
from callscope.host import Host
from callscope.model.findings import SetTaskMisuse, check_all
from callscope.wast.assemble import MARKER, AssembleError, Assembled, _check, apply_patches, assemble
from callscope.wast.engine import default_engine
from callscope.wast.runner import run_text

NESTED = r"""
(component $Outer
  ;; a comment naming thread.set-task and cancellable changes nothing
  (component $C
    (core module $M
      (import "" "set-task" (func (param i32)))
      (import "" "yield" (func (result i32))))
    (core func $st (canon thread.set-task))
    (core func $y (canon thread.yield cancellable))
    (core func $y2 (canon thread.yield))
    (core instance (instantiate $M (with "" (instance (export "set-task" (func $st)) (export "yield" (func $y)))))))
  (core func (canon thread.set-task)))
"""


def test_assembled_text_decodes_as_the_spec_binary_would():
    data = assemble(NESTED)
    assert isinstance(data, Assembled)
    assert data.canon_patches == {(0,): {0: "set-task", 1: "cancellable"}, (): {0: "set-task"}}
    root = apply_patches(decode(data), data.canon_patches)
    inner = root.components[0].component.of(A.CanonDef)
    assert [type(d) for d in inner] == [A.CanonThreadSetTask, A.CanonThreadYield, A.CanonThreadYield]
    assert [d.cancellable for d in inner[1:]] == [True, False]
    assert [type(d) for d in root.of(A.CanonDef)] == [A.CanonThreadSetTask]


def test_text_without_the_builtins_is_wat2wasm_as_it_is():
    text = "(component ;; thread.set-task cancellable\n (core func (canon thread.yield)))"
    data = assemble(text)
    assert not isinstance(data, Assembled) and data == bytes(wasmtime.wat2wasm(text))


def test_a_binary_that_does_not_line_up_with_the_text_is_refused():
    """The check that makes the placeholders sound: the canon definitions of
    each patched component must match the text's one to one."""
    root = decode(wasmtime.wat2wasm("(component (core func (canon context.get i32 0)) (core func (canon thread.yield)))"))
    with pytest.raises(AssembleError):  # the marker is not there
        _check(root, {(): {0: "set-task"}}, {(): [("context.get", MARKER), ("thread.yield", None)]})
    with pytest.raises(AssembleError):  # one canon more than the text has
        _check(root, {(): {0: "cancellable"}}, {(): [("thread.yield", None)]})
    with pytest.raises(AssembleError):  # another built-in at that place
        _check(root, {(): {0: "cancellable"}}, {(): [("thread.yield", None), ("thread.yield", None)]})


def test_set_task_has_type_func_param_i32():
    """Validation: `$set_task` is given type (func (param i32))."""
    host = Host()
    try:
        with pytest.raises(LinkError, match="thread.set-task"):
            host.instantiate(assemble("""(component
              (core func $st (canon thread.set-task))
              (core module $M (import "" "st" (func (param i32) (result i32))))
              (core instance (instantiate $M (with "" (instance (export "st" (func $st)))))))"""))
    finally:
        host.close()


# An explicit thread of task A (setup) moves to task B (run) and returns B's
# value; an implicit thread may not move.
SEMANTICS = r"""
(component
  (component $C
    (core module $Table (table (export "t") 1 funcref))
    (core instance $table (instantiate $Table))
    (core module $Core
      (import "" "task.return" (func $task.return (param i32)))
      (import "" "new" (func $new (param i32 i32) (result i32)))
      (import "" "index" (func $index (result i32)))
      (import "" "set-task" (func $set-task (param i32)))
      (import "" "switch" (func $switch (param i32) (result i32)))
      (import "" "t" (table 1 funcref))
      (global $worker (mut i32) (i32.const 0))
      (global $target (mut i32) (i32.const 0))
      (func $work (param i32)
        (call $set-task (global.get $target))
        (call $task.return (i32.add (i32.const 41) (local.get 0))))
      (elem (i32.const 0) func $work)
      ;; task A: make the worker (in A), return 1, let the implicit thread exit
      (func (export "setup")
        (global.set $worker (call $new (i32.const 0) (i32.const 1)))
        (call $task.return (i32.const 1)))
      ;; task B: the worker joins B and returns 42 for it
      (func (export "run")
        (global.set $target (call $index))
        (drop (call $switch (global.get $worker))))
      (func (export "implicit") (call $set-task (call $index))))
    (alias core export $table "t" (core table $t))
    (core type $ft (func (param i32)))
    (core func $new (canon thread.new-indirect $ft (core table $t)))
    (core func $task.return (canon task.return (result u32)))
    (core func $index (canon thread.index))
    (core func $set-task (canon thread.set-task))
    (core func $switch (canon thread.suspend-then-resume))
    (core instance $core (instantiate $Core (with "" (instance
      (export "task.return" (func $task.return)) (export "new" (func $new)) (export "index" (func $index))
      (export "set-task" (func $set-task)) (export "switch" (func $switch)) (export "t" (table $t))))))
    (func (export "setup") async (result u32) (canon lift (core func $core "setup") async))
    (func (export "run") async (result u32) (canon lift (core func $core "run") async))
    (func (export "implicit") async (result u32) (canon lift (core func $core "implicit") async)))
  (instance $c (instantiate $C))
  (func (export "setup") (alias export $c "setup"))
  (func (export "run") (alias export $c "run"))
  (func (export "implicit") (alias export $c "implicit")))
"""


def _run(asserts: str):
    lines = []
    engine = default_engine(0)
    try:
        counts = run_text(SEMANTICS + asserts, engine, "<set-task>", lines.append, False)
    finally:
        engine.close()
    return counts, lines


def test_a_moved_thread_returns_for_its_new_task():
    """task.return refers to the task the thread moved to: the worker made
    by setup (task A, already resolved, left with no thread by the move)
    returns 42 for run (task B)."""
    counts, lines = _run("""
(assert_return (invoke "setup") (u32.const 1))
(assert_return (invoke "run") (u32.const 42))
""")
    assert counts.failed == 0 and counts.passed == 2, lines


def test_implicit_threads_may_not_move():
    counts, lines = _run("""
(assert_trap (invoke "implicit") "`thread.set-task` called by an implicit thread")
""")
    assert counts.failed == 0 and counts.passed == 1, lines


# ---------------------------------------------------------------------------
# the trace, the demo and the lint


def test_demo_set_task_moves_before_each_import_and_nothing_is_misattributed(tmp_path):
    """callscope run --demo set-task: the loop thread's every fetch is made
    on the task it moved to, which is the task of the request the fetch is
    for (the taint of its URL): check finds nothing."""
    from callscope.run import RunOptions, run
    from callscope.trace.reader import TraceReader
    import io

    out = tmp_path / "t.cstrace"
    run(RunOptions(demo="set-task", output=str(out), concurrency=8, repeat=32, policy="random", seed=3),
              out=io.StringIO())
    with TraceReader(out) as r:
        evs = [(e.n, e.kind, e.time, e.fields) for e in r]
    moves = {}
    imports = 0
    for n, kind, t, f in evs:
        if kind == "thread.set-task":
            moves[f[0]] = f[2]
            current_move = f[2]
        elif kind == "import.call":
            imports += 1
            assert f[3][0] == current_move  # the async call stack starts at the task moved to
    assert imports == 32 and len(moves) == 1  # one loop thread
    assert check_all(evs) == []


def _ev(n, kind, *fields):
    return (n, kind, n * 10, tuple(fields))


def _two_requests(move_to):
    return [
        _ev(0, "task.new", 1, 0, "handle", None, 1, "req-1", False),
        _ev(1, "taint.plant", 1, "tok-1"),
        _ev(2, "task.new", 2, 0, "handle", None, 2, "req-2", False),
        _ev(3, "taint.plant", 2, "tok-2"),
        _ev(4, "thread.switch", None, 7),
        _ev(5, "thread.set-task", 7, 1, move_to),
        _ev(6, "import.call", 1, 0, "fetch", [move_to], ["tok-2"], ["tok-2"], [], None),
    ]


def test_set_task_misuse_lint():
    """A move to request 1's task right before an import request 2 caused
    (by its taint) is reported, beside the misattribution itself; the move
    to request 2's task is not."""
    found = check_all(_two_requests(1))
    assert sorted(f.lint for f in found) == ["misattributed", "set-task-misuse"]
    misuse = next(f for f in found if f.lint == "set-task-misuse")
    assert misuse.n == 6 and misuse.details["to_task"] == 1 and misuse.details["origins"] == [2]
    assert "thread.set-task (event #5)" in misuse.message
    assert check_all(_two_requests(2)) == []
    assert SetTaskMisuse().check(_two_requests(2)) == []

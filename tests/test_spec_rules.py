"""Rules of the Canonical ABI the reference tests do not reach, each stated
in its test and checked on a component of our own (run by the WAST runner on
the real runtime)."""

import pytest

from callscope.component import abi
from callscope.wast.engine import default_engine
from callscope.wast.runner import run_text


def run_wast(text: str):
    lines = []
    engine = default_engine(0)
    try:
        counts = run_text(text, engine, "<rule>", lines.append, False)
    finally:
        engine.close()
    return counts, lines


def passes(text: str, n: int) -> None:
    counts, lines = run_wast(text)
    assert counts.failed == 0, "\n".join(lines)
    assert counts.passed == n

REALLOC_CALLEE = r"""
;; The callee's realloc runs on a fresh task and thread: its context.set
;; does not reach the callee's own slot 0, and it reads 0 there.
(component
  (component $C
    (core module $Mem (memory (export "mem") 1))
    (core instance $mem (instantiate $Mem))
    (core func $cset (canon context.set i32 0))
    (core func $cget (canon context.get i32 0))
    (core module $M
      (import "" "mem" (memory 1))
      (import "" "cset" (func $cset (param i32)))
      (import "" "cget" (func $cget (result i32)))
      (global $seen (mut i32) (i32.const -1))
      (global $bump (mut i32) (i32.const 64))
      (func (export "realloc") (param i32 i32 i32 i32) (result i32)
        (local $p i32)
        (global.set $seen (call $cget))
        (call $cset (i32.const 99))
        (local.set $p (global.get $bump))
        (global.set $bump (i32.add (global.get $bump) (local.get 3)))
        (local.get $p))
      (func (export "f") (param i32 i32) (result i32)
        (call $cget))
      (func (export "seen") (result i32) (global.get $seen)))
    (core instance $m (instantiate $M (with "" (instance
      (export "mem" (memory $mem "mem")) (export "cset" (func $cset)) (export "cget" (func $cget))))))
    (func (export "f") (param "s" string) (result u32)
      (canon lift (core func $m "f") (memory (core memory $mem "mem")) (realloc (core func $m "realloc"))))
    (func (export "seen") (result u32) (canon lift (core func $m "seen"))))
  (instance $c (instantiate $C))
  (func (export "f") (alias export $c "f"))
  (func (export "seen") (alias export $c "seen")))
(assert_return (invoke "f" (str.const "hello")) (u32.const 0))
(assert_return (invoke "seen") (u32.const 0))
"""


def test_realloc_runs_on_a_fresh_thread_whose_context_slots_start_at_0():
    """LiftLowerContext.reallocate lifts realloc as a sync function: each call
    is a new task and thread (component-model #680). The callee's realloc,
    lowering its string argument, reads 0 from slot 0, and its context.set
    does not reach the callee's own thread."""
    passes(REALLOC_CALLEE, 2)


REALLOC_CALLER = r"""
;; The caller's realloc (lowering a result into the caller) runs on a fresh
;; task and thread too: it sees neither the caller's slot 0 (7) nor the
;; callee's (5), whichever thread is running when the result is lowered.
(component
  (component $Callee
    (core module $Mem (memory (export "mem") 1) (data (memory 0) (i32.const 16) "hi"))
    (core instance $mem (instantiate $Mem))
    (core func $cset (canon context.set i32 0))
    (core module $M
      (import "" "mem" (memory 1))
      (import "" "cset" (func $cset (param i32)))
      (func (export "get") (result i32)
        (call $cset (i32.const 5))
        (i32.store (i32.const 8) (i32.const 16))
        (i32.store (i32.const 12) (i32.const 2))
        (i32.const 8)))
    (core instance $m (instantiate $M (with "" (instance
      (export "mem" (memory $mem "mem")) (export "cset" (func $cset))))))
    (func (export "get") (result string)
      (canon lift (core func $m "get") (memory (core memory $mem "mem")))))
  (component $Caller
    (import "get" (func $get (result string)))
    (core module $Mem (memory (export "mem") 1))
    (core instance $mem (instantiate $Mem))
    (core module $R
      (import "" "mem" (memory 1))
      (import "" "cget" (func $cget (result i32)))
      (global $seen (mut i32) (i32.const -1))
      (func (export "realloc") (param i32 i32 i32 i32) (result i32)
        (global.set $seen (call $cget))
        (i32.const 256))
      (func (export "seen") (result i32) (global.get $seen)))
    (core func $cget (canon context.get i32 0))
    (core instance $r (instantiate $R (with "" (instance
      (export "mem" (memory $mem "mem")) (export "cget" (func $cget))))))
    (core func $get' (canon lower (func $get) (memory (core memory $mem "mem")) (realloc (core func $r "realloc"))))
    (core func $cset (canon context.set i32 0))
    (core func $ret (canon task.return (result u32)))
    (core module $M
      (import "" "get" (func $get (param i32)))
      (import "" "cset" (func $cset (param i32)))
      (import "" "seen" (func $seen (result i32)))
      (import "" "ret" (func $ret (param i32)))
      (func (export "run")
        (call $cset (i32.const 7))
        (call $get (i32.const 32))
        (call $ret (call $seen))))
    (core instance $m (instantiate $M (with "" (instance
      (export "get" (func $get')) (export "cset" (func $cset)) (export "seen" (func $r "seen"))
      (export "ret" (func $ret))))))
    (func (export "run") async (result u32) (canon lift (core func $m "run") async)))
  (instance $callee (instantiate $Callee))
  (instance $caller (instantiate $Caller (with "get" (func $callee "get"))))
  (func (export "run") (alias export $caller "run")))
(assert_return (invoke "run") (u32.const 0))
"""


def test_a_callers_realloc_sees_neither_the_callers_nor_the_callees_slots():
    """Lowering a result into an async-typed caller runs the caller's realloc
    while the callee's thread is current; it runs on a thread of its own."""
    passes(REALLOC_CALLER, 1)


TASK_RETURN = r"""
(component definition $Mem
  (core module $libc (memory (export "mem") 1))
  (core instance $libc (instantiate $libc))
  (core module $m
    (import "" "task.return" (func $task.return))
    (func (export "f") (call $task.return)))
  (core func $task.return (canon task.return (memory (core memory $libc "mem"))))
  (core instance $i (instantiate $m (with "" (instance (export "task.return" (func $task.return))))))
  (func (export "f") async (canon lift (core func $i "f") async)))
(component definition $Utf16
  (core module $m
    (import "" "task.return" (func $task.return))
    (func (export "f") (call $task.return)))
  (core func $task.return (canon task.return string-encoding=utf16))
  (core instance $i (instantiate $m (with "" (instance (export "task.return" (func $task.return))))))
  (func (export "f") async (canon lift (core func $i "f") async)))
(component definition $Same
  (core module $libc (memory (export "mem") 1))
  (core instance $libc (instantiate $libc))
  (core module $m
    (import "" "task.return" (func $task.return))
    (func (export "f") (call $task.return)))
  (core func $task.return (canon task.return string-encoding=utf16 (memory (core memory $libc "mem"))))
  (core instance $i (instantiate $m (with "" (instance (export "task.return" (func $task.return))))))
  (func (export "f") async (canon lift (core func $i "f") async string-encoding=utf16 (memory (core memory $libc "mem")))))
(component instance $mem $Mem)
(assert_trap (invoke $mem "f") "invalid `task.return` signature and/or options for current task")
(component instance $utf16 $Utf16)
(assert_trap (invoke $utf16 "f") "invalid `task.return` signature and/or options for current task")
(component instance $same $Same)
(assert_return (invoke $same "f"))
"""


def test_task_return_without_a_result_still_checks_its_options():
    """canon_task_return traps unless its options equal the lifted export's
    (LiftOptions.equal: string-encoding and memory), value to lift or not: a
    memory the export was not lifted with, or another string-encoding, traps;
    the same options return."""
    passes(TASK_RETURN, 3)


MEMORY64 = r"""
(component
  (component $C
    (core module $M
      (memory (export "mem") i64 1)
      (data (memory 0) (i64.const 64) "hello")
      (data (memory 0) (i64.const 80) "ab")
      (data (memory 0) (i64.const 88) "xyz")
      (global $bump (mut i64) (i64.const 1024))
      (func (export "realloc") (param i64 i64 i64 i64) (result i64)
        (local $p i64)
        (local.set $p (global.get $bump))
        (global.set $bump (i64.add (global.get $bump) (local.get 3)))
        (local.get $p))
      (func (export "get") (result i64)
        (i64.store (i64.const 16) (i64.const 64))
        (i64.store (i64.const 24) (i64.const 5))
        (i64.const 16))
      (func (export "strs") (result i64)
        ;; list<string> of two: (ptr=128, len=2) at 32; elements at 128
        (i64.store (i64.const 32) (i64.const 128))
        (i64.store (i64.const 40) (i64.const 2))
        (i64.store (i64.const 128) (i64.const 80))
        (i64.store (i64.const 136) (i64.const 2))
        (i64.store (i64.const 144) (i64.const 88))
        (i64.store (i64.const 152) (i64.const 3))
        (i64.const 32))
      (func (export "total") (param $p i64) (param $n i64) (result i32)
        ;; the sum of the lengths of a list<string> argument
        (local $i i64) (local $s i64)
        (block $done (loop $l
          (br_if $done (i64.eq (local.get $i) (local.get $n)))
          (local.set $s (i64.add (local.get $s)
            (i64.load (i64.add (i64.add (local.get $p) (i64.mul (local.get $i) (i64.const 16))) (i64.const 8)))))
          (local.set $i (i64.add (local.get $i) (i64.const 1)))
          (br $l)))
        (i32.wrap_i64 (local.get $s))))
    (core instance $m (instantiate $M))
    (func (export "get") (result string)
      (canon lift (core func $m "get") (memory (core memory $m "mem"))))
    (func (export "strs") (result (list string))
      (canon lift (core func $m "strs") (memory (core memory $m "mem"))))
    (func (export "total") (param "l" (list string)) (result u32)
      (canon lift (core func $m "total") (memory (core memory $m "mem")) (realloc (core func $m "realloc")))))
  (instance $c (instantiate $C))
  (func (export "get") (alias export $c "get"))
  (func (export "strs") (alias export $c "strs"))
  (func (export "total") (alias export $c "total")))
(assert_return (invoke "get") (str.const "hello"))
(assert_return (invoke "strs") (list.const (str.const "ab") (str.const "xyz")))
(assert_return (invoke "total" (list.const (str.const "abc") (str.const "de") (str.const "f"))) (u32.const 6))
"""


def test_memory64_strings_and_lists_in_memory_use_64_bit_ptr_and_len():
    """With an i64 memory, ptr_type is i64: a string or list in memory is an
    8-byte-aligned (ptr: u64, len: u64) pair, elements of list<string> are 16
    bytes, and flat lists and strings are (i64, i64)."""
    passes(MEMORY64, 3)


FUTURE_CANCEL = r"""
(component
  (type $FT (future u8))
  (core module $Mem (memory (export "mem") 1))
  (core instance $mem (instantiate $Mem))
  (core func $new (canon future.new $FT))
  (core func $read (canon future.read $FT async (memory (core memory $mem "mem"))))
  (core func $write (canon future.write $FT async (memory (core memory $mem "mem"))))
  (core func $cancel-read (canon future.cancel-read $FT async))
  (core func $cancel-write (canon future.cancel-write $FT async))
  (core module $M
    (import "" "mem" (memory 1))
    (import "" "new" (func $new (result i64)))
    (import "" "read" (func $read (param i32 i32) (result i32)))
    (import "" "write" (func $write (param i32 i32) (result i32)))
    (import "" "cancel-read" (func $cancel-read (param i32) (result i32)))
    (import "" "cancel-write" (func $cancel-write (param i32) (result i32)))
    ;; the writer goes first and waits; the read completes the copy; the
    ;; writer's COMPLETED event is pending, not delivered, when it cancels
    (func (export "cancel-write-after-copy") (result i32)
      (local $rw i64) (local $r i32) (local $w i32)
      (local.set $rw (call $new))
      (local.set $r (i32.wrap_i64 (local.get $rw)))
      (local.set $w (i32.wrap_i64 (i64.shr_u (local.get $rw) (i64.const 32))))
      (i32.store8 (i32.const 0) (i32.const 42))
      (if (i32.ne (call $write (local.get $w) (i32.const 0)) (i32.const -1)) (then unreachable))
      (if (i32.ne (call $read (local.get $r) (i32.const 8)) (i32.const 0)) (then unreachable))
      (if (i32.ne (i32.load8_u (i32.const 8)) (i32.const 42)) (then unreachable))
      (call $cancel-write (local.get $w)))
    ;; the reader goes first; the write completes the copy; the reader cancels
    ;; with its COMPLETED event pending, and the value has arrived
    (func (export "cancel-read-after-copy") (result i32)
      (local $rw i64) (local $r i32) (local $w i32) (local $c i32)
      (local.set $rw (call $new))
      (local.set $r (i32.wrap_i64 (local.get $rw)))
      (local.set $w (i32.wrap_i64 (i64.shr_u (local.get $rw) (i64.const 32))))
      (i32.store8 (i32.const 0) (i32.const 7))
      (if (i32.ne (call $read (local.get $r) (i32.const 16)) (i32.const -1)) (then unreachable))
      (if (i32.ne (call $write (local.get $w) (i32.const 0)) (i32.const 0)) (then unreachable))
      (local.set $c (call $cancel-read (local.get $r)))
      (i32.add (i32.shl (local.get $c) (i32.const 8)) (i32.load8_u (i32.const 16)))))
  (core instance $m (instantiate $M (with "" (instance
    (export "mem" (memory $mem "mem")) (export "new" (func $new)) (export "read" (func $read))
    (export "write" (func $write)) (export "cancel-read" (func $cancel-read))
    (export "cancel-write" (func $cancel-write))))))
  (func (export "cancel-write-after-copy") (result u32) (canon lift (core func $m "cancel-write-after-copy")))
  (func (export "cancel-read-after-copy") (result u32) (canon lift (core func $m "cancel-read-after-copy"))))
;; COMPLETED (0): the pending payload, not a cancellation
(assert_return (invoke "cancel-write-after-copy") (u32.const 0))
;; COMPLETED (0) << 8 | the value read
(assert_return (invoke "cancel-read-after-copy") (u32.const 7))
"""


def test_future_cancel_after_the_copy_finished_returns_the_pending_payload():
    """cancel_copy cancels only when no event is pending: a future copy that
    finished before its event was delivered answers with that event's payload
    (COMPLETED), for cancel-write and cancel-read alike, and the value read
    has arrived."""
    passes(FUTURE_CANCEL, 2)


DEBUG_MESSAGE = r"""
(component
  (core module $Mem (memory (export "mem") 1) (data (memory 0) (i32.const 0) "oops"))
  (core instance $mem (instantiate $Mem))
  (core module $R
    (global $bump (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (global.get $bump))
      (global.set $bump (i32.add (global.get $bump) (local.get 3)))
      (local.get $p)))
  (core instance $r (instantiate $R))
  (core func $new (canon error-context.new (memory (core memory $mem "mem"))))
  (core func $msg (canon error-context.debug-message (memory (core memory $mem "mem")) (realloc (core func $r "realloc"))))
  (core module $M
    (import "" "mem" (memory 1))
    (import "" "new" (func $new (param i32 i32) (result i32)))
    (import "" "msg" (func $msg (param i32 i32)))
    (func (export "run") (param $ptr i32) (result i32)
      (local $e i32)
      (local.set $e (call $new (i32.const 0) (i32.const 4)))
      (call $msg (local.get $e) (local.get $ptr))
      (i32.load offset=4 (local.get $ptr))))
  (core instance $m (instantiate $M (with "" (instance
    (export "mem" (memory $mem "mem")) (export "new" (func $new)) (export "msg" (func $msg))))))
  (func (export "run") (param "ptr" u32) (result u32) (canon lift (core func $m "run"))))
;; the (ptr, len) pair fits at the end of memory
(assert_return (invoke "run" (u32.const 65528)) (u32.const 4))
;; it does not at 65532: a trap, not a host error
(assert_trap (invoke "run" (u32.const 65532)) "out of bounds")
"""


def test_error_context_debug_message_out_of_bounds_traps():
    """error-context.debug-message stores the (ptr, len) of the message at
    its pointer argument: a store past the end of memory is a trap."""
    passes(DEBUG_MESSAGE, 2)


BOMB = r"""
(component
  (core module $M
    (memory (export "mem") 1)
    ;; at 0: list<list<list<u8>>> (ptr 8, len 8191); every element from 8 on is
    ;; (ptr 8, len 8191) again: each level aliases the whole memory
    (func (export "bomb") (result i32)
      (local $p i32)
      (local.set $p (i32.const 8))
      (block $done (loop $l
        (br_if $done (i32.ge_u (local.get $p) (i32.const 65536)))
        (i32.store (local.get $p) (i32.const 8))
        (i32.store offset=4 (local.get $p) (i32.const 8191))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (br $l)))
      (i32.store (i32.const 0) (i32.const 8))
      (i32.store (i32.const 4) (i32.const 8191))
      (i32.const 0))
    (func (export "bytes") (param $n i32) (result i32)
      (i32.store (i32.const 0) (i32.const 8))
      (i32.store (i32.const 4) (local.get $n))
      (i32.const 0)))
  (core instance $m (instantiate $M))
  (func (export "bomb") (result (list (list (list u8))))
    (canon lift (core func $m "bomb") (memory (core memory $m "mem"))))
  (func (export "bytes") (param "n" u32) (result (list u8))
    (canon lift (core func $m "bytes") (memory (core memory $m "mem")))))
(assert_return (invoke "bytes" (u32.const 3)) (list.const (u8.const 0) (u8.const 0) (u8.const 0)))
(assert_trap (invoke "bomb") "copy budget exhausted")
"""


def test_lifting_nested_aliasing_lists_traps_with_the_copy_budget():
    """A host copy is bounded (CopyBudget): a list<list<list<u8>>> whose
    elements at every level alias the whole memory (8191^3 bytes to copy from
    64 KiB) traps naming the limit, where it once copied until the OOM
    killer came; a small list still lifts."""
    passes(BOMB, 2)


def test_the_copy_budget_is_per_call(monkeypatch):
    """Each call starts with the whole budget: two lifts that each fit pass
    one after the other, one that does not traps."""
    monkeypatch.setattr(abi.CopyBudget, "LIMIT", 64 * 1024)
    text = BOMB.split("(assert_return")[0] + """
(assert_return (invoke "bytes" (u32.const 2000)) (list.const %s))
(assert_return (invoke "bytes" (u32.const 2000)) (list.const %s))
(assert_trap (invoke "bytes" (u32.const 6000)) "copy budget exhausted")
""" % ((" (u8.const 0)" * 2000,) * 2)
    passes(text, 3)


# While a non-async-typed call is in progress (its task not yet returned), a
# thread may block only if the runtime has another thread to run meanwhile:
# one that is ready, of the call's own component instance, and able to use
# the stack (not the implicit thread of an async-typed task that needs the
# stack exclusively: sync-lifted, or lifted with a callback). The spec's
# async/during-sync-call-*.wast (component-model #691) state it; the
# blocking call is judged at the point it is made, by the threads there are.

SYNC_READ_WITH_A_READY_WRITER = r"""
;; A sync-typed export makes a blocking synchronous stream.read while a
;; thread of its own (ready, explicit) will write the byte it waits for: the
;; read may block, the writer runs, the read completes with 1 byte (42).
;; Without that thread the same read traps.
(component
  (core module $Mem (memory (export "mem") 1))
  (core instance $mem (instantiate $Mem))
  (core module $Table (table (export "t") 1 funcref))
  (core instance $table (instantiate $Table))
  (type $ST (stream u8))
  (core func $stream.new (canon stream.new $ST))
  (core func $stream.read (canon stream.read $ST (memory (core memory $mem "mem"))))
  (core func $stream.write (canon stream.write $ST async (memory (core memory $mem "mem"))))
  (core func $thread.resume-later (canon thread.resume-later))
  (core type $start-ty (func (param i32)))
  (alias core export $table "t" (core table $t))
  (core func $thread.new-indirect (canon thread.new-indirect $start-ty (core table $t)))
  (core module $M
    (import "" "mem" (memory 1))
    (import "" "t" (table 1 funcref))
    (import "" "stream.new" (func $stream.new (result i64)))
    (import "" "stream.read" (func $stream.read (param i32 i32 i32) (result i32)))
    (import "" "stream.write" (func $stream.write (param i32 i32 i32) (result i32)))
    (import "" "thread.resume-later" (func $thread.resume-later (param i32)))
    (import "" "thread.new-indirect" (func $thread.new-indirect (param i32 i32) (result i32)))
    (global $w (mut i32) (i32.const 0))
    (func $writer (param i32)
      (i32.store8 (i32.const 8) (i32.const 42))
      (if (i32.ne (call $stream.write (global.get $w) (i32.const 8) (i32.const 1)) (i32.const 0x10))
        (then unreachable)))
    (elem (i32.const 0) func $writer)
    (func (export "read-with-writer") (result i32)
      (local $s i64)
      (local.set $s (call $stream.new))
      (global.set $w (i32.wrap_i64 (i64.shr_u (local.get $s) (i64.const 32))))
      (call $thread.resume-later (call $thread.new-indirect (i32.const 0) (i32.const 0)))
      (if (i32.ne (call $stream.read (i32.wrap_i64 (local.get $s)) (i32.const 16) (i32.const 1)) (i32.const 0x10))
        (then unreachable))
      (i32.load8_u (i32.const 16)))
    (func (export "read-alone") (result i32)
      (drop (call $stream.read (i32.wrap_i64 (call $stream.new)) (i32.const 16) (i32.const 1)))
      unreachable))
  (core instance $m (instantiate $M (with "" (instance
    (export "mem" (memory $mem "mem")) (export "t" (table $t))
    (export "stream.new" (func $stream.new)) (export "stream.read" (func $stream.read))
    (export "stream.write" (func $stream.write)) (export "thread.resume-later" (func $thread.resume-later))
    (export "thread.new-indirect" (func $thread.new-indirect))))))
  (func (export "read-with-writer") (result u32) (canon lift (core func $m "read-with-writer")))
  (func (export "read-alone") (result u32) (canon lift (core func $m "read-alone"))))
(assert_return (invoke "read-with-writer") (u32.const 42))
(assert_trap (invoke "read-alone") "cannot block a synchronous task before returning")
"""


def test_a_sync_call_may_block_when_a_thread_of_its_own_is_ready():
    """Whether a non-async-typed task may block is decided where it blocks,
    by whether another thread that may run during its call is ready (here an
    explicit thread of its own): not by the task's function type alone."""
    passes(SYNC_READ_WITH_A_READY_WRITER, 2)


def _parked(lift_opts: str) -> str:
    return r"""
;; "park" (async-typed, lifted LIFT) returns 1, then its implicit thread
;; yields until the sync-typed "run" has suspended, and makes it ready again.
(component
  (core func $task.return (canon task.return (result u32)))
  (core func $thread.yield (canon thread.yield))
  (core func $thread.suspend (canon thread.suspend))
  (core func $thread.resume-later (canon thread.resume-later))
  (core func $thread.index (canon thread.index))
  (core module $M
    (import "" "task.return" (func $task.return (param i32)))
    (import "" "thread.yield" (func $thread.yield (result i32)))
    (import "" "thread.suspend" (func $thread.suspend (result i32)))
    (import "" "thread.resume-later" (func $thread.resume-later (param i32)))
    (import "" "thread.index" (func $thread.index (result i32)))
    (global $run (mut i32) (i32.const -1))
    (func (export "park")
      (call $task.return (i32.const 1))
      (loop $again
        (drop (call $thread.yield))
        (br_if $again (i32.eq (global.get $run) (i32.const -1))))
      (call $thread.resume-later (global.get $run)))
    (func (export "park-cb") (result i32)
      (call $task.return (i32.const 1))
      (i32.const 1 (; YIELD ;)))
    (func (export "cb") (param i32 i32 i32) (result i32)
      (if (i32.ne (global.get $run) (i32.const -1)) (then unreachable))
      (i32.const 1 (; YIELD ;)))
    (func (export "run") (result i32)
      (global.set $run (call $thread.index))
      (drop (call $thread.suspend))
      (global.set $run (i32.const -1))
      (i32.const 42)))
  (core instance $m (instantiate $M (with "" (instance
    (export "task.return" (func $task.return)) (export "thread.yield" (func $thread.yield))
    (export "thread.suspend" (func $thread.suspend)) (export "thread.resume-later" (func $thread.resume-later))
    (export "thread.index" (func $thread.index))))))
  (func (export "park") async (result u32) (canon lift LIFT))
  (func (export "run") (result u32) (canon lift (core func $m "run"))))
(assert_return (invoke "park") (u32.const 1))
""".replace("LIFT", lift_opts)


def test_a_sync_call_resumes_a_stackful_tasks_implicit_thread():
    """The implicit thread of an async-typed task lifted `async` without a
    callback has a stack of its own: it needs no exclusive use of the stack,
    so it may run while a sync call of its instance is blocked."""
    text = _parked('(core func $m "park") async') + '(assert_return (invoke "run") (u32.const 42))\n'
    passes(text, 2)


def test_a_sync_call_never_resumes_a_callback_tasks_implicit_thread():
    """A callback-lifted task's implicit thread needs the stack exclusively:
    ready in its event loop (YIELD), it is not run while a sync call of its
    instance is blocked; with nothing else to run, the blocked call is a
    deadlock (wasmtime's words)."""
    text = (_parked('(core func $m "park-cb") async (callback (core func $m "cb"))')
            + '(assert_trap (invoke "run") "deadlock detected: event loop cannot make further progress")\n')
    passes(text, 2)

"""The runtime's observer interface, and the adapter that feeds a trace
``Recorder`` from it.

The runtime calls ``store.observer.<transition>(...)`` only when an observer
is attached (each call site tests ``observer is not None`` first), so a run
without one pays one attribute load and a compare per transition.

``RecordingObserver`` turns runtime objects into the ids and plain values
the trace format wants, and computes the attribution evidence of each import
call: the async call stack (current task first, root export task last), the
taint tokens found in its arguments, and the roots under which the streams
and futures it is given were created (lineage).
"""

from __future__ import annotations

from typing import Any, Optional

from .waitables import SharedFutureImpl, SharedStreamImpl


def _strings(value, out: list, depth: int = 0) -> None:
    if isinstance(value, str):
        out.append(value)
    elif depth < 6:
        if isinstance(value, dict):
            for v in value.values():
                _strings(v, out, depth + 1)
        elif isinstance(value, (list, tuple)):
            for v in value:
                _strings(v, out, depth + 1)


def _shared(value, out: list, depth: int = 0) -> None:
    if isinstance(value, (SharedStreamImpl, SharedFutureImpl)):
        out.append(value)
    elif depth < 6:
        if isinstance(value, dict):
            for v in value.values():
                _shared(v, out, depth + 1)
        elif isinstance(value, (list, tuple)):
            for v in value:
                _shared(v, out, depth + 1)


def _plain(value, depth: int = 0):
    """Host values as the recorder can summarize them (streams and futures
    become short descriptions)."""
    if isinstance(value, (SharedStreamImpl, SharedFutureImpl)):
        kind = "stream" if isinstance(value, SharedStreamImpl) else "future"
        return f"<{kind} #{value.id}>"
    if depth > 6:
        return "…"
    if isinstance(value, dict):
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


class RecordingObserver:
    """Feeds a :class:`callscope.trace.recorder.Recorder`."""

    def __init__(self, recorder):
        self.rec = recorder
        self._call_seq = 0
        self._tokens: dict[str, int] = {}  # taint token -> root task id
        self.traps = 0

    # -- instances, tasks, threads --------------------------------------------
    def instance_new(self, inst) -> None:
        parent = inst.parent.id if inst.parent is not None else None
        self.rec.instance_new(inst.id, inst.name or None, parent)

    def task_new(self, task) -> None:
        caller = task.caller.id if task.caller is not None else None
        self.rec.task_new(task.id, task.inst.id, task.name or None, caller, task.root.id, task.label,
                          not task.ft.async_)
        tokens = getattr(task, "tokens", None)
        if task.caller is None and tokens:
            for tok in tokens:
                self._tokens[tok] = task.id
                self.rec.taint_plant(task.id, tok)

    def task_start(self, task) -> None:
        self.rec.task_start(task.id)

    def task_return(self, task, result) -> None:
        self.rec.task_return(task.id, _plain(result))

    def task_cancel(self, task) -> None:
        self.rec.task_cancel(task.id)

    def task_cancel_requested(self, task) -> None:
        self.rec.note(f"cancellation requested of task {task.id}")

    def task_exit(self, task) -> None:
        self.rec.task_exit(task.id)

    def thread_new(self, tid: int, task_id: int) -> None:
        self.rec.thread_new(tid, task_id)

    def thread_switch(self, from_tid: int, to_tid: int) -> None:
        self.rec.thread_switch(from_tid or None, to_tid or None)

    # -- backpressure ------------------------------------------------------------
    def call_queued(self, task) -> None:
        self.rec.call_queued(task.id)

    def call_admitted(self, task, cancelled: bool) -> None:
        self.rec.call_admitted(task.id)

    def backpressure(self, inst, op: str) -> None:
        self.rec.backpressure(inst.id, inst.backpressure, op)

    # -- subtasks, waitables ----------------------------------------------------
    def subtask_new(self, task, handle: int, name: str, state: int) -> None:
        self.rec.subtask_state(task.id, handle, state)

    def subtask_cancel(self, task, handle: int) -> None:
        self.rec.subtask_cancel(task.id, handle)

    def waitable_set_wait(self, thread, set_handle: int) -> None:
        self.rec.waitable_set_wait(thread.tid, set_handle)

    def event_delivered(self, thread, code: int, p1: int, p2: int) -> None:
        self.rec.event_delivered(thread.tid, code, p1, p2)

    def copy_op(self, inst, kind: str, op: str, handle: int, result: int, size: int) -> None:
        if op == "new":
            self.rec.copy(kind, op, handle, None, result, inst.id)
            from .thread import STACK
            if STACK:
                self.rec.handle_new(kind, inst.id, handle, STACK[-1].task.root.id)
        else:
            self.rec.copy(kind, op, handle, size, result, inst.id)

    # -- imports -------------------------------------------------------------------
    def next_call_id(self) -> int:
        self._call_seq += 1
        return self._call_seq

    def import_call(self, call_id: int, task, callee, args: list) -> None:
        stack = [t.id for t in task.async_call_stack()]
        taint = []
        if self._tokens:
            strings: list = []
            _strings(args, strings)
            if strings:
                for tok in self._tokens:
                    for s in strings:
                        if tok in s:
                            taint.append(tok)
                            break
        shared: list = []
        _shared(args, shared)
        lineage = [s.root.id for s in shared if s.root is not None]
        self.rec.import_call(call_id, task.inst.id, callee.name, stack, _plain(args), taint, lineage)

    def import_return(self, call_id: int, result) -> None:
        self.rec.import_return(call_id, _plain(result))

    # -- faults --------------------------------------------------------------------
    def trap(self, task, message: str) -> None:
        self.traps += 1
        self.rec.trap(task.id if task is not None else None, message)

    def deadlock(self, message: str) -> None:
        self.rec.deadlock(message)

    def note(self, text: str) -> None:
        self.rec.note(text)

"""Waitables, waitable sets, subtasks, streams and futures
(CanonicalABI.md "Waitable State", "Subtask State", "Buffer State",
"Stream State", "Future State"). Blocking methods are generators."""

from __future__ import annotations

from enum import Enum, IntEnum
from functools import partial
from typing import Callable, Optional

from .enums import MemberEnumType
from .errors import Trap, trap_if
from . import thread as _thread_mod
from .thread import STACK, Cancelled, current_thread, current_task


class EventCode(IntEnum, metaclass=MemberEnumType):
    NONE = 0
    SUBTASK = 1
    STREAM_READ = 2
    STREAM_WRITE = 3
    FUTURE_READ = 4
    FUTURE_WRITE = 5
    TASK_CANCELLED = 6


class Waitable:
    __slots__ = ("pending_event", "wset", "has_sync_waiter")

    def __init__(self):
        self.pending_event = None
        self.wset = None
        self.has_sync_waiter = False

    def set_pending_event(self, pending_event) -> None:
        self.pending_event = pending_event

    def has_pending_event(self) -> bool:
        return self.pending_event is not None

    def in_waitable_set(self) -> bool:
        return self.wset is not None

    def wait_for_pending_event(self):
        self.has_sync_waiter = True
        yield from current_thread().wait_until(self.has_pending_event, cancellable=False)
        self.has_sync_waiter = False

    def get_pending_event(self):
        pending_event, self.pending_event = self.pending_event, None
        return pending_event()

    def join(self, wset) -> None:
        if self.wset is not None:
            self.wset.elems.remove(self)
        self.wset = wset
        if wset is not None:
            wset.elems.append(self)

    def drop(self) -> None:
        self.join(None)


class WaitableSet:
    __slots__ = ("elems", "num_waiting")

    def __init__(self):
        self.elems = []
        self.num_waiting = 0

    def has_pending_event(self) -> bool:
        for w in self.elems:
            if w.pending_event is not None:
                return True
        return False

    def get_pending_event(self):
        if len(self.elems) > 1:  # (shuffling one element draws nothing from the rng)
            current_task().inst.store.rng.shuffle(self.elems)
        for w in self.elems:
            if w.pending_event is not None:
                return w.get_pending_event()
        raise AssertionError("no pending event")

    def wait_for_event_and(self, ready_func, cancellable):
        def ready_and_has_event():
            return ready_func() and self.has_pending_event()

        self.num_waiting += 1
        try:
            cancelled = yield from STACK[-1].wait_until(ready_and_has_event, cancellable)
            if cancelled:
                return (EventCode.TASK_CANCELLED, 0, 0)
            return self.get_pending_event()
        finally:
            self.num_waiting -= 1

    def wait_for_event(self, cancellable):
        return (yield from self.wait_for_event_and(_always, cancellable))

    def poll(self, cancellable):
        if current_task().deliver_pending_cancel(cancellable):
            return (EventCode.TASK_CANCELLED, 0, 0)
        if not self.has_pending_event():
            return (EventCode.NONE, 0, 0)
        return self.get_pending_event()

    def drop(self) -> None:
        trap_if(len(self.elems) > 0, "cannot drop waitable set with waiters")
        trap_if(self.num_waiting > 0, "cannot drop waitable set with waiters")


def _always():
    return True


class Subtask(Waitable):
    class State(IntEnum, metaclass=MemberEnumType):
        STARTING = 0
        STARTED = 1
        RETURNED = 2
        CANCELLED_BEFORE_STARTED = 3
        CANCELLED_BEFORE_RETURNED = 4

    __slots__ = ("state", "on_cancel", "lenders", "cancellation_requested", "flat_results", "callee")

    def __init__(self):
        self.pending_event = None
        self.wset = None
        self.has_sync_waiter = False
        self.state = Subtask.State.STARTING
        self.on_cancel = None
        self.lenders = []
        self.cancellation_requested = False
        self.flat_results = []
        self.callee = None

    def resolved(self) -> bool:
        return self.state >= Subtask.State.RETURNED

    def add_lender(self, lending_handle) -> None:
        lending_handle.num_lends += 1
        self.lenders.append(lending_handle)

    def resolve(self, state, flat_results) -> None:
        self.state = state
        self.flat_results = flat_results

    def deliver_resolve(self) -> None:
        for h in self.lenders:
            h.num_lends -= 1
        self.lenders = None

    def resolve_delivered(self) -> bool:
        return self.lenders is None

    def drop(self) -> None:
        if self.lenders is not None:  # (not resolve_delivered())
            raise Trap("cannot drop a subtask which has not yet resolved")
        Waitable.drop(self)


# WaitableSet.wait_for_event_and: the generator above (the definition, kept
# as ``_wait_for_event_and_py``), or the same in C when ``_fiber`` is built
# (see thread.py's wait_until; tests put the Python one back to compare).
_wait_for_event_and_py = WaitableSet.wait_for_event_and
if _thread_mod.fiber._cfiber is not None:
    WaitableSet.wait_for_event_and = _thread_mod.fiber._cfiber.init_wait_for_event(WaitableSet, Waitable, Subtask,
                                                                                   EventCode.TASK_CANCELLED)


# ---------------------------------------------------------------------------
# Buffers


MAX_BUFFER_LENGTH = 2 ** 28 - 1


class Buffer:
    t = None

    def remain(self) -> int:
        raise NotImplementedError

    def is_zero_length(self) -> bool:
        raise NotImplementedError


class BufferGuestImpl(Buffer):
    __slots__ = ("cx", "t", "ptr", "progress", "length")

    def __init__(self, t, cx, ptr, length):
        from callscope.component import abi
        trap_if(length > MAX_BUFFER_LENGTH, "buffer too long")
        if t is not None and length > 0:
            trap_if(ptr != abi.align_to(ptr, abi.alignment(t)), "unaligned pointer")
            trap_if(ptr + length * abi.elem_size(t) > len(cx.opts.memory), "pointer out of bounds of memory")
        self.cx = cx
        self.t = t
        self.ptr = ptr
        self.progress = 0
        self.length = length

    def remain(self) -> int:
        return self.length - self.progress

    def is_zero_length(self) -> bool:
        return self.length == 0


class ReadableBufferGuestImpl(BufferGuestImpl):
    __slots__ = ()

    def read(self, n):
        from callscope.component import abi
        if self.t is not None:
            vs = abi.load_list_from_valid_range(self.cx, self.ptr, n, self.t)
            self.ptr += n * abi.elem_size(self.t)
        else:
            vs = n * [()]
        self.progress += n
        return vs


class WritableBufferGuestImpl(BufferGuestImpl):
    __slots__ = ()

    def write(self, vs):
        from callscope.component import abi
        if self.t is not None:
            abi.store_list_into_valid_range(self.cx, vs, self.ptr, self.t)
            self.ptr += len(vs) * abi.elem_size(self.t)
        self.progress += len(vs)


class HostBuffer(Buffer):
    """A buffer of host values, for the host's end of a stream or future."""

    __slots__ = ("t", "values", "progress", "length")

    def __init__(self, t, values=None, length=None):
        self.t = t
        self.values = list(values) if values is not None else []
        self.length = len(self.values) if length is None else length
        self.progress = 0

    def remain(self) -> int:
        return self.length - self.progress

    def is_zero_length(self) -> bool:
        return self.length == 0

    def read(self, n):
        vs = self.values[self.progress:self.progress + n]
        self.progress += n
        return vs

    def write(self, vs):
        self.values.extend(vs)
        self.progress += len(vs)


# ---------------------------------------------------------------------------
# Streams and futures


class CopyResult(IntEnum, metaclass=MemberEnumType):
    COMPLETED = 0
    DROPPED = 1
    CANCELLED = 2


def none_or_number_type(t) -> bool:
    from callscope.component import types as T
    return t is None or isinstance(t, (T.U8Type, T.U16Type, T.U32Type, T.U64Type, T.S8Type, T.S16Type,
                                       T.S32Type, T.S64Type, T.F32Type, T.F64Type))


class SharedBase:
    """What the two ends of a stream or future share: its element type and
    the one copy waiting for the other end to rendezvous (the spec's
    ``pending_*`` fields; a future's copy has no ``on_copy``)."""

    __slots__ = ("t", "dropped", "pending_inst", "pending_buffer", "pending_on_copy", "pending_on_copy_done",
                 "root", "id", "seen")

    def __init__(self, t):
        self.t = t
        self.dropped = False
        self.reset_pending()
        self.root = None  # the root task it was created under (lineage)
        self.id = 0  # numbered by the store that creates it
        # a list once the oracle wants the values that go through it (it was
        # passed to an import): every value copied is appended
        self.seen = None

    def reset_pending(self):
        self.set_pending(None, None, None, None)

    def set_pending(self, inst, buffer, on_copy, on_copy_done):
        self.pending_inst = inst
        self.pending_buffer = buffer
        self.pending_on_copy = on_copy
        self.pending_on_copy_done = on_copy_done

    def reset_and_notify_pending(self, result):
        done = self.pending_on_copy_done
        self.reset_pending()
        done(result)

    def cancel(self):
        self.reset_and_notify_pending(CopyResult.CANCELLED)

    def drop(self):
        if not self.dropped:
            self.dropped = True
            if self.pending_buffer is not None:
                self.reset_and_notify_pending(CopyResult.DROPPED)


class SharedStreamImpl(SharedBase):
    __slots__ = ()

    def read(self, inst, dst, on_copy, on_copy_done):
        if self.dropped:
            on_copy_done(CopyResult.DROPPED)
        elif self.pending_buffer is None:
            self.set_pending(inst, dst, on_copy, on_copy_done)
        else:
            trap_if(inst is self.pending_inst and not none_or_number_type(self.t),
                    "cannot read from and write to intra-component stream with non-numeric types")
            if self.pending_buffer.remain() > 0:
                if dst.remain() > 0:
                    n = min(dst.remain(), self.pending_buffer.remain())
                    vals = self.pending_buffer.read(n)
                    if self.seen is not None:
                        self.seen.extend(vals)
                    dst.write(vals)
                    self.pending_on_copy(self.reset_pending)
                on_copy_done(CopyResult.COMPLETED)
            else:
                self.reset_and_notify_pending(CopyResult.COMPLETED)
                self.set_pending(inst, dst, on_copy, on_copy_done)

    def write(self, inst, src, on_copy, on_copy_done):
        if self.dropped:
            on_copy_done(CopyResult.DROPPED)
        elif self.pending_buffer is None:
            self.set_pending(inst, src, on_copy, on_copy_done)
        else:
            trap_if(inst is self.pending_inst and not none_or_number_type(self.t),
                    "cannot read from and write to intra-component stream with non-numeric types")
            if self.pending_buffer.remain() > 0:
                if src.remain() > 0:
                    n = min(src.remain(), self.pending_buffer.remain())
                    vals = src.read(n)
                    if self.seen is not None:
                        self.seen.extend(vals)
                    self.pending_buffer.write(vals)
                    self.pending_on_copy(self.reset_pending)
                on_copy_done(CopyResult.COMPLETED)
            elif src.is_zero_length() and self.pending_buffer.is_zero_length():
                on_copy_done(CopyResult.COMPLETED)
            else:
                self.reset_and_notify_pending(CopyResult.COMPLETED)
                self.set_pending(inst, src, on_copy, on_copy_done)


class SharedFutureImpl(SharedBase):
    __slots__ = ()

    def read(self, inst, dst, on_copy_done):
        if self.pending_buffer is None:
            self.set_pending(inst, dst, None, on_copy_done)
        else:
            trap_if(inst is self.pending_inst and not none_or_number_type(self.t),
                    "cannot read from and write to intra-component future")
            vals = self.pending_buffer.read(1)
            if self.seen is not None:
                self.seen.extend(vals)
            dst.write(vals)
            self.reset_and_notify_pending(CopyResult.COMPLETED)
            on_copy_done(CopyResult.COMPLETED)

    def write(self, inst, src, on_copy_done):
        if self.dropped:
            on_copy_done(CopyResult.DROPPED)
        elif self.pending_buffer is None:
            self.set_pending(inst, src, None, on_copy_done)
        else:
            trap_if(inst is self.pending_inst and not none_or_number_type(self.t),
                    "cannot read from and write to intra-component future")
            vals = src.read(1)
            if self.seen is not None:
                self.seen.extend(vals)
            self.pending_buffer.write(vals)
            self.reset_and_notify_pending(CopyResult.COMPLETED)
            on_copy_done(CopyResult.COMPLETED)


class CopyState(Enum, metaclass=MemberEnumType):
    IDLE = 1
    COPYING = 2
    CANCELLING_COPY = 3
    DONE = 4


class CopyEnd(Waitable):
    __slots__ = ("state", "shared", "buffer")

    def __init__(self, shared):
        Waitable.__init__(self)
        self.state = CopyState.IDLE
        self.shared = shared
        self.buffer = None

    def copying(self) -> bool:
        return self.state is CopyState.COPYING or self.state is CopyState.CANCELLING_COPY

    def drop(self):
        trap_if(self.copying(), "cannot drop busy stream")
        self.shared.drop()
        Waitable.drop(self)


class ReadableStreamEnd(CopyEnd):
    __slots__ = ()
    kind = "stream"
    readable = True

    def copy(self, inst, dst, on_copy, on_copy_done):
        self.shared.read(inst, dst, on_copy, on_copy_done)


class WritableStreamEnd(CopyEnd):
    __slots__ = ()
    kind = "stream"
    readable = False

    def copy(self, inst, src, on_copy, on_copy_done):
        self.shared.write(inst, src, on_copy, on_copy_done)


class ReadableFutureEnd(CopyEnd):
    __slots__ = ()
    kind = "future"
    readable = True

    def copy(self, inst, dst, on_copy_done):
        self.shared.read(inst, dst, on_copy_done)


class WritableFutureEnd(CopyEnd):
    __slots__ = ()
    kind = "future"
    readable = False

    def copy(self, inst, src, on_copy_done):
        self.shared.write(inst, src, on_copy_done)

    def drop(self):
        trap_if(self.state != CopyState.DONE, "cannot drop future write end without first writing a value")
        CopyEnd.drop(self)

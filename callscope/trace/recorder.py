"""The trace writer: an observer the runtime calls on every transition.

Every method appends one small tuple ``(kind_id, time, fields)`` to a buffer;
nothing else happens on the hot path but one comparison. The buffer becomes a
chunk (docs/trace-format.md) when it is full, when 100 ms of real time have
passed since the last flush (checked when the next event arrives), when the
runtime calls :meth:`Recorder.flush` (do so when going idle: before blocking
on host I/O or a timer) and at :meth:`Recorder.close`.

Ids (instances, tasks, threads, handles, import calls) are ints the runtime
assigns; the recorder never invents one. Values (task results, import
arguments and results, event payloads) are passed raw and summarized here
(:func:`callscope.trace.summarize.summarize`) so the trace stays small.
Lists the runtime passes (stacks, tokens, roots) are copied: the runtime may
reuse them.
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import time
import zlib
from typing import Any, Callable, Optional, Sequence

import msgpack
from operator import sub as _sub

from . import format as F
from .summarize import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_STR,
    summarize,
)

_ExtType = msgpack.ExtType
_new_tuple = tuple.__new__
_EXT_STR = F.EXT_STR
_pack_frame = struct.Struct(F.FRAME_HEADER).pack
_pack_u32 = struct.Struct("<I").pack
_NEG = -(1 << 62)
_POS = 1 << 62


class _Ticker:
    """A daemon thread that, every ``interval`` seconds, makes the recorder's
    next event check whether a flush is due."""

    def __init__(self, rec: "Recorder", interval: float):
        import threading
        self._stop = threading.Event()
        self._rec = rec
        self._interval = interval
        self._thread = threading.Thread(target=self._run, name="callscope-recorder-ticker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._rec._check_at = _NEG

    def stop(self) -> None:
        self._stop.set()

K = F.KIND_ID
_K_INSTANCE_NEW = K["instance.new"]
_K_TASK_NEW = K["task.new"]
_K_TASK_START = K["task.start"]
_K_TASK_RETURN = K["task.return"]
_K_TASK_CANCEL = K["task.cancel"]
_K_TASK_EXIT = K["task.exit"]
_K_TASK_RESOLVED = K["task.resolved"]
_K_SUBTASK_STATE = K["subtask.state"]
_K_SUBTASK_CANCEL = K["subtask.cancel"]
_K_SUBTASK_DROP = K["subtask.drop"]
_K_BACKPRESSURE = {"inc": K["backpressure.inc"], "dec": K["backpressure.dec"], "set": K["backpressure.set"]}
_K_CALL_QUEUED = K["call.queued"]
_K_CALL_ADMITTED = K["call.admitted"]
_K_WS_NEW = K["waitable-set.new"]
_K_WS_DROP = K["waitable-set.drop"]
_K_W_JOIN = K["waitable.join"]
_K_WS_WAIT = K["waitable-set.wait"]
_K_WS_POLL = K["waitable-set.poll"]
_K_EVENT = K["event.delivered"]
_K_THREAD_SWITCH = K["thread.switch"]
_K_THREAD_NEW = K["thread.new"]
_K_IMPORT_CALL = K["import.call"]
_K_IMPORT_RETURN = K["import.return"]
_K_HANDLE_NEW = K["handle.new"]
_K_TAINT = K["taint.plant"]
_K_TRAP = K["trap"]
_K_DEADLOCK = K["deadlock"]
_K_NOTE = K["note"]
_K_COPY = {kind: {op: K[f"{kind}.{op}"] for op in F.COPY_OPS} for kind in ("stream", "future")}


def _version(dist: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return None


def guest_info(guest: Any, name: Optional[str] = None) -> Optional[dict]:
    """``{"name", "size", "sha256"}`` of a guest given as a path or bytes
    (a dict is passed through; None gives None)."""
    if guest is None or isinstance(guest, dict):
        return guest
    if isinstance(guest, (bytes, bytearray, memoryview)):
        data = bytes(guest)
        return {"name": name or "<bytes>", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    path = os.fspath(guest)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"name": name or os.path.basename(path), "size": os.path.getsize(path), "sha256": h.hexdigest()}


class Recorder:
    """Writes a trace. ``out`` is a path or a binary file object.

    ``clock()`` gives each event's time in int nanoseconds: pass the runtime's
    simulated clock, else real monotonic time is used. ``flush_clock()`` is the
    real clock used for the 100 ms flush rule (tests pass a fake one). When
    ``clock`` is ``flush_clock`` (the default) the event's own time is
    compared on the hot path; with a separate simulated clock the real clock is
    read on every event.
    """

    def __init__(
        self,
        out: Any,
        *,
        guest: Any = None,
        guest_name: Optional[str] = None,
        seed: Optional[int] = None,
        argv: Optional[Sequence[str]] = None,
        clock: Optional[Callable[[], int]] = None,
        flush_clock: Optional[Callable[[], int]] = None,
        chunk_events: int = 16384,
        flush_interval_ns: int = 100_000_000,
        check_interval_ns: int = 1_000_000,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_items: int = DEFAULT_MAX_ITEMS,
        max_str: int = DEFAULT_MAX_STR,
        max_depth: int = DEFAULT_MAX_DEPTH,
        extra: Optional[dict] = None,
    ):
        if isinstance(out, (str, bytes, os.PathLike)):
            self._file = open(out, "wb", buffering=0)
            self._owns = True
        else:
            self._file = out
            self._owns = False
        self._flush_clock = flush_clock or time.monotonic_ns
        self._clock = clock or self._flush_clock
        self._real = self._clock is self._flush_clock
        self._chunk_events = chunk_events
        self._flush_ns = flush_interval_ns
        self._check_ns = check_interval_ns
        self._limits = (max_bytes, max_items, max_str, max_depth)
        # the buffer: three parallel lists (kind ids, times, field tuples),
        # appended to through bound methods and cleared (never replaced)
        self._kinds: list = []
        self._times: list = []
        self._fields: list = []
        self._ka = self._kinds.append
        self._ta = self._times.append
        self._fa = self._fields.append
        self._to_loop = None  # the last X -> loop switch's field tuple (see thread_switch)
        self._strings: dict[str, Any] = {}
        self._string_list: list[str] = []
        self._pending: list[str] = []
        self._pending_sid0 = 0
        self._n = 0  # events in flushed chunks
        self._chunks: list = []  # footer index rows
        self._packer = msgpack.Packer(use_bin_type=True)
        self._closed = False
        for name in F.KIND_NAMES:
            self._s(name)
        now_wall = time.time_ns()
        header = {
            "format": F.FORMAT_NAME,
            "version": list(F.FORMAT_VERSION),
            "guest": guest_info(guest, guest_name),
            "callscope_version": _version("callscope"),
            "wasmtime_version": _version("wasmtime"),
            "python_version": sys.version.split()[0],
            "seed": seed,
            "argv": list(argv) if argv is not None else list(sys.argv),
            "start_time_ns": now_wall,
            "start_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_wall / 1e9)),
            "clock": "monotonic" if self._real else "simulated",
            "kinds": [[k, list(fs)] for k, fs in F.KINDS],
            "summary_limits": {"max_bytes": max_bytes, "max_items": max_items, "max_str": max_str, "max_depth": max_depth},
        }
        if extra:
            header["extra"] = extra
        self._offset = 0
        self._write_all(F.MAGIC)
        self._write_frame(F.TAG_HEADER, msgpack.packb(header, use_bin_type=True))
        self._last_flush = self._flush_clock()
        self._check_at = (self._last_flush + self._check_ns) if self._real else _NEG
        self._ticker = None
        if not self._real and flush_clock is None:
            # Simulated event times with the real clock for flushing: rather
            # than read the real clock on every event, a timer thread asks
            # for a check every check interval (by lowering _check_at; the
            # check and any flush still happen on the recording thread).
            # It wakes every tenth of the flush interval (10 ms by default,
            # at least the check interval): each wake-up takes the GIL from
            # the runtime, which cost ~3% of a run at one per millisecond.
            self._check_at = _POS
            self._ticker = _Ticker(self, max(self._check_ns, self._flush_ns // 10) / 1e9)

    # ------------------------------------------------------------------ io

    def _write_frame(self, tag: bytes, payload: bytes) -> int:
        off = self._offset
        data = _pack_frame(tag, len(payload), zlib.crc32(payload)) + payload
        self._write_all(data)
        return off

    def _write_all(self, data: bytes) -> None:
        f = self._file
        view = memoryview(data)
        while view:
            n = f.write(view)
            if n is None:
                n = len(view)
            view = view[n:]
        self._offset += len(data)
        if not self._owns and hasattr(f, "flush"):
            f.flush()

    def _tick(self) -> None:
        if self._ticker is not None:
            self._check_at = _POS
        now = self._flush_clock()
        if len(self._kinds) >= self._chunk_events or now - self._last_flush >= self._flush_ns:
            self.flush()
            now = self._last_flush
        if self._real:
            self._check_at = now + self._check_ns
        elif self._ticker is not None:
            self._check_at = _POS

    def flush(self) -> None:
        """Write the buffered events as one chunk (no-op when empty). Call it
        when the runtime goes idle so that nothing waits in memory."""
        kinds = self._kinds
        self._last_flush = self._flush_clock()
        if not kinds:
            return
        times = self._times
        fields = self._fields
        t0 = times[0]
        deltas = list(map(_sub, times, [0] + times))  # the first delta is absolute
        count = len(kinds)
        meta = self._packer.pack([self._n, count, t0, times[-1], self._pending_sid0, self._pending])
        try:
            body = self._packer.pack([bytes(kinds), deltas, fields])
        except (OverflowError, TypeError, ValueError):
            # a value the hot path let through unsummarized (e.g. an int
            # beyond 64 bits): summarize every field and pack again
            self._packer.reset()
            body = self._packer.pack([bytes(kinds), deltas, [tuple(map(self._safe, f)) for f in fields]])
        t1 = times[-1]
        kinds.clear()
        times.clear()
        fields.clear()
        off = self._write_frame(F.TAG_CHUNK, _pack_u32(len(meta)) + meta + body)
        self._chunks.append([off, self._n, count, t0, t1])
        self._n += count
        self._pending = []
        self._pending_sid0 = len(self._string_list)

    def close(self) -> None:
        """Flush, write the footer index and trailer, close a file we opened."""
        if self._closed:
            return
        if self._ticker is not None:
            self._ticker.stop()
        self.flush()
        footer = {
            "events": self._n,
            "chunks": self._chunks,
            "strings": self._string_list,
            "end_time_ns": time.time_ns(),
        }
        off = self._write_frame(F.TAG_FOOTER, msgpack.packb(footer, use_bin_type=True))
        self._write_all(struct.pack(F.TRAILER, off, F.TRAILER_MAGIC))
        self._closed = True
        if self._owns:
            self._file.close()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def events_written(self) -> int:
        """Events recorded so far (flushed or buffered)."""
        return self._n + len(self._kinds)

    # ------------------------------------------------------------ helpers

    def _s(self, s: Optional[str]) -> Any:
        """The string-table reference for ``s`` (None stays None)."""
        if s is None:
            return None
        r = self._strings.get(s)
        if r is None:
            s = str(s)
            sid = len(self._string_list)
            data = sid.to_bytes(1 if sid < 0x100 else 2 if sid < 0x10000 else 4, "big")
            # (an ExtType made without its constructor's argument checks:
            # they cost more than the rest of interning a new string)
            r = self._strings[s] = _new_tuple(_ExtType, (_EXT_STR, data))
            self._string_list.append(s)
            self._pending.append(s)
        return r

    def _safe(self, value: Any) -> Any:
        """``value`` with what msgpack cannot pack summarized (slow path)."""
        c = value.__class__
        if c is int:
            return value if -(1 << 63) <= value < (1 << 64) else summarize(value, *self._limits)
        if value is None or c in (str, bytes, float, bool, _ExtType):
            return value
        if c is tuple or c is list:
            return c(map(self._safe, value))
        if c is dict:
            return {self._safe(k): self._safe(v) for k, v in value.items()}
        return summarize(value, *self._limits)

    def _v(self, value: Any) -> Any:
        t = type(value)
        if value is None or t is bool or (t is int and -(1 << 63) <= value < (1 << 64)):
            return value
        return summarize(value, *self._limits)

    # ------------------------------------------------------------- events
    # Each: t = clock(); append (kind, t, fields); maybe tick.

    def instance_new(self, inst_id: int, name: Optional[str], parent_id: Optional[int] = None) -> None:
        t = self._clock()
        self._ka(_K_INSTANCE_NEW)
        self._ta(t)
        self._fa((inst_id, self._s(name), parent_id))
        if t >= self._check_at:
            self._tick()

    def task_new(
        self,
        task_id: int,
        inst_id: int,
        func_name: str,
        caller_task_id: Optional[int],
        root_task_id: int,
        label: Optional[str] = None,
        sync: bool = False,
    ) -> None:
        t = self._clock()
        self._ka(_K_TASK_NEW)
        self._ta(t)
        self._fa((task_id, inst_id, self._s(func_name), caller_task_id, root_task_id, self._s(label), bool(sync)))
        if t >= self._check_at:
            self._tick()

    def task_start(self, task_id: int) -> None:
        t = self._clock()
        self._ka(_K_TASK_START)
        self._ta(t)
        self._fa((task_id,))
        if t >= self._check_at:
            self._tick()

    def task_return(self, task_id: int, value: Any = None) -> None:
        t = self._clock()
        self._ka(_K_TASK_RETURN)
        self._ta(t)
        self._fa((task_id, value if value.__class__ is int else self._v(value)))
        if t >= self._check_at:
            self._tick()

    def task_cancel(self, task_id: int) -> None:
        t = self._clock()
        self._ka(_K_TASK_CANCEL)
        self._ta(t)
        self._fa((task_id,))
        if t >= self._check_at:
            self._tick()

    def task_exit(self, task_id: int) -> None:
        t = self._clock()
        self._ka(_K_TASK_EXIT)
        self._ta(t)
        self._fa((task_id,))
        if t >= self._check_at:
            self._tick()

    def task_resolved(self, task_id: int) -> None:
        t = self._clock()
        self._ka(_K_TASK_RESOLVED)
        self._ta(t)
        self._fa((task_id,))
        if t >= self._check_at:
            self._tick()

    def subtask_state(self, task_id: int, subtask_handle: Optional[int], state: Any) -> None:
        if type(state) is not int:
            state = F.SUBTASK_STATE_ID[state]
        t = self._clock()
        self._ka(_K_SUBTASK_STATE)
        self._ta(t)
        self._fa((task_id, subtask_handle, state))
        if t >= self._check_at:
            self._tick()

    def subtask_cancel(self, task_id: int, subtask_handle: Optional[int]) -> None:
        t = self._clock()
        self._ka(_K_SUBTASK_CANCEL)
        self._ta(t)
        self._fa((task_id, subtask_handle))
        if t >= self._check_at:
            self._tick()

    def subtask_drop(self, task_id: int, subtask_handle: Optional[int]) -> None:
        t = self._clock()
        self._ka(_K_SUBTASK_DROP)
        self._ta(t)
        self._fa((task_id, subtask_handle))
        if t >= self._check_at:
            self._tick()

    def backpressure(self, inst_id: int, value: int, op: str) -> None:
        t = self._clock()
        self._ka(_K_BACKPRESSURE[op])
        self._ta(t)
        self._fa((inst_id, value))
        if t >= self._check_at:
            self._tick()

    def call_queued(self, task_id: int) -> None:
        t = self._clock()
        self._ka(_K_CALL_QUEUED)
        self._ta(t)
        self._fa((task_id,))
        if t >= self._check_at:
            self._tick()

    def call_admitted(self, task_id: int) -> None:
        t = self._clock()
        self._ka(_K_CALL_ADMITTED)
        self._ta(t)
        self._fa((task_id,))
        if t >= self._check_at:
            self._tick()

    def waitable_set_new(self, inst_id: int, set_handle: int) -> None:
        t = self._clock()
        self._ka(_K_WS_NEW)
        self._ta(t)
        self._fa((inst_id, set_handle))
        if t >= self._check_at:
            self._tick()

    def waitable_set_drop(self, inst_id: int, set_handle: int) -> None:
        t = self._clock()
        self._ka(_K_WS_DROP)
        self._ta(t)
        self._fa((inst_id, set_handle))
        if t >= self._check_at:
            self._tick()

    def waitable_join(self, inst_id: int, waitable_handle: int, set_handle: int) -> None:
        """``set_handle`` 0 removes the waitable from its set."""
        t = self._clock()
        self._ka(_K_W_JOIN)
        self._ta(t)
        self._fa((inst_id, waitable_handle, set_handle))
        if t >= self._check_at:
            self._tick()

    def waitable_set_wait(self, thread_id: int, set_handle: int) -> None:
        t = self._clock()
        self._ka(_K_WS_WAIT)
        self._ta(t)
        self._fa((thread_id, set_handle))
        if t >= self._check_at:
            self._tick()

    def waitable_set_poll(self, thread_id: int, set_handle: int) -> None:
        t = self._clock()
        self._ka(_K_WS_POLL)
        self._ta(t)
        self._fa((thread_id, set_handle))
        if t >= self._check_at:
            self._tick()

    def event_delivered(self, thread_id: int, code: int, handle: int, payload: Any = None) -> None:
        t = self._clock()
        self._ka(_K_EVENT)
        self._ta(t)
        self._fa((thread_id, code, handle, payload if payload.__class__ is int else self._v(payload)))
        if t >= self._check_at:
            self._tick()

    def copy(self, kind: str, op: str, handle: int, size: Optional[int] = None, result: Any = None, inst_id: Optional[int] = None) -> None:
        t = self._clock()
        if result.__class__ is not int and result is not None:
            result = self._v(result)
        self._ka(_K_COPY[kind][op])
        self._ta(t)
        self._fa((handle, size, result, inst_id))
        if t >= self._check_at:
            self._tick()

    def thread_switch(self, from_thread: Optional[int], to_thread: Optional[int]) -> None:
        """A switch X -> loop (None) immediately followed by loop -> Y, with
        nothing recorded in between, is one event X -> Y (docs/trace-format.md,
        ``thread.switch``): the X -> loop event, still the buffer's last,
        becomes X -> Y in place (its time stays X's). Nothing else pays for
        it: any other event appends a new last field tuple, and a flush
        empties the buffer, so the identity test below fails after either."""
        if from_thread is None:
            fields = self._fields
            if fields and fields[-1] is self._to_loop:
                fields[-1] = (fields[-1][0], to_thread)
                return
        t = self._clock()
        self._ka(_K_THREAD_SWITCH)
        self._ta(t)
        if to_thread is None:
            self._to_loop = f = (from_thread, None)
            self._fa(f)
        else:
            self._fa((from_thread, to_thread))
        if t >= self._check_at:
            self._tick()

    def thread_new(self, thread_id: int, task_id: Optional[int]) -> None:
        t = self._clock()
        self._ka(_K_THREAD_NEW)
        self._ta(t)
        self._fa((thread_id, task_id))
        if t >= self._check_at:
            self._tick()

    def import_call(
        self,
        call_id: int,
        inst_id: int,
        import_name: str,
        stack: Sequence[int],
        args: Any = None,
        taint_tokens: Sequence[str] = (),
        lineage_roots: Sequence[int] = (),
        lineage_handles: Optional[Sequence[int]] = None,
    ) -> None:
        t = self._clock()
        s = self._s
        self._ka(_K_IMPORT_CALL)
        self._ta(t)
        self._fa(
            (
                call_id,
                inst_id,
                s(import_name),
                tuple(stack),
                self._v(args),
                tuple([s(x) for x in taint_tokens]),
                tuple(lineage_roots),
                None if lineage_handles is None else tuple(lineage_handles),
            )
        )
        if t >= self._check_at:
            self._tick()

    # The *_summarized variants take values already summarized (and the
    # stack as a tuple, taint as strings): the observer summarizes through
    # plans compiled per function type (runtime/valueplan.py), with the same
    # result as summarize().

    def import_call_summarized(self, call_id: int, inst_id: int, import_name: str, stack: tuple, args: Any,
                               taint_tokens: Sequence[str], lineage_roots: Sequence[int]) -> None:
        t = self._clock()
        s = self._s
        self._ka(_K_IMPORT_CALL)
        self._ta(t)
        self._fa((call_id, inst_id, s(import_name), stack, args,
                  tuple([s(x) for x in taint_tokens]) if taint_tokens else (),
                  tuple(lineage_roots) if lineage_roots else (), None))
        if t >= self._check_at:
            self._tick()

    def import_return_summarized(self, call_id: int, result: Any) -> None:
        t = self._clock()
        self._ka(_K_IMPORT_RETURN)
        self._ta(t)
        self._fa((call_id, result))
        if t >= self._check_at:
            self._tick()

    def task_return_summarized(self, task_id: int, value: Any) -> None:
        t = self._clock()
        self._ka(_K_TASK_RETURN)
        self._ta(t)
        self._fa((task_id, value))
        if t >= self._check_at:
            self._tick()

    def import_return(self, call_id: int, result: Any = None) -> None:
        t = self._clock()
        self._ka(_K_IMPORT_RETURN)
        self._ta(t)
        self._fa((call_id, result if result.__class__ is int else self._v(result)))
        if t >= self._check_at:
            self._tick()

    def handle_new(self, kind: str, inst_id: int, handle: int, root_task_id: Optional[int]) -> None:
        t = self._clock()
        self._ka(_K_HANDLE_NEW)
        self._ta(t)
        self._fa((self._s(kind), inst_id, handle, root_task_id))
        if t >= self._check_at:
            self._tick()

    def taint_plant(self, task_id: int, token: str) -> None:
        t = self._clock()
        self._ka(_K_TAINT)
        self._ta(t)
        self._fa((task_id, self._s(token)))
        if t >= self._check_at:
            self._tick()

    def trap(self, task_id: Optional[int], message: str) -> None:
        t = self._clock()
        self._ka(_K_TRAP)
        self._ta(t)
        self._fa((task_id, str(message)))
        self.flush()  # a trap often ends the run: get it to disk now

    def deadlock(self, message: str) -> None:
        t = self._clock()
        self._ka(_K_DEADLOCK)
        self._ta(t)
        self._fa((str(message),))
        self.flush()

    def note(self, text: str) -> None:
        t = self._clock()
        self._ka(_K_NOTE)
        self._ta(t)
        self._fa((str(text),))
        if t >= self._check_at:
            self._tick()


class NullRecorder:
    """Same methods as :class:`Recorder`, doing nothing (recording off)."""

    events_written = 0

    def _nop(self, *args, **kwargs) -> None:
        return None

    def __getattr__(self, name: str):
        if hasattr(Recorder, name) and not name.startswith("_"):
            return self._nop
        raise AttributeError(name)

    def __enter__(self) -> "NullRecorder":
        return self

    def __exit__(self, *exc) -> None:
        pass

"""The trace writer: an observer the runtime calls on every transition.

Every method records one event ``(kind_id, time, fields)`` in the sink
(trace/sink.py: packed to msgpack at once, in C when the extension is
built); nothing else happens on the hot path but two comparisons. The buffer
becomes a chunk (docs/trace-format.md) when it is full, when 100 ms of real
time have passed since the last flush (checked when the next event arrives), when the
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

import functools
import hashlib
import os
import stat
import struct
import tempfile
import sys
import time
import zlib
from typing import Any, Callable, Optional, Sequence

import msgpack

from . import format as F
from .sink import CSink, PySink, Sink

_SINK_IS_C = CSink is not None
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
_K_TAINT_RETIRE = K["taint.retire"]
_K_TRAP = K["trap"]
_K_DEADLOCK = K["deadlock"]
_K_NOTE = K["note"]
_K_ORACLE_VERDICT = K["oracle.verdict"]
_K_ORACLE_END = K["oracle.end"]
_K_COPY = {kind: {op: K[f"{kind}.{op}"] for op in F.COPY_OPS} for kind in ("stream", "future")}


@functools.lru_cache(maxsize=None)
def _version(dist: str) -> Optional[str]:
    """The installed version of ``dist`` (None when unknown), looked up
    once a process: importlib.metadata scans the installed distributions,
    ~0.16 ms a name, which every Recorder paid twice for its header (the
    whole of what recording added to a one-request demo run)."""
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


def _create(path) -> Any:
    """``path`` opened for writing as a new, empty file. A regular file there
    is unlinked rather than truncated: ext4 (auto_da_alloc) writes a file
    that was truncated to zero out to disk when it is closed, which cost
    0.1-0.2 ms at the end of every run that replaced a trace (and a trace
    hard-linked elsewhere keeps its contents). Anything else (a symlink, a
    device, a FIFO, a file we may not write or unlink) is opened as it is:
    a read-only trace stays protected."""
    try:
        regular = stat.S_ISREG(os.lstat(path).st_mode) and os.access(path, os.W_OK)
    except OSError:
        regular = False
    if regular:
        try:
            os.unlink(path)
            return open(path, "xb", buffering=0)
        except (FileExistsError, PermissionError):
            pass
    return open(path, "wb", buffering=0)


def _replace(src: str, dst: str) -> None:
    """``os.replace(src, dst)``, with an empty regular file at ``dst``
    (``mktemp``'s, a placeholder: nothing in it to keep) removed first: ext4
    (auto_da_alloc) writes out the new file in the rename that replaces an
    existing one, ~0.05-0.1 ms at the end of a run; what that protects after
    a crash is the old file's contents, and an empty file has none. A
    non-empty file is replaced in one step, as before."""
    try:
        st = os.lstat(dst)
        if stat.S_ISREG(st.st_mode) and st.st_size == 0:
            os.unlink(dst)
    except OSError:
        pass
    os.replace(src, dst)


from ..redact import redact_argv  # noqa: E402
from ..outfile import OutputError, PARTIAL_SUFFIX, check_output, partial_path  # noqa: E402,F401


class Recorder:
    """Writes a trace. ``out`` is a path or a binary file object.

    ``clock()`` gives each event's time in int nanoseconds: pass the runtime's
    simulated clock, else real monotonic time is used; with ``clock_attr``,
    ``clock`` is an object and the time its attribute (the store's
    ``now_ns``: read from C with no Python call). ``flush_clock()`` is the
    real clock used for the 100 ms flush rule (tests pass a fake one; by
    default the sink reads CLOCK_MONOTONIC itself after each event, in C a
    few tens of ns: no timer thread). ``sink`` chooses the event buffer's
    class (trace/sink.py: the C one when built). ``intern_cap``: the string
    table's lookup holds about this many strings (checked at each chunk; see
    ``_forget_strings``), so a long recording of unique strings (serve's
    request labels and tokens) keeps only the table itself, which the footer
    needs.
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
        clock_attr: Optional[str] = None,
        sink: Optional[type] = None,
        chunk_events: int = 16384,
        flush_interval_ns: int = 100_000_000,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_items: int = DEFAULT_MAX_ITEMS,
        max_str: int = DEFAULT_MAX_STR,
        max_depth: int = DEFAULT_MAX_DEPTH,
        extra: Optional[dict] = None,
        partial: bool = False,
        intern_cap: int = 4096,
    ):
        # partial: a path is written as NAME.partial beside it (partial_path)
        # and renamed into place by close(); discard() removes it instead.
        # Anything already at the path stays untouched until then (a
        # symlink: the file it points to is replaced, the link stays; not a
        # regular file, e.g. /dev/null or a FIFO: written directly).
        self._final: Optional[str] = None
        self._partial: Optional[str] = None
        if isinstance(out, (str, bytes, os.PathLike)):
            target = os.fsdecode(out)
            try:
                st = os.stat(target)
            except OSError:
                st = None
            if partial and (st is None or stat.S_ISREG(st.st_mode)):
                self._final = os.path.realpath(target)
                self._partial = partial_path(target)
                self._file = open(self._partial, "xb", buffering=0)
                self._mode = stat.S_IMODE(st.st_mode) if st is not None else None
            else:
                self._file = _create(out)
            self._owns = True
        else:
            self._file = out
            self._owns = False
        self._flush_clock = flush_clock or time.monotonic_ns
        if clock is not None and clock_attr is not None:
            sink_clock = clock  # (the sink reads the attribute itself)
            clock = functools.partial(getattr, clock, clock_attr)
        else:
            clock_attr = None
            clock = sink_clock = clock or self._flush_clock
        self._clock = clock
        self._chunk_events = chunk_events
        self._flush_ns = flush_interval_ns
        self._limits = (max_bytes, max_items, max_str, max_depth)
        # the buffer (trace/sink.py): events packed as they come (in C when
        # the extension is built), until a flush takes them as one chunk
        self._sink = (sink or Sink)(sink_clock, self._tick, self._fallback, _ExtType, chunk_events, clock_attr,
                                    _K_THREAD_SWITCH, _EXT_STR, flush_clock)
        self._emit = self._sink.emit
        # thread.switch: X -> loop immediately followed by loop -> Y is one
        # X -> Y (docs/trace-format.md); the sink merges them
        self.thread_switch = self._sink.switch
        # the string table (kept by the sink): str -> reference, in id order,
        # added since the last chunk
        self._s = self._sink.intern
        self._string_list = self._sink.string_list
        self._pending = self._sink.pending
        self._pending_sid0 = 0
        # the string table's lookup (str -> reference) is a cache of at most
        # about intern_cap strings (see _forget_strings); the table itself
        # (string_list, for the footer) keeps every string
        self._intern_cap = max(1, intern_cap)
        # strings already in a chunk leave memory for a spill file (an
        # unlinked temporary file, msgpack strings one after another) once
        # more than SPILL_STRINGS wait; the footer's table is then streamed
        # from it (_spill_strings, close). The lookup's kept head (ids below
        # _intern_keep) is copied first: _forget_strings keeps it.
        self._head: Optional[list] = None
        self._spill = None
        self._intern_keep = -1  # ids below this stay in the lookup (set at the first chunk)
        self._lock = __import__("threading").Lock()  # flush() from the flush timer's thread too
        self._timer = None
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
            # (secrets in it redacted: callscope/redact.py)
            "argv": redact_argv(argv if argv is not None else sys.argv),
            "start_time_ns": now_wall,
            "start_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_wall / 1e9)),
            "clock": "monotonic" if clock is self._flush_clock else "simulated",
            "kinds": [[k, list(fs)] for k, fs in F.KINDS],
            "summary_limits": {"max_bytes": max_bytes, "max_items": max_items, "max_str": max_str, "max_depth": max_depth},
        }
        if extra:
            header["extra"] = extra
        self._offset = 0
        self._write_all(F.MAGIC)
        self._write_all(self._frame(F.TAG_HEADER, msgpack.packb(header, use_bin_type=True)))
        self._last_flush = self._flush_clock()
        self._sink.flush_at = self._last_flush + self._flush_ns

    # ------------------------------------------------------------------ io

    @staticmethod
    def _frame(tag: bytes, payload: bytes) -> bytes:
        return _pack_frame(tag, len(payload), zlib.crc32(payload)) + payload

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

    def _write_parts(self, parts) -> None:
        """``_write_all`` of the parts joined: in one writev to a file we
        opened (the last chunk, often most of a short run's trace, is not
        copied into a joined buffer first)."""
        total = sum(len(p) for p in parts)
        if not self._owns or not hasattr(os, "writev"):
            self._write_all(b"".join(parts))
            return
        n = os.writev(self._file.fileno(), parts)
        if n < total:  # (a short write: the rest as _write_all writes)
            self._offset += n
            self._write_all(b"".join(parts)[n:])
        else:
            self._offset += total

    def _tick(self) -> None:
        """The sink's call when a chunk may be due: full, or 100 ms of real
        time since the last flush."""
        if len(self._sink) >= self._chunk_events or self._flush_clock() - self._last_flush >= self._flush_ns:
            self.flush()

    def flush(self) -> None:
        """Write the buffered events as one chunk (no-op when empty). Call it
        when the runtime goes idle so that nothing waits in memory."""
        with self._lock:
            if self._closed:
                return
            if self.limit_hit is not None:  # (recording stopped: events after it are dropped)
                self._sink.take()
                return
            frame = self._chunk_frame(self._offset)
            if frame is not None:
                self._write_all(frame)
                if self._max_events or self._max_bytes:
                    self._check_limits()

    def set_limits(self, max_events: int = 0, max_bytes: int = 0,
                   on_limit: Optional[Callable[[str], Any]] = None) -> None:
        """Stop recording once the trace holds ``max_events`` events or
        ``max_bytes`` bytes (0: no limit), checked at each chunk: a note says
        which limit, later events are dropped, ``on_limit(message)`` is called
        (the run stops the guest) and ``close()`` still writes a complete
        trace. ``limit_hit`` is the message then."""
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._on_limit = on_limit

    limit_hit: Optional[str] = None
    _max_events = 0
    _max_bytes = 0
    _on_limit = None

    def _check_limits(self) -> None:
        if self.limit_hit is not None:
            return
        msg = None
        if self._max_events and self._n >= self._max_events:
            msg = f"the trace reached --max-events {self._max_events} ({self._n} events)"
        elif self._max_bytes and self._offset >= self._max_bytes:
            msg = f"the trace reached --max-trace-size {self._max_bytes} bytes ({self._offset} bytes)"
        if msg is None:
            return
        self.limit_hit = msg
        self._sink.take()  # (whatever came meanwhile is dropped with what follows)
        self._emit(_K_NOTE, f"limit: recording stopped: {msg}")
        frame = self._chunk_frame(self._offset)
        if frame is not None:
            self._write_all(frame)
        if self._on_limit is not None:
            self._on_limit(msg)

    def start_flush_timer(self) -> None:
        """Keep the 100 ms rule while no event arrives (a guest spinning in
        wasm, the loop blocked): a daemon thread flushes what has waited
        ``flush_interval_ns``. With the C sink (its every operation is one
        call under the GIL) or the Python one (its buffer changes under its
        own lock); not with a sink of another class."""
        if self._timer is not None or not ((_SINK_IS_C and self._sink.__class__ is CSink)
                                           or self._sink.__class__ is PySink):
            return
        import _thread
        import threading
        import weakref

        stop = threading.Event()
        # The thread is started with _thread, not threading.Thread, whose
        # start() waits until the new thread has run (it must get the GIL):
        # ~1 ms on a busy machine, which every recorded `callscope run` paid
        # (most of what recording added to a one-request run)
        period = self._flush_ns / 1e9

        # The thread holds the recorder only while it looks at it: close()
        # does not wait for the thread, which returns when it next gets the
        # GIL, and a reference held while it waits kept a finished run's
        # recorder, store and observer alive until then (under load, past
        # the run's end: tests/test_run.py, tests/test_gc_cycles.py)
        ref = weakref.ref(self)

        def run():
            while not stop.wait(period / 2):
                rec = ref()
                if rec is None or rec._closed:
                    return
                if len(rec._sink) and rec._flush_clock() - rec._last_flush >= rec._flush_ns:
                    try:
                        rec.flush()
                    except Exception:  # (the main thread's next write reports it)
                        return
                rec = None

        _thread.start_new_thread(run, ())
        self._timer = (stop,)

    def _stop_timer(self) -> None:
        """Tell the flush timer's thread to return. It is not waited for
        (a join cost ~0.1 ms at every close: the thread must wake and get
        the GIL first): close() and discard() end the recording under the
        lock flush() takes, and flush() does nothing once it is closed."""
        t = self._timer
        if t is not None:
            self._timer = None
            t[0].set()

    def _chunk_frame(self, off: int) -> Optional[bytes]:
        """The buffered events as a chunk frame to be written at ``off`` (the
        index and string table updated as if it were), or None when none."""
        self._last_flush = self._flush_clock()
        self._sink.flush_at = self._last_flush + self._flush_ns
        # the frame made by the sink in one buffer (trace/sink.py): its meta
        # names the first k pending strings, the ones added so far (with the
        # flush timer another thread may intern more meanwhile; they stay
        # pending for the next chunk)
        taken = self._sink.take_frame(F.TAG_CHUNK, self._n, self._pending_sid0, zlib.crc32)
        if taken is None:
            return None
        count, t0, t1, k, frame = taken
        self._chunks.append([off, self._n, count, t0, t1])
        self._n += count
        del self._pending[:k]
        self._pending_sid0 += k
        if self._intern_keep < 0:
            self._intern_keep = max(len(F.KIND_NAMES), min(self._pending_sid0, self._intern_cap // 2))
        elif len(self._sink.strings) > self._intern_cap:
            self._forget_strings()
        if self._pending_sid0 - self._sink.string_base > self.SPILL_STRINGS:
            self._spill_strings()
        return frame

    SPILL_STRINGS = 8192  # strings kept in memory before they go to the spill file

    def _spill_strings(self) -> None:
        """Move the strings already written in chunks (ids below
        ``_pending_sid0``) to the spill file and let the sink drop them
        (``drop_strings``: its next id is ``string_base`` plus the list's
        length), so a recording of many unique strings (serve: a label and
        a token a request) keeps none of them in memory."""
        if self._spill is None:
            try:
                self._spill = tempfile.TemporaryFile(prefix="callscope-strings-")
            except OSError:  # (no temporary directory: they stay in memory)
                self.SPILL_STRINGS = 1 << 62
                return
            self._head = self._string_list[:max(self._intern_keep, 0)]
        sink = self._sink
        k = self._pending_sid0 - sink.string_base
        table = sink.string_list
        pack = self._packer.pack
        self._spill.write(b"".join([pack(x) for x in table[:k]]))
        sink.drop_strings(k)  # (another thread only appends: the first k are the ones written)

    def _forget_strings(self) -> None:
        """Bound the string table's lookup (a chunk was just framed): every
        string in it is forgotten by the lookup, not by the table, but the
        kind names and the first chunk's strings (ids below
        ``_intern_keep``, at most half the cap: the guest's function and
        import names as a run starts). A forgotten string used again is
        interned again under a new id, defined in the chunk that uses it,
        as any new string is: the format
        maps ids to strings and never asks that a string have one id, so
        readers see the same events. What it costs: a string used again after
        ``intern_cap`` others is stored once more in the trace (a few per
        cycle: import names live in the C core's callee cache); what it saves:
        serve interns a label and a token per request, used once or twice,
        whose references and lookup entries (~170 bytes each) were kept for
        the whole recording."""
        strings = self._sink.strings
        table = self._head if self._head is not None else self._string_list  # (spilled: the copy of the head)
        kept = [(x, strings[x]) for x in table[:self._intern_keep] if x in strings]
        # (another thread may intern meanwhile: what it adds is forgotten too,
        # or kept; either way every reference handed out stays defined)
        strings.clear()  # (not pop one by one: a dict never shrinks on deletion)
        strings.update(kept)

    def _write_footer_spilled(self, last: bytes, off: int) -> None:
        """The footer as msgpack.packb would make it (the same bytes), its
        string table read from the spill file in blocks (the ids below the
        sink's ``string_base``), then the rest from the list."""
        table = self._sink.string_list
        p = msgpack.Packer(use_bin_type=True)
        head = (p.pack_map_header(4) + p.pack("events") + p.pack(self._n) + p.pack("chunks")
                + p.pack(self._chunks) + p.pack("strings") + p.pack_array_header(self._sink.string_base + len(table)))
        tail = (b"".join([p.pack(x) for x in table])
                + p.pack("end_time_ns") + p.pack(time.time_ns()))
        spill = self._spill
        spill.flush()
        size = spill.seek(0, os.SEEK_END)
        crc = zlib.crc32(head)
        spill.seek(0)
        for block in iter(lambda: spill.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
        crc = zlib.crc32(tail, crc)
        self._write_all(last + _pack_frame(F.TAG_FOOTER, len(head) + size + len(tail), crc) + head)
        spill.seek(0)
        for block in iter(lambda: spill.read(1 << 20), b""):
            self._write_all(block)
        self._write_all(tail + struct.pack(F.TRAILER, off, F.TRAILER_MAGIC))
        spill.close()
        self._spill = None

    def close(self) -> None:
        """Flush, write the footer index and trailer, close a file we opened."""
        if self._closed:
            return
        self._stop_timer()
        with self._lock:  # (a flush by the timer's thread finishes first; later ones find it closed)
            self._close()

    def _close(self) -> None:
        if self._closed:
            return
        if self.limit_hit is not None:
            self._sink.take()  # (dropped: recording stopped at the limit)
        # the last chunk, the footer and the trailer in one write (with
        # spilled strings: the footer's table streamed from the spill file)
        last = self._chunk_frame(self._offset) or b""
        off = self._offset + len(last)
        if self._spill is None:
            footer = {
                "events": self._n,
                "chunks": self._chunks,
                "strings": self._string_list,
                "end_time_ns": time.time_ns(),
            }
            self._write_parts((last, self._frame(F.TAG_FOOTER, msgpack.packb(footer, use_bin_type=True)),
                               struct.pack(F.TRAILER, off, F.TRAILER_MAGIC)))
        else:
            self._write_footer_spilled(last, off)
        self._closed = True
        if self._owns:
            self._file.close()
        if self._partial is not None:  # complete: now it replaces what was there
            if self._mode is not None:
                try:
                    os.chmod(self._partial, self._mode)
                except OSError:
                    pass
            _replace(self._partial, self._final)
            self._partial = None

    def discard(self) -> None:
        """Stop and leave nothing: the partial file is removed and whatever
        was at the path stays as it was (without ``partial``: the file is
        closed and removed, as before)."""
        self._stop_timer()
        with self._lock:  # (as in close: no flush of the timer's thread meanwhile, none after)
            if not self._closed:
                self._closed = True
                if self._owns:
                    self._file.close()
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        target = self._partial
        self._partial = None
        if target is not None:
            try:
                os.unlink(target)
            except OSError:
                pass

    @property
    def path(self) -> Optional[str]:
        """Where the trace is being written now (the partial file while it is)."""
        return self._partial or self._final

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def events_written(self) -> int:
        """Events recorded so far (flushed or buffered)."""
        return self._n + len(self._sink)

    # ------------------------------------------------------------ helpers

    def _s(self, s: Optional[str]) -> Any:
        """The string-table reference for ``s`` (None stays None): the sink's
        ``intern``, bound over this in __init__."""
        return self._sink.intern(s)

    def _fallback(self, value: Any) -> Any:
        """A value msgpack cannot hold (an int beyond 64 bits, an object of
        another class), summarized: the sink packs this instead."""
        return summarize(value, *self._limits)

    def _v(self, value: Any) -> Any:
        t = type(value)
        if value is None or t is bool or (t is int and -(1 << 63) <= value < (1 << 64)):
            return value
        return self._fallback(value)

    # ------------------------------------------------------------- events
    # Each: one self._emit(kind, *fields) (the sink reads the clock, packs, maybe ticks).

    def instance_new(self, inst_id: int, name: Optional[str], parent_id: Optional[int] = None) -> None:
        self._emit(_K_INSTANCE_NEW, inst_id, self._s(name), parent_id)

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
        self._emit(_K_TASK_NEW, task_id, inst_id, self._s(func_name), caller_task_id, root_task_id, self._s(label), bool(sync))

    def task_start(self, task_id: int) -> None:
        self._emit(_K_TASK_START, task_id)

    def task_return(self, task_id: int, value: Any = None) -> None:
        self._emit(_K_TASK_RETURN, task_id, value if value.__class__ is int else self._v(value))

    def task_cancel(self, task_id: int) -> None:
        self._emit(_K_TASK_CANCEL, task_id)

    def task_exit(self, task_id: int) -> None:
        self._emit(_K_TASK_EXIT, task_id)

    def task_resolved(self, task_id: int) -> None:
        self._emit(_K_TASK_RESOLVED, task_id)

    def subtask_state(self, task_id: int, subtask_handle: Optional[int], state: Any) -> None:
        if type(state) is not int:
            state = F.SUBTASK_STATE_ID[state]
        self._emit(_K_SUBTASK_STATE, task_id, subtask_handle, state)

    def subtask_cancel(self, task_id: int, subtask_handle: Optional[int]) -> None:
        self._emit(_K_SUBTASK_CANCEL, task_id, subtask_handle)

    def subtask_drop(self, task_id: int, subtask_handle: Optional[int]) -> None:
        self._emit(_K_SUBTASK_DROP, task_id, subtask_handle)

    def backpressure(self, inst_id: int, value: int, op: str) -> None:
        self._emit(_K_BACKPRESSURE[op], inst_id, value)

    def call_queued(self, task_id: int) -> None:
        self._emit(_K_CALL_QUEUED, task_id)

    def call_admitted(self, task_id: int) -> None:
        self._emit(_K_CALL_ADMITTED, task_id)

    def waitable_set_new(self, inst_id: int, set_handle: int) -> None:
        self._emit(_K_WS_NEW, inst_id, set_handle)

    def waitable_set_drop(self, inst_id: int, set_handle: int) -> None:
        self._emit(_K_WS_DROP, inst_id, set_handle)

    def waitable_join(self, inst_id: int, waitable_handle: int, set_handle: int) -> None:
        """``set_handle`` 0 removes the waitable from its set."""
        self._emit(_K_W_JOIN, inst_id, waitable_handle, set_handle)

    def waitable_set_wait(self, thread_id: int, set_handle: int) -> None:
        self._emit(_K_WS_WAIT, thread_id, set_handle)

    def waitable_set_poll(self, thread_id: int, set_handle: int) -> None:
        self._emit(_K_WS_POLL, thread_id, set_handle)

    def event_delivered(self, thread_id: int, code: int, handle: int, payload: Any = None) -> None:
        self._emit(_K_EVENT, thread_id, code, handle, payload if payload.__class__ is int else self._v(payload))

    def copy(self, kind: str, op: str, handle: int, size: Optional[int] = None, result: Any = None, inst_id: Optional[int] = None) -> None:
        if result.__class__ is not int and result is not None:
            result = self._v(result)
        self._emit(_K_COPY[kind][op], handle, size, result, inst_id)

    def thread_switch(self, from_thread: Optional[int], to_thread: Optional[int]) -> None:
        """A switch X -> loop (None) immediately followed by loop -> Y, with
        nothing recorded in between, is one event X -> Y (docs/trace-format.md,
        ``thread.switch``): the X -> loop event, still the buffer's last,
        becomes X -> Y in place (its time stays X's). Nothing else pays for
        it: any other event appends a new last field tuple, and a flush
        empties the buffer, so the identity test below fails after either."""
        self._sink.switch(from_thread, to_thread)  # (bound as self.thread_switch in __init__)

    def thread_new(self, thread_id: int, task_id: Optional[int]) -> None:
        self._emit(_K_THREAD_NEW, thread_id, task_id)

    def thread_set_task(self, thread_id: int, from_task: int, to_task: int) -> None:
        self._emit(K["thread.set-task"], thread_id, from_task, to_task)

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
        s = self._s
        self._emit(_K_IMPORT_CALL, call_id, inst_id, s(import_name), tuple(stack), self._v(args),
                   tuple([s(x) for x in taint_tokens]), tuple(lineage_roots),
                   None if lineage_handles is None else tuple(lineage_handles))

    def import_return(self, call_id: int, result: Any = None) -> None:
        self._emit(_K_IMPORT_RETURN, call_id, result if result.__class__ is int else self._v(result))

    def handle_new(self, kind: str, inst_id: int, handle: int, root_task_id: Optional[int]) -> None:
        self._emit(_K_HANDLE_NEW, self._s(kind), inst_id, handle, root_task_id)

    def taint_plant(self, task_id: int, token: str) -> None:
        self._emit(_K_TAINT, task_id, self._s(token))

    def taint_retire(self, task_id: int) -> None:
        self._emit(_K_TAINT_RETIRE, task_id)

    def trap(self, task_id: Optional[int], message: str) -> None:
        self._emit(_K_TRAP, task_id, str(message))
        self.flush()  # a trap often ends the run: get it to disk now

    def deadlock(self, message: str) -> None:
        self._emit(_K_DEADLOCK, str(message))
        self.flush()

    def note(self, text: str) -> None:
        self._emit(_K_NOTE, str(text))

    def oracle_verdict(self, call_id: int, verdict: str, roots: list, serial_calls: int) -> None:
        """The behavioural oracle's verdict on import call ``call_id``
        (docs/verdicts.md): ``roots`` the root task ids that explain it."""
        self._emit(_K_ORACLE_VERDICT, call_id, self._s(verdict), [int(r) for r in roots], int(serial_calls))

    def oracle_end(self, status: str, serial_imports: int, matched: int, unmatched: int) -> None:
        self._emit(_K_ORACLE_END, self._s(status), int(serial_imports), int(matched), int(unmatched))


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

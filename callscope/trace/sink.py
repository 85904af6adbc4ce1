"""The trace writer's event buffer: one chunk's events until a flush.

``Sink`` is the C one (``callscope/trace/_sink.c``, built by ``pip install``)
when it was built, else ``PySink``, the same in Python. Both give the same
bytes (tests/test_sink.py).

    sink = Sink(clock, on_tick, fallback, ext_type, chunk_events=16384,
                clock_attr=None, switch_kind=-1)

- ``clock()`` gives an event's time in int ns (or, with ``clock_attr``, the
  time is ``getattr(clock, clock_attr)``: ``clock`` is then any object);
- ``on_tick()`` is called after an event whose time is at least
  ``sink.check_at``, or that makes ``chunk_events`` events, or when the real
  clock (``flush_clock()``, else CLOCK_MONOTONIC) has reached
  ``sink.flush_at``;
- ``fallback(value)`` turns a value msgpack cannot hold into one it can;
- ``ext_type`` is ``msgpack.ExtType`` (the trace's string references).

``sink.emit(kind, *fields)`` records an event; ``sink.emitter(kind, nargs,
fields, then=None)`` gives a callable of ``nargs`` arguments that records
one, each field given as ``i`` (argument i), ``(i, "a.b")`` (its attribute
path; None when a step is None; "" for the argument itself) or ``(i, "a.b",
mode)``, mode one of ``"scalar"`` (as it is when None/bool/int, else
``fallback(value)``), ``"intern"`` (its string reference; None and "" give
None), ``"not"`` (``not value``); ``then=(f, i, "a.b")`` calls
``f(argument i)`` after the event when that path's value is true.
``sink.switch(a, b)`` records a
``thread.switch``, merging X -> loop, loop -> Y into X -> Y; ``sink.take()``
returns ``None`` or ``(count, first time, last time, body)`` and empties it;
``sink.take_frame(tag, n, sid0, crc32)`` the same as a whole chunk frame
(the recorder's: one buffer, no copies of the body).

The sink keeps the trace's string table too: ``sink.intern(s)`` gives the
reference (an ``ext_type`` of code ``ext_code``) to ``s``, adding it to
``sink.strings`` (str -> reference), ``sink.string_list`` (id order) and
``sink.pending`` (added since the last chunk; the recorder clears it).

Both pack an event when it is recorded (the Python one with msgpack's
Packer, one call an event): a value that cannot be recorded raises there and
leaves the sink as it was, and a value changed later is recorded as it was.
"""

from __future__ import annotations

import functools
import threading
import time
from operator import sub as _sub
from typing import Any, Callable, Optional

import msgpack

LLONG_MAX = (1 << 63) - 1


_NO_LOOP = object()  # (_add: not a switch to the loop)


class PySink:
    def __init__(self, clock: Any, on_tick: Optional[Callable[[], Any]], fallback: Callable[[Any], Any],
                 ext_type: type, chunk_events: int = 16384, clock_attr: Optional[str] = None,
                 switch_kind: int = -1, ext_code: int = 1, flush_clock: Optional[Callable[[], int]] = None):
        if clock_attr is not None:
            clock = functools.partial(getattr, clock, clock_attr)
        self._clock = clock
        self._on_tick = on_tick
        self._fallback = fallback
        self._ext = ext_type
        self.chunk_events = max(1, chunk_events)
        self.check_at = LLONG_MAX
        self.flush_at = LLONG_MAX
        self._flush_clock = flush_clock or time.monotonic_ns
        self._switch_kind = switch_kind
        self._kinds = bytearray()
        self._times: list = []
        self._fields = bytearray()  # the events' field arrays, packed
        self._pack = msgpack.Packer(use_bin_type=True).pack
        self._to_loop = None  # (the count right after it, where its fields start, X) of the last X -> loop
        self._packer = msgpack.Packer(use_bin_type=True)
        self._ext_code = ext_code
        self.strings: dict = {}
        self.string_list: list = []  # from id string_base on
        self.string_base = 0
        self.pending: list = []
        # the recorder's flush timer takes chunks from another thread: every
        # change of the buffer is made under this lock (never held while
        # on_tick runs, which takes the recorder's own lock)
        self._lock = threading.Lock()

    def intern(self, s: Any) -> Any:
        if s is None:
            return None
        r = self.strings.get(s)
        if r is None and s.__class__ is not str:
            s = str(s)
            r = self.strings.get(s)  # (5 and "5" are one string)
        if r is not None:
            return r
        with self._lock:
            return self._intern_new(s)

    def _intern_new(self, s: Any) -> Any:
        r = self.strings.get(s)
        if r is None:
            s = str(s)
            sid = self.string_base + len(self.string_list)
            data = sid.to_bytes(1 if sid < 0x100 else 2 if sid < 0x10000 else 4, "big")
            # (made without ExtType's argument checks: they cost more than
            # the rest of interning a new string)
            r = self.strings[s] = tuple.__new__(self._ext, (self._ext_code, data))
            self.string_list.append(s)
            self.pending.append(s)
        return r

    def drop_strings(self, k: int) -> None:
        """string_list's first ``k`` strings dropped, ``string_base`` moved
        past them, in one step (another thread may intern meanwhile)."""
        with self._lock:
            if not 0 <= k <= len(self.string_list):
                raise ValueError("drop_strings: k out of range")
            del self.string_list[:k]
            self.string_base += k

    def __len__(self) -> int:
        return len(self._kinds)

    def _packed(self, fields: tuple) -> bytes:
        try:
            return self._pack(fields)
        except (OverflowError, TypeError, ValueError):
            # a value msgpack cannot hold (an int beyond 64 bits, another class)
            return self._pack(self._safe(fields))

    def emit(self, kind: int, *fields) -> None:
        t = self._clock()
        self._add(kind, t, self._packed(fields))  # (packed first: a failed event leaves no trace)

    def _add(self, kind: int, t: int, data: bytes, to_loop: Any = _NO_LOOP) -> None:
        """One event, its fields packed; then on_tick() when it is due.
        ``to_loop``: the thread of a switch to the loop, kept so that the next
        switch from the loop can merge with it."""
        with self._lock:
            if to_loop is not _NO_LOOP:
                self._to_loop = (len(self._kinds) + 1, len(self._fields), to_loop)
            self._kinds.append(kind)
            self._times.append(t)
            self._fields += data
            due = (t >= self.check_at or len(self._kinds) >= self.chunk_events or
                   (self.flush_at != LLONG_MAX and self._flush_clock() >= self.flush_at))
        if due and self._on_tick is not None:
            self._on_tick()

    def emitter(self, kind: int, nargs: int, fields: tuple, then: Optional[tuple] = None) -> Callable:
        if len(fields) > 16 or not 0 <= nargs <= 64:
            raise ValueError("at most 16 fields and 64 arguments")
        getters = [self._field(f, nargs, True) for f in fields]
        emit = self.emit
        test = None
        if then is not None:
            if not (isinstance(then, tuple) and len(then) == 3 and callable(then[0])):
                raise ValueError('then is (callable, i, "attr.path")')
            f_then, i_then = then[0], then[1]
            test = self._field(then[1:], nargs, False)

        def record(*args):
            if len(args) != nargs:
                raise TypeError(f"this event takes {nargs} positional arguments")
            emit(kind, *[g(args) for g in getters])
            if test is not None and test(args):
                f_then(args[i_then])
        return record

    def _field(self, spec: Any, nargs: int, allow_mode: bool) -> Callable:
        """``f(args) -> field value`` for one item of ``emitter``'s fields."""
        bad = ValueError('a field is i, (i, "attr.path") or (i, "attr.path", "scalar"|"intern"|"not"), '
                         "with 0 <= i < nargs and at most 4 steps")
        path: Any = None
        mode = None
        if isinstance(spec, tuple):
            if not 2 <= len(spec) <= (3 if allow_mode else 2):
                raise bad
            i, path = spec[0], spec[1]
            mode = spec[2] if len(spec) == 3 else None
        else:
            i = spec
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < nargs:
            raise bad
        if isinstance(spec, tuple) and len(spec) == 3 and mode not in ("scalar", "intern", "not"):
            raise bad
        if path is not None and not isinstance(path, str):
            raise bad
        steps: tuple = ()
        if path:
            steps = tuple(path.split("."))
            if len(steps) > 4 or not all(steps):
                raise bad

        def value(args):
            v = args[i]
            for name in steps:
                if v is None:
                    break
                v = getattr(v, name)
            return v
        if mode == "scalar":
            fallback = self._fallback
            return lambda args: (v if (v := value(args)) is None or isinstance(v, int) else fallback(v))
        if mode == "intern":
            intern = self.intern
            return lambda args: intern(v) if (v := value(args)) is not None and v != "" else None
        if mode == "not":
            return lambda args: not value(args)
        return value

    def switch(self, from_thread: Any, to_thread: Any) -> None:
        if self._switch_kind < 0:
            raise TypeError("switch(from_thread, to_thread), on a Sink made with switch_kind")
        if from_thread is None:
            with self._lock:
                last = self._to_loop
                if last is not None and last[0] == len(self._kinds):
                    data = self._packed((last[2], to_thread))
                    del self._fields[last[1]:]
                    self._fields += data
                    self._to_loop = None
                    return
        t = self._clock()
        data = self._packed((from_thread, to_thread))
        self._add(self._switch_kind, t, data, from_thread if to_thread is None else _NO_LOOP)

    def take(self) -> Optional[tuple]:
        with self._lock:
            return self._take()

    def _take(self) -> Optional[tuple]:
        kinds = self._kinds
        if not kinds:
            return None
        times = self._times
        count = len(kinds)
        deltas = list(map(_sub, times, [0] + times))  # the first delta is absolute
        p = self._packer
        body = b"".join((b"\x93", p.pack(bytes(kinds)), p.pack(deltas), p.pack_array_header(count), self._fields))
        r = (count, times[0], times[-1], body)
        kinds.clear()
        times.clear()
        self._fields.clear()
        self._to_loop = None
        return r

    def take_frame(self, tag: bytes, n: int, sid0: int, crc32: Callable) -> Optional[tuple]:
        """``None`` or ``(count, first time, last time, k, frame)``: the
        buffered events as one chunk frame (docs/trace-format.md: ``tag``,
        the payload's length and ``crc32``, then the payload: its meta's
        length, the meta ``[n, count, first time, last time, sid0, the first
        k pending strings]`` (all there are now), the body); empties it.
        The caller removes the first k pending strings."""
        with self._lock:
            taken = self._take()
            if taken is None:
                return None
            k = len(self.pending)
            strings = self.pending[:k]
        count, t0, t1, body = taken
        meta = self._packer.pack([n, count, t0, t1, sid0, strings])
        payload = b"".join((len(meta).to_bytes(4, "little"), meta, body))
        return (count, t0, t1, k,
                b"".join((tag, len(payload).to_bytes(4, "little"), crc32(payload).to_bytes(4, "little"), payload)))

    @staticmethod
    def _key(k: Any) -> Any:
        """A map key as msgpack packs it, hashable (a list becomes a tuple)."""
        return tuple(PySink._key(x) for x in k) if isinstance(k, list) else k

    def _safe(self, value: Any, depth: int = 0) -> Any:
        """``value`` as the C sink packs it: what msgpack cannot hold given
        to ``fallback`` (the slow path, after a failed pack)."""
        if value is None or value is True or value is False:
            return value
        if isinstance(value, int):
            if -(1 << 63) <= value < (1 << 64):
                return value
            return self._fallback(value)
        if isinstance(value, (float, bytes, bytearray)):
            return value
        if isinstance(value, str):
            try:
                value.encode("utf-8")
                return value
            except UnicodeEncodeError:
                return value.encode("utf-8", "replace").decode("utf-8")
        if isinstance(value, dict):
            return {self._key(self._safe(k, depth + 1)): self._safe(v, depth + 1) for k, v in value.items()}
        if isinstance(value, self._ext):
            return value
        if isinstance(value, (list, tuple)):
            return tuple([self._safe(v, depth + 1) for v in value])
        if isinstance(value, memoryview) and value.c_contiguous:
            return bytes(value)
        return self._fallback(value)


try:
    from ._sink import Core, Sink as CSink, Summarizer as CSummarizer
except ImportError:  # not built (no compiler when installed): the Python one
    CSink = CSummarizer = Core = None

Sink = CSink if CSink is not None else PySink
# CSummarizer: runtime/valueplan.py's bounded summaries in one C call (its
# Python closures are used without it); Core: the observer's import and
# task-return events in C (runtime/observe.py records them in Python without it)

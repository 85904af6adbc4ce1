"""The trace writer's event buffer: one chunk's events until a flush.

``Sink`` is the C one (``callscope/trace/_sink.c``, built by ``pip install``)
when it was built, else ``PySink``, the same in Python. Both give the same
bytes (tests/test_sink.py). The C sink packs each event into msgpack as it
arrives; the Python one keeps the events as tuples and packs them all at
``take()``.

    sink = Sink(clock, on_tick, fallback, ext_type, chunk_events=16384,
                clock_attr=None, switch_kind=-1)

- ``clock()`` gives an event's time in int ns (or, with ``clock_attr``, the
  time is ``getattr(clock, clock_attr)``: ``clock`` is then any object);
- ``on_tick()`` is called after an event whose time is at least
  ``sink.check_at``, or that makes ``chunk_events`` events;
- ``fallback(value)`` turns a value msgpack cannot hold into one it can;
- ``ext_type`` is ``msgpack.ExtType`` (the trace's string references).

``sink.emit(kind, *fields)`` records an event; ``sink.emitter(kind, spec)``
gives a callable that records one from its arguments (spec, per argument:
``None`` as it is, ``"name"`` its attribute, ``0`` skipped, ``1`` as it is
when None/bool/int, else ``fallback(arg)``); ``sink.switch(a, b)`` records a
``thread.switch``, merging X -> loop, loop -> Y into X -> Y; ``sink.take()``
returns ``None`` or ``(count, first time, last time, body)`` and empties it.

The sink keeps the trace's string table too: ``sink.intern(s)`` gives the
reference (an ``ext_type`` of code ``ext_code``) to ``s``, adding it to
``sink.strings`` (str -> reference), ``sink.string_list`` (id order) and
``sink.pending`` (added since the last chunk; the recorder clears it).
"""

from __future__ import annotations

import functools
from operator import sub as _sub
from typing import Any, Callable, Optional

import msgpack

LLONG_MAX = (1 << 63) - 1


class PySink:
    def __init__(self, clock: Any, on_tick: Optional[Callable[[], Any]], fallback: Callable[[Any], Any],
                 ext_type: type, chunk_events: int = 16384, clock_attr: Optional[str] = None,
                 switch_kind: int = -1, ext_code: int = 1):
        if clock_attr is not None:
            clock = functools.partial(getattr, clock, clock_attr)
        self._clock = clock
        self._on_tick = on_tick
        self._fallback = fallback
        self._ext = ext_type
        self.chunk_events = max(1, chunk_events)
        self.check_at = LLONG_MAX
        self._switch_kind = switch_kind
        self._kinds: list = []
        self._times: list = []
        self._fields: list = []
        self._ka = self._kinds.append
        self._ta = self._times.append
        self._fa = self._fields.append
        self._to_loop: Optional[tuple] = None
        self._packer = msgpack.Packer(use_bin_type=True)
        self._ext_code = ext_code
        self.strings: dict = {}
        self.string_list: list = []
        self.pending: list = []

    def intern(self, s: Any) -> Any:
        if s is None:
            return None
        r = self.strings.get(s)
        if r is None:
            s = str(s)
            sid = len(self.string_list)
            data = sid.to_bytes(1 if sid < 0x100 else 2 if sid < 0x10000 else 4, "big")
            # (made without ExtType's argument checks: they cost more than
            # the rest of interning a new string)
            r = self.strings[s] = tuple.__new__(self._ext, (self._ext_code, data))
            self.string_list.append(s)
            self.pending.append(s)
        return r

    def __len__(self) -> int:
        return len(self._kinds)

    def emit(self, kind: int, *fields) -> None:
        t = self._clock()
        self._ka(kind)
        self._ta(t)
        self._fa(fields)
        if (t >= self.check_at or len(self._kinds) >= self.chunk_events) and self._on_tick is not None:
            self._on_tick()

    def emitter(self, kind: int, spec: tuple) -> Callable:
        getters = []
        fallback = self._fallback
        for item in spec:
            if item is None:
                getters.append(lambda a: a)
            elif isinstance(item, str):
                getters.append(lambda a, name=item: getattr(a, name))
            elif item == 0 and item is not False:
                getters.append(None)
            elif item == 1 and item is not True:
                getters.append(lambda a: a if a is None or a.__class__ in (int, bool) or isinstance(a, int)
                               else fallback(a))
            else:
                raise ValueError("spec items: None, an attribute name, 0 or 1")
        n = len(spec)
        emit = self.emit

        def record(*args):
            if len(args) != n:
                raise TypeError(f"this event takes {n} positional arguments")
            emit(kind, *[g(a) for g, a in zip(getters, args) if g is not None])
        return record

    def switch(self, from_thread: Any, to_thread: Any) -> None:
        if self._switch_kind < 0:
            raise TypeError("switch(from_thread, to_thread), on a Sink made with switch_kind")
        fields = self._fields
        if from_thread is None and fields and fields[-1] is self._to_loop:
            fields[-1] = (fields[-1][0], to_thread)
            return
        t = self._clock()
        self._ka(self._switch_kind)
        self._ta(t)
        f = (from_thread, to_thread)
        if to_thread is None:
            self._to_loop = f
        self._fa(f)
        if (t >= self.check_at or len(self._kinds) >= self.chunk_events) and self._on_tick is not None:
            self._on_tick()

    def take(self) -> Optional[tuple]:
        kinds = self._kinds
        if not kinds:
            return None
        times = self._times
        deltas = list(map(_sub, times, [0] + times))  # the first delta is absolute
        try:
            body = self._packer.pack([bytes(kinds), deltas, self._fields])
        except (OverflowError, TypeError, ValueError):
            # a value msgpack cannot hold (an int beyond 64 bits, another class)
            self._packer.reset()
            body = self._packer.pack([bytes(kinds), deltas, [tuple(map(self._safe, f)) for f in self._fields]])
        r = (len(kinds), times[0], times[-1], body)
        kinds.clear()
        times.clear()
        self._fields.clear()
        self._to_loop = None
        return r

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
            return {self._safe(k, depth + 1): self._safe(v, depth + 1) for k, v in value.items()}
        if isinstance(value, self._ext):
            return value
        if isinstance(value, (list, tuple)):
            return [self._safe(v, depth + 1) for v in value]
        if isinstance(value, memoryview) and value.c_contiguous:
            return bytes(value)
        return self._fallback(value)


try:
    from ._sink import Sink as CSink
except ImportError:  # not built (no compiler when installed): the Python one
    CSink = None

Sink = CSink if CSink is not None else PySink

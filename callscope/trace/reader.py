"""The trace reader: streams events, seeks via the footer index, and reads a
truncated trace (writer killed: no footer) up to its last complete chunk.

Events come back as :class:`Event`, a 4-tuple ``(n, kind, time, fields)``:
``n`` the event number (0-based, in file order), ``kind`` its name
(``"task.new"``), ``time`` int nanoseconds, ``fields`` a tuple of the kind's
fields in the order docs/trace-format.md lists them. Fields are also readable
by name: ``ev.task``, ``ev.get("label")``, ``ev.asdict()``.
"""

from __future__ import annotations

import bisect
import mmap
import os
import struct
import zlib
from itertools import accumulate, count, islice, repeat
from typing import Any, Iterator, Optional

import msgpack

from . import format as F

_frame = struct.Struct(F.FRAME_HEADER)
_u32 = struct.Struct("<I")
_trailer = struct.Struct(F.TRAILER)
_tuple_new = tuple.__new__

# field names per kind; the reader adds kinds it finds in a trace header
FIELDS: dict[str, tuple[str, ...]] = dict(F.FIELDS)
_INDEX: dict[str, dict[str, int]] = {}


def _field_index(kind: str) -> dict[str, int]:
    d = _INDEX.get(kind)
    if d is None:
        d = _INDEX[kind] = {name: i for i, name in enumerate(FIELDS.get(kind, ()))}
    return d


class Event(tuple):
    """``(n, kind, time, fields)``; fields by name via attribute or :meth:`get`."""

    __slots__ = ()

    @property
    def n(self) -> int:
        return self[0]

    @property
    def kind(self) -> str:
        return self[1]

    @property
    def time(self) -> int:
        return self[2]

    @property
    def fields(self) -> tuple:
        return self[3]

    def get(self, name: str, default: Any = None) -> Any:
        i = _field_index(self[1]).get(name)
        if i is None or i >= len(self[3]):
            return default
        return self[3][i]

    def __getattr__(self, name: str) -> Any:
        i = _field_index(self[1]).get(name)
        if i is None or i >= len(self[3]):
            raise AttributeError(f"{self[1]} event has no field {name!r}")
        return self[3][i]

    def asdict(self) -> dict:
        d = {"n": self[0], "kind": self[1], "time": self[2]}
        names = FIELDS.get(self[1], ())
        for i, v in enumerate(self[3]):
            d[names[i] if i < len(names) else f"f{i}"] = v
        return d

    def __repr__(self) -> str:
        body = " ".join(f"{k}={v!r}" for k, v in self.asdict().items() if k not in ("n", "kind", "time"))
        return f"<Event #{self[0]} {self[1]} t={self[2]} {body}>"


def make_event(n: int, kind: str, time: int, fields: tuple) -> Event:
    """An :class:`Event` (for tests and synthetic traces)."""
    return _tuple_new(Event, (n, kind, time, tuple(fields)))


class TraceError(Exception):
    """The input is not a readable callscope trace. The message names the problem."""


class ChunkInfo(tuple):
    """``(offset, first_n, count, first_time, last_time)`` of one chunk."""

    __slots__ = ()
    offset = property(lambda s: s[0])
    first_n = property(lambda s: s[1])
    count = property(lambda s: s[2])
    first_time = property(lambda s: s[3])
    last_time = property(lambda s: s[4])


class TraceReader:
    """Opens a trace given as a path, bytes, or a binary file object.

    Attributes: ``header`` (dict), ``chunks`` (list of :class:`ChunkInfo`),
    ``event_count``, ``strings`` (the string table), ``truncated`` (bool) and
    ``truncation`` (why, or None), ``footer`` (dict or None).
    """

    def __init__(self, source: Any):
        self._mmap = None
        self._fileobj = None
        self.path = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._data = bytes(source)
        else:
            if isinstance(source, (str, os.PathLike)):
                self.path = os.fspath(source)
                try:
                    f = open(self.path, "rb")
                except FileNotFoundError:
                    raise TraceError(f"{self.path}: no such file") from None
                except IsADirectoryError:
                    raise TraceError(f"{self.path}: is a directory") from None
                except OSError as e:
                    raise TraceError(f"{self.path}: {e.strerror or e}") from None
                self._fileobj = f
            else:
                f = source
            try:
                size = os.fstat(f.fileno()).st_size
                self._mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
                self._data = self._mmap if self._mmap is not None else b""
            except (AttributeError, OSError, ValueError):
                f.seek(0)
                self._data = f.read()
        self._name = self.path or "trace"
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        self._cache_k = -1
        self._cache: Optional[tuple] = None

    # ---------------------------------------------------------------- open

    def _frame_at(self, off: int) -> Optional[tuple[bytes, bytes, int]]:
        """(tag, payload, next offset) of the frame at ``off``, or None when
        the frame is incomplete or its checksum is wrong."""
        data = self._data
        end = off + F.FRAME_HEADER_SIZE
        if end > len(data):
            return None
        tag, length, crc = _frame.unpack(data[off:end])
        if end + length > len(data):
            return None
        payload = data[end : end + length]
        if zlib.crc32(payload) != crc:
            return None
        return tag, payload, end + length

    def _open(self) -> None:
        data = self._data
        name = self._name
        if len(data) < len(F.MAGIC) or data[: len(F.MAGIC)] != F.MAGIC:
            raise TraceError(f"{name}: not a callscope trace (bad magic)")
        fr = self._frame_at(len(F.MAGIC))
        if fr is None or fr[0] != F.TAG_HEADER:
            raise TraceError(f"{name}: callscope trace with a damaged or incomplete header")
        try:
            header = msgpack.unpackb(fr[1], raw=False, strict_map_key=False)
        except Exception as e:
            raise TraceError(f"{name}: unreadable trace header ({e})") from None
        if not isinstance(header, dict) or header.get("format") != F.FORMAT_NAME:
            raise TraceError(f"{name}: not a callscope trace (header format {header.get('format') if isinstance(header, dict) else None!r})")
        ver = header.get("version") or [0, 0]
        if ver[0] != F.FORMAT_VERSION[0]:
            raise TraceError(
                f"{name}: trace format version {ver[0]}.{ver[1]} is not supported "
                f"(this callscope reads {F.FORMAT_VERSION[0]}.x)"
            )
        self.header = header
        self.kind_names = [k for k, _ in header.get("kinds", [])] or list(F.KIND_NAMES)
        for k, fs in header.get("kinds", []):
            if k not in FIELDS:
                FIELDS[k] = tuple(fs)
        self._body_start = fr[2]
        self.footer = None
        self.truncated = False
        self.truncation: Optional[str] = None
        if not self._read_footer():
            self._scan()

    def _read_footer(self) -> bool:
        data = self._data
        if len(data) < self._body_start + F.TRAILER_SIZE:
            return False
        off, magic = _trailer.unpack(data[len(data) - F.TRAILER_SIZE :])
        if magic != F.TRAILER_MAGIC or off < self._body_start:
            return False
        fr = self._frame_at(off)
        if fr is None or fr[0] != F.TAG_FOOTER:
            return False
        footer = msgpack.unpackb(fr[1], raw=False, strict_map_key=False)
        self.footer = footer
        self.chunks = [ChunkInfo(c) for c in footer["chunks"]]
        self.strings = list(footer["strings"])
        self.event_count = footer["events"]
        return True

    def _scan(self) -> None:
        """No usable footer: walk the chunks from the start."""
        self.chunks = []
        self.strings = []
        off = self._body_start
        n = 0
        data = self._data
        while True:
            fr = self._frame_at(off)
            if fr is None:
                rest = len(data) - off
                self.truncated = True
                self.truncation = (
                    f"no footer: writer did not close the trace; read {len(self.chunks)} complete "
                    f"chunk(s), {n} event(s)" + (f", ignored {rest} trailing byte(s)" if rest else "")
                )
                break
            tag, payload, nxt = fr
            if tag == F.TAG_FOOTER:  # footer present but trailer lost
                self.truncated = True
                self.truncation = "trailer missing; footer found by scanning"
                break
            if tag != F.TAG_CHUNK:
                off = nxt
                continue
            (mlen,) = _u32.unpack(payload[:4])
            first_n, cnt, t0, t1, sid0, new = msgpack.unpackb(payload[4 : 4 + mlen], raw=False)
            if sid0 != len(self.strings):
                raise TraceError(f"{self._name}: corrupt string table at chunk {len(self.chunks)}")
            self.strings.extend(new)
            self.chunks.append(ChunkInfo((off, first_n, cnt, t0, t1)))
            n = first_n + cnt
            off = nxt
        self.event_count = n

    def close(self) -> None:
        self._cache = None
        if self._mmap is not None:
            try:
                self._data = b""
                self._mmap.close()
            except BufferError:
                pass
            self._mmap = None
        if self._fileobj is not None:
            self._fileobj.close()
            self._fileobj = None

    def __enter__(self) -> "TraceReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -------------------------------------------------------------- decode

    def _ext(self, code: int, data: bytes) -> Any:
        if code == F.EXT_STR:
            return self.strings[int.from_bytes(data, "big")]
        return msgpack.ExtType(code, data)

    def _decode(self, k: int) -> tuple:
        """(kinds bytes, deltas, fields) of chunk ``k``."""
        if k == self._cache_k:
            return self._cache
        fr = self._frame_at(self.chunks[k][0])
        if fr is None:
            raise TraceError(f"{self._name}: chunk {k} is damaged")
        payload = fr[1]
        (mlen,) = _u32.unpack(payload[:4])
        body = msgpack.unpackb(
            payload[4 + mlen :], use_list=False, raw=False, strict_map_key=False, ext_hook=self._ext
        )
        self._cache_k, self._cache = k, body
        return body

    def chunk_events(self, k: int) -> Iterator[Event]:
        """The events of chunk ``k``."""
        kinds, deltas, fields = self._decode(k)
        names = self.kind_names
        return map(
            _tuple_new,
            repeat(Event),
            zip(count(self.chunks[k][1]), map(names.__getitem__, kinds), accumulate(deltas), fields),
        )

    def events(self, start: int = 0, stop: Optional[int] = None) -> Iterator[Event]:
        """Events ``start`` (inclusive) to ``stop`` (exclusive), in order."""
        if stop is None or stop > self.event_count:
            stop = self.event_count
        if start < 0:
            start = max(0, self.event_count + start)
        if start >= stop:
            return
        firsts = [c[1] for c in self.chunks]
        k = max(0, bisect.bisect_right(firsts, start) - 1)
        for k in range(k, len(self.chunks)):
            c = self.chunks[k]
            if c[1] >= stop:
                return
            it = self.chunk_events(k)
            lo = start - c[1] if start > c[1] else 0
            hi = min(c[2], stop - c[1])
            if lo or hi < c[2]:
                it = islice(it, lo, hi)
            yield from it

    __iter__ = events

    def __len__(self) -> int:
        return self.event_count

    def event(self, n: int) -> Event:
        """Event number ``n`` (IndexError when out of range)."""
        if n < 0:
            n += self.event_count
        if not 0 <= n < self.event_count:
            raise IndexError(f"event {n} out of range (trace has {self.event_count})")
        return next(self.events(n, n + 1))

    def first_event_at(self, time: int) -> int:
        """Number of the first event with time >= ``time`` (event_count if none)."""
        lasts = [c[4] for c in self.chunks]
        k = bisect.bisect_left(lasts, time)
        if k >= len(self.chunks):
            return self.event_count
        for ev in self.chunk_events(k):
            if ev[2] >= time:
                return ev[0]
        return self.chunks[k][1] + self.chunks[k][2]

    @property
    def start_time(self) -> Optional[int]:
        return self.chunks[0][3] if self.chunks else None

    @property
    def end_time(self) -> Optional[int]:
        return self.chunks[-1][4] if self.chunks else None


def open_trace(source: Any) -> TraceReader:
    return TraceReader(source)


def read_events(source: Any) -> list[Event]:
    """All events of a trace (path, bytes or file object), as a list."""
    with TraceReader(source) as r:
        return list(r.events())

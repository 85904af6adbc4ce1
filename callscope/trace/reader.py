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
from itertools import accumulate, chain, count, islice, repeat
from typing import Any, Iterator, Optional

import msgpack

from ..escape import escape_controls
from . import format as F

try:  # the per-event checks and the string references in C (trace/_check.c)
    from . import _check
except ImportError:  # (not built: the same steps in Python, below)
    _check = None

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



# ------------------------------------------------------------ validation
# The type of each field of the kinds this reader knows (docs/trace-format.md,
# "Events"). Everything the reader hands on has been checked against this:
# consumers (model, exporters, replay) may index fields by position and rely
# on these types.
#   id   int                      id?  int or nil
#   s?   string or nil            s, text  string
#   int  int                      bool bool
#   ids  array of int             ids? nil or array of (int or nil)
#   idn  array of (int or nil)    strs array of strings
#   v    a value summary (any msgpack value, nested at most MAX_VALUE_DEPTH)
FIELD_TYPES: dict[str, tuple[str, ...]] = {
    "instance.new": ("id", "s?", "id?"),
    "task.new": ("id", "id", "s?", "id?", "id?", "s?", "bool"),
    "task.start": ("id",),
    "task.return": ("id", "v"),
    "task.cancel": ("id",),
    "task.exit": ("id",),
    "task.resolved": ("id",),
    "subtask.state": ("id", "id?", "int"),
    "subtask.cancel": ("id", "id?"),
    "subtask.drop": ("id", "id?"),
    "backpressure.inc": ("id", "int"),
    "backpressure.dec": ("id", "int"),
    "backpressure.set": ("id", "int"),
    "call.queued": ("id",),
    "call.admitted": ("id",),
    "waitable-set.new": ("id", "id"),
    "waitable-set.drop": ("id", "id"),
    "waitable.join": ("id", "id", "id"),
    "waitable-set.wait": ("id", "id"),
    "waitable-set.poll": ("id", "id"),
    "event.delivered": ("id", "int", "id?", "v"),
    "thread.switch": ("id?", "id?"),
    "thread.new": ("id", "id?"),
    "import.call": ("id", "id", "s?", "ids", "v", "strs", "idn", "ids?"),
    "import.return": ("id", "v"),
    "handle.new": ("s?", "id", "id", "id?"),
    "taint.plant": ("id", "s"),
    "trap": ("id?", "text"),
    "deadlock": ("text",),
    "note": ("text",),
}
for _name, _fs in F.KINDS:
    if _name.startswith(("stream.", "future.")):
        FIELD_TYPES[_name] = ("id", "id?", "v", "id?")
FIELD_TYPES["oracle.verdict"] = ("id", "s?", "ids", "int")
FIELD_TYPES["oracle.end"] = ("s?", "int", "int", "int")
FIELD_TYPES["thread.set-task"] = ("id", "id?", "id?")
FIELD_TYPES["taint.retire"] = ("id",)
assert set(FIELD_TYPES) == set(F.FIELDS), ("FIELD_TYPES: give the field types of", set(F.FIELDS) ^ set(FIELD_TYPES))
assert all(len(FIELD_TYPES[k]) == len(F.FIELDS[k]) for k in F.FIELDS)

MAX_VALUE_DEPTH = 32  # nesting of a value summary (the writer's default is 3)
MAX_KINDS = 256  # a kind id is one byte
_MAX_EXTRA_KINDS = 1024  # kinds of newer minors named in FIELDS (process-wide)

_NONE = type(None)
_SCALARS = frozenset((int, float, str, bytes, bool, _NONE, msgpack.ExtType, msgpack.Timestamp))
_TYPE_NAME = {int: "int", float: "float", str: "string", bytes: "bytes", bool: "bool", _NONE: "nil",
              tuple: "array", dict: "map", msgpack.ExtType: "ext", msgpack.Timestamp: "timestamp"}


def _tname(v: Any) -> str:
    return _TYPE_NAME.get(type(v), type(v).__name__)


def _value_problem(v: Any, depth: int = 0) -> Optional[str]:
    """Why ``v`` is not a well-formed value summary, or None."""
    t = type(v)
    if t in _SCALARS:
        return None
    if depth >= MAX_VALUE_DEPTH:
        return f"value nested deeper than {MAX_VALUE_DEPTH}"
    if t is tuple:
        for x in v:
            if type(x) not in _SCALARS:
                p = _value_problem(x, depth + 1)
                if p:
                    return p
        return None
    if t is dict:
        for k, x in v.items():
            if type(k) not in _SCALARS:
                p = _value_problem(k, depth + 1)
                if p:
                    return p
            if type(x) not in _SCALARS:
                p = _value_problem(x, depth + 1)
                if p:
                    return p
        return None
    return f"value of type {t.__name__}"


def _field_problem(code: str, v: Any) -> Optional[str]:
    """Why field value ``v`` does not have type ``code`` (FIELD_TYPES), or None."""
    t = type(v)
    if code == "id" or code == "int":
        return None if t is int else f"{_tname(v)}, expected int"
    if code == "id?":
        return None if t is int or v is None else f"{_tname(v)}, expected int or nil"
    if code == "s?":
        return None if t is str or v is None else f"{_tname(v)}, expected string or nil"
    if code == "s":
        return None if t is str else f"{_tname(v)}, expected string"
    if code == "text":
        return None if t is str else f"{_tname(v)}, expected string"
    if code == "bool":
        return None if t is bool else f"{_tname(v)}, expected bool"
    if code == "v":
        return _value_problem(v)
    if code == "ids?" and v is None:
        return None
    if t is not tuple:
        return f"{_tname(v)}, expected array"
    if code == "ids":
        ok = all(type(x) is int for x in v)
    elif code == "strs":
        ok = all(type(x) is str for x in v)
    else:  # idn, ids?
        ok = all(type(x) is int or x is None for x in v)
    return None if ok else f"array holding {', '.join(sorted({_tname(x) for x in v}))}"


_INT_ONLY = frozenset((int,))
_STR_ONLY = frozenset((str,))
_INT_NONE = frozenset((int, _NONE))


def _ints_problem(v: tuple) -> Optional[str]:
    return None if set(map(type, v)) <= _INT_ONLY else _holding(v)


def _strs_problem(v: tuple) -> Optional[str]:
    return None if set(map(type, v)) <= _STR_ONLY else _holding(v)


def _idn_problem(v: tuple) -> Optional[str]:
    return None if set(map(type, v)) <= _INT_NONE else _holding(v)


def _holding(v: tuple) -> str:
    return f"array holding {', '.join(sorted({_tname(x) for x in v}))}"


# the check of a field whose value is an array/map, by field type
_DEEP = {"v": _value_problem, "ids": _ints_problem, "strs": _strs_problem, "idn": _idn_problem, "ids?": _idn_problem}
# (the checks _check.scan runs itself, in its order; its value check's leaf types)
_SCAN_CHECKS = (_value_problem, _ints_problem, _strs_problem, _idn_problem)
if _check is not None:
    _check.set_scalars(tuple(_SCALARS))


class _KindSpec:
    """How to check the fields of one kind id of a trace."""

    __slots__ = ("name", "names", "codes", "nfields", "ok")

    def __init__(self, name: str, names: tuple, codes: tuple):
        self.name = _short(name)
        self.names = names  # field names, from the trace's header
        # a type per field: ours for the fields we know, "v" for the rest
        self.codes = codes + ("v",) * (len(names) - len(codes))
        self.nfields = len(names)
        # field type tuples already found good -> the checks their arrays
        # and maps still need on every event: ((field index, check), ...)
        self.ok: dict = {}

    def problem(self, f: Any) -> Optional[str]:
        """Why ``f`` is not a well-formed fields tuple of this kind, or None."""
        if type(f) is not tuple:
            return f"{self.name} fields are {_tname(f)}, expected array"
        sig = tuple(map(type, f))
        deep = self.ok.get(sig)
        if deep is None:
            if len(f) != self.nfields:
                return f"{self.name} has {len(f)} field(s), expected {self.nfields}"
            for i, (code, v) in enumerate(zip(self.codes, f)):
                p = _field_problem(code, v)
                if p:
                    return f"{self.name} field {_short(self.names[i])}: {p}"
            deep = tuple((i, _DEEP[code]) for i, (code, t) in enumerate(zip(self.codes, sig))
                         if t is tuple or t is dict)
            if len(self.ok) < 4096:
                self.ok[sig] = deep
            return None
        for i, check in deep:
            p = check(f[i])
            if p:
                return f"{self.name} field {_short(self.names[i])}: {p}"
        return None


def _escape_strings(v: Any, esc: Any, depth: int = 0) -> Any:
    """``v`` (a header: maps, lists, scalars) with its strings escaped."""
    if type(v) is str:
        return esc(v)
    if depth > 16:
        return v
    if isinstance(v, list):
        return [_escape_strings(x, esc, depth + 1) for x in v]
    if isinstance(v, dict):
        return {_escape_strings(k, esc, depth + 1): _escape_strings(x, esc, depth + 1) for k, x in v.items()}
    return v


_ESCAPED = (str, tuple, dict)


def _escape_value(v: Any, esc: Any) -> Any:
    """A checked value (MAX_VALUE_DEPTH deep at most) with its strings escaped."""
    t = type(v)
    if t is str:
        return esc(v)
    if t is tuple:
        return tuple(_escape_value(x, esc) for x in v)
    if t is dict:
        return {_escape_value(k, esc): _escape_value(x, esc) for k, x in v.items()}
    return v


class _BadExt(Exception):
    pass


def _short(v: Any, limit: int = 60) -> str:
    """``repr(v)`` cut to ``limit`` characters (for messages about bad input)."""
    try:
        r = repr(v)
    except Exception:  # (a value nested too deep for repr)
        r = f"<{type(v).__name__}>"
    return r if len(r) <= limit else r[: limit - 1] + "…"


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

    def __init__(self, source: Any, escape: bool = False):
        # escape: every string handed on (string table, kind and field names,
        # free text, the guest's name) with control and format characters
        # escaped (callscope/escape.py), for readers that show them
        self._esc = escape_controls if escape else None
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
        self._name = escape_controls(self.path) if self.path else "trace"
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        self._cache_k = -1
        self._cache: Optional[tuple] = None
        self._text_fields: Optional[dict] = None

    # ---------------------------------------------------------------- open

    def _err(self, off: Optional[int], problem: str) -> TraceError:
        where = f" at offset {off}" if off is not None else ""
        return TraceError(f"{self._name}: {problem}{where}")

    def _frame_at(self, off: int) -> Optional[tuple[bytes, bytes, int]]:
        """(tag, payload, next offset) of the frame at ``off``, or None when
        the frame is incomplete or its checksum is wrong."""
        data = self._data
        end = off + F.FRAME_HEADER_SIZE
        if off < 0 or end > len(data):
            return None
        tag, length, crc = _frame.unpack(data[off:end])
        if end + length > len(data):
            return None
        payload = data[end : end + length]
        if zlib.crc32(payload) != crc:
            return None
        return tag, payload, end + length

    def _unpack(self, payload: Any, off: int, what: str, **kw) -> Any:
        try:
            return msgpack.unpackb(payload, raw=False, strict_map_key=False, **kw)
        except _BadExt as e:
            raise self._err(off, f"{what}: {e}") from None
        except Exception as e:  # msgpack's errors: ExtraData, StackError, ValueError, TypeError...
            msg = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
            raise self._err(off, f"unreadable {what} ({msg})") from None

    def _open(self) -> None:
        data = self._data
        name = self._name
        if len(data) < len(F.MAGIC) or data[: len(F.MAGIC)] != F.MAGIC:
            raise TraceError(f"{name}: not a callscope trace (bad magic)")
        off = len(F.MAGIC)
        fr = self._frame_at(off)
        if fr is None or fr[0] != F.TAG_HEADER:
            raise TraceError(f"{name}: callscope trace with a damaged or incomplete header")
        header = self._unpack(fr[1], off, "trace header")
        if not isinstance(header, dict) or header.get("format") != F.FORMAT_NAME:
            got = header.get("format") if isinstance(header, dict) else None
            raise TraceError(f"{name}: not a callscope trace (header format {_short(got)})")
        ver = header.get("version")
        if not (isinstance(ver, list) and len(ver) == 2 and all(type(x) is int for x in ver)):
            raise self._err(off, f"trace header: version {_short(ver)} is not [major, minor]")
        if ver[0] != F.FORMAT_VERSION[0]:
            raise TraceError(
                f"{name}: trace format version {ver[0]}.{ver[1]} is not supported "
                f"(this callscope reads {F.FORMAT_VERSION[0]}.x)"
            )
        self._check_header(header, off)
        if self._esc is not None:
            header = _escape_strings(header, self._esc)
            kinds = header.get("kinds")
        self.header = header
        kinds = header.get("kinds")
        if kinds is None:
            kinds = [[k, list(fs)] for k, fs in F.KINDS]
        self.kind_names = [k for k, _ in kinds]
        self._specs = []
        for k, fs in kinds:
            fs = tuple(fs)
            ours = F.FIELDS.get(k)
            if ours is not None:
                if fs[: len(ours)] != ours:
                    raise self._err(off, f"trace header: kind {_short(k)} has fields {_short(list(fs))}, "
                                         f"expected {list(ours)} first")
                self._specs.append(_KindSpec(k, fs, FIELD_TYPES[k]))
            else:
                if k not in FIELDS and len(FIELDS) < len(F.FIELDS) + _MAX_EXTRA_KINDS:
                    FIELDS[k] = fs
                self._specs.append(_KindSpec(k, fs, ()))
        self._body_start = fr[2]
        self.footer = None
        self.truncated = False
        self.truncation: Optional[str] = None
        if not self._read_footer():
            self._scan()

    def _check_header(self, h: dict, off: int) -> None:
        def bad(key: str, want: str) -> TraceError:
            return self._err(off, f"trace header: {key} is {_short(h.get(key))}, expected {want}")

        kinds = h.get("kinds")
        if kinds is not None:
            if not isinstance(kinds, list) or not 0 < len(kinds) <= MAX_KINDS:
                raise bad("kinds", f"a list of 1 to {MAX_KINDS} [name, [fields]]")
            seen = set()
            for e in kinds:
                if not (isinstance(e, list) and len(e) == 2 and type(e[0]) is str and isinstance(e[1], list)
                        and all(type(x) is str for x in e[1])):
                    raise self._err(off, f"trace header: kinds entry {_short(e)} is not [name, [field names]]")
                if e[0] in seen:
                    raise self._err(off, f"trace header: kind {_short(e[0])} listed twice")
                seen.add(e[0])
        g = h.get("guest")
        if g is not None:
            if not isinstance(g, dict):
                raise bad("guest", "a map or nil")
            for k, types in (("name", (str,)), ("size", (int,)), ("sha256", (str,))):
                if k in g and g[k] is not None and type(g[k]) not in types:
                    raise self._err(off, f"trace header: guest {k} is {_short(g[k])}")
        argv = h.get("argv")
        if argv is not None and not (isinstance(argv, list) and all(type(a) is str for a in argv)):
            raise bad("argv", "a list of strings")
        for key in ("callscope_version", "wasmtime_version", "python_version", "start_time", "clock"):
            if h.get(key) is not None and type(h[key]) is not str:
                raise bad(key, "a string or nil")
        for key in ("seed", "start_time_ns"):
            if h.get(key) is not None and type(h[key]) is not int:
                raise bad(key, "an int or nil")
        lim = h.get("summary_limits")
        if lim is not None and not (isinstance(lim, dict) and all(type(v) is int for v in lim.values())):
            raise bad("summary_limits", "a map of ints")
        if h.get("extra") is not None and not isinstance(h["extra"], dict):
            raise bad("extra", "a map")

    def _chunk_frame_ok(self, off: int, limit: int) -> int:
        """The payload length of the chunk frame header at ``off`` (its CRC is
        checked when the chunk is read), ending at most at ``limit``."""
        data = self._data
        if not self._body_start <= off <= limit - F.FRAME_HEADER_SIZE:
            raise self._err(off, "footer: chunk offset outside the file's chunks")
        tag, length, _ = _frame.unpack(data[off : off + F.FRAME_HEADER_SIZE])
        if tag != F.TAG_CHUNK:
            raise self._err(off, f"footer: no chunk frame at a chunk's offset (tag {tag!r})")
        if off + F.FRAME_HEADER_SIZE + length > limit:
            raise self._err(off, "footer: chunk frame overlaps the next frame")
        return length

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
        footer = self._unpack(fr[1], off, "footer")
        if not isinstance(footer, dict):
            raise self._err(off, f"footer is {_tname(footer)}, expected a map")
        events, chunks, strings = footer.get("events"), footer.get("chunks"), footer.get("strings")
        if type(events) is not int or events < 0:
            raise self._err(off, f"footer: events is {_short(events)}, expected an int >= 0")
        if not isinstance(chunks, list):
            raise self._err(off, f"footer: chunks is {_short(chunks)}, expected a list")
        if not (isinstance(strings, list) and all(type(x) is str for x in strings)):
            raise self._err(off, "footer: strings is not a list of strings")
        rows = []
        n = 0
        prev_end = self._body_start
        for i, c in enumerate(chunks):
            if not (isinstance(c, list) and len(c) == 5 and all(type(x) is int for x in c)):
                raise self._err(off, f"footer: chunk {i} is {_short(c)}, expected 5 ints")
            if c[0] < prev_end:
                raise self._err(c[0], f"footer: chunk {i} overlaps chunk {i - 1} or the header")
            length = self._chunk_frame_ok(c[0], off)
            if c[1] != n:
                raise self._err(c[0], f"footer: chunk {i} starts at event {c[1]}, expected {n}")
            if not 0 < c[2] <= length:  # at least one byte (its kind) per event
                raise self._err(c[0], f"footer: chunk {i} claims {c[2]} events in {length} bytes")
            n += c[2]
            prev_end = c[0] + F.FRAME_HEADER_SIZE + length
            rows.append(ChunkInfo(c))
        if n != events:
            raise self._err(off, f"footer: events is {events} but its chunks hold {n}")
        self.footer = footer
        self.chunks = rows
        self.strings = strings if self._esc is None else list(map(self._esc, strings))
        self.event_count = events
        return True

    def _meta(self, payload: bytes, off: int, k: int) -> tuple:
        """The checked meta of the chunk frame at ``off`` (payload given):
        ``(first_n, count, first_time, last_time, sid0, new_strings, body offset)``."""
        if len(payload) < 4:
            raise self._err(off, f"chunk {k}: payload too short")
        (mlen,) = _u32.unpack(payload[:4])
        if mlen > len(payload) - 4:
            raise self._err(off, f"chunk {k}: meta length {mlen} past the chunk's end")
        meta = self._unpack(payload[4 : 4 + mlen], off, f"chunk {k} meta")
        if not (isinstance(meta, list) and len(meta) == 6 and all(type(x) is int for x in meta[:5])
                and isinstance(meta[5], list) and all(type(x) is str for x in meta[5])):
            raise self._err(off, f"chunk {k}: meta {_short(meta)} is not [first_n, count, first_time, "
                                 f"last_time, sid0, [strings]]")
        return (*meta, 4 + mlen)

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
            k = len(self.chunks)
            first_n, cnt, t0, t1, sid0, new, body_at = self._meta(payload, off, k)
            if sid0 != len(self.strings):
                raise self._err(off, f"chunk {k}: corrupt string table (first new string id {sid0}, "
                                     f"expected {len(self.strings)})")
            if first_n != n:
                raise self._err(off, f"chunk {k}: starts at event {first_n}, expected {n}")
            if not 0 < cnt <= len(payload):
                raise self._err(off, f"chunk {k}: claims {cnt} events in {len(payload)} bytes")
            self.strings.extend(new if self._esc is None else map(self._esc, new))
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
            try:
                return self.strings[int.from_bytes(data, "big")]
            except IndexError:
                i = int.from_bytes(data, "big")
                raise _BadExt(f"string id {i} out of range (the table has {len(self.strings)})") from None
        return msgpack.ExtType(code, data)

    def _decode(self, k: int) -> tuple:
        """(kinds bytes, times, fields) of chunk ``k``, checked: every
        event's kind id in the header's table, its fields as many and of the
        types its kind says."""
        if k == self._cache_k:
            return self._cache
        c = self.chunks[k]
        off = c[0]
        fr = self._frame_at(off)
        if fr is None:
            raise self._err(off, f"chunk {k} is damaged")
        if fr[0] != F.TAG_CHUNK:
            raise self._err(off, f"chunk {k}: frame tag {fr[0]!r}, expected {F.TAG_CHUNK!r}")
        payload = fr[1]
        first_n, cnt, t0, t1, sid0, new, body_at = self._meta(payload, off, k)
        if (first_n, cnt, t0, t1) != tuple(c[1:]):
            raise self._err(off, f"chunk {k}: meta {[first_n, cnt, t0, t1]} disagrees with the footer's {list(c[1:])}")
        if sid0 + len(new) > len(self.strings):
            raise self._err(off, f"chunk {k}: defines strings past the string table")
        ext = self._ext if _check is None else _check.StringRefs(self.strings, F.EXT_STR, msgpack.ExtType, _BadExt)
        # (a view: the body is not copied out of the payload)
        body = self._unpack(memoryview(payload)[body_at:], off, f"chunk {k} body", use_list=False, ext_hook=ext)
        if not (type(body) is tuple and len(body) == 3):
            raise self._err(off, f"chunk {k}: body is not [kinds, deltas, fields]")
        kinds, deltas, fields = body
        if type(kinds) is not bytes or type(deltas) is not tuple or type(fields) is not tuple:
            raise self._err(off, f"chunk {k}: body columns are {_tname(kinds)}, {_tname(deltas)}, "
                                 f"{_tname(fields)}; expected bin, array, array")
        if not len(kinds) == len(deltas) == len(fields) == cnt:
            raise self._err(off, f"chunk {k}: columns of {len(kinds)}, {len(deltas)}, {len(fields)} "
                                 f"entries for {cnt} events")
        specs = self._specs
        if kinds and (_check.max_byte(kinds) if _check is not None else max(kinds)) >= len(specs):
            raise self._err(off, f"chunk {k}: kind id {max(kinds)} out of range (the header lists {len(specs)})")
        times = _check.times(deltas) if _check is not None else None
        if times is None:
            if set(map(type, deltas)) != {int}:
                raise self._err(off, f"chunk {k}: a time delta is not an int")
            times = tuple(accumulate(deltas))
        if times[0] != t0 or times[-1] != t1:
            raise self._err(off, f"chunk {k}: event times {times[0]}..{times[-1]} disagree with its meta {t0}..{t1}")
        oks = [sp.ok for sp in specs]
        if _check is not None:
            # the events of shapes found good already, and their checks, in C
            # (scan); the first other one here, then on from the next
            i, scan = 0, _check.scan
            while True:
                i = scan(kinds, fields, i, oks, _SCAN_CHECKS)
                if i >= cnt:
                    break
                p = specs[kinds[i]].problem(fields[i])
                if p is not None:
                    raise self._err(off, f"chunk {k}: event {first_n + i}: {p}")
                i += 1
        else:
            _type, _map, _tuple = type, map, tuple
            for i, kid, f in zip(count(), kinds, fields):
                # (inline: the known-good shapes of the kind; else the full check)
                deep = oks[kid].get(_tuple(_map(_type, f))) if _type(f) is _tuple else None
                if deep is None or deep:
                    p = specs[kid].problem(f)
                    if p is not None:
                        raise self._err(off, f"chunk {k}: event {first_n + i}: {p}")
        if self._esc is not None:
            fields = self._escape_text(kinds, fields)
        body = (kinds, times, fields)
        self._cache_k, self._cache = k, body
        return body

    def _escape_text(self, kinds: bytes, fields: tuple) -> tuple:
        """``fields`` with the strings of free-text fields (trap, deadlock,
        note) and of values escaped (interned strings were, in the table)."""
        text = self._text_fields
        if text is None:
            text = self._text_fields = {i: tuple(j for j, c in enumerate(sp.codes) if c in ("text", "v"))
                                        for i, sp in enumerate(self._specs)}
        esc = self._esc
        out = list(fields)
        for i, k in enumerate(kinds):
            js = text[k]
            if js:
                f = out[i]
                if any(type(f[j]) in _ESCAPED for j in js):
                    f = list(f)
                    for j in js:
                        f[j] = _escape_value(f[j], esc)
                    out[i] = tuple(f)
        return tuple(out)

    def chunk_columns(self, k: int) -> tuple:
        """Chunk ``k`` as ``(kinds, times, fields)``: its kind ids (bytes, ids
        into ``kind_names``), each event's absolute time, each event's fields,
        all checked as for :meth:`events`."""
        return self._decode(k)

    def chunk_events(self, k: int) -> Iterator[Event]:
        """The events of chunk ``k``."""
        kinds, times, fields = self._decode(k)
        names = self.kind_names
        if _check is not None:
            return _check.Events(Event, self.chunks[k][1], tuple(names), kinds, times, fields)
        return map(
            _tuple_new,
            repeat(Event),
            zip(count(self.chunks[k][1]), map(names.__getitem__, kinds), times, fields),
        )

    def events(self, start: int = 0, stop: Optional[int] = None) -> Iterator[Event]:
        """Events ``start`` (inclusive) to ``stop`` (exclusive), in order
        (each chunk decoded when the iteration reaches it)."""
        if stop is None or stop > self.event_count:
            stop = self.event_count
        if start < 0:
            start = max(0, self.event_count + start)
        if start >= stop:
            return iter(())
        firsts = [c[1] for c in self.chunks]
        k0 = max(0, bisect.bisect_right(firsts, start) - 1)
        k1 = bisect.bisect_left(firsts, stop)  # (the chunks from k1 on start at stop or later)
        # (the chunks chained in C: no Python frame resumed per event)
        return chain.from_iterable(map(self._chunk_slice, range(k0, k1), repeat(start), repeat(stop)))

    def _chunk_slice(self, k: int, start: int, stop: int) -> Iterator[Event]:
        """The events of chunk ``k`` from ``start`` to ``stop``."""
        c = self.chunks[k]
        it = self.chunk_events(k)
        lo = start - c[1] if start > c[1] else 0
        hi = min(c[2], stop - c[1])
        return islice(it, lo, hi) if lo or hi < c[2] else it

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

"""Bounded summaries of host values for the trace.

Host values are Python ints/floats/str/bytes/list/tuple/dict/bool/None. A
summary is the value itself when it is small, else a cut-down copy:

* a string longer than ``max_str`` keeps its first ``max_str`` characters
  followed by ``"…"``;
* bytes longer than ``max_str`` keep their first ``max_str`` bytes followed
  by ``b"..."``;
* a list/tuple keeps its first ``max_items`` elements, then one string
  ``"…+N"`` (N elements left out); tuples become lists;
* a dict keeps its first ``max_items`` entries (keys summarized too), then the
  key ``"…"`` mapped to the number of entries left out;
* below ``max_depth`` nesting, a list becomes ``"[…N]"`` and a dict ``"{…N}"``;
* ints outside the 64-bit range, and any other object, become a string
  (``repr``, cut like a string);
* once about ``max_bytes`` of output have been produced, every further
  element is replaced by ``"…"``.

All of this is msgpack-encodable, and small.
"""

from __future__ import annotations

from typing import Any

DEFAULT_MAX_BYTES = 128
DEFAULT_MAX_ITEMS = 8
DEFAULT_MAX_STR = 48
DEFAULT_MAX_DEPTH = 3

_I64_MIN = -(1 << 63)
_U64_MAX = (1 << 64) - 1
ELLIPSIS = "…"


def summarize(
    value: Any,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_items: int = DEFAULT_MAX_ITEMS,
    max_str: int = DEFAULT_MAX_STR,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """A bounded, msgpack-encodable summary of ``value`` (see module doc)."""
    t = type(value)
    if value is None or t is bool or t is float:
        return value
    if t is int:
        return value if _I64_MIN <= value <= _U64_MAX else _cut(str(value), max_str)
    if (t is str or isinstance(value, str)) and len(value) <= max_str:
        return str(value)
    if t is list and len(value) <= max_items:
        # fast path: a short flat list (the common argument list)
        out = []
        size = 1
        for x in value:
            c = type(x)
            if c is int:
                if not _I64_MIN <= x <= _U64_MAX:
                    break
                size += 5
            elif x is None or c is bool or c is float:
                size += 5
            elif isinstance(x, str) and len(x) <= max_str:
                x = str(x)
                size += len(x) + 1
            else:
                break
            out.append(x)
        else:
            if size <= max_bytes:
                return out
    budget = [max_bytes]
    return _summ(value, budget, max_items, max_str, max_depth)


def _cut(s: str, max_str: int) -> str:
    return s if len(s) <= max_str else s[:max_str] + ELLIPSIS


def _summ(v: Any, budget: list, max_items: int, max_str: int, depth: int) -> Any:
    if budget[0] <= 0:
        return ELLIPSIS
    t = type(v)
    if v is None or t is bool:
        budget[0] -= 1
        return v
    if t is int or t is float:
        budget[0] -= 5
        if t is int and not (_I64_MIN <= v <= _U64_MAX):
            return _cut(str(v), max_str)
        return v
    if isinstance(v, str):
        s = _cut(str(v), max_str)
        budget[0] -= len(s) + 1
        return s
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        if len(b) > max_str:
            b = b[:max_str] + b"..."
        budget[0] -= len(b) + 1
        return b
    if isinstance(v, (list, tuple)):
        if depth <= 0:
            budget[0] -= 4
            return f"[{ELLIPSIS}{len(v)}]"
        budget[0] -= 1
        head = v[:max_items]
        if head and head[0].__class__ is int and budget[0] > 5 * len(head) and \
                all(x.__class__ is int and 0 <= x <= _U64_MAX for x in head):
            # a run of plain ints (a list<u8>, say): as _summ would give them
            budget[0] -= 5 * len(head)
            out = list(head)
        else:
            out = [_summ(x, budget, max_items, max_str, depth - 1) for x in head]
        if len(v) > max_items:
            out.append(f"{ELLIPSIS}+{len(v) - max_items}")
        return out
    if isinstance(v, dict):
        if depth <= 0:
            budget[0] -= 4
            return f"{{{ELLIPSIS}{len(v)}}}"
        budget[0] -= 1
        out = {}
        for i, (k, x) in enumerate(v.items()):
            if i >= max_items:
                out[ELLIPSIS] = len(v) - max_items
                break
            k = _summ(k, budget, max_items, max_str, 0)
            if isinstance(k, (list, dict)):
                k = repr(k)
            out[k] = _summ(x, budget, max_items, max_str, depth - 1)
        return out
    s = _cut(repr(v), max_str)
    budget[0] -= len(s) + 1
    return s

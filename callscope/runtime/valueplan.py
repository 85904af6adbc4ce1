"""Per-function-type plans for recording values, compiled once per type
(like ``callscope.component.abi``'s per-type lifters).

Recording an import call (or a task's result) used to walk every value
generically twice: once to collect its strings for taint and its streams and
futures for lineage (``observe._walk``), once to summarize it
(``trace.summarize``). The function type says what a value can hold, so a
plan decides once:

* which parameters can hold text (strings, chars, lists of ints such as
  ``list<u8>``) or streams/futures, and so need walking at all: for
  ``(borrow<request>)`` nothing is walked;
* how to summarize the values. When the type is *bounded* (no variable-length
  list, at most ``max_items`` fields or parameters, nesting above
  ``max_depth``, and its largest summary within ``max_bytes``) the summary is
  the value itself copied (tuples as lists, strings cut at ``max_str``,
  streams/futures as ``"<stream #N>"``), with no budget to track: the generic
  summarizer could not have cut anything else. Every other type, and every
  value that does not have its type's shape (host results are plain Python
  values: a ``list<u8>`` may come back as ``bytes``), takes the generic path,
  so the summary is always exactly what ``summarize`` gives.
"""

from __future__ import annotations

from callscope.component import types as T
from callscope.component.abi import String
from callscope.trace.summarize import ELLIPSIS, _I64_MIN, _U64_MAX, _summ, summarize

from callscope.trace.sink import CSummarizer as Summarizer  # (None when the C extension is not built)

from .waitables import SharedFutureImpl, SharedStreamImpl

_INTS = (T.S8Type, T.U8Type, T.S16Type, T.U16Type, T.S32Type, T.U32Type, T.S64Type, T.U64Type)
_INTLIKE = _INTS + (T.OwnType, T.BorrowType)


class _Mismatch(Exception):
    """A value does not have its type's shape: summarize it generically."""


# ---------------------------------------------------------------------------
# What a type can hold


def _children(t) -> tuple:
    """The component types directly inside ``t`` (None for payload-less
    cases left out). Not abi.despecialize: it is lru-cached, so every call
    hashes the whole (dataclass) type."""
    c = t.__class__
    if c is T.ListType or c is T.OptionType or c is T.StreamType or c is T.FutureType:
        return (t.t,) if t.t is not None else ()
    if c is T.RecordType:
        return tuple(f.t for f in t.fields)
    if c is T.TupleType:
        return t.ts
    if c is T.VariantType:
        return tuple(x.t for x in t.cases if x.t is not None)
    if c is T.ResultType:
        return tuple(x for x in (t.ok, t.error) if x is not None)
    if c is T.MapType:
        return (t.k, t.v)
    return ()


def _cases(t) -> tuple:
    """(label, payload type or None) of a variant-like type."""
    c = t.__class__
    if c is T.VariantType:
        return tuple((x.label, x.t) for x in t.cases)
    if c is T.OptionType:
        return (("none", None), ("some", t.t))
    if c is T.ResultType:
        return (("ok", t.ok), ("error", t.error))
    return tuple((label, None) for label in t.labels)  # enum


# types with no component type inside (and no stream, future or text)
_LEAVES = frozenset(_INTLIKE + (T.BoolType, T.F32Type, T.F64Type, T.EnumType, T.FlagsType, T.ErrorContextType))


def may_hold_text(t, depth: int = 0) -> bool:
    """Whether a value of ``t`` can hold something ``observe._walk`` collects
    as text: a string or char, or a list of ints (a ``list<u8>``). (Loops,
    not any() of a generator, and the leaves answered first: a function's
    plan walks every type it names once a recording, ~1 µs a node before.)"""
    if depth > 8:
        return False
    c = t.__class__
    if c is T.StringType or c is T.CharType:
        return True
    if c is T.ListType and t.t.__class__ in _INTLIKE:
        return True
    if c is T.StreamType or c is T.FutureType or c in _LEAVES:
        return False
    for x in _children(t):
        if may_hold_text(x, depth + 1):
            return True
    return False


def may_hold_async(t, depth: int = 0) -> bool:
    """Whether a value of ``t`` can hold a stream or future."""
    if depth > 8:
        return False
    c = t.__class__
    if c is T.StreamType or c is T.FutureType:
        return True
    if c in _LEAVES or c is T.StringType or c is T.CharType:
        return False
    for x in _children(t):
        if may_hold_async(x, depth + 1):
            return True
    return False


def may_hold_handles(t, depth: int = 0) -> bool:
    """Whether a value of ``t`` can hold an own/borrow handle."""
    c = t.__class__
    if c is T.OwnType or c is T.BorrowType:
        return True
    if depth > 6 or isinstance(t, T.PrimValType):
        return False
    if c is T.ListType or c is T.OptionType:
        return may_hold_handles(t.t, depth + 1)
    if c is T.RecordType:
        xs = [f.t for f in t.fields]
    elif c is T.TupleType:
        xs = t.ts
    elif c is T.ResultType:
        xs = (t.ok, t.error)
    elif c is T.VariantType:
        xs = [case.t for case in t.cases]
    else:
        return False
    for x in xs:
        if x is not None and may_hold_handles(x, depth + 1):
            return True
    return False


# ---------------------------------------------------------------------------
# Bounded summarizers: f(value) -> summary, raising on a value of another shape


def _int(v):
    if v.__class__ is int and _I64_MIN <= v <= _U64_MAX:
        return v
    raise _Mismatch


def _bool(v):
    if v.__class__ is bool:
        return v
    raise _Mismatch


def _float(v):
    if v.__class__ is float:
        return v
    raise _Mismatch


def _none(v):
    if v is None:
        return None
    raise _Mismatch


def _bounded(t, depth: int, lim):
    """``(f, cost, spec)``: a summarizer for values of ``t`` at nesting
    ``depth``, the most budget the generic summarizer would spend on one,
    and the same summarizer as the C Summarizer's spec (trace/_sink.c);
    None when ``t`` is not bounded there."""
    max_bytes, max_items, max_str, max_depth = lim
    c = t.__class__
    if c in _INTLIKE:
        return _int, 5, (0,)
    if c is T.BoolType:
        return _bool, 1, (1,)
    if c is T.F32Type or c is T.F64Type:
        return _float, 5, (2,)
    if c is T.StringType or c is T.CharType:
        def string(v):
            vc = v.__class__
            if vc is str:
                return v if len(v) <= max_str else v[:max_str] + ELLIPSIS
            if vc is String:
                v = str(v)
                return v if len(v) <= max_str else v[:max_str] + ELLIPSIS
            raise _Mismatch
        return string, max_str + 2, (3,)
    if c is T.StreamType or c is T.FutureType:
        def async_value(v):
            vc = v.__class__
            if vc is SharedStreamImpl:
                s = f"<stream #{v.id}>"
            elif vc is SharedFutureImpl:
                s = f"<future #{v.id}>"
            else:
                raise _Mismatch
            return s if len(s) <= max_str else s[:max_str] + ELLIPSIS
        return async_value, max_str + 2, (4,)
    if depth < 1:
        return None  # a container here would become "[…N]" / "{…N}"
    if c is T.ListType:
        n = t.l
        if n is None or n > max_items:
            return None
        e = _bounded(t.t, depth - 1, lim)
        if e is None:
            return None
        ef, ecost, espec = e

        def fixed_list(v):
            vc = v.__class__
            if (vc is list or vc is tuple) and len(v) == n:
                return [ef(x) for x in v]
            raise _Mismatch
        return fixed_list, 1 + n * ecost, (5, n, espec)
    if c is T.TupleType:
        parts = [_bounded(x, depth - 1, lim) for x in t.ts]
        n = len(parts)
        if n > max_items or any(p is None for p in parts):
            return None
        fs = tuple(p[0] for p in parts)
        by_label = {str(i): f for i, f in enumerate(fs)}
        cost = 1 + sum(len(str(i)) + 1 + p[1] for i, p in enumerate(parts))

        def tuple_value(v):
            vc = v.__class__
            if (vc is tuple or vc is list) and len(v) == n:  # a host's Python tuple
                return [f(x) for f, x in zip(fs, v)]
            if vc is dict and len(v) == n:  # lifted: {"0": ..., "1": ...}
                return {k: by_label[k](x) for k, x in v.items()}
            raise _Mismatch
        return tuple_value, cost, (6, tuple(by_label), tuple(p[2] for p in parts))
    if c is T.RecordType or c is T.FlagsType:
        if c is T.RecordType:
            labelled = [(f.label, _bounded(f.t, depth - 1, lim)) for f in t.fields]
        else:
            labelled = [(label, (_bool, 1, (1,))) for label in t.labels]
        n = len(labelled)
        if n > max_items or any(p is None or len(label) > max_str for label, p in labelled):
            return None
        fns = {label: p[0] for label, p in labelled}
        cost = 1 + sum(len(label) + 1 + p[1] for label, p in labelled)

        def record(v):
            if v.__class__ is dict and len(v) == n:
                return {k: fns[k](x) for k, x in v.items()}
            raise _Mismatch
        return record, cost, (7, tuple(label for label, _ in labelled), tuple(p[2] for _, p in labelled))
    if c in (T.VariantType, T.OptionType, T.ResultType, T.EnumType):
        fns = {}
        specs = {}
        cost = 0
        for label, ct in _cases(t):
            if len(label) > max_str:
                return None
            if ct is None:
                p = (_none, 1, None)
            else:
                p = _bounded(ct, depth - 1, lim)
                if p is None:
                    return None
            fns[label] = p[0]
            specs[label] = p[2]
            cost = max(cost, 1 + len(label) + 1 + p[1])

        def variant(v):
            if v.__class__ is dict and len(v) == 1:
                for k, x in v.items():
                    return {k: fns[k](x)}
            raise _Mismatch
        return variant, cost, (8, tuple(specs), tuple(specs.values()))
    return None  # lists, maps, error-context: the generic path


# ---------------------------------------------------------------------------
# Budgeted summarizers: f(value, budget) -> summary, node by node what
# summarize's _summ does (budget, depth, max_items), without its dispatch on
# the value's class; a value of another shape goes to _summ at that node.


def _dict_items(t) -> list:
    """(label, type) of what a record, tuple, flags or variant-like value
    holds as a dict (a case with no payload: type None)."""
    c = t.__class__
    if c is T.RecordType:
        return [(f.label, f.t) for f in t.fields]
    if c is T.TupleType:
        return [(str(i), x) for i, x in enumerate(t.ts)]
    if c is T.FlagsType:
        return [(label, T.BoolType()) for label in t.labels]
    return list(_cases(t))


def _budgeted(t, depth: int, lim, plain):
    max_bytes, max_items, max_str, max_depth = lim

    if plain is None:
        def gen(v, b):
            return _summ(v, b, max_items, max_str, depth)
    else:
        def gen(v, b):
            return _summ(plain(v), b, max_items, max_str, depth)

    c = t.__class__
    if c in _INTLIKE:
        def int_value(v, b):
            if b[0] <= 0:
                return ELLIPSIS
            if v.__class__ is int and _I64_MIN <= v <= _U64_MAX:
                b[0] -= 5
                return v
            return gen(v, b)
        return int_value
    if c is T.BoolType:
        def bool_value(v, b):
            if b[0] <= 0:
                return ELLIPSIS
            if v.__class__ is bool:
                b[0] -= 1
                return v
            return gen(v, b)
        return bool_value
    if c is T.StringType or c is T.CharType:
        def string(v, b):
            if b[0] <= 0:
                return ELLIPSIS
            vc = v.__class__
            if vc is str or vc is String:
                if len(v) > max_str:
                    v = v[:max_str] + ELLIPSIS
                elif vc is String:
                    v = str(v)
                b[0] -= len(v) + 1
                return v
            return gen(v, b)
        return string
    if c is T.StreamType or c is T.FutureType:
        def async_value(v, b):
            if b[0] <= 0:
                return ELLIPSIS
            vc = v.__class__
            if vc is SharedStreamImpl or vc is SharedFutureImpl:
                s = f"<{'stream' if vc is SharedStreamImpl else 'future'} #{v.id}>"
                if len(s) > max_str:
                    s = s[:max_str] + ELLIPSIS
                b[0] -= len(s) + 1
                return s
            return gen(v, b)
        return async_value
    if c is T.ListType:
        if depth <= 0:
            def list_at_depth(v, b):
                if b[0] > 0 and (v.__class__ is list or v.__class__ is tuple):
                    b[0] -= 4
                    return f"[{ELLIPSIS}{len(v)}]"
                return gen(v, b)
            return list_at_depth
        ef = _budgeted(t.t, depth - 1, lim, plain)
        ints = t.t.__class__ in _INTLIKE

        def list_value(v, b):
            if b[0] <= 0:
                return ELLIPSIS
            vc = v.__class__
            if vc is not list and vc is not tuple:
                if vc is bytes:  # a host's list<u8>
                    if len(v) > max_str:
                        v = v[:max_str] + b"..."
                    b[0] -= len(v) + 1
                    return v
                return gen(v, b)
            b[0] -= 1
            head = v[:max_items]
            if ints and head and b[0] > 5 * len(head) and \
                    all(x.__class__ is int and 0 <= x <= _U64_MAX for x in head):
                b[0] -= 5 * len(head)
                out = list(head)
            else:
                out = [ef(x, b) for x in head]
            if len(v) > max_items:
                out.append(f"{ELLIPSIS}+{len(v) - max_items}")
            return out
        return list_value
    if c is T.ErrorContextType or c is T.MapType or c is T.F32Type or c is T.F64Type:
        return gen
    # records, tuples, flags, variants: dicts (a host's tuple may be a Python
    # tuple: _summ takes it)
    items = _dict_items(t)
    if depth <= 0:
        def dict_at_depth(v, b):
            if b[0] > 0 and v.__class__ is dict:
                b[0] -= 4
                return f"{{{ELLIPSIS}{len(v)}}}"
            return gen(v, b)
        return dict_at_depth
    fns = {label: (_budgeted(x, depth - 1, lim, plain) if x is not None else None) for label, x in items}

    def dict_value(v, b):
        if b[0] <= 0:
            return ELLIPSIS
        if v.__class__ is not dict:
            return gen(v, b)
        b[0] -= 1
        out = {}
        i = 0
        for k, x in v.items():
            if i >= max_items:
                out[ELLIPSIS] = len(v) - max_items
                break
            i += 1
            if b[0] <= 0:
                kk = ELLIPSIS
            elif k.__class__ is str:
                kk = k if len(k) <= max_str else k[:max_str] + ELLIPSIS
                b[0] -= len(kk) + 1
            else:
                kk = _summ(k, b, max_items, max_str, 0)
                if isinstance(kk, (list, dict)):
                    kk = repr(kk)
            f = fns.get(k)
            out[kk] = f(x, b) if f is not None else _summ(x if plain is None else plain(x), b, max_items,
                                                           max_str, depth - 1)
        return out
    return dict_value


def _budget_spec(t, depth: int, lim):
    """The C Summarizer's spec (trace/_sink.c) of ``_budgeted(t, depth)``,
    or None where it has none (maps, error contexts, long labels)."""
    max_bytes, max_items, max_str, max_depth = lim
    c = t.__class__
    if c in _INTLIKE:
        return (0,)
    if c is T.BoolType:
        return (1,)
    if c is T.F32Type or c is T.F64Type:
        return (2,)
    if c is T.StringType or c is T.CharType:
        return (3,)
    if c is T.StreamType or c is T.FutureType:
        return (4,)
    if c is T.ListType:
        if depth <= 0:
            return (9,)
        e = _budget_spec(t.t, depth - 1, lim)
        return (11, e) if e is not None else None
    if c is T.ErrorContextType or c is T.MapType:
        return None
    if depth <= 0:
        return (10,)
    items = _dict_items(t)
    variant = c in (T.VariantType, T.OptionType, T.ResultType, T.EnumType)
    if (len(items) > max_items and not variant) or any(len(label) > max_str for label, _ in items):
        return None  # (dict_value would cut them: a variant's value has one entry)
    specs = []
    for label, x in items:
        spec = _budget_spec(x, depth - 1, lim) if x is not None else None
        if x is not None and spec is None:
            return None
        specs.append(spec)
    return (8 if variant else 7, tuple(label for label, _ in items), tuple(specs))


def values_summarizer(ts, lim, fallback, plain=None):
    """``f(values) -> summary`` for a list of values of types ``ts`` (a
    function's parameters or results), as ``summarize`` would give it.
    ``fallback(values)`` is called for values off the fast paths; ``plain``
    (streams and futures described) is applied before _summ when the types
    may hold streams or futures."""
    max_bytes, max_items, max_str, max_depth = lim
    ts = tuple(ts)
    n = len(ts)
    parts = [_bounded(t, max_depth - 1, lim) for t in ts]
    if max_depth < 1 or max_depth > 6 or n > max_items:
        return fallback  # (beyond 6, _plain's own depth cut could show)
    if any(p is None for p in parts) or 1 + sum(p[1] for p in parts) > max_bytes:
        # budgeted, node by node (the summarizers made at the first call: with
        # the C Summarizer below, only values it gives back need them)
        fs = None

        def summ_budgeted(vs):
            nonlocal fs
            if (vs.__class__ is list or vs.__class__ is tuple) and len(vs) == n:
                if fs is None:
                    fs = tuple(_budgeted(t, max_depth - 1, lim, plain) for t in ts)
                b = [max_bytes - 1]
                return [f(x, b) for f, x in zip(fs, vs)]
            return fallback(vs)
        if n and Summarizer is not None:
            specs = tuple(_budget_spec(t, max_depth - 1, lim) for t in ts)
            if all(spec is not None for spec in specs):
                # in one C call, which gives the values to summ_budgeted where
                # the budget would run out or a value is of another shape
                return Summarizer(specs, max_str, ELLIPSIS, summ_budgeted, (str, String),
                                  (SharedStreamImpl, SharedFutureImpl), max_bytes, max_items)
        return summ_budgeted
    fs = tuple(p[0] for p in parts)
    if Summarizer is not None:
        # the same, in one C call (trace/_sink.c)
        return Summarizer(tuple(p[2] for p in parts), max_str, ELLIPSIS, fallback, (str, String),
                          (SharedStreamImpl, SharedFutureImpl))
    if n == 0:
        def summ0(vs):
            if not vs and (vs.__class__ is list or vs.__class__ is tuple):
                return []
            return fallback(vs)
        return summ0
    if n == 1:
        f0 = fs[0]

        def summ1(vs):
            if (vs.__class__ is list or vs.__class__ is tuple) and len(vs) == 1:
                try:
                    return [f0(vs[0])]
                except Exception:
                    pass
            return fallback(vs)
        return summ1

    def summ(vs):
        if (vs.__class__ is list or vs.__class__ is tuple) and len(vs) == n:
            try:
                return [f(x) for f, x in zip(fs, vs)]
            except Exception:
                pass
        return fallback(vs)
    return summ


def generic_summarizer(lim, plain, holds_shared):
    """What the observer did before plans: ``summarize(value)``, with
    streams and futures described first (``plain``) when ``holds_shared``."""
    def fallback(vs):
        if vs and holds_shared(vs):
            vs = plain(vs)
        if vs is None or vs.__class__ is bool or (vs.__class__ is int and _I64_MIN <= vs <= _U64_MAX):
            return vs
        return summarize(vs, *lim)
    return fallback

"""The behavioural oracle (docs/verdicts.md): the same workload run serially
on a fresh instance, and every import of the recorded (concurrent) run
matched against the serial run's imports by value.

Keys. An import's *value key* is its name and its arguments in canonical
form, worked out from the function's parameter types: strings, numbers,
chars, bools as themselves; lists, tuples, records as tuples; variants,
enums, options, results as (case, payload); flags as the set labels; a host
resource as what it holds (``HostResource.canon`` when the host gives one:
an HTTP request's method, authority, path and headers, its body stream), else
its type's name; a guest resource as its type's name; a stream or future as
the values that went through it (collected from the moment it is passed to
an import, resolved when the run ends). Keys are computed only while the
oracle runs: a run without it pays nothing.

Matching. Per value key, the concurrent imports of that key and the serial
ones form a complete bipartite graph; a maximum matching that prefers, for
each concurrent import, a serial import of its own stack root (matched
first, as many as both sides have), then the rest to the other roots' serial
imports in order, is a maximum matching with the most consistent pairs. A
concurrent import matched to its own root's serial import is consistent; one
matched only to another root's is misattributed (that root its origin; when
the leftover serial imports of that value come from several roots, all of
them: "shared by N requests"); one left unmatched is not judged by the
oracle.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any, Optional

from callscope.component import types as T
from callscope.runtime.waitables import SharedFutureImpl, SharedStreamImpl


class _Lazy:
    """A stream/future in a key: its values, read when the run has ended."""

    __slots__ = ("shared",)

    def __init__(self, shared):
        self.shared = shared
        if shared.seen is None:
            shared.seen = []

    def resolve(self):
        kind = "stream" if isinstance(self.shared, SharedStreamImpl) else "future"
        return (kind, _freeze(self.shared.seen or ()))


def _freeze(v):
    """Any host value as a hashable canonical value (no type at hand)."""
    c = v.__class__
    if c is str or c is int or c is bool or v is None:
        return v
    if c is float:
        return ("f", repr(v))
    if c is bytes or c is bytearray or c is memoryview:
        return ("b", bytes(v))
    if c is dict:
        return ("r", tuple((str(k), _freeze(x)) for k, x in v.items()))
    if c is list or c is tuple:
        if v and all(x.__class__ is int and 0 <= x < 256 for x in v[:64]):
            try:
                return ("b", bytes(v))
            except (ValueError, TypeError):
                pass
        return tuple(_freeze(x) for x in v)
    if isinstance(v, (SharedStreamImpl, SharedFutureImpl)):
        return _Lazy(v)
    if isinstance(v, _Lazy):
        return v
    return ("?", type(v).__name__)


class Keyer:
    """Value keys of import calls (see the module's docstring)."""

    def __init__(self):
        self._types: dict = {}  # id(ft) -> (ft, param types)

    def key(self, callee, args) -> tuple:
        ft = callee.ft
        got = self._types.get(id(ft))
        if got is None or got[0] is not ft:
            got = self._types[id(ft)] = (ft, tuple(ft.param_types()))
        ts = got[1]
        name = callee.name
        if name.startswith("[resource-drop]") and len(args) == 1:
            from callscope.wasi.resources import DTOR_OWNERS
            res = DTOR_OWNERS.get(id(callee))
            if res is not None and res.rt.dtor_func is callee:
                return (name, (self.resource(res.rt, args[0]),))
        return (name, tuple(self.canon(a, t) for a, t in zip(args, ts)))

    def canon(self, v, t, depth: int = 0):
        c = t.__class__
        if depth > 12:
            return "…"
        if c is T.StringType or c is T.CharType or c is T.BoolType:
            return v
        if c is T.F32Type or c is T.F64Type:
            return ("f", repr(v))
        if isinstance(t, T.PrimValType):
            return v
        if c is T.ListType:
            if v.__class__ in (bytes, bytearray, memoryview):
                return ("b", bytes(v))
            if t.t.__class__ is T.U8Type:
                try:
                    return ("b", bytes(v))
                except (ValueError, TypeError):
                    pass
            return tuple(self.canon(x, t.t, depth + 1) for x in v)
        if c is T.RecordType:
            return tuple((f.label, self.canon(v.get(f.label), f.t, depth + 1)) for f in t.fields)
        if c is T.TupleType:
            if isinstance(v, dict):
                return tuple(self.canon(v.get(str(i)), et, depth + 1) for i, et in enumerate(t.ts))
            return tuple(self.canon(x, et, depth + 1) for x, et in zip(v, t.ts))
        if c is T.OptionType:
            if isinstance(v, dict) and "some" in v:
                return ("some", self.canon(v["some"], t.t, depth + 1))
            return ("none",)
        if c is T.ResultType:
            if isinstance(v, dict):
                for label, et in (("ok", t.ok), ("error", t.error)):
                    if label in v:
                        return (label, None if et is None else self.canon(v[label], et, depth + 1))
            return _freeze(v)
        if c is T.VariantType:
            if isinstance(v, dict):
                for case in t.cases:
                    if case.label in v:
                        return (case.label, None if case.t is None else self.canon(v[case.label], case.t, depth + 1))
            return _freeze(v)
        if c is T.EnumType:
            return tuple(v) if isinstance(v, dict) else v
        if c is T.FlagsType:
            return tuple(sorted(k for k, x in v.items() if x)) if isinstance(v, dict) else _freeze(v)
        if c is T.OwnType or c is T.BorrowType:
            return self.resource(t.rt, v)
        if isinstance(v, (SharedStreamImpl, SharedFutureImpl)):
            return _Lazy(v)
        return _freeze(v)

    def resource(self, rt, rep):
        dtor = getattr(rt, "dtor", None)
        res = getattr(dtor, "res", None)  # a host resource (callscope.wasi.resources)
        name = getattr(rt, "name", None) or "resource"
        if res is not None:
            canon = getattr(res, "canon", None)
            obj = res.objects.get(rep)
            if canon is not None and obj is not None:
                try:
                    return ("res", name, _freeze(canon(obj)))
                except Exception:
                    pass
        return ("res", name)


def resolve(key):
    """``key`` with its streams/futures replaced by the values they carried."""
    c = key.__class__
    if c is _Lazy:
        return key.resolve()
    if c is tuple:
        if not any(x.__class__ is tuple or x.__class__ is _Lazy for x in key):
            return key
        return tuple(resolve(x) for x in key)
    return key


@dataclasses.dataclass
class OracleResult:
    status: str = "ran"  # "ran" | "failed: REASON"
    serial_imports: int = 0
    matched: int = 0
    unmatched: int = 0
    # call id -> (verdict, [root labels], serial calls of its value)
    verdicts: dict = dataclasses.field(default_factory=dict)


class ConcurrentKeys:
    """Wraps the recording observer's ``import_call``: the value key and
    stack root label of each import call of the recorded run."""

    def __init__(self, observer, keyer: Keyer):
        self.calls: list = []  # (call id, root label, root task id, key)
        self.keyer = keyer
        inner = observer.import_call
        calls = self.calls
        key = keyer.key

        def import_call(task, callee, args):
            call_id = inner(task, callee, args)
            try:
                k = key(callee, args)
            except Exception:
                k = None
            root = task.root if task is not None else None
            calls.append((call_id, getattr(root, "label", None), getattr(root, "id", None), k))
            return call_id

        observer.import_call = import_call
        # root label -> root task id (of every root, also one whose imports
        # all ran on other tasks)
        self.roots: dict = {}
        roots = self.roots
        inner_task_new = observer.task_new

        def task_new(task):
            inner_task_new(task)
            if task.caller is None and task.label is not None:
                roots.setdefault(task.label, task.id)

        observer.task_new = task_new


class SerialObserver:
    """The serial run's observer: records nothing but each import's value
    key under the root alive (``alive``, set by the driver)."""

    def __init__(self, keyer: Keyer):
        self.keyer = keyer
        self.alive: Optional[str] = None
        self.calls: list = []  # (alive label, key)
        self._n = 0
        self.last_call_id = 0
        self.traps = 0

    def __getattr__(self, name):  # every other transition: nothing to do
        if name.startswith("__"):
            raise AttributeError(name)
        f = _nop
        setattr(self, name, f)
        return f

    def next_call_id(self) -> int:
        self._n += 1
        return self._n

    def import_call(self, task, callee, args) -> int:
        self._n += 1
        try:
            k = self.keyer.key(callee, args)
        except Exception:
            k = None
        self.calls.append((self.alive, k))
        return self._n


def _nop(*args, **kwargs):
    return None


def match(concurrent: list, serial: list) -> OracleResult:
    """The matching of the module's docstring. ``concurrent``: (call id,
    stack root label, key); ``serial``: (root label, key)."""
    res = OracleResult(serial_imports=len(serial))
    by_key: dict = defaultdict(lambda: defaultdict(int))  # key -> root label -> serial count
    for label, k in serial:
        if k is not None:
            by_key[resolve(k)][label] += 1
    groups: dict = defaultdict(list)
    for call_id, label, k in concurrent:
        if k is None:
            res.unmatched += 1
            res.verdicts[call_id] = ("unmatched", [], 0)
            continue
        groups[resolve(k)].append((call_id, label))
    for k, calls in groups.items():
        avail = by_key.get(k)
        if not avail:
            for call_id, _ in calls:
                res.verdicts[call_id] = ("unmatched", [], 0)
            res.unmatched += len(calls)
            continue
        total = sum(avail.values())
        left = dict(avail)
        rest = []
        for call_id, label in calls:  # first: each import to its own root's serial import
            if left.get(label, 0) > 0:
                left[label] -= 1
                res.verdicts[call_id] = ("consistent", [label], total)
                res.matched += 1
            else:
                rest.append((call_id, label))
        # then: the other roots' serial imports of this value. Fewer imports
        # left than serial ones of other roots: each stands for several
        # (one call made for several requests: shared by all of them)
        others = [r for r, n in left.items() if n > 0]
        shared = 0 < len(rest) < sum(left[r] for r in others) and len(others) > 1
        for call_id, label in rest:
            if shared:
                res.verdicts[call_id] = ("misattributed", list(others), total)
                res.matched += 1
                continue
            others = [r for r, n in left.items() if n > 0]
            if not others:
                res.verdicts[call_id] = ("unmatched", [], total)
                res.unmatched += 1
                continue
            left[others[0]] -= 1
            res.verdicts[call_id] = ("misattributed", [others[0]], total)
            res.matched += 1
    return res

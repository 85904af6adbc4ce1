"""Host-owned resource types, and fitting an import's declared types to them.

A guest that imports ``(export "pollable" (type (sub resource)))`` sees
whatever resource type the host supplies for it. ``HostResource`` is one such
type: a ``ResourceType`` with ``impl=None`` (the host defined it), plus the
host's table from reps (the ints the guest's handles carry) to Python
objects. Values of ``own<T>``/``borrow<T>`` cross the boundary as reps, as
everywhere in callscope's Canonical ABI.

When the guest drops an ``own`` handle (``resource.drop``), the runtime calls
the type's destructor as a host subtask: ``HostResource`` installs a
``HostFunction`` as ``rt.dtor_func`` (and a marker as ``rt.dtor``, which the
runtime only tests for None), which removes the rep from the table and calls
``on_drop(obj)`` if given.

The linker resolves an instance type's ``(sub resource)`` exports to fresh
placeholder ``ResourceType``s, and its function types refer to those.
``TypeMap`` rewrites such types onto the host's resource types, so a host
function's ``FuncType`` is the import's own declaration with the host's
resources in it: no WIT needs to be written twice.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Optional

from callscope.component import types as T
from callscope.runtime.errors import Trap
from callscope.runtime.hostfunc import HostFunction

_DTOR_FT = T.FuncType((("rep", T.U32Type()),), ())


class _HostDtor:
    """Stands in ``ResourceType.dtor`` for a host resource (the runtime calls
    ``dtor_func`` whenever ``dtor`` is not None)."""

    __slots__ = ("res",)

    def __init__(self, res: "HostResource"):
        self.res = res

    def __repr__(self) -> str:
        return f"<host destructor of {self.res.name}>"

    def taint_view(self, rep: int):
        """What the recording observer searches for taint tokens when a
        handle of this type is passed to an import (None: nothing)."""
        view = self.res.view
        if view is None:
            return None
        obj = self.res.objects.get(rep)
        return None if obj is None else view(obj)


# id(a destructor's FuncInst) -> its HostResource: a drop's argument is a bare
# rep, and the oracle compares it by the object the rep stands for
DTOR_OWNERS: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()


class HostResource:
    """One host-defined resource type and the objects behind its reps."""

    def __init__(self, store, name: str, on_drop: Optional[Callable[[Any], None]] = None):
        self.name = name
        self.on_drop = on_drop
        self.rt = T.ResourceType(None, None, name=name)
        self.rt.dtor = _HostDtor(self)
        self.rt.dtor_func = HostFunction(f"[resource-drop]{name}", _DTOR_FT, self._dtor).func_inst(store)
        DTOR_OWNERS[id(self.rt.dtor_func)] = self
        self.objects: dict[int, Any] = {}
        self._next_rep = 1
        self.dropped = 0  # how many the guest dropped (for tests and summaries)
        # obj -> plain value (strings, bytes, lists) the recording observer
        # searches for taint tokens when a handle of this type is passed
        # (wasi:http requests show their headers and path)
        self.view: Optional[Callable[[Any], Any]] = None
        # obj -> plain value the oracle compares a handle of this type by
        # (callscope.oracle; None: the type's name only)
        self.canon: Optional[Callable[[Any], Any]] = None

    def __repr__(self) -> str:
        return f"HostResource({self.name}, {len(self.objects)} live)"

    def new(self, obj: Any) -> int:
        """A new rep for ``obj``: return it where the type says ``own<T>``."""
        rep = self._next_rep
        self._next_rep += 1
        self.objects[rep] = obj
        return rep

    def get(self, rep: int) -> Any:
        try:
            return self.objects[rep]
        except KeyError:
            raise Trap(f"unknown {self.name} resource (rep {rep})") from None

    def take(self, rep: int) -> Any:
        """Remove ``rep`` (the host consumed an ``own<T>`` it was given)."""
        obj = self.get(rep)
        del self.objects[rep]
        return obj

    def _dtor(self, call, args):
        rep = args[0]
        obj = self.objects.pop(rep, None)
        self.dropped += 1
        if self.on_drop is not None and obj is not None:
            self.on_drop(obj)
        return []


class TypeMap:
    """Rewrites types that mention placeholder resource types (by identity)
    onto host resource types."""

    def __init__(self, mapping: Optional[dict] = None):
        self.mapping: dict[int, T.ResourceType] = {}
        self._cache: dict[int, Any] = {}
        for k, v in (mapping or {}).items():
            self.add(k, v)

    def add(self, placeholder: T.ResourceType, rt: T.ResourceType) -> None:
        self.mapping[id(placeholder)] = rt
        self._keep = getattr(self, "_keep", [])
        self._keep.append(placeholder)  # keep ids stable

    def __contains__(self, rt) -> bool:
        return id(rt) in self.mapping

    def __call__(self, t):
        if t is None:
            return None
        key = id(t)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is t:
            return hit[1]
        r = self._map(t)
        self._cache[key] = (t, r)
        return r

    def _map(self, t):
        m = self
        if isinstance(t, T.ResourceType):
            return self.mapping.get(id(t), t)
        if isinstance(t, T.OwnType):
            return T.OwnType(m(t.rt))
        if isinstance(t, T.BorrowType):
            return T.BorrowType(m(t.rt))
        if isinstance(t, T.FuncType):
            return T.FuncType(tuple((n, m(p)) for n, p in t.params), tuple(m(r) for r in t.result), t.async_)
        if isinstance(t, T.ListType):
            return T.ListType(m(t.t), t.l)
        if isinstance(t, T.RecordType):
            return T.RecordType(tuple(T.FieldType(f.label, m(f.t)) for f in t.fields))
        if isinstance(t, T.TupleType):
            return T.TupleType(tuple(m(x) for x in t.ts))
        if isinstance(t, T.VariantType):
            return T.VariantType(tuple(T.CaseType(c.label, m(c.t)) for c in t.cases))
        if isinstance(t, T.OptionType):
            return T.OptionType(m(t.t))
        if isinstance(t, T.ResultType):
            return T.ResultType(m(t.ok), m(t.error))
        if isinstance(t, T.StreamType):
            return T.StreamType(m(t.t))
        if isinstance(t, T.FutureType):
            return T.FutureType(m(t.t))
        if isinstance(t, T.MapType):
            return T.MapType(m(t.k), m(t.v))
        return t  # primitives, enums, flags, error-context

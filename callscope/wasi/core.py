"""The WASI host: resolves a guest's instance imports to host functions.

``Wasi(store).resolver`` is what ``Host.instantiate(..., resolver=...)``
takes. For an import such as ``wasi:io/streams@0.2.9`` it finds the
``Interface`` registered for ``wasi:io/streams@0.2`` (any 0.2.x; 0.3.x
likewise), supplies the host's resource types for the instance type's
``(sub resource)`` exports, and a ``HostFunction`` for each function export,
typed by the import's own declaration (see ``resources.TypeMap``).

An import nobody provides fails instantiation with a ``LinkError`` naming it
(an interface, or one function of a known interface); with
``allow_unknown=True`` it gets functions that trap when called instead.

Interfaces are classes (see ``p2.py``, ``p3.py``, ``http.py``): ``name``,
``resources`` (resource name -> on_drop method name or None), and methods
registered in ``funcs()`` as WIT name -> ``fn(call, *args)``. A function's
return value is the result (or None for none); returning ``call.pending()``
(or ``call.resolve_later(...)``) resolves it later, as ``HostFunction``
describes.
"""

from __future__ import annotations

import random
import re
import sys
from typing import Any, Callable, Optional

from callscope.component import types as T
from callscope.component.ast import Sort
from callscope.component.linker import InstanceTypeR, LinkError
from callscope.runtime.errors import Trap
from callscope.runtime.hostfunc import HostFunction, Pending

from .resources import HostResource, TypeMap

_VERSIONED = re.compile(r"^(?P<base>[^@]+)@(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)(?P<pre>[-+].*)?$")


def interface_key(import_name: str) -> str:
    """``wasi:io/poll@0.2.9`` -> ``wasi:io/poll@0.2`` (0.x versions are
    compatible within a minor version; 1.x within a major one)."""
    m = _VERSIONED.match(import_name)
    if m is None:
        return import_name
    if m["major"] == "0":
        return f"{m['base']}@0.{m['minor']}"
    return f"{m['base']}@{m['major']}"


class WasiExit(Trap):
    """The guest called ``wasi:cli/exit``."""

    def __init__(self, code: int):
        super().__init__(f"guest exited with status {code}")
        self.code = code


class Interface:
    """One WASI interface's host side. Subclasses set ``name`` and
    ``resources`` and implement ``funcs``."""

    name = ""
    resources: dict = {}  # resource name -> name of an on_drop method, or None

    def __init__(self, wasi: "Wasi"):
        self.wasi = wasi
        # set from the import being resolved, before funcs() is called:
        self.types: dict = {}  # type export name -> type (host resources in place)
        self.func_types: dict = {}  # function export name -> FuncType

    def funcs(self) -> dict:
        return {}

    def res(self, name: str) -> HostResource:
        return self.wasi.resource(self.name, name)


def _root_label(call):
    """The label of the root export task ``call`` runs under (None: none)."""
    task = getattr(call, "task", None)
    return getattr(getattr(task, "root", None), "label", None)


class ClockLog:
    """Clock readings held equal between the oracle's two runs
    (docs/verdicts.md): the recorded run keeps, per root and clock, the
    instants it read (``recording``); the serial run then reads each root's
    k-th instant of a clock as the recorded run's k-th, so a timestamp a
    root put into an import's arguments has the same value in both runs.
    Past the recorded readings (or under no labelled root) the store's time
    is read, never earlier than the root's last reading: each root's clock
    stays monotonic."""

    __slots__ = ("recording", "_seen", "_next", "_last")

    def __init__(self) -> None:
        self.recording = True
        self._seen: dict = {}  # (label, clock) -> [ns, ...] of the recorded run
        self._next: dict = {}  # (label, clock) -> index of the next replayed reading
        self._last: dict = {}  # (label, clock) -> the last ns the serial run read

    def replay(self) -> "ClockLog":
        """Switch to the serial run: readings are served, not recorded."""
        self.recording = False
        return self

    def read(self, label, clock: str, ns: int) -> int:
        if label is None:
            return ns
        key = (label, clock)
        if self.recording:
            self._seen.setdefault(key, []).append(ns)
            return ns
        seen = self._seen.get(key, ())
        i = self._next.get(key, 0)
        if i < len(seen):
            self._next[key] = i + 1
            ns = seen[i]
        else:
            ns = max(ns, self._last.get(key, ns))
        self._last[key] = ns
        return ns


class Wasi:
    """Host implementations of WASI for guests in one ``Store``.

    ``stdout``/``stderr``: binary file-likes (default: the process's);
    ``env``/``args``: what wasi:cli/environment reports; ``seed``: seeds the
    deterministic "random" bytes; ``wall_clock_base_s``: the simulated wall
    clock's start. Time is the store's simulated time (``store.now_ns``).
    """

    def __init__(self, store, stdout=None, stderr=None, stdin: bytes = b"", env: Optional[dict] = None,
                 args: Optional[list] = None, seed: int = 0, allow_unknown: bool = False,
                 wall_clock_base_s: int = 1_700_000_000, extra: Optional[dict] = None,
                 interfaces: Optional[list] = None):
        self.store = store
        self.stdout = stdout if stdout is not None else _binary(sys.stdout)
        self.stderr = stderr if stderr is not None else _binary(sys.stderr)
        self.stdin = stdin
        self.env = dict(env or {})
        self.args = list(args or [])
        self.rng = random.Random(seed)
        self.seed = seed
        self._root_rngs: dict = {}  # root label -> its own Random
        self.clocks: Optional["ClockLog"] = None  # the oracle's clock readings, held equal
        self.allow_unknown = allow_unknown
        self.wall_clock_base_s = wall_clock_base_s
        self.extra = dict(extra or {})  # import name -> instance value dict, or name -> FuncInst
        self._resources: dict = {}
        self._interfaces: dict = {}
        self.resolved: list = []  # import names, in the order asked
        from . import http, p2, p3
        for cls in (interfaces or (p2.INTERFACES + p3.INTERFACES + http.INTERFACES)):
            self.register(cls)

    # -- registry --------------------------------------------------------

    def rng_for(self, call):
        """The random source of the root the call runs under: a Random seeded
        by the run's seed and the root's label, so a root draws the same
        values however its calls interleave with other roots' (the oracle's
        serial run sees what the concurrent run saw). Calls under no
        labelled root share the store-wide one."""
        label = _root_label(call)
        if label is None:
            return self.rng
        r = self._root_rngs.get(label)
        if r is None:
            r = self._root_rngs[label] = random.Random(f"{self.seed}/{label}")
        return r
    def clock_now(self, call, clock: str) -> int:
        """The simulated ``clock`` ("monotonic" or "wall") as ``call`` reads
        it: the store's time, unless the oracle holds the clocks equal
        between its two runs (``self.clocks``, a :class:`ClockLog`)."""
        ns = self.store.now_ns
        log = self.clocks
        if log is None:
            return ns
        return log.read(_root_label(call), clock, ns)

    def register(self, cls) -> Interface:
        iface = cls(self)
        self._interfaces[iface.name] = iface
        return iface

    def provide(self, import_name: str, funcs: dict, resources: Optional[dict] = None) -> Interface:
        """Serve a non-WASI instance import from Python: ``funcs`` maps the
        interface's function names to ``fn(call, *args)`` (see the module
        docstring); ``resources`` maps its resource names to ``on_drop(obj)``
        callables (or None). Types come from the guest's import."""
        table = dict(funcs)
        drops = dict(resources or {})

        class Provided(Interface):
            name = interface_key(import_name)
            resources = {r: (f"_drop_{i}" if fn is not None else None) for i, (r, fn) in enumerate(drops.items())}

            def funcs(self):
                return table

        for i, fn in enumerate(drops.values()):
            if fn is not None:
                setattr(Provided, f"_drop_{i}", staticmethod(fn))
        Provided.__name__ = f"Provided[{import_name}]"
        return self.register(Provided)

    def interface(self, name: str) -> Optional[Interface]:
        return self._interfaces.get(interface_key(name)) or self._interfaces.get(name)

    def resource(self, iface: str, name: str) -> HostResource:
        key = (interface_key(iface), name)
        r = self._resources.get(key)
        if r is None:
            on_drop = None
            impl = self._interfaces.get(key[0])
            if impl is not None:
                m = impl.resources.get(name)
                if m is not None:
                    on_drop = getattr(impl, m)
            r = self._resources[key] = HostResource(self.store, f"{key[0]}#{name}", on_drop)
        return r

    def owns(self, rt) -> bool:
        return any(r.rt is rt for r in self._resources.values())

    # -- the linker's resolver ---------------------------------------------
    def resolver(self, name: str, sort, t):
        self.resolved.append(name)
        if name in self.extra:
            return self.extra[name]
        if sort is Sort.INSTANCE and isinstance(t, InstanceTypeR):
            return self.instance(name, t)
        if self.allow_unknown and sort is Sort.FUNC and isinstance(t, T.FuncType):
            return _trapping(name, t).func_inst(self.store)
        raise LinkError(f"callscope does not provide import `{name}` ({sort.name.lower()})")

    __call__ = resolver

    def instance(self, name: str, t: InstanceTypeR) -> dict:
        iface = self.interface(name)
        if iface is None and not self.allow_unknown:
            raise LinkError(f"callscope does not provide import `{name}` "
                            f"(no host implementation of {interface_key(name)})")
        key = iface.name if iface is not None else interface_key(name)
        tmap = TypeMap()
        out: dict = {}
        # types first (the host's resources in place of the placeholders),
        # then the functions, typed by the import's declarations
        types: dict = {}
        for ename, (esort, et) in t.exports.items():
            if esort is Sort.TYPE:
                if isinstance(et, T.ResourceType) and not self.owns(et):
                    if et not in tmap:
                        tmap.add(et, self.resource(key, ename).rt)
                types[ename] = tmap(et)
        func_types = {ename: tmap(et) for ename, (esort, et) in t.exports.items() if esort is Sort.FUNC}
        funcs: dict = {}
        if iface is not None:
            iface.types, iface.func_types = types, func_types
            funcs = iface.funcs()
        for ename, (esort, et) in t.exports.items():
            if esort is Sort.TYPE:
                out[ename] = (esort, types[ename])
            elif esort is Sort.FUNC:
                ft = func_types[ename]
                fn = funcs.get(ename)
                if fn is None:
                    fn = _fallback(ename, ft)
                if fn is None:
                    if getattr(iface, "refusing", False):
                        hf = _trapping(f"{name}#{ename}", ft, "is not supported by callscope")
                    elif not self.allow_unknown:
                        raise LinkError(f"callscope does not provide `{ename}` of import `{name}`")
                    else:
                        hf = _trapping(f"{name}#{ename}", ft)
                else:
                    hf = HostFunction(f"{name}#{ename}", ft, _adapt(fn, ft))
                out[ename] = (esort, hf.func_inst(self.store))
            else:
                raise LinkError(f"import `{name}`: cannot provide export `{ename}` of sort {esort.name.lower()}")
        return out


class _TextSink:
    """A binary file-like over a text stream without ``.buffer`` (pytest's
    capture, io.StringIO): bytes are written decoded as UTF-8."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, data) -> int:
        self.stream.write(bytes(data).decode("utf-8", errors="replace"))
        return len(data)

    def flush(self) -> None:
        self.stream.flush()


def _binary(stream):
    buf = getattr(stream, "buffer", None)
    return buf if buf is not None else _TextSink(stream)


def _adapt(fn: Callable, ft: T.FuncType):
    has_result = bool(ft.result)

    def impl(call, args):
        r = fn(call, *args)
        if isinstance(r, Pending):
            return r
        return [r] if has_result else []

    impl.__name__ = getattr(fn, "__name__", "impl")
    return impl


def _trapping(name: str, ft: T.FuncType,
              why: str = "is not provided by callscope (allowed unknown at instantiation)") -> HostFunction:
    def impl(call, args):
        raise Trap(f"import `{name}` {why}")
    return HostFunction(name, ft, impl)


_DENY = ("not-permitted", "access-denied", "access", "not-supported", "unsupported")


def _fallback(ename: str, ft: T.FuncType):
    """Functions returning ``result<_, error-code>`` with an enum error code
    that callscope does not implement answer with a refusal (not-permitted,
    access-denied...): the filesystem and sockets interfaces."""
    if len(ft.result) != 1 or not isinstance(ft.result[0], T.ResultType):
        return None
    err = ft.result[0].error
    if not isinstance(err, T.EnumType):
        return None
    label = next((l for l in _DENY if l in err.labels), None)
    if label is None:
        return None

    def refuse(call, *args):
        return {"error": {label: None}}

    refuse.__name__ = f"refuse_{label}"
    return refuse

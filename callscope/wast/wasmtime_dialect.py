"""``callscope wast --dialect wasmtime``: what wasmtime's own WAST runner
(crates/wast in bytecodealliance/wasmtime) gives a script beyond the spec's,
so its tests/misc_testsuite/component-model can be run as it is:

* its test host imports (``link_component_spectest``): ``host-echo-u32``,
  ``host-return-two`` and the ``host`` instance (functions, a nested
  instance, a core module, host resources), and the ``wasmtime`` debug
  instance (``register_wasmtime``);
* implicit registration: a top-level ``(component $name ...)`` (or
  ``(component instance $name ...)``) is importable by ``name`` afterwards,
  its exported core modules and resources (what wasmtime reflects);
* ``(register "name" $inst)``: every export of the instance;
* lenient linking: an import of an instance type that holds no functions,
  modules or resources (empty, nested empty, or types with ``eq`` bounds
  only) need not be supplied;
* its legacy text syntax (``WAST_STRICT_COMPONENT_INDICES=0`` for wat2wasm;
  set by the CLI before any text is parsed);
* its trap messages: an ``assert_trap`` expecting wasmtime's words passes on
  the runtime's (the spec's) words for the same trap (``TRAP_ALIASES``).
"""

from __future__ import annotations

from typing import Any, Optional

from callscope.component import ast as A
from callscope.component import types as T
from callscope.component.ast import Sort
from callscope.component.linker import LinkError
from callscope.runtime.errors import Trap
from callscope.runtime.hostfunc import HostFunction

# wasmtime's words for a trap -> the runtime's words for the same trap
TRAP_ALIASES = {
    "cannot write after being notified that the readable end dropped": (
        "cannot write to stream after being notified that the readable end dropped",
        "cannot write to future after previous write succeeded or readable end dropped"),
    "cannot read after being notified that the writable end dropped": (
        "cannot read from stream after being notified that the writable end dropped",
        "cannot read from future after previous read succeeded"),
    "cannot read from and write to intra-component future/stream with non-numeric payload": (
        "cannot read from and write to intra-component future",
        "cannot read from and write to intra-component stream with non-numeric types"),
    "backpressure counter overflow": ("backpressure counter underflow",),
    "stream read/write count too large": ("buffer too long",),
    "uncaught exception propagated out of component": ("exception",),
}


def trap_matches(expected: str, message: str) -> bool:
    """Whether a trap worded ``message`` is the one wasmtime words
    ``expected`` (beside the runner's own substring rule)."""
    for ours in TRAP_ALIASES.get(expected, ()):
        if ours in message:
            return True
    if expected.startswith("discriminant ") and "out of range" in expected:
        return "invalid variant discriminant" in message or "discriminant" in message
    return False


_SORT_WORD = {Sort.CORE_MODULE: "module", Sort.FUNC: "func", Sort.INSTANCE: "instance", Sort.TYPE: "type",
              Sort.COMPONENT: "component"}


_EXPECTED_WORD = dict(_SORT_WORD)
_EXPECTED_WORD[Sort.FUNC] = "function"


def _is_placeholder(rt) -> bool:
    """A ``(sub resource)`` of an import's declaration (not yet any type)."""
    return isinstance(rt, T.ResourceType) and rt.impl is None and rt.dtor is None


def _fit(where: str, t, supplied: dict) -> dict:
    """``supplied`` (an instance value) as the import's instance type ``t``
    asks for it, or LinkError as wasmtime's linker would: an export missing
    (unless a type with an ``eq`` bound or an empty-enough instance), or a
    resource type other than the one an ``eq`` bound names."""
    exports = getattr(t, "exports", None)
    if exports is None:
        return supplied
    seen: dict = {}  # id(placeholder) -> the type supplied for it
    out = dict(supplied)
    for ename, (esort, et) in exports.items():
        have = supplied.get(ename)
        if esort is Sort.TYPE and isinstance(et, T.ResourceType):
            want = seen.get(id(et), None if _is_placeholder(et) else et)
            if have is None:
                if want is None:
                    raise LinkError(f"resource `{ename}` of `{where}` was not found")
                out[ename] = (esort, want)
                continue
            if want is not None and have[1] is not want:
                raise LinkError(f"`{where}` export `{ename}`: mismatched resource types")
            seen[id(et)] = have[1]
        elif have is None:
            if esort is Sort.TYPE or (esort is Sort.INSTANCE and _empty_enough(et)):
                out[ename] = (esort, _lenient_instance(et) if esort is Sort.INSTANCE else et)
                continue
            raise LinkError(f"`{where}` export `{ename}` was not found")
        elif have[0] is not esort:
            raise LinkError(f"`{where}` export `{ename}`: expected {_EXPECTED_WORD.get(esort, esort.name.lower())} "
                            f"found {_SORT_WORD.get(have[0], have[0].name.lower())}")
        elif esort is Sort.INSTANCE:
            out[ename] = (esort, _fit(f"{where}/{ename}", et, have[1]))
        elif esort is Sort.CORE_MODULE and isinstance(et, A.CoreModuleType):
            check_module(et, have[1])
    return out


# -- core module types, checked as wasmtime's linker checks them ---------------

def _kind(t) -> str:
    import wasmtime
    if isinstance(t, (A.CoreFuncExtern, wasmtime.FuncType)):
        return "func"
    if isinstance(t, (A.CoreTableType, wasmtime.TableType)):
        return "table"
    if isinstance(t, (A.CoreMemoryType, wasmtime.MemoryType)):
        return "memory"
    if isinstance(t, (A.CoreGlobalType, wasmtime.GlobalType)):
        return "global"
    return "tag"


def _val(v) -> str:
    if isinstance(v, str):
        return v
    heap = v.heap if isinstance(v.heap, str) else "func"
    return f"{heap}ref" if v.nullable else f"(ref {heap})"


def _fmt_func(params, results) -> str:
    p = f" (param {' '.join(params)})" if params else ""
    r = f" (result {' '.join(results)})" if results else ""
    return f"(func{p}{r})"


def _local_types(mt: A.CoreModuleType) -> list:
    types: list = []
    for d in mt.decls:
        if isinstance(d, A.CoreTypeDecl):
            t = d.type
            types.extend(t.subtypes if isinstance(t, A.CoreRecType) else [t])
        elif isinstance(d, A.CoreOuterAliasDecl):
            types.append(None)  # an outer core type: not looked into
    return types


def _functype(types: list, idx: int):
    t = types[idx] if idx < len(types) else None
    if isinstance(t, A.CoreSubType):
        t = t.comptype
    return t if isinstance(t, A.CoreFuncType) else None


def _limits_within(inner_min, inner_max, outer_min, outer_max) -> bool:
    """An item of limits ``inner`` may stand where ``outer`` is asked."""
    return inner_min >= outer_min and (outer_max is None or (inner_max is not None and inner_max <= outer_max))


def _subtype(decl, types: list, actual, *, actual_is_module_side: bool) -> tuple[bool, str, str]:
    """(ok, declared text, actual text). For an export the module's item must
    fit the declaration; for an import the declaration must fit the module's."""
    if isinstance(decl, A.CoreFuncExtern):
        ft = _functype(types, decl.type_idx)
        if ft is None:
            return True, "", ""
        dp, dr = [_val(v) for v in ft.params], [_val(v) for v in ft.results]
        ap, ar = [str(p) for p in actual.params], [str(r) for r in actual.results]
        return (dp, dr) == (ap, ar), _fmt_func(dp, dr), _fmt_func(ap, ar)
    if isinstance(decl, A.CoreGlobalType):
        ok = _val(decl.valtype) == str(actual.content) and bool(decl.mutable) == bool(actual.mutable)
        return ok, "global", "global"
    if isinstance(decl, A.CoreTableType):
        lim = (actual.limits.min, actual.limits.max, decl.limits.min, decl.limits.max)
        if not actual_is_module_side:
            lim = (decl.limits.min, decl.limits.max, actual.limits.min, actual.limits.max)
        return _val(decl.elem) == str(actual.element) and _limits_within(*lim), "table", "table"
    if isinstance(decl, A.CoreMemoryType):
        lim = (actual.limits.min, actual.limits.max, decl.limits.min, decl.limits.max)
        if not actual_is_module_side:
            lim = (decl.limits.min, decl.limits.max, actual.limits.min, actual.limits.max)
        return bool(decl.memory64) == bool(actual.is_64) and _limits_within(*lim), "memory", "memory"
    return True, "", ""


def check_module(mt: A.CoreModuleType, module) -> None:
    """LinkError unless the core module ``module`` (wasmtime's) has the
    declared module type ``mt``: every declared export, of its kind and a
    subtype of its type; every import of the module declared, of its kind,
    the declaration a subtype of what the module imports."""
    types = _local_types(mt)
    exports = {e.name: e.type for e in module.exports}
    declared_imports = {}
    for d in mt.decls:
        if isinstance(d, A.CoreExportDecl):
            have = exports.get(d.name)
            if have is None:
                raise LinkError(f"module export `{d.name}` not defined")
            if _kind(d.type) != _kind(have):
                raise LinkError(f"expected {_kind(d.type)} found {_kind(have)}")
            ok, want_t, have_t = _subtype(d.type, types, have, actual_is_module_side=True)
            if not ok:
                raise LinkError(f"export `{d.name}` has the wrong type: expected type `{want_t}`, "
                                f"found type `{have_t}`")
        elif isinstance(d, A.CoreImportDecl):
            declared_imports[(d.module, d.name)] = d.type
    for imp in module.imports:
        decl = declared_imports.get((imp.module, imp.name))
        where = f"{imp.module}::{imp.name}"
        if decl is None:
            raise LinkError(f"module import `{where}` not defined")
        if _kind(decl) != _kind(imp.type):
            raise LinkError(f"expected {_kind(imp.type)} found {_kind(decl)}")
        ok, _, _ = _subtype(decl, types, imp.type, actual_is_module_side=False)
        if not ok:
            raise LinkError(f"module import `{where}` has the wrong type")


def _empty_enough(t) -> bool:
    """An instance type wasmtime links without a definition: no functions,
    modules or resources in it, at any depth."""
    exports = getattr(t, "exports", None)
    if exports is None:
        return False
    for sort, et in exports.values():
        if sort is Sort.INSTANCE:
            if not _empty_enough(et):
                return False
        elif sort is Sort.TYPE:
            if isinstance(et, T.ResourceType):
                return False
        else:
            return False
    return True


def _lenient_instance(t) -> dict:
    out = {}
    for name, (sort, et) in t.exports.items():
        out[name] = (sort, _lenient_instance(et) if sort is Sort.INSTANCE else et)
    return out


class WasmtimeHostImports:
    """The linker's resolver for the dialect: the test host's imports and
    what the script registered."""

    def __init__(self, host):
        self.host = host
        self.store = host.store
        self.registered: dict[str, dict] = {}
        self._resources: dict[str, Any] = {}
        self.drops = 0
        self.last_drop = 0

    # -- registration ---------------------------------------------------------
    def register(self, name: str, exports: dict, everything: bool) -> None:
        if everything:
            self.registered[name] = dict(exports)
        else:  # implicit: what wasmtime reflects into its linker
            self.registered[name] = {n: (s, v) for n, (s, v) in exports.items()
                                     if s is Sort.CORE_MODULE or (s is Sort.TYPE and isinstance(v, T.ResourceType))}

    # -- the resolver -----------------------------------------------------------
    def __call__(self, name: str, sort, t):
        if name in self.registered:
            self._check_sort(name, sort, Sort.INSTANCE, None)
            return _fit(name, t, self.registered[name])
        if name == "host-return-two":
            return self._check_sort(name, sort, Sort.FUNC, self._func(name, t, lambda call, a: [2]))
        if name == "host-echo-u32":
            return self._check_sort(name, sort, Sort.FUNC, self._func(name, t, lambda call, a: [a[0]]))
        if name == "host" and sort is Sort.INSTANCE:
            return self._host_instance(t)
        if name == "wasmtime" and sort is Sort.INSTANCE:
            return self._instance(t, {"gc": lambda call, a: [], "set-max-table-capacity": lambda call, a: []},
                                  "wasmtime")
        if sort is Sort.INSTANCE and _empty_enough(t):
            return _lenient_instance(t)
        raise LinkError(f"import `{name}` was not found")

    @staticmethod
    def _check_sort(name, want, have, value):
        if want is not have:
            raise LinkError(f"import `{name}`: expected {_EXPECTED_WORD.get(want, want.name.lower())} "
                            f"found {_SORT_WORD.get(have, have.name.lower())}")
        return value

    def _func(self, name: str, ft, impl):
        if not isinstance(ft, T.FuncType):
            return None
        return HostFunction(name, ft, impl).func_inst(self.store)

    # -- the `host` instance ----------------------------------------------------
    def _resource(self, name: str):
        from callscope.wasi.resources import HostResource
        key = "resource1" if name == "resource1-again" else name
        r = self._resources.get(key)
        if r is None:
            r = self._resources[key] = HostResource(self.store, key, on_drop=self._dropped if key == "resource1"
                                                    else None)
        return r

    def _dropped(self, rep) -> None:
        self.drops += 1
        self.last_drop = rep

    def _host_funcs(self) -> dict:
        store = self.store

        def slowly(value):
            def impl(call, a):
                return call.resolve_later(1, [value(a)])
            return impl

        def never(call, a):
            return call.pending()

        r1 = self._resource("resource1")

        def construct(call, a):
            rep = a[0]
            r1.objects[rep] = rep
            return [rep]

        def check(call, a):
            if a[0] != a[1]:
                raise Trap(f"resource1.assert: rep {a[0]} is not {a[1]}")
            return []

        return {
            "return-three": lambda call, a: [3],
            "return-hi": lambda call, a: ["hi"],
            "return-two-slowly": slowly(lambda a: 2),
            "echo-slowly": slowly(lambda a: a[0]),
            "never-return": never,
            "[constructor]resource1": construct,
            "[static]resource1.assert": check,
            "[static]resource1.last-drop": lambda call, a: [self.last_drop],
            "[static]resource1.drops": lambda call, a: [self.drops],
            "[method]resource1.simple": check,
            "[method]resource1.take-borrow": lambda call, a: [],
            "[method]resource1.take-own": lambda call, a: [],
            "[method]resource1.never-return": never,
        }

    def _host_instance(self, t) -> dict:
        return self._instance(t, self._host_funcs(), "host")

    def _instance(self, t, funcs: dict, where: str) -> dict:
        from callscope.wasi.resources import TypeMap
        exports = getattr(t, "exports", None)
        if exports is None:
            raise LinkError(f"import `{where}`: expected instance")
        tmap = TypeMap()
        out: dict = {}
        for ename, (esort, et) in exports.items():
            if esort is Sort.TYPE and isinstance(et, T.ResourceType):
                want = tmap(et) if et in tmap else (None if _is_placeholder(et) else et)
                if where != "host" or ename not in ("resource1", "resource2", "resource1-again"):
                    if want is None:
                        raise LinkError(f"`{where}` has no resource `{ename}`: it was not found")
                    out[ename] = (esort, want)  # an eq bound: need not be supplied
                    continue
                rt = self._resource(ename).rt
                if want is not None and want is not rt:
                    raise LinkError(f"`{where}` export `{ename}`: mismatched resource types")
                if et not in tmap:
                    tmap.add(et, rt)
                out[ename] = (esort, rt)
        for ename, (esort, et) in exports.items():
            if ename in out:
                continue
            if esort is Sort.TYPE:
                out[ename] = (esort, tmap(et))
            elif esort is Sort.FUNC:
                impl = funcs.get(ename)
                if impl is None:
                    raise LinkError(f"`{where}` has no function `{ename}`: it was not found")
                out[ename] = (esort, HostFunction(f"{where}#{ename}", tmap(et), impl).func_inst(self.store))
            elif esort is Sort.INSTANCE and where == "host" and ename == "nested":
                out[ename] = (esort, self._instance(et, {"return-four": lambda call, a: [4]}, "host/nested"))
            elif esort is Sort.CORE_MODULE and where == "host" and ename == "simple-module":
                out[ename] = (esort, self.host.linker.compile(_simple_module()))
            elif esort is Sort.INSTANCE and _empty_enough(et):
                out[ename] = (esort, _lenient_instance(et))
            else:
                raise LinkError(f"`{where}` has no {esort.name.lower()} `{ename}`: it was not found")
        return out


_SIMPLE_MODULE: Optional[bytes] = None


def _simple_module() -> bytes:
    global _SIMPLE_MODULE
    if _SIMPLE_MODULE is None:
        import wasmtime
        _SIMPLE_MODULE = bytes(wasmtime.wat2wasm(
            '(module (global (export "g") i32 i32.const 100) (func (export "f") (result i32) i32.const 101))'))
    return _SIMPLE_MODULE

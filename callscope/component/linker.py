"""Instantiating a decoded component (Explainer.md "Component Definitions",
"Instance Definitions", "Alias Definitions").

Definitions are walked in order, each appending to one of the component's
index spaces. Core modules are compiled and instantiated by wasmtime; every
core function a ``canon`` definition makes is a Python host function linked
into the core instances that import it. Component functions are the
runtime's ``FuncInst`` values, passed between components as they are: the
adapter between two components is ``canon lower`` of a lifted ``FuncInst``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from typing import Any, Callable, Optional

import wasmtime

from callscope.component import ast as A
from callscope.component import types as T
from callscope.component.memory import WasmtimeMemory
from callscope.runtime import canon as C
from callscope.runtime import fiber
from callscope.runtime.errors import Trap
from callscope.runtime.instance import ComponentInstance, Store
from callscope.runtime.thread import CoreFunc


_TRACE_BUILTINS = bool(os.environ.get("CALLSCOPE_TRACE_BUILTINS"))


def _t(linker, d, scope):
    return (scope.get(A.Sort.TYPE, d.type_idx),)


def _t_opts(linker, d, scope):
    return (scope.get(A.Sort.TYPE, d.type_idx), linker.opts(d.opts, scope))


def _t_async(linker, d, scope):
    return (scope.get(A.Sort.TYPE, d.type_idx), d.is_async)


def _end(EndT):
    return lambda linker, d, scope: (EndT, scope.get(A.Sort.TYPE, d.type_idx))


def _none(linker, d, scope):
    return ()


def _opts(linker, d, scope):
    return (linker.opts(d.opts, scope),)


def _cancellable(linker, d, scope):
    return (d.cancellable,)


def _wait(linker, d, scope):
    return (d.cancellable, linker.memory(scope.get(A.Sort.CORE_MEMORY, d.memory)))


def _task_return(linker, d, scope):
    result = () if d.result is None else (linker.valtype(d.result, scope),)
    opts = linker.opts(d.opts, scope)
    return (result, opts, C.abi.opts_shape(opts))


def _thread_new(linker, d, scope):
    return (linker._table_getter(scope.get(A.Sort.CORE_TABLE, d.table_idx)),)


# Each built-in: the canon function, and what to make of the definition's
# immediates; the core arguments follow them: fn(*immediates, *args).
# The core function type validation gives a built-in (CanonicalABI.md), for
# those checked when linked: ``canon thread.set-task`` is ``(func (param i32))``.
FIXED_CORE_TYPES = {"thread.set-task": (("i32",), ())}

# built-ins whose definition takes the core arguments as one list (after its
# immediates), not spread: task.return's values
_LIST_ARG_BUILTINS = {A.CanonTaskReturn}

_BUILTINS = {
    A.CanonResourceNew: (C.canon_resource_new, _t),
    A.CanonResourceDrop: (C.canon_resource_drop, _t_async),
    A.CanonResourceRep: (C.canon_resource_rep, _t),
    A.CanonBackpressureSet: (C.canon_backpressure_set, _none),
    A.CanonBackpressureInc: (C.canon_backpressure_inc, _none),
    A.CanonBackpressureDec: (C.canon_backpressure_dec, _none),
    A.CanonTaskReturn: (C.canon_task_return, _task_return),
    A.CanonTaskCancel: (C.canon_task_cancel, _none),
    A.CanonContextGet: (C.canon_context_get, lambda linker, d, scope: (d.index,)),
    A.CanonContextSet: (C.canon_context_set, lambda linker, d, scope: (d.index,)),
    A.CanonSubtaskCancel: (C.canon_subtask_cancel, lambda linker, d, scope: (d.is_async,)),
    A.CanonSubtaskDrop: (C.canon_subtask_drop, _none),
    A.CanonStreamNew: (C.canon_stream_new, _t),
    A.CanonStreamRead: (C.canon_stream_read, _t_opts),
    A.CanonStreamWrite: (C.canon_stream_write, _t_opts),
    A.CanonStreamCancelRead: (C.canon_stream_cancel_read, _t_async),
    A.CanonStreamCancelWrite: (C.canon_stream_cancel_write, _t_async),
    A.CanonStreamDropReadable: (C.drop_end, _end(C.ReadableStreamEnd)),
    A.CanonStreamDropWritable: (C.drop_end, _end(C.WritableStreamEnd)),
    A.CanonFutureNew: (C.canon_future_new, _t),
    A.CanonFutureRead: (C.canon_future_read, _t_opts),
    A.CanonFutureWrite: (C.canon_future_write, _t_opts),
    A.CanonFutureCancelRead: (C.canon_future_cancel_read, _t_async),
    A.CanonFutureCancelWrite: (C.canon_future_cancel_write, _t_async),
    A.CanonFutureDropReadable: (C.drop_end, _end(C.ReadableFutureEnd)),
    A.CanonFutureDropWritable: (C.drop_end, _end(C.WritableFutureEnd)),
    A.CanonErrorContextNew: (C.canon_error_context_new, _opts),
    A.CanonErrorContextDebugMessage: (C.canon_error_context_debug_message, _opts),
    A.CanonErrorContextDrop: (C.canon_error_context_drop, _none),
    A.CanonWaitableSetNew: (C.canon_waitable_set_new, _none),
    A.CanonWaitableSetWait: (C.canon_waitable_set_wait, _wait),
    A.CanonWaitableSetPoll: (C.canon_waitable_set_poll, _wait),
    A.CanonWaitableSetDrop: (C.canon_waitable_set_drop, _none),
    A.CanonWaitableJoin: (C.canon_waitable_join, _none),
    A.CanonThreadIndex: (C.canon_thread_index, _none),
    A.CanonThreadNewIndirect: (C.canon_thread_new_indirect, _thread_new),
    A.CanonThreadResumeLater: (C.canon_thread_resume_later, _none),
    A.CanonThreadSetTask: (C.canon_thread_set_task, _none),
    A.CanonThreadSuspend: (C.canon_thread_suspend, _cancellable),
    A.CanonThreadYield: (C.canon_thread_yield, _cancellable),
    A.CanonThreadSuspendThenResume: (C.canon_thread_suspend_then_resume, _cancellable),
    A.CanonThreadYieldThenResume: (C.canon_thread_yield_then_resume, _cancellable),
    A.CanonThreadSuspendThenPromote: (C.canon_thread_suspend_then_promote, _cancellable),
    A.CanonThreadYieldThenPromote: (C.canon_thread_yield_then_promote, _cancellable),
}


def _traced(name, impl):
    """Debugging aid: print each built-in call and its results to stderr."""
    def run(args):
        r = impl(args)
        if r.__class__ is not list:
            r = yield from r
        print(f"[builtin] {name}{tuple(args)} -> {r}", file=sys.stderr)
        return r
    return run


def _has_start_section(data: bytes) -> bool:
    """Whether a core module has a start section (id 8): only then can its
    instantiation run code that needs a current task."""
    i, n = 8, len(data)
    while i < n:
        sid = data[i]
        i += 1
        size = shift = 0
        while True:
            b = data[i]
            i += 1
            size |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        if sid == 8:
            return True
        i += size
    return False


def _idle_body():
    return
    yield


# Compiled core modules of at least this size are kept on disk (a 21 MB
# componentize-py guest takes ~3 s to compile, ~0.1 s to deserialize).
# CALLSCOPE_MODULE_CACHE names the directory; "0" or "" turns it off.
_CACHE_MIN_BYTES = 64 * 1024


def _cache_path(key: bytes) -> Optional[str]:
    d = os.environ.get("CALLSCOPE_MODULE_CACHE", os.path.expanduser("~/.cache/callscope/modules"))
    if not d or d == "0":
        return None
    return os.path.join(d, f"{hashlib.sha256(key + _WASMTIME_TAG).hexdigest()}.cwasm")


def _wasmtime_tag() -> bytes:
    try:
        from importlib.metadata import version
        return f"wasmtime-{version('wasmtime')}".encode()
    except Exception:
        return b"wasmtime-?"


_WASMTIME_TAG = _wasmtime_tag()


def _load_cached(engine, key: bytes, data) -> Optional[wasmtime.Module]:
    if len(data) < _CACHE_MIN_BYTES:
        return None
    path = _cache_path(key)
    if path is None or not os.path.exists(path):
        return None
    try:
        return wasmtime.Module.deserialize_file(engine, path)
    except Exception:
        return None  # another engine configuration or a damaged file: compile


def _store_cached(key: bytes, data, m: wasmtime.Module) -> None:
    if len(data) < _CACHE_MIN_BYTES:
        return
    path = _cache_path(key)
    if path is None:
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(m.serialize())
        os.replace(tmp, path)
    except OSError:
        pass


class LinkError(Exception):
    """The component cannot be instantiated with what it was given."""


_PRIMS = {p: T.PRIMITIVES[p.value] for p in A.PrimValType}


class InstanceTypeR:
    """A resolved instance (or component) type: export name → (sort, type)."""

    __slots__ = ("exports", "imports")

    def __init__(self):
        self.exports: dict = {}
        self.imports: dict = {}


class Scope:
    """The index spaces of one component (or component/instance type)."""

    __slots__ = ("spaces", "parent", "inst", "names", "resolver")

    def __init__(self, parent: Optional["Scope"], inst: Optional[ComponentInstance]):
        self.spaces: dict = {s: [] for s in A.Sort}
        self.parent = parent
        self.inst = inst
        self.resolver = None

    def add(self, sort: A.Sort, v) -> None:
        self.spaces[sort].append(v)

    def get(self, sort: A.Sort, i: int):
        space = self.spaces[sort]
        if i >= len(space):
            raise LinkError(f"{sort} index {i} out of bounds")
        return space[i]

    def outer(self, count: int) -> "Scope":
        s = self
        for _ in range(count):
            s = s.parent
            if s is None:
                raise LinkError("outer alias count out of bounds")
        return s


class ComponentClosure:
    """A component definition together with the scope it was defined in
    (for outer aliases)."""

    __slots__ = ("ast", "scope")

    def __init__(self, ast: A.Component, scope: Optional[Scope]):
        self.ast = ast
        self.scope = scope


def core_type_name(vt) -> str:
    s = str(vt)
    return s


class Linker:
    def __init__(self, engine: wasmtime.Engine, wasm_store: wasmtime.Store, store: Store):
        self.engine = engine
        self.wasm_store = wasm_store
        self.store = store
        self._modules: dict = {}
        self._current_inst = None
        self._memories: dict = {}
        self._has_start: dict = {}
        self.host_slots: list = []  # fiber registry slots of the host functions defined (Host.close frees them)

    # -- core modules ----------------------------------------------------
    def compile(self, data: bytes) -> wasmtime.Module:
        key = hashlib.sha256(data).digest()
        m = self._modules.get(key)
        if m is None:
            m = _load_cached(self.engine, key, data)
            if m is None:
                try:
                    m = wasmtime.Module(self.engine, bytes(data))
                except wasmtime.WasmtimeError as e:
                    raise LinkError(f"invalid core module: {e}") from None
                _store_cached(key, data, m)
            self._modules[key] = m
        return m

    def core_func(self, f, name: str = "") -> CoreFunc:
        """Wrap a core function item (a wasmtime Func or a CoreFunc) as a
        CoreFunc with known core types."""
        if isinstance(f, CoreFunc):
            return f
        if isinstance(f, wasmtime.Func):
            ty = f.type(self.wasm_store)
            return CoreFunc(self.wasm_store, f, [str(p) for p in ty.params], [str(r) for r in ty.results], name)
        raise LinkError(f"expected a core function, found {type(f).__name__}")

    def instantiate_core(self, module: wasmtime.Module, args: dict) -> dict:
        linker = wasmtime.Linker(self.engine)
        for imp in module.imports:
            inst = args.get(imp.module)
            if inst is None:
                raise LinkError(f"core instantiation: missing argument instance `{imp.module}`")
            item = inst.get(imp.name)
            if item is None:
                raise LinkError(f"core instantiation: `{imp.module}` has no export `{imp.name}`")
            if isinstance(item, CoreFunc):
                if item.is_host():
                    ft = imp.type
                    hf = item.func
                    params = [str(p) for p in ft.params]
                    results = [str(r) for r in ft.results]
                    fixed = FIXED_CORE_TYPES.get(hf.name)
                    if fixed is not None and (tuple(params), tuple(results)) != fixed:
                        raise LinkError(f"core instantiation: `{imp.module}` `{imp.name}`: `canon {hf.name}` "
                                        f"has type (func (param {' '.join(fixed[0])}))"
                                        f"{' (result ' + ' '.join(fixed[1]) + ')' if fixed[1] else ''}, "
                                        f"not {'(' + ' '.join(params) + ') -> (' + ' '.join(results) + ')'}")
                    if tuple(params) != hf.params or tuple(results) != hf.results:
                        hf = fiber.HostFunc(params, results, hf.impl, hf.name, hf.spread)
                    self.host_slots.append(fiber.define_host(linker, imp.module, imp.name, hf))
                    continue
                item = item.func
            linker.define(self.wasm_store, imp.module, imp.name, item)
        if self._has_start.get(id(module), True):
            instance = self._run_start(lambda: fiber.instantiate(self.wasm_store, linker, module))
        else:
            instance = fiber.instantiate(self.wasm_store, linker, module)
        return dict(instance.exports(self.wasm_store).items())

    def _run_start(self, fn):
        """Run core instantiation (and so any start function) as a thread of
        a synchronous task of the component being instantiated, so built-ins
        called from a start function find a current task."""
        from callscope.runtime.thread import STACK, Task, Thread
        if STACK or self._current_inst is None:
            return fn()
        task = Task(T.FuncType((), ()), None, self._current_inst, list, lambda r: None, name="[start]")
        thread = Thread(task, _idle_body)
        thread.is_running = True
        thread.started = True
        STACK.append(thread)
        try:
            return fn()
        finally:
            STACK.pop()
            thread.is_running = False

    # -- components ----------------------------------------------------------
    def instantiate(self, ast: A.Component, args: dict, name: str = "", outer: Optional[Scope] = None,
                    parent: Optional[ComponentInstance] = None, resolver: Optional[Callable] = None):
        """Instantiate ``ast`` with ``args`` (import name → (sort, value)).
        An import not in ``args`` is asked of ``resolver(name, sort, type)``
        (type resolved: a FuncType, an InstanceTypeR, a ResourceType...),
        which returns the value or raises LinkError.
        Returns (exports: name → (sort, value), the ComponentInstance)."""
        inst = ComponentInstance(self.store, parent, name=name)
        scope = Scope(outer, inst)
        scope.resolver = resolver
        exports: dict = {}
        saved, self._current_inst = self._current_inst, inst
        try:
            for d in ast.definitions:
                self._define(d, scope, args, exports, inst)
        finally:
            self._current_inst = saved
        return exports, inst

    def _define(self, d, scope: Scope, args: dict, exports: dict, inst: ComponentInstance) -> None:
        S = A.Sort
        if isinstance(d, A.CoreModuleDef):
            m = self.compile(d.data)
            self._has_start[id(m)] = _has_start_section(d.data)
            scope.add(S.CORE_MODULE, m)
        elif isinstance(d, A.CoreInstantiate):
            module = scope.get(S.CORE_MODULE, d.module_idx)
            cargs = {a.name: scope.get(S.CORE_INSTANCE, a.instance_idx) for a in d.args}
            scope.add(S.CORE_INSTANCE, self.instantiate_core(module, cargs))
        elif isinstance(d, A.CoreInlineExports):
            scope.add(S.CORE_INSTANCE, {e.name: scope.get(S.core(e.sortidx.sort), e.sortidx.idx) for e in d.exports})
        elif isinstance(d, A.CoreTypeDef):
            for _ in range(d.index_count):
                scope.add(S.CORE_TYPE, d.type)
        elif isinstance(d, A.ComponentDef):
            scope.add(S.COMPONENT, ComponentClosure(d.component, scope))
        elif isinstance(d, A.Instantiate):
            closure = scope.get(S.COMPONENT, d.component_idx)
            cargs = {a.name: (a.sortidx.sort, scope.get(a.sortidx.sort, a.sortidx.idx)) for a in d.args}
            sub_exports, _ = self.instantiate(closure.ast, cargs, outer=closure.scope, parent=inst,
                                              name=self._child_name(inst, len(scope.spaces[S.INSTANCE])))
            scope.add(S.INSTANCE, sub_exports)
        elif isinstance(d, A.InlineExports):
            bag = {e.name: (e.sortidx.sort, scope.get(e.sortidx.sort, e.sortidx.idx)) for e in d.exports}
            for ename, (esort, ev) in bag.items():
                if esort is S.FUNC and isinstance(ev, C.FuncInst) and not ev.name:
                    ev.name = ename
            scope.add(S.INSTANCE, bag)
        elif isinstance(d, A.ExportAlias):
            instance = scope.get(S.INSTANCE, d.instance_idx)
            if isinstance(instance, InstanceTypeR):
                raise LinkError("alias of an export of an instance type")
            try:
                sort, v = instance[d.name]
            except KeyError:
                raise LinkError(f"instance has no export `{d.name}`") from None
            scope.add(d.sort, v)
        elif isinstance(d, A.CoreExportAlias):
            cinst = scope.get(S.CORE_INSTANCE, d.core_instance_idx)
            if d.name not in cinst:
                raise LinkError(f"core instance has no export `{d.name}`")
            v = cinst[d.name]
            if d.sort is S.CORE_FUNC:
                v = self.core_func(v, d.name)
            scope.add(d.sort, v)
        elif isinstance(d, A.OuterAlias):
            scope.add(d.sort, scope.outer(d.count).get(d.sort, d.idx))
        elif isinstance(d, A.TypeDef):
            scope.add(S.TYPE, self.deftype(d.type, scope, inst))
        elif isinstance(d, A.CanonDef):
            self._canon(d, scope, inst)
        elif isinstance(d, A.ImportDef):
            self._import(d, scope, args)
        elif isinstance(d, A.ExportDef):
            sort = d.sortidx.sort
            v = scope.get(sort, d.sortidx.idx)
            if sort is S.FUNC and isinstance(v, C.FuncInst) and "#" not in v.name:
                v.name = d.name
            elif sort is S.INSTANCE and isinstance(v, dict):
                for fname, (fsort, fv) in v.items():
                    if fsort is S.FUNC and isinstance(fv, C.FuncInst) and "#" not in fv.name:
                        fv.name = f"{d.name}#{fname}"
            exports[d.name] = (sort, v)
            scope.add(sort, v)
        elif isinstance(d, A.StartDef):
            raise LinkError("component start functions (values) are not supported")
        elif isinstance(d, A.ValueDef):
            raise LinkError("component values are not supported")
        else:
            raise LinkError(f"unsupported definition {type(d).__name__}")

    @staticmethod
    def _child_name(inst, i: int) -> str:
        return f"{inst.name}/{i}" if inst.name else str(i)

    # -- imports ---------------------------------------------------------------
    def _import(self, d: A.ImportDef, scope: Scope, args: dict) -> None:
        sort = d.type.sort
        if d.name in args:
            asort, v = args[d.name]
            scope.add(sort, v)
            return
        if isinstance(d.type, A.TypeExtern):
            if d.type.eq_idx is not None:
                scope.add(sort, scope.get(A.Sort.TYPE, d.type.eq_idx))
            else:
                scope.add(sort, T.ResourceType(None, None, name=d.name))
            return
        if scope.resolver is not None:
            scope.add(sort, scope.resolver(d.name, sort, self.externtype(d.type, scope, d.name)))
            return
        raise LinkError(f"missing import `{d.name}`")

    def import_type(self, d: A.ImportDef, scope: Scope):
        return self.externtype(d.type, scope)

    # -- types -------------------------------------------------------------------
    def valtype(self, t, scope: Scope):
        if isinstance(t, A.PrimValType):
            return _PRIMS[t]
        v = scope.get(A.Sort.TYPE, t)
        return v

    def deftype(self, t, scope: Scope, inst):
        vt = self.valtype
        if isinstance(t, A.PrimValType):
            return _PRIMS[t]
        if isinstance(t, A.RecordType):
            return T.RecordType(tuple(T.FieldType(f.label, vt(f.type, scope)) for f in t.fields))
        if isinstance(t, A.VariantType):
            return T.VariantType(tuple(T.CaseType(c.label, None if c.type is None else vt(c.type, scope))
                                       for c in t.cases))
        if isinstance(t, A.ListType):
            return T.ListType(vt(t.elem, scope), t.length)
        if isinstance(t, A.TupleType):
            return T.TupleType(tuple(vt(x, scope) for x in t.types))
        if isinstance(t, A.FlagsType):
            return T.FlagsType(tuple(t.labels))
        if isinstance(t, A.EnumType):
            return T.EnumType(tuple(t.labels))
        if isinstance(t, A.OptionType):
            return T.OptionType(vt(t.type, scope))
        if isinstance(t, A.ResultType):
            return T.ResultType(None if t.ok is None else vt(t.ok, scope), None if t.err is None else vt(t.err, scope))
        if isinstance(t, A.OwnType):
            return T.OwnType(self._resource(scope, t.type_idx))
        if isinstance(t, A.BorrowType):
            return T.BorrowType(self._resource(scope, t.type_idx))
        if isinstance(t, A.StreamType):
            return T.StreamType(None if t.elem is None else vt(t.elem, scope))
        if isinstance(t, A.FutureType):
            return T.FutureType(None if t.elem is None else vt(t.elem, scope))
        if isinstance(t, A.MapType):
            return T.MapType(vt(t.key, scope), vt(t.value, scope))
        if isinstance(t, A.FuncType):
            return T.FuncType(tuple((p.label, vt(p.type, scope)) for p in t.params),
                              () if t.result is None else (vt(t.result, scope),), t.is_async)
        if isinstance(t, A.ResourceType):
            rt = T.ResourceType(inst, None)
            if t.dtor is not None:
                rt.dtor = self.core_func(scope.get(A.Sort.CORE_FUNC, t.dtor))
            return rt
        if isinstance(t, (A.InstanceType, A.ComponentType)):
            return self.instance_type(t, scope)
        raise LinkError(f"unsupported type {type(t).__name__}")

    def _resource(self, scope, idx):
        rt = scope.get(A.Sort.TYPE, idx)
        if not isinstance(rt, T.ResourceType):
            raise LinkError(f"type index {idx} is not a resource type")
        return rt

    def instance_type(self, t, scope: Scope) -> InstanceTypeR:
        r = InstanceTypeR()
        inner = Scope(scope, None)
        for d in t.decls:
            if isinstance(d, A.TypeDef):
                inner.add(A.Sort.TYPE, self.deftype(d.type, inner, None))
            elif isinstance(d, A.CoreTypeDef):
                for _ in range(d.index_count):
                    inner.add(A.Sort.CORE_TYPE, d.type)
            elif isinstance(d, A.OuterAlias):
                inner.add(d.sort, inner.outer(d.count).get(d.sort, d.idx))
            elif isinstance(d, A.ExportAlias):
                it = inner.get(A.Sort.INSTANCE, d.instance_idx)
                sort, v = it.exports[d.name]
                inner.add(d.sort, v)
            elif isinstance(d, (A.ExportDecl, A.ImportDef)):
                ext = self.externtype(d.type, inner, d.name)
                (r.exports if isinstance(d, A.ExportDecl) else r.imports)[d.name] = (d.type.sort, ext)
                inner.add(d.type.sort, ext)
        return r

    def externtype(self, e, scope: Scope, name: str = ""):
        if isinstance(e, A.FuncExtern):
            return scope.get(A.Sort.TYPE, e.type_idx)
        if isinstance(e, (A.InstanceExtern, A.ComponentExtern)):
            return scope.get(A.Sort.TYPE, e.type_idx)
        if isinstance(e, A.TypeExtern):
            if e.eq_idx is not None:
                return scope.get(A.Sort.TYPE, e.eq_idx)
            return T.ResourceType(None, None, name=name)
        if isinstance(e, A.CoreModuleExtern):
            # the declared core:moduletype (for a host that checks what it supplies)
            t = scope.spaces[A.Sort.CORE_TYPE]
            return t[e.core_type_idx] if e.core_type_idx < len(t) else None
        return None

    def memory(self, m: wasmtime.Memory) -> WasmtimeMemory:
        """One wrapper per wasm memory, so options naming the same memory
        compare equal (``task.return`` checks its options against the task's)."""
        key = bytes(m._memory)
        w = self._memories.get(key)
        if w is None:
            # a memory64 memory's (ptr, len) pairs are i64s (CanonicalABI.md
            # "memory64": ptr_type is the memory's address type)
            ptr_type = "i64" if m.type(self.wasm_store).is_64 else "i32"
            w = self._memories[key] = WasmtimeMemory(m, self.wasm_store, ptr_type)
        return w

    # -- canon -------------------------------------------------------------------
    def opts(self, o: A.CanonOpts, scope: Scope):
        from callscope.component.abi import CanonicalOptions
        memory = None
        if o.memory is not None:
            memory = self.memory(scope.get(A.Sort.CORE_MEMORY, o.memory))
        realloc = None
        if o.realloc is not None:
            realloc = C.make_realloc(self.core_func(scope.get(A.Sort.CORE_FUNC, o.realloc)), scope.inst)
        post_return = None
        if o.post_return is not None:
            post_return = self.core_func(scope.get(A.Sort.CORE_FUNC, o.post_return))
        callback = None
        if o.callback is not None:
            callback = self.core_func(scope.get(A.Sort.CORE_FUNC, o.callback))
        return CanonicalOptions(string_encoding=o.string_encoding, memory=memory, realloc=realloc,
                                post_return=post_return, async_=o.is_async, callback=callback)

    def _host(self, scope: Scope, name: str, impl: Callable, spread: Optional[Callable] = None) -> None:
        # Core types are taken from the importing module's declaration when
        # linked (see instantiate_core); these are placeholders.
        if _TRACE_BUILTINS:
            impl = _traced(name, impl)
            spread = None
        hf = fiber.HostFunc((), (), impl, name, spread)
        scope.add(A.Sort.CORE_FUNC, CoreFunc(self.wasm_store, hf, (), (), name))

    def _canon(self, d, scope: Scope, inst: ComponentInstance) -> None:
        S = A.Sort
        from callscope.component import abi
        if isinstance(d, A.CanonLift):
            ft = scope.get(S.TYPE, d.type_idx)
            opts = self.opts(d.opts, scope)
            callee = self.core_func(scope.get(S.CORE_FUNC, d.core_func_idx))
            if callee.is_host():
                flat = abi.flatten_functype(opts, ft, "lift")
                callee = CoreFunc(self.wasm_store, callee.func, flat.params, flat.results, callee.name)
            scope.add(S.FUNC, C.lift(self.store, callee, ft, opts, inst))
            return
        if isinstance(d, A.CanonLower):
            callee = scope.get(S.FUNC, d.func_idx)
            ft = callee.ft
            opts = self.opts(d.opts, scope)
            flat = abi.flatten_functype(opts, ft, "lower")
            hf = fiber.HostFunc(flat.params, flat.results,
                                functools.partial(C.canon_lower, callee, ft, opts, C.lower_plan(ft, opts)),
                                callee.name)
            scope.add(S.CORE_FUNC, CoreFunc(self.wasm_store, hf, flat.params, flat.results, callee.name))
            return
        entry = _BUILTINS.get(type(d))
        if entry is None:
            msg = f"`canon {d.op}` is not supported"

            def unsupported(a, msg=msg):
                raise Trap(msg)

            self._host(scope, d.op, unsupported)
            return
        fn, immediates = entry
        imm = immediates(self, d, scope)
        if type(d) in _LIST_ARG_BUILTINS:
            # (takes its core arguments as one list, which each call makes anew)
            self._host(scope, d.op, functools.partial(fn, *imm))
            return

        def impl(a, fn=fn, imm=imm):
            return fn(*imm, *a)

        self._host(scope, d.op, impl, functools.partial(fn, *imm))

    def _table_getter(self, table: wasmtime.Table):
        def get(i):
            if i >= table.size(self.wasm_store):
                raise Trap("undefined element: out of bounds table access")
            f = table.get(self.wasm_store, i)
            if f is None:
                raise Trap("uninitialized element")
            return self.core_func(f)
        return get

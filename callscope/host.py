"""The embedding: one wasmtime engine and store, a runtime ``Store`` on top,
and the calls a host makes (instantiate a component, invoke an export).

``WastHost`` is the engine behind ``callscope wast``; ``callscope run`` builds
on ``Host`` too.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Optional

import wasmtime

from callscope.component import abi, binary
from callscope.component import ast as A
from callscope.component.linker import Linker, LinkError
from callscope.component.types import FuncType
from callscope.runtime import fiber
from callscope.runtime.canon import FuncInst
from callscope.runtime.errors import Trap
from callscope.runtime.instance import Store
from callscope.runtime.thread import STACK

_ENGINE: Optional[wasmtime.Engine] = None


def engine() -> wasmtime.Engine:
    """One engine per process: compiled modules are cached on it."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = fiber.new_engine()
    return _ENGINE


class ComponentExports:
    """What an instantiated component exports: name → (sort, value)."""

    def __init__(self, exports: dict, instance):
        self.exports = exports
        self.instance = instance

    def func(self, name: str) -> FuncInst:
        try:
            sort, f = self.exports[name]
        except KeyError:
            raise Trap(f"no export named `{name}`") from None
        if not isinstance(f, FuncInst):
            raise Trap(f"export `{name}` is not a function")
        return f


class Host:
    def __init__(self, seed: int = 0, observer=None):
        self.engine = engine()
        self.wasm_store = wasmtime.Store(self.engine)
        self.wasm_store.set_epoch_deadline(1 << 62)
        self.store = Store(self.wasm_store, seed=seed, observer=observer)
        self.linker = Linker(self.engine, self.wasm_store, self.store)

    def close(self) -> None:
        """Delete every wasm call still suspended in this store (threads that
        never finished), before the store itself goes, and forget its host
        functions (the fiber registry would keep the whole store alive)."""
        fiber.release(self.wasm_store)
        fiber.unregister(self.linker.host_slots)
        self.linker.host_slots.clear()
        abi.clear_caches()

    def decode(self, component_bytes: bytes) -> A.Component:
        """The component binary decoded, with the patches of a component
        assembled from text applied (callscope/wast/assemble.py). DecodeError
        for what is not a component."""
        ast = binary.decode(component_bytes)
        patches = getattr(component_bytes, "canon_patches", None)
        if patches:  # assembled from text with placeholders
            from callscope.wast.assemble import apply_patches
            apply_patches(ast, patches)
        return ast

    def instantiate(self, component, imports: Optional[dict] = None, name: str = "",
                    resolver: Optional[Callable] = None) -> ComponentExports:
        """Instantiate ``component``: its bytes, or what :meth:`decode` made
        of them (a caller that also looks at the component decodes it once)."""
        ast = component if isinstance(component, A.Component) else self.decode(component)
        exports, inst = self.linker.instantiate(ast, imports or {}, name=name, resolver=resolver)
        return ComponentExports(exports, inst)

    def call(self, f: FuncInst, args: list) -> list:
        """Call ``f`` from the host and run the event loop until it returns."""
        if STACK:
            raise RuntimeError("host call while a thread is running")
        result: list = []

        def on_start():
            return list(args)

        def on_resolve(r):
            result.append(r)

        def done():
            return bool(result)

        try:
            self.store.invoke(f, on_start, on_resolve)
            self.store.run_until(done)
        except Trap:
            if f.inst is not None:
                f.inst.poisoned = True
            raise
        r = result[0]
        if r is None:
            raise Trap("call was cancelled")
        return list(r)


class WastHost:
    """The engine ``callscope wast`` drives (see callscope.wast.engine).
    ``dialect="wasmtime"``: wasmtime's test host imports, registration and
    lenient linking (callscope/wast/wasmtime_dialect.py)."""

    def __init__(self, seed: int = 0, dialect: str = "spec"):
        self.host = Host(seed=seed)
        self.dialect = dialect
        self.imports = None
        if dialect == "wasmtime":
            from callscope.wast.wasmtime_dialect import WasmtimeHostImports
            self.imports = WasmtimeHostImports(self.host)

    def close(self) -> None:
        self.host.close()

    def instantiate(self, component_bytes: bytes, name: Optional[str] = None) -> ComponentExports:
        try:
            ex = self.host.instantiate(component_bytes, {}, name=name or "", resolver=self.imports)
        except binary.DecodeError as e:
            raise LinkError(str(e)) from None
        if self.imports is not None and name:
            # wasmtime's runner: a named component is importable by its name
            self.imports.register(name.lstrip("$"), ex.exports, everything=False)
        return ex

    def register(self, name: str, instance: ComponentExports) -> None:
        if self.imports is None:
            raise NotImplementedError("`register` of components is wasmtime's (--dialect wasmtime)")
        self.imports.register(name, instance.exports, everything=True)

    def func_type(self, instance: ComponentExports, export_name: str) -> FuncType:
        return instance.func(export_name).ft

    def invoke(self, instance: ComponentExports, export_name: str, args: list) -> list:
        return self.host.call(instance.func(export_name), args)

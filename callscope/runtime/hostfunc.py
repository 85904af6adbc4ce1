"""Host functions: component-level functions implemented in Python.

A host import is a ``FuncInst`` like any lifted function, so a guest's
``canon lower`` of it is the same code path as a call into another
component, and it becomes a *host subtask* in the spec's terms.

The Python implementation gets a ``HostCall`` and the lifted arguments. It
either returns the results at once (a list of 0 or 1 values), or returns
``call.pending()`` and resolves it later: from a simulated-time timer
(``call.later(delay_ns, fn)``) or from any other event the host drives. While
it is pending, the guest's other tasks run.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from callscope.component.types import FuncType
from .canon import FuncInst
from .errors import Trap, host_failure
from .thread import STACK


class Pending:
    """A host call that will resolve later."""

    __slots__ = ("call",)

    def __init__(self, call: "HostCall"):
        self.call = call


class HostCall:
    """One call of a host function: what the implementation sees."""

    __slots__ = ("store", "func", "args", "task", "caller_inst", "_on_resolve", "done", "cancelled",
                 "on_cancel")

    def __init__(self, store, func: "HostFunction", args, task, caller_inst, on_resolve):
        self.store = store
        self.func = func
        self.args = args
        self.task = task  # the calling task (the top of its async call stack)
        self.caller_inst = caller_inst
        self._on_resolve = on_resolve
        self.done = False
        self.cancelled = False
        self.on_cancel: Optional[Callable[[], None]] = None

    @property
    def now_ns(self) -> int:
        return self.store.now_ns

    def pending(self) -> Pending:
        return Pending(self)

    def resolve(self, result: list) -> None:
        """Deliver the results (a list of 0 or 1 values)."""
        if self.done:
            return
        self.done = True
        try:
            result = list(result)
        except TypeError as e:  # (an --import-module function returned a non-list)
            raise host_failure(self.func.name, e, "returned a value its result type cannot hold:") from None
        self._on_resolve(result)

    def later(self, delay_ns: int, fn: Callable[[], Any]) -> None:
        """Run ``fn`` after ``delay_ns`` of simulated time (an exception in it
        is a trap naming this import)."""
        name = self.func.name

        def guarded():
            try:
                return fn()
            except Trap:
                raise
            except Exception as e:
                raise host_failure(name, e) from None

        self.store.call_later(delay_ns, guarded)

    def resolve_elsewhere(self) -> Pending:
        """The call will be resolved from another thread (real I/O): that
        thread calls ``resolve_threadsafe(result)`` exactly once."""
        self.store.begin_external()
        return Pending(self)

    def resolve_threadsafe(self, result: list) -> None:
        self.store.post(lambda: self.resolve(result))

    def resolve_later(self, delay_ns: int, result: list) -> Pending:
        self.later(delay_ns, lambda: self.resolve(result))
        return Pending(self)


Impl = Callable[[HostCall, list], Any]


def _no_cancel(caller) -> None:
    """The ``on_cancel`` of a host call that has already returned."""


class HostFunction:
    """Builds the ``FuncInst`` for one host function."""

    def __init__(self, name: str, ft: FuncType, impl: Impl):
        self.name = name
        self.ft = ft
        self.impl = impl

    def func_inst(self, store) -> FuncInst:
        fn = self

        def call(on_start, on_resolve, caller_inst):
            task = STACK[-1].task if STACK else None
            args = on_start()
            hc = HostCall(store, fn, args, task, caller_inst, on_resolve)
            try:
                r = fn.impl(hc, args)
            except Trap:
                raise
            except Exception as e:  # host code failed: a trap of this import call
                raise host_failure(fn.name, e) from None
            if r.__class__ is not Pending:
                if not hc.done:
                    hc.resolve([] if r is None else r)
                return _no_cancel

            def on_cancel(caller):
                if hc.done:
                    return
                hc.cancelled = True
                if hc.on_cancel is not None:
                    hc.on_cancel()
                if not hc.done:
                    hc.done = True
                    on_resolve(None)

            return on_cancel

        fi = FuncInst(self.ft, call, self.name, host=True)
        from callscope.component.abi import contains_borrow
        if not any(contains_borrow(t) for t in self.ft.param_types()):
            fi.fast = self
        return fi


def host_instance(store, funcs: dict) -> dict:
    """An instance value (export name → (sort, value)) of host functions,
    to satisfy an ``(import "ns:pkg/iface" (instance ...))``."""
    from callscope.component.ast import Sort
    return {name: (Sort.FUNC, f.func_inst(store)) for name, f in funcs.items()}


def _bind_host_sync() -> None:
    """canon's sync lowers of host functions (_call_host_sync, and its C twin
    in _fiber.canon_lower) given HostCall and Pending now that they exist."""
    from . import canon
    canon._hostfunc_types()


_bind_host_sync()

"""What the WAST runner needs from a component runtime.

The runner (:mod:`callscope.wast.runner`) drives any object implementing
:class:`WastEngine`. The real one is ``callscope.host.WastHost``, built by
:func:`default_engine`; tests use small fakes.

Values crossing this interface are in the spec's host representation, as
described in :mod:`callscope.wast.script`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ..component.types import FuncType
from ..runtime.errors import Trap

__all__ = ["WastEngine", "NotSupported", "LinkError", "Trap", "default_engine", "UnavailableEngine"]


class NotSupported(Exception):
    """The engine cannot run this (a feature not implemented yet). The
    runner fails the assertion with ``not supported: <reason>``."""


class LinkError(Exception):
    """Instantiation failed because an import could not be satisfied."""


@runtime_checkable
class WastEngine(Protocol):
    def instantiate(self, component_bytes: bytes, name: str | None) -> Any:
        """Instantiate a component binary; ``name`` is the script's ``$id``
        for it, if any. Returns an instance handle. Raises :class:`Trap`
        when instantiation traps, :class:`LinkError` when an import cannot
        be satisfied, :class:`NotSupported` for what is not implemented."""
        ...

    def func_type(self, instance: Any, export_name: str) -> FuncType:
        """The type of an exported function, used to convert arguments and
        compare results. Raises KeyError when there is no such export."""
        ...

    def invoke(self, instance: Any, export_name: str, args: list) -> list:
        """Call an exported function with host values; returns the results
        (a list of 0 or 1 values). Raises :class:`Trap` on a trap."""
        ...


class UnavailableEngine:
    """Stands in when no runtime can be built: every operation raises
    :class:`NotSupported` with the reason, so each assertion that needs a
    runtime fails with it (validation assertions still run: wasmtime answers
    those)."""

    def __init__(self, reason: str):
        self.reason = reason

    def instantiate(self, component_bytes: bytes, name: str | None) -> Any:
        raise NotSupported(self.reason)

    def func_type(self, instance: Any, export_name: str) -> FuncType:
        raise NotSupported(self.reason)

    def invoke(self, instance: Any, export_name: str, args: list) -> list:
        raise NotSupported(self.reason)


def default_engine(seed: int | None = None, schedule: str = "fifo", dialect: str = "spec") -> WastEngine:
    """The component runtime's engine, its scheduler's policy ``schedule``
    (``fifo`` or ``random``, see docs/runtime.md) seeded with ``seed``.
    Raises :class:`NotSupported` when the runtime (``callscope.host.WastHost``)
    is not available."""
    try:
        from ..host import WastHost  # type: ignore[attr-defined]
    except ImportError as e:
        raise NotSupported(f"the component runtime is not available ({e})") from None
    engine = WastHost(seed=seed or 0, dialect=dialect)
    engine.host.store.policy = schedule
    return engine

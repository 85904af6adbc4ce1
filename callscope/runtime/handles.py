"""Per-instance handle tables and the values they hold (CanonicalABI.md,
"Table State", "Resource State", and ``ErrorContext``).

Trap messages are worded as wasmtime words them, so conformance tests that
check messages match.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

from .errors import Trap


class Table:
    """The spec's ``Table``: index 0 is reserved (never handed out), freed
    indices are reused LIFO from a free list, and at most ``MAX_LENGTH``
    entries exist."""

    __slots__ = ("array", "free")

    MAX_LENGTH = 2 ** 28 - 1

    def __init__(self):
        self.array: list[Any] = [None]
        self.free: list[int] = []

    def __iter__(self) -> Iterator[Any]:
        for e in self.array:
            if e is not None:
                yield e

    def __len__(self) -> int:
        """Number of live entries."""
        return len(self.array) - 1 - len(self.free)

    def get(self, i: int) -> Any:
        array = self.array
        if i < 0 or i >= len(array) or array[i] is None:
            raise Trap(f"unknown handle index {i}")
        return array[i]

    def add(self, e: Any) -> int:
        assert e is not None
        if self.free:
            i = self.free.pop()
            assert self.array[i] is None
            self.array[i] = e
        else:
            i = len(self.array)
            if i > Table.MAX_LENGTH:
                raise Trap("handle table is full")
            self.array.append(e)
        return i

    def remove(self, i: int) -> Any:
        e = self.get(i)
        self.array[i] = None
        self.free.append(i)
        return e


# Table.get/add/remove: the methods above (the definitions, kept in
# ``_table_py``), or the same in C as method descriptors of the class when
# ``_fiber`` is built (tests put ``_table_py`` back to compare the two).
_table_py = (Table.get, Table.add, Table.remove)
try:
    from . import _fiber as _cfiber
except ImportError:  # not built: the Python methods
    _cfiber = None
else:
    Table.get, Table.add, Table.remove = _cfiber.init_table(Table, *_table_py, Trap)


class ResourceHandle:
    """An ``own`` or ``borrow`` handle to resource ``rt`` with representation
    ``rep``. ``num_lends`` counts live borrows lent out of this handle
    (an own handle with lends cannot be dropped or transferred)."""

    __slots__ = ("rt", "rep", "own", "borrow_scope", "num_lends")

    def __init__(self, rt, rep: int, own: bool, borrow_scope: Optional[Any] = None):
        self.rt = rt
        self.rep = rep
        self.own = own
        self.borrow_scope = borrow_scope
        self.num_lends = 0

    def __repr__(self) -> str:
        kind = "own" if self.own else "borrow"
        return f"ResourceHandle({kind} {self.rt!r} rep={self.rep} lends={self.num_lends})"


class ErrorContext:
    """An error-context value. ``debug_message`` is a lifted string (the
    spec's String triple; here a ``callscope.component.abi.String`` or str)."""

    __slots__ = ("debug_message",)

    def __init__(self, debug_message):
        self.debug_message = debug_message

    def __repr__(self) -> str:
        return f"ErrorContext({self.debug_message!r})"

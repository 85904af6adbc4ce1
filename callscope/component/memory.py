"""Linear memories as the Canonical ABI sees them (the spec's ``MemInst``).

Both kinds expose ``view()``: a writable ``memoryview`` (format ``'B'``)
over the whole memory, which ``struct.unpack_from``/``pack_into`` and slicing
work on directly. A view stays valid only until the memory next grows, which
can happen only while wasm runs: take a fresh view at the start of each
top-level lift/lower and after every call into wasm (e.g. ``realloc``).
"""

from __future__ import annotations

import ctypes

from wasmtime import _bindings

from callscope.runtime import fiber

_data_size = _bindings._wasmtime_memory_data_size
_data_ptr = _bindings._wasmtime_memory_data


def ptr_size(ptr_type: str) -> int:
    if ptr_type == "i32":
        return 4
    if ptr_type == "i64":
        return 8
    raise ValueError(f"bad pointer type {ptr_type!r}")


class MemInst:
    """Common interface. Subclasses implement ``view()`` and ``__len__``."""

    addrtype: str = "i32"

    def ptr_type(self) -> str:
        return self.addrtype

    def ptr_size(self) -> int:
        return ptr_size(self.addrtype)

    def view(self) -> memoryview:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    # Convenience accessors (each takes a fresh view; not for hot loops).
    def read(self, ptr: int, n: int) -> bytes:
        if ptr < 0 or ptr + n > len(self):
            raise IndexError("memory access out of bounds")
        return self.view()[ptr:ptr + n].tobytes()

    def write(self, ptr: int, data) -> None:
        if ptr < 0 or ptr + len(data) > len(self):
            raise IndexError("memory access out of bounds")
        self.view()[ptr:ptr + len(data)] = data

    def __getitem__(self, i):
        v = self.view()
        if isinstance(i, slice):
            return v[i].tobytes()
        return v[i]

    def __setitem__(self, i, value):
        v = self.view()
        if isinstance(i, slice):
            v[i] = bytes(value)
        else:
            v[i] = value


class BytesMemory(MemInst):
    """A memory backed by a Python ``bytearray`` (for tests and the host).
    ``grow(delta)`` replaces the backing bytearray, so views taken before a
    grow keep pointing at the old contents, just as a moved wasm memory."""

    __slots__ = ("bytes", "addrtype")

    def __init__(self, size_or_data=65536, ptr_type: str = "i32"):
        if isinstance(size_or_data, int):
            self.bytes = bytearray(size_or_data)
        else:
            self.bytes = bytearray(size_or_data)
        self.addrtype = ptr_type

    def view(self) -> memoryview:
        return memoryview(self.bytes)

    def __len__(self) -> int:
        return len(self.bytes)

    def grow(self, delta_bytes: int) -> int:
        old = len(self.bytes)
        self.bytes = self.bytes + bytearray(delta_bytes)
        return old


class WasmtimeMemory(MemInst):
    """A wasmtime ``Memory`` in a ``Store``. Reads and writes go straight to
    the memory's host pointer. ``memory.grow`` may move it, but only wasm can
    grow a memory: the view is taken again whenever wasm may have run since
    (``fiber.epoch()`` counts every entry into and return from wasm)."""

    __slots__ = ("memory", "store", "addrtype", "_view", "_epoch", "_len", "_ctx", "_ref")

    def __init__(self, memory, store, ptr_type: str = "i32"):
        self.memory = memory
        self.store = store
        self.addrtype = ptr_type
        self._view = None
        self._epoch = -1
        self._len = -1
        self._ctx = None
        self._ref = ctypes.byref(memory._memory)

    def view(self) -> memoryview:
        e = fiber.epoch()
        if self._epoch == e:
            return self._view
        ctx = self._ctx
        if ctx is None:
            ctx = self._ctx = self.store._context()
        n = _data_size(ctx, self._ref)
        # A memory moves only when it grows: at the same length the view
        # taken before is still the memory.
        if n != self._len:
            if n == 0:
                v = memoryview(bytearray(0))
            else:
                base = ctypes.addressof(_data_ptr(ctx, self._ref).contents)
                v = memoryview((ctypes.c_ubyte * n).from_address(base)).cast("B")
            self._view = v
            self._len = n
        self._epoch = e
        return self._view

    def __len__(self) -> int:
        return len(self.view())

"""The Canonical ABI for values (CanonicalABI.md: "Canonical ABI Options"
through "Lifting and Lowering Values").

Functions carry the spec's names (``alignment``, ``elem_size``, ``load``,
``store``, ``lift_flat``, ``lower_flat``, ``load_string_from_range``,
``store_string_into_range``, ...), so each rule can be found by name. The
work itself is done by closures specialised once per type
(``load_fn``/``store_fn``/``lift_flat_fn``/``lower_flat_fn``, all cached by
type), with bulk fast paths for strings and lists of scalars.

Host-level values are the spec's Python representation: bool, int, float,
1-char str for ``char``, ``String``/str for ``string``, list for lists, dict
for records and tuples (keys ``'0'``, ``'1'``, ...), one-entry dict
``{label: payload}`` for variant/enum/option/result, dict label->bool for
flags, the rep (int) for own/borrow, the shared stream/future object for
stream/future, and an ``ErrorContext`` for error-context.

Trap messages follow wasmtime. wasmtime words a few traps differently when
the other side of the crossing is the host embedder (its typed/dynamic func
API) rather than another component (a fused adapter), so a
``LiftLowerContext`` built with ``host=True`` uses the host wording.

Memory access: ``cx.mv`` is a memoryview over the whole memory, refreshed by
``cx.refresh()`` at every public entry point and after every realloc call
(the only wasm that can run, and so grow memory, during a lift/lower).
Flat integer values are produced unsigned (as the spec does) and accepted
either signed or unsigned (wasmtime-py hands back signed i32/i64).
"""

from __future__ import annotations

import ctypes
import math
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Optional

from callscope.component.memory import BytesMemory, MemInst, WasmtimeMemory, ptr_size
from callscope.component.types import (
    BoolType, BorrowType, CaseType, CharType, CoreFuncType, ErrorContextType, F32Type,
    F64Type, FieldType, FlagsType, EnumType, FuncType, FutureType, ListType, MapType,
    MAX_FLAT_ASYNC_PARAMS, MAX_FLAT_PARAMS, MAX_FLAT_RESULTS, OptionType, OwnType,
    PrimValType, RecordType, ResultType, S16Type, S32Type, S64Type, S8Type, StreamType,
    StringType, TupleType, U16Type, U32Type, U64Type, U8Type, VariantType,
)
from callscope.runtime.errors import Trap, trap_if
from callscope.runtime.handles import ErrorContext, ResourceHandle, Table

__all__ = [
    "MemInst", "BytesMemory", "WasmtimeMemory", "ptr_size",
    "LiftOptions", "LiftLowerOptions", "CanonicalOptions", "LiftLowerContext", "CoreValueIter",
    "String", "Table", "ResourceHandle", "ErrorContext", "Trap",
    "despecialize", "contains", "contains_borrow", "contains_async_value",
    "alignment", "elem_size", "align_to", "discriminant_type", "max_case_alignment",
    "flatten_type", "flatten_types", "flatten_functype", "flatten_variant", "join",
    "load", "store", "lift_flat", "lower_flat", "lift_flat_values", "lower_flat_values",
    "ValuesPlan", "values_plan", "lift_values", "lower_values", "opts_shape",
    "load_fn", "store_fn", "lift_flat_fn", "lower_flat_fn",
    "load_string", "load_string_from_range", "store_string", "store_string_into_range",
    "load_list_from_range", "load_list_from_valid_range", "store_list_into_range",
    "store_list_into_valid_range",
    "lift_own", "lift_borrow", "lower_own", "lower_borrow", "lift_stream", "lift_future",
    "lower_stream", "lower_future", "lift_error_context", "lower_error_context",
    "canonicalize_nan32", "canonicalize_nan64", "encode_float_as_i32", "encode_float_as_i64",
    "decode_i32_as_float", "decode_i64_as_float", "convert_i32_to_char", "char_to_i32",
    "MAX_FLAT_PARAMS", "MAX_FLAT_ASYNC_PARAMS", "MAX_FLAT_RESULTS",
    "MAX_STRING_BYTE_LENGTH", "MAX_LIST_BYTE_LENGTH", "utf16_tag",
]

# ---------------------------------------------------------------------------
# Constants

DETERMINISTIC_PROFILE = True  # NaNs are always canonical, lifting and lowering
CANONICAL_FLOAT32_NAN = 0x7FC00000
CANONICAL_FLOAT64_NAN = 0x7FF8000000000000
REALLOC_I32_MAX = 2 ** 32 - 1
MAX_STRING_BYTE_LENGTH = (1 << 28) - 1
MAX_LIST_BYTE_LENGTH = (1 << 28) - 1



class CopyBudget:
    """The resource limit on host copies: how much one call may lift (one
    ``canon lift``/``lower`` crossing, one stream or future copy), so that a
    list whose elements all alias the whole memory, nested, cannot make the
    host copy without end. Each ``LiftLowerContext`` starts with ``LIMIT``;
    every list lifted costs ``PER_VALUE`` plus ``max(element size,
    MIN_ELEMENT)`` per element, every string ``PER_VALUE`` plus its byte
    length (roughly what the host allocates for it). Going below zero traps
    with ``MESSAGE`` (wasmtime's limit of the same kind is its "hostcall fuel",
    128 MiB by default; its words are kept in the message)."""

    LIMIT = 256 << 20
    PER_VALUE = 64
    MIN_ELEMENT = 16
    MESSAGE = ("copy budget exhausted: one call may copy at most %d bytes of lists and strings "
               "(wasmtime: fuel allocated for hostcalls has been exhausted)")

    @staticmethod
    def exhausted():
        raise Trap(CopyBudget.MESSAGE % CopyBudget.LIMIT)


def _charge_list(cx, length: int, size: int) -> None:
    b = cx.budget - CopyBudget.PER_VALUE - length * (size if size > CopyBudget.MIN_ELEMENT else CopyBudget.MIN_ELEMENT)
    cx.budget = b
    if b < 0:
        CopyBudget.exhausted()


_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_CANON_NAN32 = _F32.unpack(_U32.pack(CANONICAL_FLOAT32_NAN))[0]
_CANON_NAN64 = _F64.unpack(_U64.pack(CANONICAL_FLOAT64_NAN))[0]


# ---------------------------------------------------------------------------
# Trap wording

class _Words:
    """Trap messages for one side of wasmtime. ``realloc_bounds`` is keyed
    by what was being allocated ('list', 'string' or 'ptr')."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


ADAPTER_WORDS = _Words(  # component <-> component (wasmtime's fused adapters)
    list_align="unaligned pointer",
    list_bounds="list content out-of-bounds",
    string_align="unaligned pointer",
    string_bounds="string content out-of-bounds",
    ptr_align="unaligned pointer",
    ptr_bounds="out of bounds memory access",
    realloc_align="unaligned pointer",
    realloc_bounds={"list": "list content out-of-bounds",
                    "string": "string content out-of-bounds",
                    "ptr": "out of bounds memory access"},
)

HOST_WORDS = _Words(  # host embedder <-> component (wasmtime's func API)
    list_align="list pointer is not aligned",
    list_bounds="list pointer/length out of bounds of memory",
    string_align="string pointer not aligned to 2",
    string_bounds="string pointer/length out of bounds of memory",
    ptr_align="return pointer not aligned",
    ptr_bounds="pointer out of bounds of memory",
    realloc_align="realloc return: result not aligned",
    realloc_bounds={"list": "realloc return: beyond end of memory",
                    "string": "realloc return: beyond end of memory",
                    "ptr": "realloc return: beyond end of memory"},
)

INVALID_DISCRIMINANT = "invalid variant discriminant"
INVALID_CHAR = "invalid `char` bit pattern"


# ---------------------------------------------------------------------------
# Canonical ABI Options

@dataclass(eq=False)
class LiftOptions:
    string_encoding: str = "utf8"  # 'utf8' | 'utf16' | 'latin1+utf16'
    memory: Optional[MemInst] = None

    def equal(lhs, rhs) -> bool:
        return lhs.string_encoding == rhs.string_encoding and lhs.memory is rhs.memory

    def ptr_type(self) -> str:
        return self.memory.ptr_type() if self.memory is not None else "i32"


@dataclass(eq=False)
class LiftLowerOptions(LiftOptions):
    # realloc(old_ptr, old_size, align, new_size) -> new_ptr; the runtime
    # passes a closure calling the core function.
    realloc: Optional[Callable[[int, int, int, int], int]] = None


@dataclass(eq=False)
class CanonicalOptions(LiftLowerOptions):
    post_return: Optional[Callable] = None
    async_: bool = False
    callback: Optional[Callable] = None


def _ptr_type_of(opts_or_ptr_type) -> str:
    if isinstance(opts_or_ptr_type, str):
        return opts_or_ptr_type
    if opts_or_ptr_type is None:
        return "i32"
    return opts_or_ptr_type.ptr_type()


from callscope.runtime import fiber as _fiber  # noqa: E402  (memory views' epoch)

# ---------------------------------------------------------------------------
# Lifting and Lowering Context

class LiftLowerContext:
    """``cx`` of the spec. ``inst`` provides ``.handles`` (a Table) and
    ``.may_leave``; ``borrow_scope`` is the Task (lowering borrows) or
    Subtask (lifting borrows). ``host=True`` selects wasmtime's host-API trap
    wording (use it when the other side of the crossing is the host)."""

    __slots__ = ("opts", "inst", "borrow_scope", "host", "words", "mv", "ptr_type", "_mask", "budget")

    def __init__(self, opts, inst, borrow_scope=None, host: bool = False, ptr_type: Optional[str] = None,
                 mask: int = 0):
        self.budget = CopyBudget.LIMIT
        self.opts = opts
        self.inst = inst
        self.borrow_scope = borrow_scope
        self.host = host
        self.words = HOST_WORDS if host else ADAPTER_WORDS
        self.mv = None
        if ptr_type is None:
            self.ptr_type = opts.ptr_type()
            self._mask = (1 << (8 * ptr_size(self.ptr_type))) - 1
            self.refresh()
        else:
            # worked out once per ``canon`` definition (``opts_shape``); no
            # memory view yet: a ValuesPlan that touches memory takes it
            self.ptr_type = ptr_type
            self._mask = mask

    def refresh(self) -> None:
        """Re-take the memory view (memory may have grown and moved)."""
        mem = self.opts.memory
        self.mv = mem.view() if mem is not None else None

    def reallocate(self, old, old_byte_length, alignment, new_byte_length, kind="ptr"):
        """Call ``opts.realloc`` with ``may_leave`` cleared, then check the
        result is aligned and in bounds (every caller of realloc in the spec
        checks exactly ``ptr % alignment`` then ``ptr + new_byte_length``)."""
        realloc = self.opts.realloc
        if realloc is None:
            raise Trap("realloc canonical option required")
        inst = self.inst
        if inst is not None:
            assert inst.may_leave
            inst.may_leave = False
        ptr = realloc(old, old_byte_length, alignment, new_byte_length)
        _fiber.bump_epoch()  # realloc may have grown (and moved) the memory
        if inst is not None:
            inst.may_leave = True
        ptr &= self._mask
        self.refresh()
        words = self.words
        trap_if(ptr % alignment != 0, words.realloc_align)
        trap_if(ptr + new_byte_length > len(self.mv), words.realloc_bounds[kind])
        return ptr

    def allocate(self, alignment, byte_length, kind="ptr"):
        return self.reallocate(0, 0, alignment, byte_length, kind)


def opts_shape(opts) -> tuple:
    """``(ptr_type, mask)`` of ``opts``, for ``LiftLowerContext(...,
    ptr_type=, mask=)``: worked out once per ``canon`` definition."""
    pt = opts.ptr_type()
    return pt, (1 << (8 * ptr_size(pt))) - 1


class CoreValueIter:
    """Iterator over flat core values; ``next(t)`` returns the next value
    (``t`` is the core type the caller expects, kept for the spec's shape)."""

    __slots__ = ("values", "i")

    def __init__(self, vs):
        self.values = vs
        self.i = 0

    def next(self, t=None):
        v = self.values[self.i]
        self.i += 1
        return v

    def done(self) -> bool:
        return self.i == len(self.values)


# ---------------------------------------------------------------------------
# Strings

def utf16_tag(ptr_type: str = "i32") -> int:
    return 1 << (ptr_size(ptr_type) * 8 - 1)


class String(str):
    """A lifted string: the text plus the spec's ``(encoding,
    tagged_code_units)`` describing how it was stored where it came from.
    ``String(s)`` with no extra arguments describes ``s`` as utf8."""

    def __new__(cls, s: str = "", encoding: str = "utf8", tagged_code_units: Optional[int] = None):
        self = str.__new__(cls, s)
        self.encoding = encoding
        if tagged_code_units is None:
            assert encoding == "utf8"
            tagged_code_units = len(s.encode("utf-8"))
        self.tagged_code_units = tagged_code_units
        return self

    def __repr__(self) -> str:
        return f"String({str.__repr__(self)}, {self.encoding!r}, {self.tagged_code_units})"

    def __reduce__(self):
        return (String, (str(self), self.encoding, self.tagged_code_units))


def string_triple(v):
    """The spec's String triple ``(str, encoding, tagged_code_units)`` for a
    host value: a ``String``, a plain ``str`` (utf8), or a triple."""
    if isinstance(v, String):
        return v, v.encoding, v.tagged_code_units
    if isinstance(v, str):
        return v, "utf8", len(v.encode("utf-8"))
    s, enc, tcu = v
    return s, enc, tcu


# ---------------------------------------------------------------------------
# Despecialization and type predicates

@lru_cache(maxsize=None)
def despecialize(t):
    tt = type(t)
    if tt is TupleType:
        return RecordType(tuple(FieldType(str(i), u) for i, u in enumerate(t.ts)))
    if tt is EnumType:
        return VariantType(tuple(CaseType(l, None) for l in t.labels))
    if tt is OptionType:
        return VariantType((CaseType("none", None), CaseType("some", t.t)))
    if tt is ResultType:
        return VariantType((CaseType("ok", t.ok), CaseType("error", t.error)))
    if tt is MapType:
        return ListType(despecialize(TupleType((t.k, t.v))))
    return t


def contains(t, p) -> bool:
    if t is None:
        return False
    t = despecialize(t)
    if isinstance(t, (PrimValType, OwnType, BorrowType, ErrorContextType)):
        return p(t)
    if isinstance(t, (ListType, StreamType, FutureType)):
        return p(t) or contains(t.t, p)
    if isinstance(t, RecordType):
        return p(t) or any(contains(f.t, p) for f in t.fields)
    if isinstance(t, VariantType):
        return p(t) or any(contains(c.t, p) for c in t.cases)
    if isinstance(t, FlagsType):
        return p(t)
    if isinstance(t, FuncType):
        return any(contains(u, p) for u in t.param_types() + t.result_type())
    raise AssertionError(f"unknown type {t!r}")


def contains_borrow(t) -> bool:
    return contains(t, lambda u: isinstance(u, BorrowType))


def contains_async_value(t) -> bool:
    return contains(t, lambda u: isinstance(u, (StreamType, FutureType)))


# ---------------------------------------------------------------------------
# Alignment and Element Size

# type -> (alignment, size, flat core type, struct code)
_SCALARS = {
    BoolType: (1, 1, "i32", "?"),
    S8Type: (1, 1, "i32", "b"), U8Type: (1, 1, "i32", "B"),
    S16Type: (2, 2, "i32", "h"), U16Type: (2, 2, "i32", "H"),
    S32Type: (4, 4, "i32", "i"), U32Type: (4, 4, "i32", "I"),
    S64Type: (8, 8, "i64", "q"), U64Type: (8, 8, "i64", "Q"),
    F32Type: (4, 4, "f32", "f"), F64Type: (8, 8, "f64", "d"),
    CharType: (4, 4, "i32", "I"),
    ErrorContextType: (4, 4, "i32", "I"),
    OwnType: (4, 4, "i32", "I"), BorrowType: (4, 4, "i32", "I"),
    StreamType: (4, 4, "i32", "I"), FutureType: (4, 4, "i32", "I"),
}


def align_to(ptr: int, alignment: int) -> int:
    return -(-ptr // alignment) * alignment


@lru_cache(maxsize=None)
def discriminant_type(cases):
    n = len(cases)
    assert 0 < n < (1 << 32)
    if n <= 1 << 8:
        return U8Type()
    if n <= 1 << 16:
        return U16Type()
    return U32Type()


def _flags_size(labels) -> int:
    n = len(labels)
    assert 0 < n <= 32
    return 1 if n <= 8 else 2 if n <= 16 else 4


@lru_cache(maxsize=None)
def alignment(t, ptr_type: str = "i32") -> int:
    t = despecialize(t)
    info = _SCALARS.get(type(t))
    if info is not None:
        return info[0]
    if isinstance(t, StringType):
        return ptr_size(ptr_type)
    if isinstance(t, ListType):
        return alignment(t.t, ptr_type) if t.l is not None else ptr_size(ptr_type)
    if isinstance(t, RecordType):
        return max([1] + [alignment(f.t, ptr_type) for f in t.fields])
    if isinstance(t, VariantType):
        return max(alignment(discriminant_type(t.cases), ptr_type),
                   max_case_alignment(t.cases, ptr_type))
    if isinstance(t, FlagsType):
        return _flags_size(t.labels)
    raise AssertionError(f"unknown type {t!r}")


@lru_cache(maxsize=None)
def max_case_alignment(cases, ptr_type: str = "i32") -> int:
    return max([1] + [alignment(c.t, ptr_type) for c in cases if c.t is not None])


@lru_cache(maxsize=None)
def elem_size(t, ptr_type: str = "i32") -> int:
    t = despecialize(t)
    info = _SCALARS.get(type(t))
    if info is not None:
        return info[1]
    if isinstance(t, StringType):
        return 2 * ptr_size(ptr_type)
    if isinstance(t, ListType):
        if t.l is not None:
            return t.l * elem_size(t.t, ptr_type)
        return 2 * ptr_size(ptr_type)
    if isinstance(t, RecordType):
        s = 0
        for f in t.fields:
            s = align_to(s, alignment(f.t, ptr_type)) + elem_size(f.t, ptr_type)
        assert s > 0
        return align_to(s, alignment(t, ptr_type))
    if isinstance(t, VariantType):
        s = elem_size(discriminant_type(t.cases), ptr_type)
        s = align_to(s, max_case_alignment(t.cases, ptr_type))
        s += max([0] + [elem_size(c.t, ptr_type) for c in t.cases if c.t is not None])
        return align_to(s, alignment(t, ptr_type))
    if isinstance(t, FlagsType):
        return _flags_size(t.labels)
    raise AssertionError(f"unknown type {t!r}")


def _record_offsets(fields, ptr_type):
    offsets = []
    s = 0
    for f in fields:
        s = align_to(s, alignment(f.t, ptr_type))
        offsets.append(s)
        s += elem_size(f.t, ptr_type)
    return offsets


def _variant_payload_offset(cases, ptr_type):
    disc_size = elem_size(discriminant_type(cases), ptr_type)
    return disc_size, align_to(disc_size, max_case_alignment(cases, ptr_type))


# ---------------------------------------------------------------------------
# Flattening

def join(a: str, b: str) -> str:
    if a == b:
        return a
    if (a == "i32" and b == "f32") or (a == "f32" and b == "i32"):
        return "i32"
    return "i64"


@lru_cache(maxsize=None)
def _flatten(t, ptr_type: str) -> tuple:
    t = despecialize(t)
    info = _SCALARS.get(type(t))
    if info is not None:
        return (info[2],)
    if isinstance(t, StringType):
        return (ptr_type, ptr_type)
    if isinstance(t, ListType):
        if t.l is not None:
            return _flatten(t.t, ptr_type) * t.l
        return (ptr_type, ptr_type)
    if isinstance(t, RecordType):
        return tuple(ft for f in t.fields for ft in _flatten(f.t, ptr_type))
    if isinstance(t, VariantType):
        return _flatten_variant(t.cases, ptr_type)
    if isinstance(t, FlagsType):
        return ("i32",)
    raise AssertionError(f"unknown type {t!r}")


@lru_cache(maxsize=None)
def _flatten_variant(cases, ptr_type: str) -> tuple:
    flat: list[str] = []
    for c in cases:
        if c.t is not None:
            for i, ft in enumerate(_flatten(c.t, ptr_type)):
                if i < len(flat):
                    flat[i] = join(flat[i], ft)
                else:
                    flat.append(ft)
    return _flatten(discriminant_type(cases), ptr_type) + tuple(flat)


def flatten_type(t, opts="i32") -> list[str]:
    """Flat core types of ``t``; ``opts`` is a CanonicalOptions or ptr type."""
    return list(_flatten(t, _ptr_type_of(opts)))


def flatten_types(ts, opts="i32") -> list[str]:
    pt = _ptr_type_of(opts)
    return [ft for t in ts for ft in _flatten(t, pt)]


def flatten_variant(cases, opts="i32") -> list[str]:
    return list(_flatten_variant(tuple(cases), _ptr_type_of(opts)))


def flatten_functype(opts, ft: FuncType, context: str) -> CoreFuncType:
    pt = _ptr_type_of(opts)
    flat_params = flatten_types(ft.param_types(), pt)
    flat_results = flatten_types(ft.result_type(), pt)
    if not opts.async_:
        if len(flat_params) > MAX_FLAT_PARAMS:
            flat_params = [pt]
        if len(flat_results) > MAX_FLAT_RESULTS:
            if context == "lift":
                flat_results = [pt]
            else:
                assert context == "lower"
                flat_params += [pt]
                flat_results = []
    elif context == "lift":
        if len(flat_params) > MAX_FLAT_PARAMS:
            flat_params = [pt]
        flat_results = ["i32"] if opts.callback else []
    else:
        assert context == "lower"
        if len(flat_params) > MAX_FLAT_ASYNC_PARAMS:
            flat_params = [pt]
        if len(flat_results) > 0:
            flat_params += [pt]
        flat_results = ["i32"]
    return CoreFuncType(tuple(flat_params), tuple(flat_results))


# ---------------------------------------------------------------------------
# Scalars: floats, chars, bools

def canonicalize_nan32(f):
    return _CANON_NAN32 if f != f else f


def canonicalize_nan64(f):
    return _CANON_NAN64 if f != f else f


maybe_scramble_nan32 = canonicalize_nan32  # deterministic profile
maybe_scramble_nan64 = canonicalize_nan64


def core_f32_reinterpret_i32(i: int) -> float:
    return _F32.unpack(_U32.pack(i & 0xFFFFFFFF))[0]


def core_f64_reinterpret_i64(i: int) -> float:
    return _F64.unpack(_U64.pack(i & 0xFFFFFFFFFFFFFFFF))[0]


def _f32_bytes(f) -> bytes:
    try:
        return _F32.pack(f)
    except OverflowError:  # f64 outside f32 range demotes to +-inf
        return _F32.pack(ctypes.c_float(f).value)


def core_i32_reinterpret_f32(f) -> int:
    return _U32.unpack(_f32_bytes(f))[0]


def core_i64_reinterpret_f64(f) -> int:
    return _U64.unpack(_F64.pack(f))[0]


def decode_i32_as_float(i: int) -> float:
    return canonicalize_nan32(core_f32_reinterpret_i32(i))


def decode_i64_as_float(i: int) -> float:
    return canonicalize_nan64(core_f64_reinterpret_i64(i))


def encode_float_as_i32(f) -> int:
    if f != f:
        return CANONICAL_FLOAT32_NAN
    return core_i32_reinterpret_f32(f)


def encode_float_as_i64(f) -> int:
    if f != f:
        return CANONICAL_FLOAT64_NAN
    return core_i64_reinterpret_f64(f)


def convert_int_to_bool(i: int) -> bool:
    return i != 0


def convert_i32_to_char(cx, i: int) -> str:
    i &= 0xFFFFFFFF
    trap_if(i >= 0x110000, INVALID_CHAR)
    trap_if(0xD800 <= i <= 0xDFFF, INVALID_CHAR)
    return chr(i)


def char_to_i32(c: str) -> int:
    i = ord(c)
    assert 0 <= i <= 0xD7FF or 0xE000 <= i <= 0x10FFFF
    return i


def _check_chars(codes):
    for i in codes:
        if i >= 0x110000 or 0xD800 <= i <= 0xDFFF:
            raise Trap(INVALID_CHAR)


def unpack_flags_from_int(i: int, labels) -> dict:
    record = {}
    for l in labels:
        record[l] = bool(i & 1)
        i >>= 1
    return record


def pack_flags_into_int(v, labels) -> int:
    i = 0
    for shift, l in enumerate(labels):
        if v[l]:
            i |= 1 << shift
    return i


# ---------------------------------------------------------------------------
# Handles: resources, streams, futures, error contexts

def _definer(rt) -> str:
    return "host-defined" if getattr(rt, "impl", None) is None else "guest-defined"


def _check_resource(h, i, t):
    if not isinstance(h, ResourceHandle):
        raise Trap(f"handle index {i} does not name a resource")
    if h.rt is not t.rt:
        raise Trap(f"handle index {i} used with the wrong type, expected {_definer(t.rt)} "
                   f"resource but found a different {_definer(h.rt)} resource")


def lift_own(cx, i: int, t: OwnType) -> int:
    i &= 0xFFFFFFFF
    h = cx.inst.handles.remove(i)
    _check_resource(h, i, t)
    trap_if(h.num_lends != 0, "cannot remove owned resource while borrowed")
    trap_if(not h.own, f"handle index {i} is a borrow, not an owned resource")
    return h.rep


def lift_borrow(cx, i: int, t: BorrowType) -> int:
    i &= 0xFFFFFFFF
    h = cx.inst.handles.get(i)
    _check_resource(h, i, t)
    if cx.borrow_scope is not None:
        cx.borrow_scope.add_lender(h)
    return h.rep


def lower_own(cx, rep: int, t: OwnType) -> int:
    return cx.inst.handles.add(ResourceHandle(t.rt, rep, True))


def lower_borrow(cx, rep: int, t: BorrowType) -> int:
    if cx.inst is t.rt.impl:
        return rep
    h = ResourceHandle(t.rt, rep, False, cx.borrow_scope)
    h.borrow_scope.num_borrows += 1
    return cx.inst.handles.add(h)


def _lift_async_value(kind: str, cx, i: int, t):
    from callscope.runtime import waitables
    end_type = waitables.ReadableStreamEnd if kind == "stream" else waitables.ReadableFutureEnd
    i &= 0xFFFFFFFF
    e = cx.inst.handles.remove(i)
    trap_if(not isinstance(e, end_type), f"handle index {i} is not a readable {kind} end")
    trap_if(e.shared.t != t, f"handle index {i} used with the wrong type, expected {kind} of a different type")
    if e.state != waitables.CopyState.IDLE:
        if e.state == waitables.CopyState.DONE:
            if kind == "stream":
                raise Trap("cannot lift stream after being notified that the writable end dropped")
            raise Trap("cannot lift future after previous read succeeded")
        raise Trap(f"cannot remove busy {kind}")
    trap_if(e.in_waitable_set(), f"cannot lift {kind} while it's in a waitable set")
    return e.shared


def lift_stream(cx, i: int, t):
    return _lift_async_value("stream", cx, i, t)


def lift_future(cx, i: int, t):
    return _lift_async_value("future", cx, i, t)


def lower_stream(cx, v, t) -> int:
    from callscope.runtime import waitables
    return cx.inst.handles.add(waitables.ReadableStreamEnd(v))


def lower_future(cx, v, t) -> int:
    from callscope.runtime import waitables
    return cx.inst.handles.add(waitables.ReadableFutureEnd(v))


def lift_error_context(cx, i: int) -> ErrorContext:
    i &= 0xFFFFFFFF
    errctx = cx.inst.handles.get(i)
    trap_if(not isinstance(errctx, ErrorContext), f"handle index {i} is not an error-context")
    return errctx


def lower_error_context(cx, v: ErrorContext) -> int:
    return cx.inst.handles.add(v)


# ---------------------------------------------------------------------------
# Loading strings

_UTF8_CODEC = "utf-8"


def _decode(data, codec: str) -> str:
    try:
        return str(data, codec)
    except UnicodeDecodeError as e:
        if codec == "utf-8":
            if e.reason == "unexpected end of data":
                raise Trap(f"incomplete utf-8 byte sequence from index {e.start}") from None
            raise Trap(f"invalid utf-8 sequence of {e.end - e.start} bytes from index {e.start}") from None
        raise Trap("invalid utf-16: lone surrogate found") from None


def _load_string_from_range(cx, ptr: int, tagged_code_units: int) -> String:
    encoding = cx.opts.string_encoding
    if encoding == "utf8":
        align, byte_length, codec = 1, tagged_code_units, "utf-8"
    elif encoding == "utf16":
        align, byte_length, codec = 2, 2 * tagged_code_units, "utf-16-le"
    else:
        assert encoding == "latin1+utf16"
        tag = utf16_tag(cx.ptr_type)
        align = 2
        if tagged_code_units & tag:
            byte_length, codec = 2 * (tagged_code_units ^ tag), "utf-16-le"
        else:
            byte_length, codec = tagged_code_units, "latin-1"
    words = cx.words
    trap_if(byte_length > MAX_STRING_BYTE_LENGTH, words.string_bounds)
    trap_if(ptr % align != 0, words.string_align)
    mv = cx.mv
    trap_if(ptr + byte_length > len(mv), words.string_bounds)
    b = cx.budget = cx.budget - CopyBudget.PER_VALUE - byte_length
    if b < 0:
        CopyBudget.exhausted()
    s = _decode(mv[ptr:ptr + byte_length], codec)
    return String(s, encoding, tagged_code_units)


def _load_string(cx, ptr: int) -> String:
    if cx.ptr_type == "i32":
        begin, tagged = struct.unpack_from("<II", cx.mv, ptr)
    else:
        begin, tagged = struct.unpack_from("<QQ", cx.mv, ptr)
    return _load_string_from_range(cx, begin, tagged)


def load_string_from_range(cx, ptr: int, tagged_code_units: int) -> String:
    cx.refresh()
    return _load_string_from_range(cx, ptr & cx._mask, tagged_code_units & cx._mask)


def load_string(cx, ptr: int) -> String:
    cx.refresh()
    return _load_string(cx, ptr)


# ---------------------------------------------------------------------------
# Storing strings (with every transcoding path and realloc sequence)

def _write(cx, ptr: int, data) -> None:
    cx.mv[ptr:ptr + len(data)] = data


def _store_string_into_range(cx, v):
    src, src_encoding, src_tagged_code_units = string_triple(v)
    tag = utf16_tag(cx.ptr_type)

    if src_encoding == "latin1+utf16":
        if src_tagged_code_units & tag:
            src_simple_encoding = "utf16"
            src_code_units = src_tagged_code_units ^ tag
        else:
            src_simple_encoding = "latin1"
            src_code_units = src_tagged_code_units
    else:
        src_simple_encoding = src_encoding
        src_code_units = src_tagged_code_units

    dst = cx.opts.string_encoding
    if dst == "utf8":
        if src_simple_encoding == "utf8":
            return store_string_copy(cx, src, src_code_units, 1, 1, "utf-8")
        if src_simple_encoding == "utf16":
            return store_utf16_to_utf8(cx, src, src_code_units)
        return store_latin1_to_utf8(cx, src, src_code_units)
    if dst == "utf16":
        if src_simple_encoding == "utf8":
            return store_utf8_to_utf16(cx, src, src_code_units)
        return store_string_copy(cx, src, src_code_units, 2, 2, "utf-16-le")
    assert dst == "latin1+utf16"
    if src_encoding in ("utf8", "utf16"):
        return store_string_to_latin1_or_utf16(cx, src, src_code_units)
    if src_simple_encoding == "latin1":
        return store_string_copy(cx, src, src_code_units, 1, 2, "latin-1")
    return store_probably_utf16_to_latin1_or_utf16(cx, src, src_code_units)


def store_string_copy(cx, src, src_code_units, dst_code_unit_size, dst_alignment, dst_encoding):
    dst_byte_length = dst_code_unit_size * src_code_units
    assert dst_byte_length <= REALLOC_I32_MAX
    ptr = cx.allocate(dst_alignment, dst_byte_length, "string")
    encoded = src.encode(dst_encoding)
    assert dst_byte_length == len(encoded)
    _write(cx, ptr, encoded)
    return ptr, src_code_units


def store_utf16_to_utf8(cx, src, src_code_units):
    return store_string_to_utf8(cx, src, src_code_units, src_code_units * 3)


def store_latin1_to_utf8(cx, src, src_code_units):
    return store_string_to_utf8(cx, src, src_code_units, src_code_units * 2)


def _first_at_least(src: str, limit: int) -> int:
    """Index of the first code point >= limit, or -1."""
    if limit == 0x80 and src.isascii():
        return -1
    for i, c in enumerate(src):
        if ord(c) >= limit:
            return i
    return -1


def store_string_to_utf8(cx, src, src_code_units, worst_case_size):
    assert src_code_units <= REALLOC_I32_MAX
    ptr = cx.allocate(1, src_code_units, "string")
    i = _first_at_least(src, 0x80)
    if i < 0:
        _write(cx, ptr, src.encode("ascii"))
        return ptr, src_code_units
    # the ASCII prefix is written before the realloc (which copies it)
    _write(cx, ptr, src[:i].encode("ascii"))
    assert worst_case_size <= REALLOC_I32_MAX
    ptr = cx.reallocate(ptr, src_code_units, 1, worst_case_size, "string")
    encoded = src.encode("utf-8")
    _write(cx, ptr + i, encoded[i:])
    if worst_case_size > len(encoded):
        ptr = cx.reallocate(ptr, worst_case_size, 1, len(encoded), "string")
    return ptr, len(encoded)


def store_utf8_to_utf16(cx, src, src_code_units):
    worst_case_size = 2 * src_code_units
    assert worst_case_size <= REALLOC_I32_MAX
    ptr = cx.allocate(2, worst_case_size, "string")
    encoded = src.encode("utf-16-le")
    _write(cx, ptr, encoded)
    if len(encoded) < worst_case_size:
        ptr = cx.reallocate(ptr, worst_case_size, 2, len(encoded), "string")
    return ptr, len(encoded) // 2


def store_string_to_latin1_or_utf16(cx, src, src_code_units):
    assert src_code_units <= REALLOC_I32_MAX
    ptr = cx.allocate(2, src_code_units, "string")
    k = _first_at_least(src, 0x100)
    if k < 0:
        dst_byte_length = len(src)
        _write(cx, ptr, src.encode("latin-1"))
        if dst_byte_length < src_code_units:
            ptr = cx.reallocate(ptr, src_code_units, 2, dst_byte_length, "string")
        return ptr, dst_byte_length
    # k latin1 bytes were written; then inflate in place to utf16
    _write(cx, ptr, src[:k].encode("latin-1"))
    worst_case_size = 2 * src_code_units
    assert worst_case_size <= REALLOC_I32_MAX
    ptr = cx.reallocate(ptr, src_code_units, 2, worst_case_size, "string")
    mv = cx.mv
    prefix = mv[ptr:ptr + k].tobytes()
    _write(cx, ptr, prefix.decode("latin-1").encode("utf-16-le"))
    encoded = src.encode("utf-16-le")
    _write(cx, ptr + 2 * k, encoded[2 * k:])
    if worst_case_size > len(encoded):
        ptr = cx.reallocate(ptr, worst_case_size, 2, len(encoded), "string")
    return ptr, (len(encoded) // 2) | utf16_tag(cx.ptr_type)


def store_probably_utf16_to_latin1_or_utf16(cx, src, src_code_units):
    src_byte_length = 2 * src_code_units
    assert src_byte_length <= REALLOC_I32_MAX
    ptr = cx.allocate(2, src_byte_length, "string")
    encoded = src.encode("utf-16-le")
    _write(cx, ptr, encoded)
    if _first_at_least(src, 0x100) >= 0:
        return ptr, (len(encoded) // 2) | utf16_tag(cx.ptr_type)
    latin1_size = len(encoded) // 2
    _write(cx, ptr, encoded[0::2])  # compact in place
    ptr = cx.reallocate(ptr, src_byte_length, 1, latin1_size, "string")
    return ptr, latin1_size


def _store_string(cx, v, ptr: int) -> None:
    begin, tagged_code_units = _store_string_into_range(cx, v)
    fmt = "<II" if cx.ptr_type == "i32" else "<QQ"
    struct.pack_into(fmt, cx.mv, ptr, begin, tagged_code_units)


def store_string_into_range(cx, v):
    cx.refresh()
    return _store_string_into_range(cx, v)


def store_string(cx, v, ptr: int) -> None:
    cx.refresh()
    _store_string(cx, v, ptr)


# ---------------------------------------------------------------------------
# Loading (per-type loaders: f(cx, ptr) -> value)

_INT_CODES = {U8Type: "B", S8Type: "b", U16Type: "H", S16Type: "h", U32Type: "I",
              S32Type: "i", U64Type: "Q", S64Type: "q"}


def _is_flat_record(t, ptr_type) -> bool:
    """Records whose fields are all integers/bools: loaded and stored with
    one ``struct.Struct``."""
    return isinstance(t, RecordType) and len(t.fields) > 0 and all(
        type(despecialize(f.t)) in _INT_CODES or type(despecialize(f.t)) is BoolType
        for f in t.fields)


@lru_cache(maxsize=None)
def _record_struct(t, ptr_type):
    offsets = _record_offsets(t.fields, ptr_type)
    fmt = ["<"]
    pos = 0
    for f, off in zip(t.fields, offsets):
        if off > pos:
            fmt.append(f"{off - pos}x")
        fmt.append(_SCALARS[type(despecialize(f.t))][3])
        pos = off + elem_size(f.t, ptr_type)
    size = elem_size(t, ptr_type)
    if size > pos:
        fmt.append(f"{size - pos}x")
    return struct.Struct("".join(fmt))


@lru_cache(maxsize=None)
def load_fn(t, ptr_type: str = "i32"):
    """A loader for ``t``: ``f(cx, ptr) -> value`` (no refresh, no checks)."""
    ot = t
    t = despecialize(t)
    tt = type(t)
    if tt is BoolType:
        return lambda cx, ptr: cx.mv[ptr] != 0
    if tt is U8Type:
        return lambda cx, ptr: cx.mv[ptr]
    if tt in _INT_CODES:
        unpack = struct.Struct("<" + _INT_CODES[tt]).unpack_from
        return lambda cx, ptr: unpack(cx.mv, ptr)[0]
    if tt is F32Type:
        return lambda cx, ptr: canonicalize_nan32(_F32.unpack_from(cx.mv, ptr)[0])
    if tt is F64Type:
        return lambda cx, ptr: canonicalize_nan64(_F64.unpack_from(cx.mv, ptr)[0])
    if tt is CharType:
        return lambda cx, ptr: convert_i32_to_char(cx, _U32.unpack_from(cx.mv, ptr)[0])
    if tt is StringType:
        return _load_string
    if tt is ErrorContextType:
        return lambda cx, ptr: lift_error_context(cx, _U32.unpack_from(cx.mv, ptr)[0])
    if tt is OwnType:
        return lambda cx, ptr: lift_own(cx, _U32.unpack_from(cx.mv, ptr)[0], ot)
    if tt is BorrowType:
        return lambda cx, ptr: lift_borrow(cx, _U32.unpack_from(cx.mv, ptr)[0], ot)
    if tt is StreamType:
        et = t.t
        return lambda cx, ptr: lift_stream(cx, _U32.unpack_from(cx.mv, ptr)[0], et)
    if tt is FutureType:
        et = t.t
        return lambda cx, ptr: lift_future(cx, _U32.unpack_from(cx.mv, ptr)[0], et)
    if tt is ListType:
        return _list_loader(t.t, t.l, ptr_type)
    if tt is RecordType:
        return _record_loader(t, ptr_type)
    if tt is VariantType:
        return _variant_loader(t.cases, ptr_type)
    if tt is FlagsType:
        labels = t.labels
        unpack = struct.Struct("<" + {1: "B", 2: "H", 4: "I"}[_flags_size(labels)]).unpack_from
        return lambda cx, ptr: unpack_flags_from_int(unpack(cx.mv, ptr)[0], labels)
    raise AssertionError(f"unknown type {t!r}")


def _record_loader(t, ptr_type):
    if _is_flat_record(t, ptr_type):
        unpack = _record_struct(t, ptr_type).unpack_from
        labels = tuple(f.label for f in t.fields)
        return lambda cx, ptr: dict(zip(labels, unpack(cx.mv, ptr)))
    plan = tuple((f.label, off, load_fn(f.t, ptr_type))
                 for f, off in zip(t.fields, _record_offsets(t.fields, ptr_type)))

    def load_record(cx, ptr):
        return {label: f(cx, ptr + off) for label, off, f in plan}
    return load_record


def _variant_loader(cases, ptr_type):
    disc_size, payload_off = _variant_payload_offset(cases, ptr_type)
    unpack = struct.Struct("<" + {1: "B", 2: "H", 4: "I"}[disc_size]).unpack_from
    plan = tuple((c.label, load_fn(c.t, ptr_type) if c.t is not None else None) for c in cases)
    n = len(cases)

    def load_variant(cx, ptr):
        case_index = unpack(cx.mv, ptr)[0]
        trap_if(case_index >= n, INVALID_DISCRIMINANT)
        label, f = plan[case_index]
        if f is None:
            return {label: None}
        return {label: f(cx, ptr + payload_off)}
    return load_variant


def _bulk_list_loader(elem_type, ptr_type):
    """``f(cx, ptr, n) -> list`` reading n contiguous scalars at once, or None."""
    et = despecialize(elem_type)
    tt = type(et)
    if tt is U8Type:
        return lambda cx, ptr, n: list(cx.mv[ptr:ptr + n])
    if tt is BoolType:
        return lambda cx, ptr, n: [b != 0 for b in cx.mv[ptr:ptr + n]]
    if tt in _INT_CODES:
        code = _INT_CODES[tt]
        return lambda cx, ptr, n: list(struct.unpack_from(f"<{n}{code}", cx.mv, ptr))
    if tt is F32Type or tt is F64Type:
        code, canon = ("f", _CANON_NAN32) if tt is F32Type else ("d", _CANON_NAN64)

        def load_floats(cx, ptr, n):
            vs = list(struct.unpack_from(f"<{n}{code}", cx.mv, ptr))
            return [canon if x != x else x for x in vs]
        return load_floats
    if tt is CharType:
        def load_chars(cx, ptr, n):
            codes = struct.unpack_from(f"<{n}I", cx.mv, ptr)
            _check_chars(codes)
            return [chr(c) for c in codes]
        return load_chars
    if _is_flat_record(et, ptr_type):
        s = _record_struct(et, ptr_type)
        labels = tuple(f.label for f in et.fields)

        def load_records(cx, ptr, n):
            data = cx.mv[ptr:ptr + n * s.size]
            return [dict(zip(labels, vs)) for vs in s.iter_unpack(data)]
        return load_records
    return None


@lru_cache(maxsize=None)
def _valid_range_loader(elem_type, ptr_type):
    bulk = _bulk_list_loader(elem_type, ptr_type)
    if bulk is not None:
        return bulk
    f = load_fn(elem_type, ptr_type)
    size = elem_size(elem_type, ptr_type)

    def load_each(cx, ptr, n):
        return [f(cx, ptr + i * size) for i in range(n)]
    return load_each


@lru_cache(maxsize=None)
def _range_loader(elem_type, ptr_type):
    """``f(cx, ptr, length)``: the spec's load_list_from_range."""
    load_valid = _valid_range_loader(elem_type, ptr_type)
    size = elem_size(elem_type, ptr_type)
    align = alignment(elem_type, ptr_type)

    def load_list_from_range(cx, ptr, length):
        words = cx.words
        trap_if(length * size > MAX_LIST_BYTE_LENGTH, words.list_bounds)
        trap_if(ptr % align != 0, words.list_align)
        trap_if(ptr + length * size > len(cx.mv), words.list_bounds)
        _charge_list(cx, length, size)
        return load_valid(cx, ptr, length)
    return load_list_from_range


def _list_loader(elem_type, maybe_length, ptr_type):
    if maybe_length is not None:
        load_valid = _valid_range_loader(elem_type, ptr_type)
        return lambda cx, ptr: load_valid(cx, ptr, maybe_length)
    load_range = _range_loader(elem_type, ptr_type)
    fmt = struct.Struct("<II" if ptr_type == "i32" else "<QQ")

    def load_list(cx, ptr):
        begin, length = fmt.unpack_from(cx.mv, ptr)
        return load_range(cx, begin, length)
    return load_list


def load(cx, ptr: int, t):
    cx.refresh()
    pt = cx.ptr_type
    assert ptr == align_to(ptr, alignment(t, pt))
    assert ptr + elem_size(t, pt) <= len(cx.mv)
    return load_fn(t, pt)(cx, ptr)


def load_list_from_range(cx, ptr: int, length: int, elem_type):
    cx.refresh()
    return _range_loader(elem_type, cx.ptr_type)(cx, ptr & cx._mask, length & cx._mask)


def load_list_from_valid_range(cx, ptr: int, length: int, elem_type):
    cx.refresh()
    _charge_list(cx, length, elem_size(elem_type, cx.ptr_type))
    return _valid_range_loader(elem_type, cx.ptr_type)(cx, ptr, length)


# ---------------------------------------------------------------------------
# Storing (per-type storers: f(cx, v, ptr))

def _field_values(v, labels):
    if isinstance(v, dict):
        return [v[l] for l in labels]
    return list(v)  # a tuple given as a Python sequence


@lru_cache(maxsize=None)
def store_fn(t, ptr_type: str = "i32"):
    """A storer for ``t``: ``f(cx, v, ptr)`` (no refresh, no checks)."""
    ot = t
    t = despecialize(t)
    tt = type(t)
    if tt is BoolType:
        def store_bool(cx, v, ptr):
            cx.mv[ptr] = 1 if v else 0
        return store_bool
    if tt is U8Type:
        def store_u8(cx, v, ptr):
            cx.mv[ptr] = v
        return store_u8
    if tt in _INT_CODES:
        pack = struct.Struct("<" + _INT_CODES[tt]).pack_into
        return lambda cx, v, ptr: pack(cx.mv, ptr, v)
    if tt is F32Type:
        def store_f32(cx, v, ptr):
            _U32.pack_into(cx.mv, ptr, encode_float_as_i32(v))
        return store_f32
    if tt is F64Type:
        def store_f64(cx, v, ptr):
            _U64.pack_into(cx.mv, ptr, encode_float_as_i64(v))
        return store_f64
    if tt is CharType:
        return lambda cx, v, ptr: _U32.pack_into(cx.mv, ptr, char_to_i32(v))
    if tt is StringType:
        return _store_string
    if tt is ErrorContextType:
        def store_errctx(cx, v, ptr):
            i = lower_error_context(cx, v)
            _U32.pack_into(cx.mv, ptr, i)
        return store_errctx
    if tt in (OwnType, BorrowType, StreamType, FutureType):
        lower = {OwnType: lower_own, BorrowType: lower_borrow,
                 StreamType: lower_stream, FutureType: lower_future}[tt]
        arg = ot if tt in (OwnType, BorrowType) else t.t

        def store_handle(cx, v, ptr):
            i = lower(cx, v, arg)
            _U32.pack_into(cx.mv, ptr, i)
        return store_handle
    if tt is ListType:
        return _list_storer(t.t, t.l, ptr_type)
    if tt is RecordType:
        return _record_storer(t, ptr_type)
    if tt is VariantType:
        return _variant_storer(t.cases, ptr_type)
    if tt is FlagsType:
        labels = t.labels
        pack = struct.Struct("<" + {1: "B", 2: "H", 4: "I"}[_flags_size(labels)]).pack_into
        return lambda cx, v, ptr: pack(cx.mv, ptr, pack_flags_into_int(v, labels))
    raise AssertionError(f"unknown type {t!r}")


def _record_storer(t, ptr_type):
    labels = tuple(f.label for f in t.fields)
    if _is_flat_record(t, ptr_type):
        pack = _record_struct(t, ptr_type).pack_into
        return lambda cx, v, ptr: pack(cx.mv, ptr, *_field_values(v, labels))
    plan = tuple((off, store_fn(f.t, ptr_type))
                 for f, off in zip(t.fields, _record_offsets(t.fields, ptr_type)))

    def store_record(cx, v, ptr):
        for (off, f), fv in zip(plan, _field_values(v, labels)):
            f(cx, fv, ptr + off)
    return store_record


def _variant_storer(cases, ptr_type):
    disc_size, payload_off = _variant_payload_offset(cases, ptr_type)
    pack = struct.Struct("<" + {1: "B", 2: "H", 4: "I"}[disc_size]).pack_into
    by_label = {c.label: (i, store_fn(c.t, ptr_type) if c.t is not None else None)
                for i, c in enumerate(cases)}

    def store_variant(cx, v, ptr):
        (label, value), = v.items()
        case_index, f = by_label[label]
        pack(cx.mv, ptr, case_index)
        if f is not None:
            f(cx, value, ptr + payload_off)
    return store_variant


def _bulk_list_storer(elem_type, ptr_type):
    """``f(cx, v, ptr)`` writing a list of scalars at once, or None."""
    et = despecialize(elem_type)
    tt = type(et)
    if tt is U8Type:
        return lambda cx, v, ptr: _write(cx, ptr, bytes(v))
    if tt is BoolType:
        return lambda cx, v, ptr: _write(cx, ptr, bytes([1 if b else 0 for b in v]))
    if tt in _INT_CODES:
        code = _INT_CODES[tt]
        return lambda cx, v, ptr: struct.pack_into(f"<{len(v)}{code}", cx.mv, ptr, *v)
    if tt is F32Type:
        def store_f32s(cx, v, ptr):
            struct.pack_into(f"<{len(v)}I", cx.mv, ptr, *[encode_float_as_i32(x) for x in v])
        return store_f32s
    if tt is F64Type:
        def store_f64s(cx, v, ptr):
            vs = [_CANON_NAN64 if x != x else x for x in v]
            struct.pack_into(f"<{len(v)}d", cx.mv, ptr, *vs)
        return store_f64s
    if tt is CharType:
        return lambda cx, v, ptr: struct.pack_into(
            f"<{len(v)}I", cx.mv, ptr, *[char_to_i32(c) for c in v])
    return None


@lru_cache(maxsize=None)
def _valid_range_storer(elem_type, ptr_type):
    bulk = _bulk_list_storer(elem_type, ptr_type)
    if bulk is not None:
        return bulk
    f = store_fn(elem_type, ptr_type)
    size = elem_size(elem_type, ptr_type)

    def store_each(cx, v, ptr):
        for i, e in enumerate(v):
            f(cx, e, ptr + i * size)
    return store_each


@lru_cache(maxsize=None)
def _range_storer(elem_type, ptr_type):
    """``f(cx, v) -> (ptr, length)``: the spec's store_list_into_range."""
    store_valid = _valid_range_storer(elem_type, ptr_type)
    size = elem_size(elem_type, ptr_type)
    align = alignment(elem_type, ptr_type)

    def store_list_into_range(cx, v):
        byte_length = len(v) * size
        assert byte_length <= REALLOC_I32_MAX
        ptr = cx.allocate(align, byte_length, "list")
        store_valid(cx, v, ptr)
        return ptr, len(v)
    return store_list_into_range


def _list_storer(elem_type, maybe_length, ptr_type):
    if maybe_length is not None:
        store_valid = _valid_range_storer(elem_type, ptr_type)

        def store_fixed_list(cx, v, ptr):
            assert len(v) == maybe_length
            store_valid(cx, v, ptr)
        return store_fixed_list
    store_range = _range_storer(elem_type, ptr_type)
    fmt = struct.Struct("<II" if ptr_type == "i32" else "<QQ")

    def store_list(cx, v, ptr):
        begin, length = store_range(cx, v)
        fmt.pack_into(cx.mv, ptr, begin, length)
    return store_list


def store(cx, v, t, ptr: int) -> None:
    cx.refresh()
    pt = cx.ptr_type
    assert ptr == align_to(ptr, alignment(t, pt))
    assert ptr + elem_size(t, pt) <= len(cx.mv)
    store_fn(t, pt)(cx, v, ptr)


def store_list_into_range(cx, v, elem_type):
    cx.refresh()
    return _range_storer(elem_type, cx.ptr_type)(cx, v)


def store_list_into_valid_range(cx, v, ptr: int, elem_type) -> None:
    cx.refresh()
    _valid_range_storer(elem_type, cx.ptr_type)(cx, v, ptr)


# ---------------------------------------------------------------------------
# Flat Lifting (per-type lifters: f(cx, vi) -> value)

def wrap_i64_to_i32(i: int) -> int:
    return i & 0xFFFFFFFF


def _lift_coercion(have: str, want: str):
    """Converter from a joined flat slot (``have``) to a case's flat type."""
    if have == want:
        return None
    if have == "i32" and want == "f32":
        return decode_i32_as_float
    if have == "i64" and want == "i32":
        return wrap_i64_to_i32
    if have == "i64" and want == "f32":
        return lambda x: decode_i32_as_float(x & 0xFFFFFFFF)
    if have == "i64" and want == "f64":
        return decode_i64_as_float
    raise AssertionError((have, want))


def _lower_coercion(have: str, want: str):
    """Converter from a case's flat value (``have``) into a joined slot."""
    if have == want:
        return None
    if have == "f32" and want == "i32":
        return encode_float_as_i32
    if have == "i32" and want == "i64":
        return None
    if have == "f32" and want == "i64":
        return encode_float_as_i32
    if have == "f64" and want == "i64":
        return encode_float_as_i64
    raise AssertionError((have, want))


def _unsigned_lifter(mask):
    return lambda cx, vi: vi.next() & mask


def _signed_lifter(bits):
    mask = (1 << bits) - 1
    half = 1 << (bits - 1)
    full = 1 << bits

    def lift_signed(cx, vi):
        i = vi.next() & mask
        return i - full if i >= half else i
    return lift_signed


@lru_cache(maxsize=None)
def lift_flat_fn(t, ptr_type: str = "i32"):
    """A flat lifter for ``t``: ``f(cx, vi) -> value``."""
    ot = t
    t = despecialize(t)
    tt = type(t)
    if tt is BoolType:
        return lambda cx, vi: vi.next() != 0
    if tt is U8Type:
        return _unsigned_lifter(0xFF)
    if tt is U16Type:
        return _unsigned_lifter(0xFFFF)
    if tt is U32Type:
        return _unsigned_lifter(0xFFFFFFFF)
    if tt is U64Type:
        return _unsigned_lifter(0xFFFFFFFFFFFFFFFF)
    if tt is S8Type:
        return _signed_lifter(8)
    if tt is S16Type:
        return _signed_lifter(16)
    if tt is S32Type:
        return _signed_lifter(32)
    if tt is S64Type:
        return _signed_lifter(64)
    if tt is F32Type:
        return lambda cx, vi: canonicalize_nan32(vi.next())
    if tt is F64Type:
        return lambda cx, vi: canonicalize_nan64(vi.next())
    if tt is CharType:
        return lambda cx, vi: convert_i32_to_char(cx, vi.next())
    if tt is StringType:
        def lift_flat_string(cx, vi):
            ptr = vi.next() & cx._mask
            packed_length = vi.next() & cx._mask
            return _load_string_from_range(cx, ptr, packed_length)
        return lift_flat_string
    if tt is ErrorContextType:
        return lambda cx, vi: lift_error_context(cx, vi.next())
    if tt is OwnType:
        return lambda cx, vi: lift_own(cx, vi.next(), ot)
    if tt is BorrowType:
        return lambda cx, vi: lift_borrow(cx, vi.next(), ot)
    if tt is StreamType:
        et = t.t
        return lambda cx, vi: lift_stream(cx, vi.next(), et)
    if tt is FutureType:
        et = t.t
        return lambda cx, vi: lift_future(cx, vi.next(), et)
    if tt is ListType:
        if t.l is not None:
            f = lift_flat_fn(t.t, ptr_type)
            n = t.l
            return lambda cx, vi: [f(cx, vi) for _ in range(n)]
        load_range = _range_loader(t.t, ptr_type)

        def lift_flat_list(cx, vi):
            ptr = vi.next() & cx._mask
            length = vi.next() & cx._mask
            return load_range(cx, ptr, length)
        return lift_flat_list
    if tt is RecordType:
        plan = tuple((f.label, lift_flat_fn(f.t, ptr_type)) for f in t.fields)
        return lambda cx, vi: {label: f(cx, vi) for label, f in plan}
    if tt is VariantType:
        return _variant_lifter(t.cases, ptr_type)
    if tt is FlagsType:
        labels = t.labels
        return lambda cx, vi: unpack_flags_from_int(vi.next() & 0xFFFFFFFF, labels)
    raise AssertionError(f"unknown type {t!r}")


def _variant_lifter(cases, ptr_type):
    payload_types = _flatten_variant(cases, ptr_type)[1:]
    plan = []
    for c in cases:
        if c.t is None:
            plan.append((c.label, None, None))
        else:
            coercions = tuple(_lift_coercion(have, want)
                              for have, want in zip(payload_types, _flatten(c.t, ptr_type)))
            if not any(coercions):
                coercions = None
            plan.append((c.label, lift_flat_fn(c.t, ptr_type), coercions))
    plan = tuple(plan)
    n = len(cases)
    n_payload = len(payload_types)

    def lift_flat_variant(cx, vi):
        case_index = vi.next() & 0xFFFFFFFF
        trap_if(case_index >= n, INVALID_DISCRIMINANT)
        payload = [vi.next() for _ in range(n_payload)]
        label, f, coercions = plan[case_index]
        if f is None:
            return {label: None}
        if coercions is not None:
            payload = [c(x) if c is not None else x for c, x in zip(coercions, payload)]
        return {label: f(cx, CoreValueIter(payload))}
    return lift_flat_variant


def lift_flat(cx, vi, t):
    cx.refresh()
    return lift_flat_fn(t, cx.ptr_type)(cx, vi)


# ---------------------------------------------------------------------------
# Flat Lowering (per-type lowerers: f(cx, v, out) appending flat values)

@lru_cache(maxsize=None)
def lower_flat_fn(t, ptr_type: str = "i32"):
    """A flat lowerer for ``t``: ``f(cx, v, out)`` appends to list ``out``.
    Integers come out unsigned, as in the spec."""
    ot = t
    t = despecialize(t)
    tt = type(t)
    if tt is BoolType:
        return lambda cx, v, out: out.append(1 if v else 0)
    if tt in (U8Type, U16Type, U32Type, U64Type):
        return lambda cx, v, out: out.append(v)
    if tt in (S8Type, S16Type, S32Type):
        return lambda cx, v, out: out.append(v + (1 << 32) if v < 0 else v)
    if tt is S64Type:
        return lambda cx, v, out: out.append(v + (1 << 64) if v < 0 else v)
    if tt is F32Type:
        return lambda cx, v, out: out.append(maybe_scramble_nan32(v))
    if tt is F64Type:
        return lambda cx, v, out: out.append(maybe_scramble_nan64(v))
    if tt is CharType:
        return lambda cx, v, out: out.append(char_to_i32(v))
    if tt is StringType:
        return lambda cx, v, out: out.extend(_store_string_into_range(cx, v))
    if tt is ErrorContextType:
        return lambda cx, v, out: out.append(lower_error_context(cx, v))
    if tt is OwnType:
        return lambda cx, v, out: out.append(lower_own(cx, v, ot))
    if tt is BorrowType:
        return lambda cx, v, out: out.append(lower_borrow(cx, v, ot))
    if tt is StreamType:
        et = t.t
        return lambda cx, v, out: out.append(lower_stream(cx, v, et))
    if tt is FutureType:
        et = t.t
        return lambda cx, v, out: out.append(lower_future(cx, v, et))
    if tt is ListType:
        if t.l is not None:
            f = lower_flat_fn(t.t, ptr_type)
            n = t.l

            def lower_flat_fixed_list(cx, v, out):
                assert len(v) == n
                for e in v:
                    f(cx, e, out)
            return lower_flat_fixed_list
        store_range = _range_storer(t.t, ptr_type)
        return lambda cx, v, out: out.extend(store_range(cx, v))
    if tt is RecordType:
        labels = tuple(f.label for f in t.fields)
        fs = tuple(lower_flat_fn(f.t, ptr_type) for f in t.fields)

        def lower_flat_record(cx, v, out):
            for f, fv in zip(fs, _field_values(v, labels)):
                f(cx, fv, out)
        return lower_flat_record
    if tt is VariantType:
        return _variant_lowerer(t.cases, ptr_type)
    if tt is FlagsType:
        labels = t.labels
        return lambda cx, v, out: out.append(pack_flags_into_int(v, labels))
    raise AssertionError(f"unknown type {t!r}")


def _zero(core_type: str):
    return 0.0 if core_type in ("f32", "f64") else 0


def _variant_lowerer(cases, ptr_type):
    payload_types = _flatten_variant(cases, ptr_type)[1:]
    by_label = {}
    for i, c in enumerate(cases):
        if c.t is None:
            by_label[c.label] = (i, None, None, tuple(_zero(w) for w in payload_types))
        else:
            ct = _flatten(c.t, ptr_type)
            coercions = tuple(_lower_coercion(have, want) for have, want in zip(ct, payload_types))
            if not any(coercions):
                coercions = None
            pad = tuple(_zero(w) for w in payload_types[len(ct):])
            by_label[c.label] = (i, lower_flat_fn(c.t, ptr_type), coercions, pad)

    def lower_flat_variant(cx, v, out):
        (label, value), = v.items()
        case_index, f, coercions, pad = by_label[label]
        out.append(case_index)
        if f is not None:
            if coercions is None:
                f(cx, value, out)
            else:
                payload = []
                f(cx, value, payload)
                out.extend(c(x) if c is not None else x for c, x in zip(coercions, payload))
        out.extend(pad)
    return lower_flat_variant


def lower_flat(cx, v, t) -> list:
    cx.refresh()
    out: list = []
    lower_flat_fn(t, cx.ptr_type)(cx, v, out)
    return out


# ---------------------------------------------------------------------------
# Lifting and Lowering Values

_PLANS: dict = {}


def _values_plan(ts: tuple, ptr_type: str):
    """The plan for lifting/lowering a tuple of types ``ts``, looked up by the
    tuple's identity first: a function type's parameter tuple is one object
    for its whole life, and hashing its (dataclass) types on every call
    would cost more than the lifting itself."""
    key = (id(ts), ptr_type)
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is ts:
        return hit[1]
    plan = _values_plan_by_value(ts, ptr_type)
    _PLANS[key] = (ts, plan)  # holds ``ts``, so its id is not reused
    return plan


@lru_cache(maxsize=None)
def _values_plan_by_value(ts: tuple, ptr_type: str):
    flat_count = sum(len(_flatten(t, ptr_type)) for t in ts)
    tuple_type = TupleType(ts)
    # whether the values go through memory depends on the caller's max-flat
    # (an async lower's results always do): size them whenever there are any
    some = bool(ts)
    return (flat_count, tuple_type, alignment(tuple_type, ptr_type) if some else 1,
            elem_size(tuple_type, ptr_type) if some else 0,
            tuple(lift_flat_fn(t, ptr_type) for t in ts),
            tuple(lower_flat_fn(t, ptr_type) for t in ts))


def _flat_uses_memory(t) -> bool:
    """Whether lifting or lowering ``t`` as flat values reads or writes
    memory (strings and lists do; scalars, handles, streams, futures and
    records, variants and fixed-length lists of them do not)."""
    t = despecialize(t)
    tt = type(t)
    if tt is StringType:
        return True
    if tt is ListType:
        return t.l is None or _flat_uses_memory(t.t)
    if tt is RecordType:
        return any(_flat_uses_memory(f.t) for f in t.fields)
    if tt is VariantType:
        return any(c.t is not None and _flat_uses_memory(c.t) for c in t.cases)
    return False


class ValuesPlan:
    """Lifting or lowering values of the types ``ts`` through at most
    ``max_flat`` flat core values, worked out once (per ``canon``
    definition, see ``values_plan``): the per-type lifters and lowerers,
    whether the values spill to memory (and the tuple's loader, storer,
    alignment and size then), and whether memory is touched at all: values
    that are all scalars, handles, streams or futures need no memory view
    and no realloc."""

    __slots__ = ("ts", "max_flat", "spills", "tuple_type", "align", "size", "lifters", "lowerers",
                 "uses_memory", "load", "store", "fpack", "funpack")

    def __init__(self, ts: tuple, ptr_type: str, max_flat: int):
        flat_count, tuple_type, align, size, lifters, lowerers = _values_plan(ts, ptr_type)
        self.ts = ts
        self.max_flat = max_flat
        self.spills = flat_count > max_flat
        self.tuple_type = tuple_type
        self.align = align
        self.size = size
        self.lifters = lifters
        self.lowerers = lowerers
        self.uses_memory = self.spills or any(_flat_uses_memory(t) for t in ts)
        self.load = load_fn(tuple_type, ptr_type) if self.spills else None
        self.store = store_fn(tuple_type, ptr_type) if self.spills else None
        # A spilled tuple of integers and bools (a flat record: one
        # ``struct.Struct``, see ``_record_loader``/``_record_storer``): loaded
        # and stored straight from and to a list, without the tuple's dict.
        # The same struct as the generic path, so the same values and errors.
        rt = despecialize(tuple_type) if self.spills else None
        if rt is not None and _is_flat_record(rt, ptr_type):
            st = _record_struct(rt, ptr_type)
            self.fpack, self.funpack = st.pack_into, st.unpack_from
        else:
            self.fpack = self.funpack = None


_VALUES_PLANS: dict = {}
TASK_RETURN_PLANS: dict = {}  # runtime.canon's, per task.return definition and function type


def values_plan(ts, ptr_type: str, max_flat: int) -> ValuesPlan:
    """The ValuesPlan of ``ts``, looked up by the tuple's identity (see
    ``_values_plan``)."""
    if ts.__class__ is not tuple:
        ts = tuple(ts)
    key = (id(ts), ptr_type, max_flat)
    hit = _VALUES_PLANS.get(key)
    if hit is not None and hit.ts is ts:
        return hit
    plan = _VALUES_PLANS[key] = ValuesPlan(ts, ptr_type, max_flat)  # holds ``ts``: its id is not reused
    return plan


def lift_flat_values(cx, max_flat: int, vi, ts) -> list:
    """Lift values of types ``ts`` from ``vi`` (a CoreValueIter), reading
    them from memory through one pointer when they flatten to more than
    ``max_flat`` core values."""
    return lift_values(cx, values_plan(ts, cx.ptr_type, max_flat), vi)


def lift_values(cx, plan: ValuesPlan, vi) -> list:
    """``lift_flat_values`` with its plan worked out beforehand."""
    if plan.uses_memory:
        cx.refresh()
    if plan.spills:
        ptr = vi.next(cx.ptr_type) & cx._mask
        words = cx.words
        trap_if(ptr % plan.align != 0, words.ptr_align)
        trap_if(ptr + plan.size > len(cx.mv), words.ptr_bounds)
        if plan.funpack is not None:
            return list(plan.funpack(cx.mv, ptr))
        return list(plan.load(cx, ptr).values())
    return [f(cx, vi) for f in plan.lifters]


def lower_flat_values(cx, max_flat: int, vs, ts, out_param=None) -> list:
    """Lower values ``vs`` of types ``ts`` to flat core values; when they
    flatten to more than ``max_flat``, store them in memory instead, at a
    freshly allocated pointer (returned as the only flat value) or, given
    ``out_param`` (a CoreValueIter), at the pointer it yields next."""
    return lower_values(cx, values_plan(ts, cx.ptr_type, max_flat), vs, out_param)


def lower_values(cx, plan: ValuesPlan, vs, out_param=None) -> list:
    """``lower_flat_values`` with its plan worked out beforehand."""
    if plan.uses_memory:
        cx.refresh()
    if plan.spills:
        align, size = plan.align, plan.size
        if out_param is not None and plan.fpack is not None and vs.__class__ is list and len(vs) == len(plan.ts):
            # (values of the right count: the tuple's dict would hold exactly these)
            ptr = out_param.next(cx.ptr_type) & cx._mask
            if ptr % align != 0:
                raise Trap(cx.words.ptr_align)
            if ptr + size > len(cx.mv):
                raise Trap(cx.words.ptr_bounds)
            plan.fpack(cx.mv, ptr, *vs)
            return []
        tuple_value = {str(i): v for i, v in enumerate(vs)}
        if out_param is None:
            ptr = cx.allocate(align, size, "ptr")
            flat_vals = [ptr]
        else:
            ptr = out_param.next(cx.ptr_type) & cx._mask
            flat_vals = []
            words = cx.words
            trap_if(ptr % align != 0, words.ptr_align)
            trap_if(ptr + size > len(cx.mv), words.ptr_bounds)
        plan.store(cx, tuple_value, ptr)
        return flat_vals
    out: list = []
    for f, v in zip(plan.lowerers, vs):
        f(cx, v, out)
    return out


# lower_values in C (callscope/runtime/_fiber.c: the flat and the packed
# out-param shapes; any other goes to the function above), which stays the
# definition and the fallback (``_lower_values_py``; tests put it back to
# compare). Callers look it up here (``abi.lower_values``) at each call.
_lower_values_py = lower_values
if _fiber._cfiber is not None:
    _fiber._cfiber.init_lower_values(_lower_values_py, Trap, CoreValueIter)
    # (and LiftLowerContext(...) as the C pieces make it: __init__'s steps for
    # a given ptr_type, on this class with this __init__ only)
    _fiber._cfiber.init_make_cx(LiftLowerContext, globals(), CopyBudget)
    lower_values = _fiber._cfiber.lower_values  # noqa: F811

# lift_values in C too (a plan that does not spill; a spilled one is the
# function above, ``_lift_values_py``, the definition; tests put it back).
# The C lift_values and lower_values do the unsigned lifter and the u8..u64
# lowerer themselves, recognized by their code: given here.
_lift_values_py = lift_values
if _fiber._cfiber is not None:
    _fiber._cfiber.init_lift_values(_lift_values_py, _unsigned_lifter(1).__code__,
                                    lower_flat_fn(U32Type()).__code__)
    lift_values = _fiber._cfiber.lift_values  # noqa: F811


def clear_caches() -> None:
    """Empty the caches of per-type facts above (sizes, alignments, flat
    types, loaders, value plans). They are keyed by types, and a resource type holds its
    destructor, so through them a closed store and everything it recorded
    stayed alive for the life of the process (Host.close calls this)."""
    for f in list(globals().values()):
        if callable(getattr(f, "cache_clear", None)):  # (every @lru_cache function here)
            f.cache_clear()
    _PLANS.clear()
    _VALUES_PLANS.clear()
    TASK_RETURN_PLANS.clear()

"""Helpers for tests/test_differential.py: run the same component under
callscope and under wasmtime-py's native component implementation, and
compare what comes out.

Pieces:

* a native engine and ``NativeRun``: instantiate a component natively and call
  an export through the C API (``wasmtime_component_func_call_async`` polled to
  completion, which works for sync- and async-lifted exports alike);
* ``to_c`` / ``from_c``: convert between callscope's host value representation
  (the spec's: dicts for records, tuples, variants, flags) and the C API's
  ``wasmtime_component_val_t``. ``from_c`` reads the C value directly (every C
  value carries its own kind, case names and field names), so the native side
  is compared without going through wasmtime-py's Python value classes, whose
  untagged variants are ambiguous (``bool`` is an ``int``);
* an independent implementation of the Canonical ABI layout (size, alignment,
  flattening, store into a byte image, flat lowering), written from
  CanonicalABI.md, used to build the memory images and flat values that the
  test components hand to both engines;
* ``wat_type``: component-text rendering of a callscope type, exporting every
  nominal type (record, variant, enum, flags) so that exported functions may
  use them;
* ``normalize``: a comparable form of a value (floats by bits, any NaN equal to
  any NaN, lifted ``String`` objects as plain ``str``, ``bytes`` as a list).
"""

from __future__ import annotations

import ctypes
import math
import os
import struct
from ctypes import POINTER, byref
from pathlib import Path
from typing import Any, Optional

import wasmtime
import wasmtime.component as wc
from wasmtime import _ffi as ffi

from callscope.component import types as T

# ---------------------------------------------------------------------------
# Where ../shared is


def shared_dir() -> Path:
    env = os.environ.get("CALLSCOPE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


ASYNC_TESTS = shared_dir() / "conformance" / "component-model" / "test" / "async"


# ---------------------------------------------------------------------------
# The native side

_ENGINE: Optional[wasmtime.Engine] = None


def native_engine() -> wasmtime.Engine:
    global _ENGINE
    if _ENGINE is None:
        cfg = wasmtime.Config()
        for name in (
            "wasmtime_config_wasm_component_model_set",
            "wasmtime_config_wasm_component_model_async_set",
            "wasmtime_config_wasm_component_model_more_async_builtins_set",
            "wasmtime_config_wasm_component_model_async_stackful_set",
        ):
            getattr(ffi, name)(cfg.ptr(), True)
        cfg.wasm_multi_memory = True
        cfg.wasm_reference_types = True
        _ENGINE = wasmtime.Engine(cfg)
    return _ENGINE


class NativeTrap(Exception):
    """The native call failed (a trap or another wasmtime error)."""


class NativeRun:
    """One native store with one instance of a component."""

    def __init__(self, component_bytes: bytes):
        eng = native_engine()
        self.store = wasmtime.Store(eng)
        self.component = wc.Component(eng, component_bytes)
        self.instance = wc.Linker(eng).instantiate(self.store, self.component)

    def call(self, name: str, ptypes: list, args: list, has_result: bool) -> list:
        """Call export ``name`` with callscope host values ``args`` of
        callscope types ``ptypes``; returns the results as callscope host
        values ([] or [v]). Raises NativeTrap when the call fails."""
        f = self.instance.get_func(self.store, name)
        if f is None:
            raise KeyError(name)
        n = len(args)
        params = (ffi.wasmtime_component_val_t * max(n, 1))()
        built = 0
        try:
            for i, (t, v) in enumerate(zip(ptypes, args)):
                to_c(t, v, ctypes.pointer(params[i]))
                built += 1
            res = (ffi.wasmtime_component_val_t * 1)()
            err = POINTER(ffi.wasmtime_error_t)()
            fut = ffi.wasmtime_component_func_call_async(
                byref(f._func), self.store._context(), params, n, res, 1 if has_result else 0, byref(err))
            polls = 0
            while not ffi.wasmtime_call_future_poll(fut):
                polls += 1
                if polls > 1_000_000:
                    ffi.wasmtime_call_future_delete(fut)
                    raise NativeTrap("native call did not finish")
            ffi.wasmtime_call_future_delete(fut)
            if err:
                raise NativeTrap(str(wasmtime.WasmtimeError._from_ptr(err)))
            if not has_result:
                return []
            try:
                return [from_c(res[0])]
            finally:
                ffi.wasmtime_component_val_delete(byref(res[0]))
        finally:
            for i in range(built):
                ffi.wasmtime_component_val_delete(byref(params[i]))


# ---------------------------------------------------------------------------
# callscope host values <-> wasmtime_component_val_t

K = {name: getattr(ffi, "WASMTIME_COMPONENT_" + name).value for name in (
    "BOOL", "S8", "U8", "S16", "U16", "S32", "U32", "S64", "U64", "F32", "F64", "CHAR",
    "STRING", "LIST", "RECORD", "TUPLE", "VARIANT", "ENUM", "OPTION", "RESULT", "FLAGS")}

_SCALAR = {
    T.BoolType: ("BOOL", "boolean"), T.S8Type: ("S8", "s8"), T.U8Type: ("U8", "u8"),
    T.S16Type: ("S16", "s16"), T.U16Type: ("U16", "u16"), T.S32Type: ("S32", "s32"),
    T.U32Type: ("U32", "u32"), T.S64Type: ("S64", "s64"), T.U64Type: ("U64", "u64"),
    T.F32Type: ("F32", "f32"), T.F64Type: ("F64", "f64"),
}


def _boxed(t, v):
    raw = ffi.wasmtime_component_val_t()
    to_c(t, v, ctypes.pointer(raw))
    return ffi.wasmtime_component_val_new(byref(raw))


def _single(d: dict):
    assert isinstance(d, dict) and len(d) == 1, d
    return next(iter(d.items()))


def to_c(t, v, ptr) -> None:
    """Write callscope host value ``v`` of callscope type ``t`` into the C
    value at ``ptr`` (owned by the caller: free with wasmtime_component_val_delete)."""
    c = ptr.contents
    tt = type(t)
    if tt in _SCALAR:
        kind, field = _SCALAR[tt]
        c.kind = K[kind]
        setattr(c.of, field, v)
    elif tt is T.CharType:
        c.kind = K["CHAR"]
        c.of.character = ord(v)
    elif tt is T.StringType:
        c.kind = K["STRING"]
        c.of.string = ffi.str_to_capi(str(v))
    elif tt is T.ListType:
        items = list(v)
        raw = ffi.wasmtime_component_vallist_t()
        ffi.wasmtime_component_vallist_new_uninit(raw, len(items))
        for i, e in enumerate(items):
            to_c(t.t, e, ctypes.pointer(raw.data[i]))
        c.kind = K["LIST"]
        c.of.list = raw
    elif tt is T.RecordType:
        raw = ffi.wasmtime_component_valrecord_t()
        ffi.wasmtime_component_valrecord_new_uninit(raw, len(t.fields))
        for i, f in enumerate(t.fields):
            to_c(f.t, v[f.label], ctypes.pointer(raw.data[i].val))
            raw.data[i].name = ffi.str_to_capi(f.label)
        c.kind = K["RECORD"]
        c.of.record = raw
    elif tt is T.TupleType:
        raw = ffi.wasmtime_component_valtuple_t()
        ffi.wasmtime_component_valtuple_new_uninit(raw, len(t.ts))
        for i, u in enumerate(t.ts):
            to_c(u, v[str(i)], ctypes.pointer(raw.data[i]))
        c.kind = K["TUPLE"]
        c.of.tuple = raw
    elif tt is T.VariantType:
        label, payload = _single(v)
        case = next(k for k in t.cases if k.label == label)
        c.kind = K["VARIANT"]
        c.of.variant.discriminant = ffi.str_to_capi(label)
        c.of.variant.val = _boxed(case.t, payload) if case.t is not None else None
    elif tt is T.EnumType:
        label, _ = _single(v)
        c.kind = K["ENUM"]
        c.of.enumeration = ffi.str_to_capi(label)
    elif tt is T.OptionType:
        label, payload = _single(v)
        c.kind = K["OPTION"]
        c.of.option = _boxed(t.t, payload) if label == "some" else None
    elif tt is T.ResultType:
        label, payload = _single(v)
        pt = t.ok if label == "ok" else t.error
        c.kind = K["RESULT"]
        c.of.result.is_ok = label == "ok"
        c.of.result.val = _boxed(pt, payload) if pt is not None else None
    elif tt is T.FlagsType:
        on = [l for l in t.labels if v.get(l)]
        raw = ffi.wasmtime_component_valflags_t()
        ffi.wasmtime_component_valflags_new_uninit(raw, len(on))
        for i, l in enumerate(on):
            raw.data[i] = ffi.str_to_capi(l)
        c.kind = K["FLAGS"]
        c.of.flags = raw
    else:
        raise NotImplementedError(f"no C conversion for {t!r}")


def _name(vec) -> str:
    return ctypes.string_at(vec.data, vec.size).decode("utf-8")


def from_c(c, flag_labels: Optional[dict] = None) -> Any:
    """The callscope host value of C value ``c`` (not freed here). Flags come
    back as the set of labels that are on, wrapped as ``FlagSet``; compare with
    ``normalize`` which treats a flags dict and a FlagSet alike."""
    k = c.kind
    if k == K["BOOL"]:
        return bool(c.of.boolean)
    for name, field in (("S8", "s8"), ("U8", "u8"), ("S16", "s16"), ("U16", "u16"), ("S32", "s32"),
                        ("U32", "u32"), ("S64", "s64"), ("U64", "u64"), ("F32", "f32"), ("F64", "f64")):
        if k == K[name]:
            return getattr(c.of, field)
    if k == K["CHAR"]:
        return chr(c.of.character)
    if k == K["STRING"]:
        return _name(c.of.string)
    if k == K["LIST"]:
        return [from_c(c.of.list.data[i]) for i in range(c.of.list.size)]
    if k == K["RECORD"]:
        r = c.of.record
        return {_name(r.data[i].name): from_c(r.data[i].val) for i in range(r.size)}
    if k == K["TUPLE"]:
        r = c.of.tuple
        return {str(i): from_c(r.data[i]) for i in range(r.size)}
    if k == K["VARIANT"]:
        p = c.of.variant.val
        return {_name(c.of.variant.discriminant): from_c(p.contents) if p else None}
    if k == K["ENUM"]:
        return {_name(c.of.enumeration): None}
    if k == K["OPTION"]:
        p = c.of.option
        return {"some": from_c(p.contents)} if p else {"none": None}
    if k == K["RESULT"]:
        p = c.of.result.val
        return {"ok" if c.of.result.is_ok else "error": from_c(p.contents) if p else None}
    if k == K["FLAGS"]:
        f = c.of.flags
        return FlagSet(_name(f.data[i]) for i in range(f.size))
    raise NotImplementedError(f"no conversion for C value kind {k}")


class FlagSet(frozenset):
    """Flags as the native side returns them: the labels that are on."""


def normalize(v: Any) -> Any:
    """A form of a host value that compares equal exactly when the values are
    the same: floats by bit pattern (every NaN alike, as the Canonical ABI
    lets a lift return any NaN), flags as the set of labels that are on."""
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, float):
        if math.isnan(v):
            return ("nan",)
        return ("float", struct.pack("<d", v))
    if isinstance(v, str):
        return ("str", str(v))
    if isinstance(v, (bytes, bytearray)):
        return ("list", tuple(("int", b) for b in v))
    if isinstance(v, (list, tuple)):
        return ("list", tuple(normalize(e) for e in v))
    if isinstance(v, FlagSet):
        return ("flags", frozenset(v))
    if isinstance(v, dict):
        return ("dict", tuple(sorted((k, normalize(x)) for k, x in v.items())))
    if v is None:
        return ("none",)
    raise TypeError(f"cannot normalize {v!r}")


def normalize_typed(t, v: Any) -> Any:
    """``normalize`` guided by the type (flags vs. variants, char vs. string)."""
    tt = type(t)
    if tt is T.FlagsType:
        if isinstance(v, (set, frozenset)):
            return ("flags", frozenset(v))
        return ("flags", frozenset(k for k, x in v.items() if x))
    if tt is T.ListType:
        return ("list", tuple(normalize_typed(t.t, e) for e in v))
    if tt is T.RecordType:
        return ("dict", tuple((f.label, normalize_typed(f.t, v[f.label])) for f in t.fields))
    if tt is T.TupleType:
        return ("dict", tuple((str(i), normalize_typed(u, v[str(i)])) for i, u in enumerate(t.ts)))
    if tt in (T.VariantType, T.EnumType, T.OptionType, T.ResultType):
        label, payload = _single(v)
        cases = {c.label: c.t for c in _cases(t)}
        pt = cases[label]
        return ("case", label, normalize_typed(pt, payload) if pt is not None else None)
    return normalize(v)


def _cases(t):
    tt = type(t)
    if tt is T.VariantType:
        return t.cases
    if tt is T.EnumType:
        return tuple(T.CaseType(l, None) for l in t.labels)
    if tt is T.OptionType:
        return (T.CaseType("none", None), T.CaseType("some", t.t))
    if tt is T.ResultType:
        return (T.CaseType("ok", t.ok), T.CaseType("error", t.error))
    raise TypeError(t)


# ---------------------------------------------------------------------------
# The Canonical ABI layout, independently of callscope.component.abi


def align_to(p: int, a: int) -> int:
    return (p + a - 1) // a * a


def disc_size(n: int) -> int:
    return 1 if n <= 256 else 2 if n <= 65536 else 4


def flags_size(n: int) -> int:
    return 1 if n <= 8 else 2 if n <= 16 else 4


def alignment(t) -> int:
    tt = type(t)
    if tt in (T.BoolType, T.S8Type, T.U8Type):
        return 1
    if tt in (T.S16Type, T.U16Type):
        return 2
    if tt in (T.S32Type, T.U32Type, T.F32Type, T.CharType, T.StringType, T.ListType):
        return 4
    if tt in (T.S64Type, T.U64Type, T.F64Type):
        return 8
    if tt is T.RecordType:
        return max(alignment(f.t) for f in t.fields)
    if tt is T.TupleType:
        return max(alignment(u) for u in t.ts)
    if tt is T.FlagsType:
        return flags_size(len(t.labels))
    cases = _cases(t)
    return max([disc_size(len(cases))] + [alignment(c.t) for c in cases if c.t is not None])


def _max_case_align(cases) -> int:
    return max([1] + [alignment(c.t) for c in cases if c.t is not None])


def size(t) -> int:
    tt = type(t)
    if tt in (T.BoolType, T.S8Type, T.U8Type):
        return 1
    if tt in (T.S16Type, T.U16Type):
        return 2
    if tt in (T.S32Type, T.U32Type, T.F32Type, T.CharType):
        return 4
    if tt in (T.S64Type, T.U64Type, T.F64Type, T.StringType, T.ListType):
        return 8
    if tt in (T.RecordType, T.TupleType):
        fs = [f.t for f in t.fields] if tt is T.RecordType else list(t.ts)
        s = 0
        for u in fs:
            s = align_to(s, alignment(u)) + size(u)
        return align_to(s, alignment(t))
    if tt is T.FlagsType:
        return flags_size(len(t.labels))
    cases = _cases(t)
    s = align_to(disc_size(len(cases)), _max_case_align(cases))
    s += max([0] + [size(c.t) for c in cases if c.t is not None])
    return align_to(s, alignment(t))


def flatten(t) -> list:
    tt = type(t)
    if tt in (T.BoolType, T.S8Type, T.U8Type, T.S16Type, T.U16Type, T.S32Type, T.U32Type, T.CharType,
              T.FlagsType):
        return ["i32"]
    if tt in (T.S64Type, T.U64Type):
        return ["i64"]
    if tt is T.F32Type:
        return ["f32"]
    if tt is T.F64Type:
        return ["f64"]
    if tt in (T.StringType, T.ListType):
        return ["i32", "i32"]
    if tt is T.RecordType:
        return [x for f in t.fields for x in flatten(f.t)]
    if tt is T.TupleType:
        return [x for u in t.ts for x in flatten(u)]
    flat: list = []
    for c in _cases(t):
        if c.t is None:
            continue
        for i, ft in enumerate(flatten(c.t)):
            if i < len(flat):
                flat[i] = _join(flat[i], ft)
            else:
                flat.append(ft)
    return ["i32"] + flat


def _join(a: str, b: str) -> str:
    if a == b:
        return a
    if {a, b} == {"i32", "f32"}:
        return "i32"
    return "i64"


UTF16_TAG = 1 << 31


class Image:
    """A linear-memory image being built: values stored at addresses, with a
    bump allocator for what they point to."""

    def __init__(self, encoding: str, base: int = 64, size: int = 65536):
        self.mem = bytearray(size)
        self.encoding = encoding
        self.base = base
        self.next = base

    def alloc(self, nbytes: int, align: int) -> int:
        p = align_to(self.next, align)
        self.next = p + nbytes
        assert self.next <= len(self.mem), "image too large"
        return p

    def top(self) -> int:
        return self.next

    def put_int(self, ptr: int, nbytes: int, v: int) -> None:
        self.mem[ptr:ptr + nbytes] = (v % (1 << (8 * nbytes))).to_bytes(nbytes, "little")

    def store(self, t, v, ptr: int) -> None:
        tt = type(t)
        if tt is T.BoolType:
            self.put_int(ptr, 1, int(v))
        elif tt in (T.S8Type, T.U8Type, T.S16Type, T.U16Type, T.S32Type, T.U32Type, T.S64Type, T.U64Type):
            self.put_int(ptr, size(t), v)
        elif tt is T.F32Type:
            self.mem[ptr:ptr + 4] = struct.pack("<f", v)
        elif tt is T.F64Type:
            self.mem[ptr:ptr + 8] = struct.pack("<d", v)
        elif tt is T.CharType:
            self.put_int(ptr, 4, ord(v))
        elif tt is T.StringType:
            p, n = self.store_string(v)
            self.put_int(ptr, 4, p)
            self.put_int(ptr + 4, 4, n)
        elif tt is T.ListType:
            items = list(v)
            p = self.alloc(size(t.t) * len(items), alignment(t.t))
            for i, e in enumerate(items):
                self.store(t.t, e, p + i * size(t.t))
            self.put_int(ptr, 4, p)
            self.put_int(ptr + 4, 4, len(items))
        elif tt in (T.RecordType, T.TupleType):
            fs = ([(f.label, f.t) for f in t.fields] if tt is T.RecordType
                  else [(str(i), u) for i, u in enumerate(t.ts)])
            off = 0
            for label, u in fs:
                off = align_to(off, alignment(u))
                self.store(u, v[label], ptr + off)
                off += size(u)
        elif tt is T.FlagsType:
            bits = sum(1 << i for i, l in enumerate(t.labels) if v.get(l))
            self.put_int(ptr, flags_size(len(t.labels)), bits)
        else:
            cases = _cases(t)
            label, payload = _single(v)
            i = next(j for j, c in enumerate(cases) if c.label == label)
            ds = disc_size(len(cases))
            self.put_int(ptr, ds, i)
            if cases[i].t is not None:
                self.store(cases[i].t, payload, ptr + align_to(ds, _max_case_align(cases)))

    def store_string(self, s: str) -> tuple[int, int]:
        s = str(s)
        if self.encoding == "utf8":
            b = s.encode("utf-8")
            return self._put_bytes(b, 1), len(b)
        if self.encoding == "utf16" or any(ord(ch) > 0xFF for ch in s):
            b = s.encode("utf-16-le")
            n = len(b) // 2
            return self._put_bytes(b, 2), (n if self.encoding == "utf16" else n | UTF16_TAG)
        b = s.encode("latin-1")
        return self._put_bytes(b, 2), len(b)

    def _put_bytes(self, b: bytes, align: int) -> int:
        p = self.alloc(len(b), align)
        self.mem[p:p + len(b)] = b
        return p

    def data_segment(self) -> str:
        """The image's used range as a WAT data string."""
        return "".join(f"\\{x:02x}" for x in self.mem[self.base:self.next])

    def lower_flat(self, t, v) -> list:
        """Flat core values of ``v`` (pointers into this image): a list of
        (core type, value) with ints unsigned and floats as bit patterns."""
        tt = type(t)
        if tt is T.BoolType:
            return [("i32", int(v))]
        if tt in (T.S8Type, T.U8Type, T.S16Type, T.U16Type, T.S32Type, T.U32Type):
            return [("i32", v % (1 << 32))]
        if tt in (T.S64Type, T.U64Type):
            return [("i64", v % (1 << 64))]
        if tt is T.F32Type:
            return [("f32", struct.unpack("<I", struct.pack("<f", v))[0])]
        if tt is T.F64Type:
            return [("f64", struct.unpack("<Q", struct.pack("<d", v))[0])]
        if tt is T.CharType:
            return [("i32", ord(v))]
        if tt is T.StringType:
            p, n = self.store_string(v)
            return [("i32", p), ("i32", n)]
        if tt is T.ListType:
            items = list(v)
            p = self.alloc(size(t.t) * len(items), alignment(t.t))
            for i, e in enumerate(items):
                self.store(t.t, e, p + i * size(t.t))
            return [("i32", p), ("i32", len(items))]
        if tt is T.RecordType:
            return [x for f in t.fields for x in self.lower_flat(f.t, v[f.label])]
        if tt is T.TupleType:
            return [x for i, u in enumerate(t.ts) for x in self.lower_flat(u, v[str(i)])]
        if tt is T.FlagsType:
            return [("i32", sum(1 << i for i, l in enumerate(t.labels) if v.get(l)))]
        cases = _cases(t)
        label, payload = _single(v)
        i = next(j for j, c in enumerate(cases) if c.label == label)
        want = flatten(t)[1:]
        out = [("i32", i)]
        got = self.lower_flat(cases[i].t, payload) if cases[i].t is not None else []
        for j, w in enumerate(want):
            if j < len(got):
                have, x = got[j]
                if have == w:
                    out.append((w, x))
                elif w == "i64" and have == "i32":
                    out.append((w, x))
                elif w == "i64" and have == "f32":
                    out.append((w, x))
                elif w == "i64" and have == "f64":
                    out.append((w, x))
                elif w == "i32" and have == "f32":
                    out.append((w, x))
                else:
                    raise AssertionError((have, w))
            else:
                out.append((w, 0))
        return out


def wat_const(ct: str, bits: int) -> str:
    """A core constant instruction for a value given as its bit pattern."""
    if ct == "i32":
        return f"(i32.const {bits - (1 << 32) if bits >= 1 << 31 else bits})"
    if ct == "i64":
        return f"(i64.const {bits - (1 << 64) if bits >= 1 << 63 else bits})"
    if ct == "f32":
        return f"(f32.reinterpret_i32 {wat_const('i32', bits)})"
    return f"(f64.reinterpret_i64 {wat_const('i64', bits)})"


# ---------------------------------------------------------------------------
# Component text for types

_PRIM_WAT = {
    T.BoolType: "bool", T.S8Type: "s8", T.U8Type: "u8", T.S16Type: "s16", T.U16Type: "u16",
    T.S32Type: "s32", T.U32Type: "u32", T.S64Type: "s64", T.U64Type: "u64",
    T.F32Type: "f32", T.F64Type: "f64", T.CharType: "char", T.StringType: "string",
}


class TypeDefs:
    """Accumulates component type definitions; nominal types are defined and
    exported (``(export $eN "tN" (type $tN))``), and used by their export."""

    def __init__(self):
        self.lines: list[str] = []
        self.n = 0

    def use(self, t) -> str:
        tt = type(t)
        if tt in _PRIM_WAT:
            return _PRIM_WAT[tt]
        if tt is T.ListType:
            return f"(list {self.use(t.t)})"
        if tt is T.TupleType:
            return "(tuple " + " ".join(self.use(u) for u in t.ts) + ")"
        if tt is T.OptionType:
            return f"(option {self.use(t.t)})"
        if tt is T.ResultType:
            s = "(result"
            if t.ok is not None:
                s += " " + self.use(t.ok)
            if t.error is not None:
                s += f" (error {self.use(t.error)})"
            return s + ")"
        if tt is T.RecordType:
            body = "(record " + " ".join(f'(field "{f.label}" {self.use(f.t)})' for f in t.fields) + ")"
        elif tt is T.VariantType:
            body = "(variant " + " ".join(
                f'(case "{c.label}" {self.use(c.t)})' if c.t is not None else f'(case "{c.label}")'
                for c in t.cases) + ")"
        elif tt is T.EnumType:
            body = "(enum " + " ".join(f'"{l}"' for l in t.labels) + ")"
        elif tt is T.FlagsType:
            body = "(flags " + " ".join(f'"{l}"' for l in t.labels) + ")"
        else:
            raise NotImplementedError(t)
        i = self.n
        self.n += 1
        self.lines.append(f"(type $t{i} {body})")
        self.lines.append(f'(export $e{i} "t{i}" (type $t{i}))')
        return f"$e{i}"

    def text(self) -> str:
        return "\n  ".join(self.lines)


BUMP_REALLOC = """
    (global $bump (mut i32) (i32.const {heap}))
    (func (export "realloc") (param $old i32) (param $osz i32) (param $al i32) (param $nsz i32) (result i32)
      (local $p i32) (local $need i32)
      (local.set $p (i32.and (i32.add (global.get $bump) (i32.sub (local.get $al) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $al))))
      (global.set $bump (i32.add (local.get $p) (local.get $nsz)))
      (local.set $need (i32.sub (global.get $bump) (i32.mul (memory.size) (i32.const 65536))))
      (if (i32.gt_s (local.get $need) (i32.const 0))
        (then (if (i32.lt_s (memory.grow (i32.add (i32.shr_u (local.get $need) (i32.const 16)) (i32.const 1)))
                            (i32.const 0))
                (then unreachable))))
      (if (local.get $old)
        (then (memory.copy (local.get $p) (local.get $old)
                (select (local.get $osz) (local.get $nsz) (i32.lt_u (local.get $osz) (local.get $nsz))))))
      (local.get $p))
"""


def _image_repr(self) -> str:
    return f"Image({self.encoding}, {self.base}..{self.next})"


Image.__repr__ = _image_repr  # type: ignore[assignment]

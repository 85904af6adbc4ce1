"""Tests for the Canonical ABI for values (callscope.component.abi)."""

from __future__ import annotations

import importlib.util
import math
import os
import struct
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from callscope.component import abi
from callscope.component.abi import (
    BytesMemory, CanonicalOptions, CoreValueIter, LiftLowerContext, String, WasmtimeMemory,
    align_to, alignment, despecialize, discriminant_type, elem_size, flatten_functype,
    flatten_type, lift_flat, lift_flat_values, load, load_list_from_range,
    load_string_from_range, lower_flat, lower_flat_values, store, store_string_into_range,
)
from callscope.component.types import (
    BoolType, BorrowType, CaseType, CharType, EnumType, ErrorContextType, F32Type, F64Type,
    FieldType, FlagsType, FuncType, FutureType, ListType, MapType, OptionType, OwnType,
    RecordType, ResourceType, ResultType, S16Type, S32Type, S64Type, S8Type, StreamType,
    StringType, TupleType, U16Type, U32Type, U64Type, U8Type, VariantType,
)
from callscope.runtime.errors import Trap
from callscope.runtime.handles import ErrorContext, ResourceHandle, Table

ENCODINGS = ("utf8", "utf16", "latin1+utf16")
TAG = 1 << 31


# ---------------------------------------------------------------------------
# Fixtures: a component-instance stand-in, a bump allocator realloc

class Inst:
    def __init__(self):
        self.handles = Table()
        self.may_leave = True


class Bump:
    """A realloc that bumps a pointer, copies on growth like a real realloc,
    and records its calls."""

    def __init__(self, mem, start=8, inst=None):
        self.mem = mem
        self.next = start
        self.calls = []
        self.inst = inst

    def __call__(self, old, old_size, align, new_size):
        if self.inst is not None:
            assert self.inst.may_leave is False
        self.calls.append((old, old_size, align, new_size))
        ptr = align_to(self.next, align)
        self.next = ptr + new_size
        if old:
            n = min(old_size, new_size)
            self.mem[ptr:ptr + n] = bytes(self.mem[old:old + n])
        return ptr


def make_cx(encoding="utf8", size=1 << 16, start=8, host=False, realloc=None):
    mem = BytesMemory(size)
    inst = Inst()
    bump = Bump(mem, start, inst)
    opts = CanonicalOptions(string_encoding=encoding, memory=mem,
                            realloc=realloc if realloc is not None else bump)
    return LiftLowerContext(opts, inst, host=host), mem, bump


def bits(v):
    """Normalise a value for comparison: floats by bit pattern, Strings by
    their triple."""
    if isinstance(v, float):
        return ("f", struct.pack("<d", v))
    if isinstance(v, String):
        return ("s", str(v), v.encoding, v.tagged_code_units)
    if isinstance(v, dict):
        return {k: bits(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [bits(x) for x in v]
    return v


def value_eq(a, b):
    """Equality treating every NaN as equal and a String as its text."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, str) and isinstance(b, str):
        return str(a) == str(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(value_eq(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(value_eq(x, y) for x, y in zip(a, b))
    return type(a) == type(b) and a == b


# ---------------------------------------------------------------------------
# Hypothesis: types and values

SCALARS = [BoolType(), S8Type(), U8Type(), S16Type(), U16Type(), S32Type(), U32Type(),
           S64Type(), U64Type(), F32Type(), F64Type(), CharType(), StringType()]

labels = st.lists(st.from_regex(r"[a-z]{1,6}", fullmatch=True), min_size=1, max_size=5, unique=True)


def _compound(inner):
    return st.one_of(
        inner.map(ListType),
        st.tuples(inner, st.integers(1, 3)).map(lambda p: ListType(p[0], p[1])),
        labels.flatmap(lambda ls: st.lists(inner, min_size=len(ls), max_size=len(ls)).map(
            lambda ts: RecordType(tuple(FieldType(l, t) for l, t in zip(ls, ts))))),
        st.lists(inner, min_size=1, max_size=4).map(lambda ts: TupleType(tuple(ts))),
        labels.flatmap(lambda ls: st.lists(st.one_of(st.none(), inner), min_size=len(ls),
                                           max_size=len(ls)).map(
            lambda ts: VariantType(tuple(CaseType(l, t) for l, t in zip(ls, ts))))),
        labels.map(lambda ls: EnumType(tuple(ls))),
        inner.map(OptionType),
        st.tuples(st.one_of(st.none(), inner), st.one_of(st.none(), inner)).map(
            lambda p: ResultType(*p)),
        labels.map(lambda ls: FlagsType(tuple(ls))),
        st.tuples(inner, inner).map(lambda p: MapType(*p)),
    )


val_types = st.recursive(st.sampled_from(SCALARS + [StringType()] * 4), _compound, max_leaves=6)

chars = st.characters(blacklist_categories=("Cs",))
texts = st.one_of(
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=12),
    st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=12),
    st.text(alphabet=chars, max_size=12),
)


def values_of(t):
    """A strategy for host values of type ``t``."""
    if isinstance(t, BoolType):
        return st.booleans()
    ints = {S8Type: 8, S16Type: 16, S32Type: 32, S64Type: 64}
    uints = {U8Type: 8, U16Type: 16, U32Type: 32, U64Type: 64}
    if type(t) in ints:
        n = ints[type(t)]
        return st.integers(-(1 << (n - 1)), (1 << (n - 1)) - 1)
    if type(t) in uints:
        return st.integers(0, (1 << uints[type(t)]) - 1)
    if isinstance(t, F32Type):
        return st.floats(width=32)
    if isinstance(t, F64Type):
        return st.floats()
    if isinstance(t, CharType):
        return chars
    if isinstance(t, StringType):
        return texts
    if isinstance(t, ListType):
        if t.l is not None:
            return st.lists(values_of(t.t), min_size=t.l, max_size=t.l)
        return st.lists(values_of(t.t), max_size=4)
    if isinstance(t, MapType):
        return st.lists(st.tuples(values_of(t.k), values_of(t.v)).map(
            lambda p: {"0": p[0], "1": p[1]}), max_size=3)
    if isinstance(t, (RecordType, TupleType, VariantType, EnumType, OptionType, ResultType)):
        d = despecialize(t)
        if isinstance(d, RecordType):
            return st.fixed_dictionaries({f.label: values_of(f.t) for f in d.fields})
        return st.one_of([
            (values_of(c.t) if c.t is not None else st.none()).map(lambda v, l=c.label: {l: v})
            for c in d.cases])
    if isinstance(t, FlagsType):
        return st.fixed_dictionaries({l: st.booleans() for l in t.labels})
    raise AssertionError(t)


typed_values = val_types.flatmap(lambda t: st.tuples(st.just(t), values_of(t)))

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------------------
# Round trips

@SETTINGS
@given(typed_values, st.sampled_from(ENCODINGS))
def test_store_load_roundtrip(tv, encoding):
    t, v = tv
    cx, mem, bump = make_cx(encoding, start=4096)
    ptr = align_to(64, alignment(t))
    store(cx, v, t, ptr)
    assert value_eq(load(cx, ptr, t), v)


@SETTINGS
@given(typed_values, st.sampled_from(ENCODINGS))
def test_lower_lift_flat_roundtrip(tv, encoding):
    t, v = tv
    cx, mem, bump = make_cx(encoding)
    flat = lower_flat(cx, v, t)
    assert len(flat) == len(flatten_type(t))
    for x, ft in zip(flat, flatten_type(t)):
        if ft in ("i32", "i64"):
            assert isinstance(x, int) and 0 <= x < (1 << int(ft[1:]))
        else:
            assert isinstance(x, float)
    vi = CoreValueIter(flat)
    assert value_eq(lift_flat(cx, vi, t), v)
    assert vi.done()


@SETTINGS
@given(st.lists(typed_values, max_size=5), st.integers(0, 17), st.booleans())
def test_flat_values_roundtrip(tvs, max_flat, use_out_param):
    ts = [t for t, _ in tvs]
    vs = [v for _, v in tvs]
    cx, mem, bump = make_cx("utf8", start=4096)
    spill = len(abi.flatten_types(ts)) > max_flat
    if use_out_param and spill:
        out = CoreValueIter([align_to(64, alignment(TupleType(tuple(ts))))])
        flat = lower_flat_values(cx, max_flat, vs, ts, out)
        assert flat == [] and out.done()
        flat = out.values
    else:
        flat = lower_flat_values(cx, max_flat, vs, ts)
    if spill:
        assert len(flat) == 1
    vi = CoreValueIter(flat)
    assert value_eq(lift_flat_values(cx, max_flat, vi, ts), vs)
    assert vi.done()


@SETTINGS
@given(texts, st.sampled_from(ENCODINGS), st.sampled_from(ENCODINGS))
def test_string_transcoding_all_pairs(s, src_enc, dst_enc):
    src_cx, _, _ = make_cx(src_enc)
    lifted = load_string_from_range(src_cx, *store_string_into_range(src_cx, s))
    assert str(lifted) == s and lifted.encoding == src_enc
    dst_cx, _, _ = make_cx(dst_enc, start=1000)
    for v in (lifted, s):  # a lifted String and a plain host str
        ptr, tcu = store_string_into_range(dst_cx, v)
        back = load_string_from_range(dst_cx, ptr, tcu)
        assert str(back) == s and back.encoding == dst_enc and back.tagged_code_units == tcu


# ---------------------------------------------------------------------------
# Differential test against the spec's reference definitions, when present:
# same bytes in memory, same realloc calls, same flat values, same values.

REF_PATH = os.environ.get("CALLSCOPE_REF_DEFINITIONS", "/work/ref/definitions.py")
REF_MISSING = (f"the spec's reference definitions.py is not at {REF_PATH} (set CALLSCOPE_REF_DEFINITIONS to "
               "design/mvp/canonical-abi/definitions.py of github.com/WebAssembly/component-model to run it)")


def _load_ref():
    if not os.path.exists(REF_PATH):
        return None
    spec = importlib.util.spec_from_file_location("_cabi_ref_definitions", REF_PATH)
    m = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = m
    spec.loader.exec_module(m)
    m.DETERMINISTIC_PROFILE = True
    return m


REF = _load_ref()


def to_ref_type(t):
    R = REF
    if t is None:
        return None
    name = type(t).__name__
    if isinstance(t, ListType):
        return R.ListType(to_ref_type(t.t), t.l)
    if isinstance(t, RecordType):
        return R.RecordType([R.FieldType(f.label, to_ref_type(f.t)) for f in t.fields])
    if isinstance(t, TupleType):
        return R.TupleType([to_ref_type(u) for u in t.ts])
    if isinstance(t, VariantType):
        return R.VariantType([R.CaseType(c.label, to_ref_type(c.t)) for c in t.cases])
    if isinstance(t, (EnumType, FlagsType)):
        return getattr(R, name)(list(t.labels))
    if isinstance(t, OptionType):
        return R.OptionType(to_ref_type(t.t))
    if isinstance(t, ResultType):
        return R.ResultType(to_ref_type(t.ok), to_ref_type(t.error))
    if isinstance(t, MapType):
        return R.MapType(to_ref_type(t.k), to_ref_type(t.v))
    return getattr(R, name)()


def to_ref_value(v, t):
    if isinstance(t, StringType):
        return abi.string_triple(v)
    d = despecialize(t)
    if isinstance(d, ListType):
        return [to_ref_value(e, d.t) for e in v]
    if isinstance(d, RecordType):
        return {f.label: to_ref_value(v[f.label], f.t) for f in d.fields}
    if isinstance(d, VariantType):
        (l, x), = v.items()
        c = next(c for c in d.cases if c.label == l)
        return {l: to_ref_value(x, c.t) if c.t is not None else None}
    return v


def from_ref_value(v, t):
    """Turn the reference's String triples into our String."""
    if isinstance(t, StringType):
        return String(*v)
    d = despecialize(t)
    if isinstance(d, ListType):
        return [from_ref_value(e, d.t) for e in v]
    if isinstance(d, RecordType):
        return {f.label: from_ref_value(v[f.label], f.t) for f in d.fields}
    if isinstance(d, VariantType):
        (l, x), = v.items()
        c = next(c for c in d.cases if c.label == l)
        return {l: from_ref_value(x, c.t) if c.t is not None else None}
    return v


def make_ref_cx(encoding, size=1 << 16, start=8):
    R = REF
    mem = R.MemInst(bytearray(size), "i32")
    bump = Bump(mem.bytes, start)

    class Cx(R.LiftLowerContext):
        def reallocate(self, old, old_size, align, new_size):
            return bump(old, old_size, align, new_size)

    opts = R.CanonicalOptions(string_encoding=encoding, memory=mem, realloc=bump)
    return Cx(opts, None), mem, bump


def _same(a, b):
    assert bits(a) == bits(b)


@pytest.mark.skipif(REF is None, reason=REF_MISSING)
@SETTINGS
@given(typed_values, st.sampled_from(ENCODINGS), st.sampled_from(ENCODINGS))
def test_matches_reference(tv, src_enc, dst_enc):
    t, v = tv
    rt = to_ref_type(t)
    # give strings a source encoding by lifting them in a src_enc context first
    src_cx, _, _ = make_cx(src_enc, start=30000)
    store(src_cx, v, t, align_to(16, alignment(t)))
    v = load(src_cx, align_to(16, alignment(t)), t)

    ptr = align_to(64, alignment(t))
    cx, mem, bump = make_cx(dst_enc, start=4096)
    rcx, rmem, rbump = make_ref_cx(dst_enc, start=4096)
    store(cx, v, t, ptr)
    REF.store(rcx, to_ref_value(v, t), rt, ptr)
    assert bump.calls == rbump.calls
    assert bytes(mem.bytes) == bytes(rmem.bytes)
    _same(load(cx, ptr, t), from_ref_value(REF.load(rcx, ptr, rt), t))

    cx, mem, bump = make_cx(dst_enc)
    rcx, rmem, rbump = make_ref_cx(dst_enc)
    flat = lower_flat(cx, v, t)
    rflat = REF.lower_flat(rcx, to_ref_value(v, t), rt)
    assert bump.calls == rbump.calls
    assert bytes(mem.bytes) == bytes(rmem.bytes)
    assert len(flat) == len(rflat)
    for x, y in zip(flat, rflat):
        assert x == y or (x != x and y != y)
    got = lift_flat(cx, CoreValueIter(flat), t)
    want = from_ref_value(REF.lift_flat(rcx, REF.CoreValueIter(rflat), rt), t)
    _same(got, want)


STRING_HOLDERS = [StringType(), ListType(StringType()), OptionType(StringType()),
                  TupleType((U8Type(), StringType(), U16Type(), StringType())),
                  ListType(StringType(), 2), ResultType(StringType(), ListType(StringType()))]


@pytest.mark.skipif(REF is None, reason=REF_MISSING)
@SETTINGS
@given(st.sampled_from(STRING_HOLDERS).flatmap(lambda t: st.tuples(st.just(t), values_of(t))),
       st.sampled_from(ENCODINGS), st.sampled_from(ENCODINGS))
def test_strings_match_reference(tv, src_enc, dst_enc):
    test_matches_reference.hypothesis.inner_test(tv, src_enc, dst_enc)


# ---------------------------------------------------------------------------
# Sizes, alignments, flattening

@pytest.mark.parametrize("t,size,align", [
    (BoolType(), 1, 1), (U8Type(), 1, 1), (S16Type(), 2, 2), (U32Type(), 4, 4),
    (S64Type(), 8, 8), (F32Type(), 4, 4), (F64Type(), 8, 8), (CharType(), 4, 4),
    (StringType(), 8, 4), (ListType(U8Type()), 8, 4), (ListType(U64Type()), 8, 4),
    (ListType(U16Type(), 3), 6, 2), (ListType(F64Type(), 2), 16, 8),
    (TupleType((U8Type(), U32Type())), 8, 4),
    (TupleType((U8Type(), U16Type(), U8Type())), 6, 2),
    (TupleType((U64Type(), U8Type())), 16, 8),
    (RecordType((FieldType("a", U8Type()), FieldType("b", StringType()))), 12, 4),
    (EnumType(("a", "b")), 1, 1), (EnumType(tuple(f"c{i}" for i in range(257))), 2, 2),
    (OptionType(U8Type()), 2, 1), (OptionType(U32Type()), 8, 4), (OptionType(U64Type()), 16, 8),
    (OptionType(StringType()), 12, 4),
    (ResultType(None, None), 1, 1), (ResultType(U8Type(), U64Type()), 16, 8),
    (ResultType(StringType(), U8Type()), 12, 4),
    (VariantType((CaseType("a", U16Type()), CaseType("b", None))), 4, 2),
    (FlagsType(("a",)), 1, 1), (FlagsType(tuple(f"f{i}" for i in range(9))), 2, 2),
    (FlagsType(tuple(f"f{i}" for i in range(17))), 4, 4),
    (FlagsType(tuple(f"f{i}" for i in range(32))), 4, 4),
    (OwnType(ResourceType()), 4, 4), (BorrowType(ResourceType()), 4, 4),
    (StreamType(U8Type()), 4, 4), (FutureType(None), 4, 4), (ErrorContextType(), 4, 4),
    (MapType(StringType(), U8Type()), 8, 4),
    (TupleType((OptionType(U8Type()), ListType(U8Type(), 3), U16Type())), 8, 2),
])
def test_size_and_alignment(t, size, align):
    assert elem_size(t) == size
    assert alignment(t) == align
    assert elem_size(t) % alignment(t) == 0


def test_discriminant_type():
    cases = lambda n: tuple(CaseType(f"c{i}", None) for i in range(n))
    assert discriminant_type(cases(1)) == U8Type()
    assert discriminant_type(cases(256)) == U8Type()
    assert discriminant_type(cases(257)) == U16Type()


@pytest.mark.parametrize("t,flat", [
    (BoolType(), ["i32"]), (S64Type(), ["i64"]), (F32Type(), ["f32"]),
    (StringType(), ["i32", "i32"]), (ListType(U8Type(), 3), ["i32"] * 3),
    (FlagsType(tuple(f"f{i}" for i in range(20))), ["i32"]),
    (OptionType(F32Type()), ["i32", "f32"]),
    (ResultType(U32Type(), F32Type()), ["i32", "i32"]),
    (ResultType(F32Type(), F64Type()), ["i32", "i64"]),
    (ResultType(U64Type(), F32Type()), ["i32", "i64"]),
    (VariantType((CaseType("a", TupleType((F32Type(), U8Type()))),
                  CaseType("b", TupleType((F64Type(), F32Type(), F32Type()))))),
     ["i32", "i64", "i32", "f32"]),
    (EnumType(("a", "b", "c")), ["i32"]),
])
def test_flatten(t, flat):
    assert flatten_type(t) == flat


def test_flatten_functype():
    small = FuncType((("a", U32Type()),), (U32Type(),))
    big_params = FuncType(tuple((f"p{i}", U32Type()) for i in range(17)), ())
    big_result = FuncType((), (StringType(),))
    sync = CanonicalOptions()
    assert flatten_functype(sync, small, "lift").params == ("i32",)
    assert flatten_functype(sync, big_params, "lift").params == ("i32",)
    assert flatten_functype(sync, big_result, "lift").results == ("i32",)
    lower = flatten_functype(sync, big_result, "lower")
    assert lower.params == ("i32",) and lower.results == ()
    async_ = CanonicalOptions(async_=True)
    five = FuncType(tuple((f"p{i}", U32Type()) for i in range(5)), (U32Type(),))
    assert flatten_functype(async_, five, "lower").params == ("i32", "i32")
    assert flatten_functype(async_, five, "lower").results == ("i32",)
    assert flatten_functype(async_, five, "lift").results == ()
    cb = CanonicalOptions(async_=True, callback=lambda *a: 0)
    assert flatten_functype(cb, five, "lift") .results == ("i32",)
    assert flatten_functype(cb, five, "lift").params == ("i32",) * 5


# ---------------------------------------------------------------------------
# Scalars

def test_nan_canonicalised_on_lift_and_lower():
    cx, mem, _ = make_cx()
    struct.pack_into("<I", mem.bytes, 0, 0xFFC00001)       # a non-canonical f32 NaN
    struct.pack_into("<Q", mem.bytes, 8, 0xFFF0000000000001)  # a non-canonical f64 NaN
    f = load(cx, 0, F32Type())
    d = load(cx, 8, F64Type())
    assert math.isnan(f) and struct.pack("<f", f) == struct.pack("<I", 0x7FC00000)
    assert struct.pack("<d", d) == struct.pack("<Q", 0x7FF8000000000000)
    weird = struct.unpack("<d", struct.pack("<Q", 0xFFF0000000000001))[0]
    store(cx, weird, F32Type(), 16)
    store(cx, weird, F64Type(), 24)
    assert struct.unpack_from("<I", mem.bytes, 16)[0] == 0x7FC00000
    assert struct.unpack_from("<Q", mem.bytes, 24)[0] == 0x7FF8000000000000
    store(cx, [weird, 1.0], ListType(F32Type()), 32)
    p = struct.unpack_from("<I", mem.bytes, 32)[0]
    assert struct.unpack_from("<I", mem.bytes, p)[0] == 0x7FC00000
    # flat: NaN bits in a variant's joined i32/i64 slot are canonicalised too
    t = ResultType(F32Type(), U32Type())
    v = lift_flat(cx, CoreValueIter([0, 0xFFC00001]), t)
    assert struct.pack("<f", v["ok"]) == struct.pack("<I", 0x7FC00000)
    assert lower_flat(cx, {"ok": weird}, t) == [0, 0x7FC00000]
    assert lower_flat(cx, {"ok": weird}, ResultType(F64Type(), U32Type())) == [0, 0x7FF8000000000000]


def test_ints_wrap_and_accept_signed_core_values():
    cx, _, _ = make_cx()
    assert lift_flat(cx, CoreValueIter([0x1FF]), U8Type()) == 0xFF
    assert lift_flat(cx, CoreValueIter([0xFF]), S8Type()) == -1
    assert lift_flat(cx, CoreValueIter([-1]), U32Type()) == 0xFFFFFFFF  # wasmtime-py's signed i32
    assert lift_flat(cx, CoreValueIter([-1]), S64Type()) == -1
    assert lift_flat(cx, CoreValueIter([2]), BoolType()) is True
    assert lower_flat(cx, -1, S32Type()) == [0xFFFFFFFF]
    assert lower_flat(cx, -2, S64Type()) == [(1 << 64) - 2]
    # flags ignore bits beyond their labels
    assert lift_flat(cx, CoreValueIter([0b110]), FlagsType(("a", "b"))) == {"a": False, "b": True}


@pytest.mark.parametrize("code", [0xD800, 0xDFFF, 0x110000, 0xFFFFFFFF])
def test_invalid_char_traps(code):
    cx, mem, _ = make_cx()
    with pytest.raises(Trap, match="invalid `char` bit pattern"):
        lift_flat(cx, CoreValueIter([code]), CharType())
    struct.pack_into("<I", mem.bytes, 0, code)
    with pytest.raises(Trap, match="invalid `char` bit pattern"):
        load(cx, 0, CharType())
    struct.pack_into("<III", mem.bytes, 100, 0x41, code, 8)
    with pytest.raises(Trap, match="invalid `char` bit pattern"):
        load_list_from_range(cx, 100, 2, CharType())


def test_invalid_discriminant_traps():
    cx, mem, _ = make_cx()
    t = VariantType((CaseType("x", U32Type()),))
    with pytest.raises(Trap, match="invalid variant discriminant"):
        lift_flat(cx, CoreValueIter([1, 0]), t)
    with pytest.raises(Trap, match="invalid variant discriminant"):
        lift_flat(cx, CoreValueIter([2]), EnumType(("a", "b")))
    mem.bytes[0] = 3
    with pytest.raises(Trap, match="invalid variant discriminant"):
        load(cx, 0, OptionType(U8Type()))


# ---------------------------------------------------------------------------
# Strings: lifting traps, realloc sequences

def _lift_string_trap(encoding, ptr, tcu, host=True):
    cx, mem, _ = make_cx(encoding, host=host)
    with pytest.raises(Trap) as e:
        load_string_from_range(cx, ptr, tcu)
    return e.value.message


def test_string_lift_traps_host_wording():
    assert _lift_string_trap("utf8", 0xDEADBEEF, 0) == "string pointer/length out of bounds of memory"
    assert _lift_string_trap("utf8", 65535, 2) == "string pointer/length out of bounds of memory"
    assert _lift_string_trap("utf16", 1, 0) == "string pointer not aligned to 2"
    assert _lift_string_trap("utf8", 0, 1 << 28) == "string pointer/length out of bounds of memory"


def test_string_lift_traps_adapter_wording():
    assert _lift_string_trap("utf8", 0x80000000, 1, host=False) == "string content out-of-bounds"
    assert _lift_string_trap("utf8", 65535, 2, host=False) == "string content out-of-bounds"
    assert _lift_string_trap("utf16", 1, 0, host=False) == "unaligned pointer"
    assert _lift_string_trap("latin1+utf16", 1, 0, host=False) == "unaligned pointer"
    assert _lift_string_trap("latin1+utf16", 1, TAG, host=False) == "unaligned pointer"
    # the length check comes before the alignment check
    assert _lift_string_trap("utf16", 1, 1 << 28, host=False) == "string content out-of-bounds"


@pytest.mark.parametrize("data,message", [
    (b"\xff", "invalid utf-8"), (b"\xc3", "incomplete utf-8 byte sequence"),
    (b"a\xed\xa0\x80", "invalid utf-8"),  # an encoded surrogate
])
def test_invalid_utf8_traps(data, message):
    cx, mem, _ = make_cx("utf8")
    mem.bytes[8:8 + len(data)] = data
    with pytest.raises(Trap) as e:
        load_string_from_range(cx, 8, len(data))
    assert message in e.value.message


def test_invalid_utf16_traps():
    cx, mem, _ = make_cx("utf16")
    struct.pack_into("<H", mem.bytes, 8, 0xD800)
    with pytest.raises(Trap, match="invalid utf-16"):
        load_string_from_range(cx, 8, 1)


def test_string_lift_edges():
    cx, mem, _ = make_cx("utf8")
    mem.bytes[65534:65536] = b"ok"
    assert load_string_from_range(cx, 65534, 2) == "ok"
    assert load_string_from_range(cx, 100, 0) == ""
    cx, mem, _ = make_cx("latin1+utf16")
    mem.bytes[8:10] = b"\xe9\xff"
    s = load_string_from_range(cx, 8, 2)
    assert s == "\xe9\xff" and s.encoding == "latin1+utf16" and s.tagged_code_units == 2
    mem.bytes[16:20] = "☃a".encode("utf-16-le")
    assert load_string_from_range(cx, 16, 2 | TAG) == "☃a"


def _store_calls(dst_enc, value):
    cx, mem, bump = make_cx(dst_enc, start=16)
    ptr, tcu = store_string_into_range(cx, value)
    back = load_string_from_range(cx, ptr, tcu)
    assert str(back) == str(value)
    return bump.calls, tcu


@pytest.mark.parametrize("src,dst,value,calls,tcu", [
    # same encoding: a single exact-size allocation
    ("utf8", "utf8", "héllo", [(0, 0, 1, 6)], 6),
    ("utf16", "utf16", "h☃", [(0, 0, 2, 4)], 2),
    ("latin1+utf16", "latin1+utf16", "hé", [(0, 0, 2, 2)], 2),
    # utf8 -> utf16: worst case 2*bytes, then shrink
    ("utf8", "utf16", "héllo", [(0, 0, 2, 12), (16, 12, 2, 10)], 5),
    ("utf8", "utf16", "", [(0, 0, 2, 0)], 0),
    ("utf8", "utf16", "ab", [(0, 0, 2, 4)], 2),
    # utf16 -> utf8: optimistic code-unit size, then worst case 3x, then shrink
    ("utf16", "utf8", "abc", [(0, 0, 1, 3)], 3),
    ("utf16", "utf8", "a☃", [(0, 0, 1, 2), (16, 2, 1, 6), (18, 6, 1, 4)], 4),
    ("utf16", "utf8", "☃☃", [(0, 0, 1, 2), (16, 2, 1, 6)], 6),
    # latin1 -> utf8: worst case 2x
    ("latin1+utf16", "utf8", "aé", [(0, 0, 1, 2), (16, 2, 1, 4), (18, 4, 1, 3)], 3),
    ("latin1+utf16", "utf8", "éé", [(0, 0, 1, 2), (16, 2, 1, 4)], 4),
    # latin1 -> utf16: plain copy at 2 bytes a unit
    ("latin1+utf16", "utf16", "aé", [(0, 0, 2, 4)], 2),
    # utf8 -> latin1+utf16: fits latin1, shrink from utf8 byte length
    ("utf8", "latin1+utf16", "aé", [(0, 0, 2, 3), (16, 3, 2, 2)], 2),
    ("utf8", "latin1+utf16", "ab", [(0, 0, 2, 2)], 2),
    # utf8 -> latin1+utf16: needs utf16: inflate to 2*bytes, then shrink
    ("utf8", "latin1+utf16", "a☃", [(0, 0, 2, 4), (16, 4, 2, 8), (20, 8, 2, 4)], 2 | TAG),
    # utf16 -> latin1+utf16
    ("utf16", "latin1+utf16", "ab", [(0, 0, 2, 2)], 2),
    ("utf16", "latin1+utf16", "a☃", [(0, 0, 2, 2), (16, 2, 2, 4)], 2 | TAG),
    ("utf16", "latin1+utf16", "é☃x", [(0, 0, 2, 3), (16, 3, 2, 6)], 3 | TAG),
    # latin1+utf16 (utf16 form) -> latin1+utf16: copy, then maybe compact
    ("latin1+utf16", "latin1+utf16", "☃", [(0, 0, 2, 2)], 1 | TAG),
])
def test_string_realloc_sequences(src, dst, value, calls, tcu):
    src_cx, _, _ = make_cx(src)
    lifted = load_string_from_range(src_cx, *store_string_into_range(src_cx, value))
    assert (_store_calls(dst, lifted)) == (calls, tcu)


def test_probably_utf16_compacts_to_latin1():
    # a latin1+utf16 string held in its utf16 form whose characters all fit latin1
    v = String("aé", "latin1+utf16", 2 | TAG)
    calls, tcu = _store_calls("latin1+utf16", v)
    assert calls == [(0, 0, 2, 4), (16, 4, 1, 2)] and tcu == 2


def test_plain_str_is_utf8():
    calls, tcu = _store_calls("utf16", "héllo")
    assert calls == [(0, 0, 2, 12), (16, 12, 2, 10)]
    assert String("héllo").tagged_code_units == 6 and String("x").encoding == "utf8"


def test_realloc_result_checks():
    def bad(ptr):
        return lambda *a: ptr
    cases = [
        (-4, ListType(U32Type()), [1, 2], True, "realloc return: beyond end of memory"),
        (-4, ListType(U32Type()), [], True, "realloc return: beyond end of memory"),
        (-1, ListType(U32Type()), [1, 2], True, "realloc return: result not aligned"),
        (-1, ListType(U8Type()), [], False, "list content out-of-bounds"),
        (2, ListType(U32Type()), [1], False, "unaligned pointer"),
        (65535, StringType(), "ab", False, "string content out-of-bounds"),
        (1, StringType(), "ab", False, None),
        (65535, StringType(), "ab", True, "realloc return: beyond end of memory"),
    ]
    for ptr, t, v, host, message in cases:
        cx, _, _ = make_cx("utf8", host=host, realloc=bad(ptr))
        if message is None:
            lower_flat(cx, v, t)
            continue
        with pytest.raises(Trap) as e:
            lower_flat(cx, v, t)
        assert e.value.message == message, (ptr, t, v, host)
    # params spilled through realloc: misaligned result
    ts = [U32Type()] * 17
    cx, _, _ = make_cx(realloc=bad(1))
    with pytest.raises(Trap, match="^unaligned pointer$"):
        lower_flat_values(cx, 16, [0] * 17, ts)


def test_empty_list_still_calls_realloc():
    cx, _, bump = make_cx()
    assert lower_flat(cx, [], ListType(U8Type())) == [8, 0]
    assert bump.calls == [(0, 0, 1, 0)]


def test_may_leave_cleared_during_realloc():
    cx, mem, bump = make_cx()
    lower_flat(cx, "x", StringType())
    assert bump.calls and cx.inst.may_leave is True


def test_list_lift_traps():
    for host, align_msg, bounds_msg in [
            (False, "unaligned pointer", "list content out-of-bounds"),
            (True, "list pointer is not aligned", "list pointer/length out of bounds of memory")]:
        cx, _, _ = make_cx(host=host)
        with pytest.raises(Trap) as e:
            lift_flat(cx, CoreValueIter([2, 1]), ListType(U32Type()))
        assert e.value.message == align_msg
        with pytest.raises(Trap) as e:
            lift_flat(cx, CoreValueIter([65532, 2]), ListType(U32Type()))
        assert e.value.message == bounds_msg
        with pytest.raises(Trap) as e:  # too long is checked before alignment
            lift_flat(cx, CoreValueIter([2, 1 << 27]), ListType(U32Type()))
        assert e.value.message == bounds_msg
        assert lift_flat(cx, CoreValueIter([65532, 1]), ListType(U32Type())) == [0]


def test_retptr_checks():
    ts = [TupleType((U32Type(), U32Type()))]
    cx, _, _ = make_cx()
    with pytest.raises(Trap, match="^unaligned pointer$"):
        lift_flat_values(cx, 1, CoreValueIter([1]), ts)
    with pytest.raises(Trap, match="^unaligned pointer$"):
        lower_flat_values(cx, 1, [{"0": 1, "1": 2}], ts, CoreValueIter([1]))
    with pytest.raises(Trap):
        lift_flat_values(cx, 1, CoreValueIter([65532]), ts)
    cx, _, _ = make_cx(host=True)
    with pytest.raises(Trap, match="return pointer not aligned"):
        lift_flat_values(cx, 1, CoreValueIter([2]), ts)
    with pytest.raises(Trap, match="pointer out of bounds of memory"):
        lift_flat_values(cx, 1, CoreValueIter([65532]), ts)


# ---------------------------------------------------------------------------
# Bulk fast paths agree with element-wise layout

def test_bulk_lists_layout():
    cx, mem, bump = make_cx()
    vals = {U8Type(): [0, 255, 7], S8Type(): [-128, 127], U16Type(): [1, 65535],
            S32Type(): [-1, 5], U64Type(): [1 << 63], F64Type(): [1.5, -0.0],
            F32Type(): [0.25], BoolType(): [True, False], CharType(): ["a", "☃"]}
    for t, v in vals.items():
        ptr, n = lower_flat(cx, v, ListType(t))
        for i, e in enumerate(v):
            assert value_eq(load(cx, ptr + i * elem_size(t), t), e)
        assert value_eq(lift_flat(cx, CoreValueIter([ptr, n]), ListType(t)), v)
    rec = RecordType((FieldType("a", U8Type()), FieldType("b", U32Type()), FieldType("c", BoolType())))
    v = [{"a": 1, "b": 2, "c": True}, {"a": 3, "b": 4, "c": False}]
    ptr, n = lower_flat(cx, v, ListType(rec))
    assert elem_size(rec) == 12
    assert bytes(mem.bytes[ptr:ptr + 24]) == (b"\x01\0\0\0\x02\0\0\0\x01\0\0\0"
                                             b"\x03\0\0\0\x04\0\0\0\x00\0\0\0")
    assert lift_flat(cx, CoreValueIter([ptr, n]), ListType(rec)) == v
    # bytes-like values are accepted for list<u8>
    ptr, n = lower_flat(cx, b"xyz", ListType(U8Type()))
    assert bytes(mem.bytes[ptr:ptr + 3]) == b"xyz"


def test_tuple_given_as_sequence_and_map():
    cx, _, _ = make_cx()
    t = TupleType((U8Type(), StringType()))
    assert lift_flat(cx, CoreValueIter(lower_flat(cx, (1, "a"), t)), t) == {"0": 1, "1": "a"}
    m = MapType(StringType(), U32Type())
    out = lift_flat(cx, CoreValueIter(lower_flat(cx, [("k", 1)], m)), m)
    assert out == [{"0": "k", "1": 1}]


# ---------------------------------------------------------------------------
# Handles

def test_table():
    t = Table()
    with pytest.raises(Trap, match="^unknown handle index 0$"):
        t.get(0)
    a, b, c = t.add("a"), t.add("b"), t.add("c")
    assert (a, b, c) == (1, 2, 3)
    assert t.remove(2) == "b"
    with pytest.raises(Trap, match="^unknown handle index 2$"):
        t.remove(2)
    with pytest.raises(Trap, match="^unknown handle index 5$"):
        t.get(5)
    with pytest.raises(Trap, match="^unknown handle index 4294967295$"):
        t.get(4294967295)
    assert t.add("d") == 2  # free list reuse
    assert list(t) == ["a", "d", "c"] and len(t) == 3


class Impl:
    pass


class Scope:
    def __init__(self):
        self.lenders = []
        self.num_borrows = 0

    def add_lender(self, h):
        h.num_lends += 1
        self.lenders.append(h)


def test_own_and_borrow():
    impl = Impl()
    r1, r2 = ResourceType(impl, name="R1"), ResourceType(impl, name="R2")
    cx, _, _ = make_cx()
    cx.borrow_scope = Scope()
    i = lower_flat(cx, 42, OwnType(r1))[0]
    assert i == 1 and cx.inst.handles.get(1).own
    # borrow lifted from the own handle lends it
    assert lift_flat(cx, CoreValueIter([i]), BorrowType(r1)) == 42
    assert cx.inst.handles.get(i).num_lends == 1
    with pytest.raises(Trap, match="^cannot remove owned resource while borrowed$"):
        lift_flat(cx, CoreValueIter([i]), OwnType(r1))

    cx, _, _ = make_cx()
    i = lower_flat(cx, 7, OwnType(r1))[0]
    msg = ("handle index 1 used with the wrong type, expected guest-defined resource "
           "but found a different guest-defined resource")
    with pytest.raises(Trap) as e:
        lift_flat(cx, CoreValueIter([i]), OwnType(r2))
    assert e.value.message == msg
    cx, _, _ = make_cx()
    lower_flat(cx, 7, OwnType(r1))
    assert lift_flat(cx, CoreValueIter([1]), OwnType(r1)) == 7
    with pytest.raises(Trap, match="^unknown handle index 1$"):
        lift_flat(cx, CoreValueIter([1]), OwnType(r1))
    with pytest.raises(Trap, match="^unknown handle index 3$"):
        lift_flat(cx, CoreValueIter([3]), BorrowType(r1))
    host_rt = ResourceType(None, name="H")
    lower_flat(cx, 1, OwnType(host_rt))
    with pytest.raises(Trap, match="expected guest-defined resource but found a different host-defined"):
        lift_flat(cx, CoreValueIter([1]), OwnType(r1))


def test_lower_borrow():
    impl = Impl()
    r = ResourceType(impl)
    cx, _, _ = make_cx()
    scope = Scope()
    cx.borrow_scope = scope
    i = lower_flat(cx, 9, BorrowType(r))[0]
    h = cx.inst.handles.get(i)
    assert not h.own and h.rep == 9 and h.borrow_scope is scope and scope.num_borrows == 1
    # lifting an own from a borrow handle traps
    with pytest.raises(Trap, match="is a borrow, not an owned resource"):
        lift_flat(cx, CoreValueIter([i]), OwnType(r))
    # lowering a borrow into the resource's own implementation passes the rep
    cx2 = LiftLowerContext(CanonicalOptions(), impl, scope)
    impl.handles, impl.may_leave = Table(), True
    assert lower_flat(cx2, 9, BorrowType(r)) == [9]
    assert scope.num_borrows == 1


def test_handles_in_memory():
    impl = Impl()
    r = ResourceType(impl)
    cx, mem, _ = make_cx()
    t = ListType(OwnType(r))
    flat = lower_flat(cx, [5, 6], t)
    assert lift_flat(cx, CoreValueIter(flat), t) == [5, 6]
    assert len(cx.inst.handles) == 0


def test_error_context():
    cx, _, _ = make_cx()
    e = ErrorContext(String("boom"))
    i = lower_flat(cx, e, ErrorContextType())[0]
    assert lift_flat(cx, CoreValueIter([i]), ErrorContextType()) is e
    assert cx.inst.handles.get(i) is e  # lifting does not remove
    cx.inst.handles.add(ResourceHandle(ResourceType(), 1, True))
    with pytest.raises(Trap, match="is not an error-context"):
        lift_flat(cx, CoreValueIter([2]), ErrorContextType())


# stream/future stand-ins for callscope.runtime.waitables

class _CopyState:
    IDLE, COPYING, CANCELLING_COPY, DONE = "idle", "copying", "cancelling", "done"


class _Shared:
    def __init__(self, t):
        self.t = t


class _End:
    def __init__(self, shared):
        self.shared = shared
        self.state = _CopyState.IDLE
        self.wset = None

    def in_waitable_set(self):
        return self.wset is not None


class _ReadableStreamEnd(_End):
    pass


class _ReadableFutureEnd(_End):
    pass


@pytest.fixture
def fake_waitables(monkeypatch):
    import types as pytypes
    mod = pytypes.ModuleType("callscope.runtime.waitables")
    mod.ReadableStreamEnd = _ReadableStreamEnd
    mod.ReadableFutureEnd = _ReadableFutureEnd
    mod.CopyState = _CopyState
    import callscope.runtime as rt_pkg
    monkeypatch.setitem(sys.modules, "callscope.runtime.waitables", mod)
    monkeypatch.setattr(rt_pkg, "waitables", mod, raising=False)
    return mod


def test_streams_and_futures(fake_waitables):
    cx, _, _ = make_cx()
    st_t, fu_t = StreamType(U8Type()), FutureType(None)
    s, f = _Shared(U8Type()), _Shared(None)
    i = lower_flat(cx, s, st_t)[0]
    j = lower_flat(cx, f, fu_t)[0]
    assert isinstance(cx.inst.handles.get(i), _ReadableStreamEnd)
    assert lift_flat(cx, CoreValueIter([i]), st_t) is s
    assert lift_flat(cx, CoreValueIter([j]), fu_t) is f
    with pytest.raises(Trap, match="^unknown handle index 1$"):
        lift_flat(cx, CoreValueIter([i]), st_t)

    def lifted_trap(end, t):
        k = cx.inst.handles.add(end)
        with pytest.raises(Trap) as e:
            lift_flat(cx, CoreValueIter([k]), t)
        return e.value.message

    e = _ReadableStreamEnd(s)
    e.wset = object()
    assert lifted_trap(e, st_t) == "cannot lift stream while it's in a waitable set"
    e = _ReadableFutureEnd(f)
    e.wset = object()
    assert lifted_trap(e, fu_t) == "cannot lift future while it's in a waitable set"
    e = _ReadableStreamEnd(s)
    e.state = _CopyState.DONE
    assert lifted_trap(e, st_t) == "cannot lift stream after being notified that the writable end dropped"
    e = _ReadableFutureEnd(f)
    e.state = _CopyState.DONE
    assert lifted_trap(e, fu_t) == "cannot lift future after previous read succeeded"
    e = _ReadableStreamEnd(s)
    e.state = _CopyState.COPYING
    assert lifted_trap(e, st_t) == "cannot remove busy stream"
    assert "wrong type" in lifted_trap(_ReadableStreamEnd(_Shared(U32Type())), st_t)
    assert "is not a readable stream end" in lifted_trap(_ReadableFutureEnd(s), st_t)
    # in memory, too
    t = ListType(StreamType(U8Type()))
    flat = lower_flat(cx, [s, s], t)
    assert lift_flat(cx, CoreValueIter(flat), t) == [s, s]


# ---------------------------------------------------------------------------
# Memories

def test_bytes_memory_grow_during_realloc():
    mem = BytesMemory(64)
    inst = Inst()

    def realloc(old, old_size, align, new_size):
        base = mem.grow(65536)
        return align_to(base, align)

    cx = LiftLowerContext(CanonicalOptions(memory=mem, realloc=realloc), inst)
    t = ListType(StringType())
    flat = lower_flat(cx, ["abc", "héllo"], t)
    assert lift_flat(cx, CoreValueIter(flat), t) == ["abc", "héllo"]


def test_wasmtime_memory():
    from callscope.runtime.fiber import memory_changed
    wasmtime = pytest.importorskip("wasmtime")
    store_ = wasmtime.Store()
    memory = wasmtime.Memory(store_, wasmtime.MemoryType(wasmtime.Limits(1, None)))
    mem = WasmtimeMemory(memory, store_)
    assert len(mem) == 65536

    def realloc(old, old_size, align, new_size):  # grows (and may move) the memory
        pages = memory.size(store_)
        memory.grow(store_, 1)
        memory_changed()  # grown by the host, not by wasm: views must be retaken
        ptr = align_to(pages * 65536, align)
        if old:
            mem.write(ptr, mem.read(old, min(old_size, new_size)))
        return ptr

    cx = LiftLowerContext(CanonicalOptions(string_encoding="utf16", memory=mem, realloc=realloc), Inst())
    t = TupleType((ListType(U32Type()), StringType(), ListType(StringType())))
    v = {"0": [1, 2, 3], "1": "h☃", "2": ["x", "yz"]}
    flat = lower_flat(cx, v, t)
    assert len(mem) > 65536 * 3
    assert value_eq(lift_flat(cx, CoreValueIter(flat), t), v)
    store(cx, v, t, 16)
    assert value_eq(load(cx, 16, t), v)
    mem.write(0, b"\x01\x02")
    assert mem.read(0, 2) == b"\x01\x02" and mem[1] == 2


_FLAT_SCALARS = [U8Type(), S8Type(), U16Type(), S16Type(), U32Type(), S32Type(), U64Type(), S64Type(), BoolType()]


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(_FLAT_SCALARS), st.integers(-(1 << 65), 1 << 65) | st.booleans()),
                min_size=1, max_size=6), st.integers(0, 3))
def test_spilled_flat_tuple_fast_path_is_the_generic_path(tvs, max_flat):
    """A spilled tuple of integers and bools is lowered and lifted straight
    from and to its list (ValuesPlan.fpack/funpack): the same bytes, values
    and errors as the tuple's dict through its record storer and loader."""
    ts = tuple(t for t, _ in tvs)
    vs = [v for _, v in tvs]
    plan = abi.values_plan(ts, "i32", max_flat)
    if not plan.spills:
        return
    assert plan.fpack is not None
    ptr = align_to(64, plan.align)
    cx, mem, _ = make_cx("utf8")
    cx.refresh()
    try:
        flat = abi.lower_values(cx, plan, vs, CoreValueIter([ptr]))
        fast = ("ok", bytes(mem[ptr:ptr + plan.size]))
        assert flat == []
    except Exception as e:
        fast = (type(e), str(e))
    cx2, mem2, _ = make_cx("utf8")
    cx2.refresh()
    try:
        plan.store(cx2, {str(i): v for i, v in enumerate(vs)}, ptr)
        slow = ("ok", bytes(mem2[ptr:ptr + plan.size]))
    except Exception as e:
        slow = (type(e), str(e))
    assert fast == slow
    if fast[0] == "ok":
        got = abi.lift_values(cx, plan, CoreValueIter([ptr]))
        assert got == list(plan.load(cx2, ptr).values())
        assert [type(x) for x in got] == [type(x) for x in plan.load(cx2, ptr).values()]

"""The component model's types, named as the spec names them
(design/mvp/CanonicalABI.md, "Boilerplate").

Value types are frozen dataclasses holding tuples, so they are hashable and
per-type facts (size, alignment, flattening, specialised lifters) can be
cached by type. Resource types compare by identity: each ``ResourceType`` is
one definition, created when a component instance (or the host) defines it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union


class Type:
    pass


class ValType(Type):
    pass


class ExternType(Type):
    pass


@dataclass(frozen=True)
class PrimValType(ValType):
    pass


@dataclass(frozen=True)
class BoolType(PrimValType):
    pass


@dataclass(frozen=True)
class S8Type(PrimValType):
    pass


@dataclass(frozen=True)
class U8Type(PrimValType):
    pass


@dataclass(frozen=True)
class S16Type(PrimValType):
    pass


@dataclass(frozen=True)
class U16Type(PrimValType):
    pass


@dataclass(frozen=True)
class S32Type(PrimValType):
    pass


@dataclass(frozen=True)
class U32Type(PrimValType):
    pass


@dataclass(frozen=True)
class S64Type(PrimValType):
    pass


@dataclass(frozen=True)
class U64Type(PrimValType):
    pass


@dataclass(frozen=True)
class F32Type(PrimValType):
    pass


@dataclass(frozen=True)
class F64Type(PrimValType):
    pass


@dataclass(frozen=True)
class CharType(PrimValType):
    pass


@dataclass(frozen=True)
class StringType(PrimValType):
    pass


@dataclass(frozen=True)
class ErrorContextType(ValType):
    pass


@dataclass(frozen=True)
class ListType(ValType):
    t: ValType
    l: Optional[int] = None  # fixed length, if any


@dataclass(frozen=True)
class FieldType:
    label: str
    t: ValType


@dataclass(frozen=True)
class RecordType(ValType):
    fields: tuple[FieldType, ...]


@dataclass(frozen=True)
class TupleType(ValType):
    ts: tuple[ValType, ...]


@dataclass(frozen=True)
class CaseType:
    label: str
    t: Optional[ValType]


@dataclass(frozen=True)
class VariantType(ValType):
    cases: tuple[CaseType, ...]


@dataclass(frozen=True)
class EnumType(ValType):
    labels: tuple[str, ...]


@dataclass(frozen=True)
class OptionType(ValType):
    t: ValType


@dataclass(frozen=True)
class ResultType(ValType):
    ok: Optional[ValType]
    error: Optional[ValType]


@dataclass(frozen=True)
class FlagsType(ValType):
    labels: tuple[str, ...]


@dataclass(frozen=True)
class MapType(ValType):
    k: ValType
    v: ValType


class ResourceType(Type):
    """One resource type definition. ``impl`` is the component instance that
    defined it (None for a host resource); ``dtor`` its destructor core
    function, if any. Compared by identity, as the spec does."""

    __slots__ = ("impl", "dtor", "name", "dtor_async", "dtor_callback", "dtor_func")

    def __init__(self, impl=None, dtor=None, name: str = ""):
        self.impl = impl
        self.dtor = dtor
        self.name = name
        self.dtor_async = False
        self.dtor_callback = None
        self.dtor_func = None

    def __repr__(self) -> str:
        return f"ResourceType({self.name or hex(id(self))})"


@dataclass(frozen=True, eq=False)
class OwnType(ValType):
    rt: ResourceType

    def __eq__(self, other):
        return isinstance(other, OwnType) and self.rt is other.rt

    def __hash__(self):
        return hash(("own", id(self.rt)))


@dataclass(frozen=True, eq=False)
class BorrowType(ValType):
    rt: ResourceType

    def __eq__(self, other):
        return isinstance(other, BorrowType) and self.rt is other.rt

    def __hash__(self):
        return hash(("borrow", id(self.rt)))


@dataclass(frozen=True)
class StreamType(ValType):
    t: Optional[ValType]


@dataclass(frozen=True)
class FutureType(ValType):
    t: Optional[ValType]


@dataclass(frozen=True)
class FuncType(ExternType):
    """``params`` are (name, type) pairs; ``result`` is a tuple of zero or one
    type (the spec's ``result`` list)."""

    params: tuple[tuple[str, ValType], ...]
    result: tuple[ValType, ...]
    async_: bool = False

    def param_types(self) -> tuple:
        """The parameter types (a tuple, computed once)."""
        d = self.__dict__
        pt = d.get("_param_types")
        if pt is None:
            pt = tuple(t for _, t in self.params)
            object.__setattr__(self, "_param_types", pt)
        return pt

    def result_type(self) -> tuple:
        return self.result


@dataclass(frozen=True)
class CoreFuncType:
    params: tuple[str, ...]
    results: tuple[str, ...]


# Canonical ABI constants
MAX_FLAT_PARAMS = 16
MAX_FLAT_ASYNC_PARAMS = 4
MAX_FLAT_RESULTS = 1

PRIMITIVES = {
    "bool": BoolType(), "s8": S8Type(), "u8": U8Type(), "s16": S16Type(), "u16": U16Type(),
    "s32": S32Type(), "u32": U32Type(), "s64": S64Type(), "u64": U64Type(),
    "f32": F32Type(), "f64": F64Type(), "char": CharType(), "string": StringType(),
    "error-context": ErrorContextType(),
}

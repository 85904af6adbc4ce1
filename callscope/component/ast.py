"""The decoded (unresolved) model of a component binary.

Produced by :func:`callscope.component.binary.decode`.  Classes are named after
the productions of the spec's Binary.md; nothing here is resolved: a component
``valtype`` is either a :class:`PrimValType` or a plain ``int`` type index into
the enclosing scope's type index space, and every other reference is the raw
index the binary holds.  A linker builds the index spaces by walking
``Component.definitions`` in order (see ``Definition.index_sort`` for which
index space each definition appends to).

Conventions
-----------
* ``ValType = PrimValType | int`` (``int`` is a ``typeidx``).
* ``CoreValType = str | CoreRefType`` where the ``str`` is one of
  ``'i32' 'i64' 'f32' 'f64' 'v128'`` (and, for struct/array storage only,
  ``'i8' 'i16'``).
* Field names ``*_idx`` hold indices; ``is_async``/``cancellable``/``shared``
  are the spec's optional-flag immediates.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar, Optional, Union


# ---------------------------------------------------------------------------
# sorts


class CoreSort(enum.Enum):
    """``core:sort``.  ``.value`` is the spec's name, ``.code`` the opcode."""

    FUNC = "func"
    TABLE = "table"
    MEMORY = "memory"
    GLOBAL = "global"
    TAG = "tag"
    TYPE = "type"
    MODULE = "module"
    INSTANCE = "instance"

    @property
    def code(self) -> int:
        return _CORE_SORT_CODE[self]

    def __repr__(self) -> str:
        return f"CoreSort.{self.name}"

    def __str__(self) -> str:
        return self.value


_CORE_SORT_CODE = {
    CoreSort.FUNC: 0x00, CoreSort.TABLE: 0x01, CoreSort.MEMORY: 0x02,
    CoreSort.GLOBAL: 0x03, CoreSort.TAG: 0x04, CoreSort.TYPE: 0x10,
    CoreSort.MODULE: 0x11, CoreSort.INSTANCE: 0x12,
}


class Sort(enum.Enum):
    """``sort`` (component level), flattened: ``core <coresort>`` becomes
    ``Sort.CORE_FUNC`` etc.  ``.value`` is the spec's text ("core func",
    "func", ...); ``.core_sort`` gives the ``CoreSort`` for the core ones."""

    CORE_FUNC = "core func"
    CORE_TABLE = "core table"
    CORE_MEMORY = "core memory"
    CORE_GLOBAL = "core global"
    CORE_TAG = "core tag"
    CORE_TYPE = "core type"
    CORE_MODULE = "core module"
    CORE_INSTANCE = "core instance"
    FUNC = "func"
    VALUE = "value"
    TYPE = "type"
    COMPONENT = "component"
    INSTANCE = "instance"

    @property
    def is_core(self) -> bool:
        return self.value.startswith("core ")

    @property
    def core_sort(self) -> Optional[CoreSort]:
        return CoreSort(self.value[5:]) if self.is_core else None

    @staticmethod
    def core(cs: CoreSort) -> "Sort":
        return Sort("core " + cs.value)

    def __repr__(self) -> str:
        return f"Sort.{self.name}"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class CoreSortIdx:
    """``core:sortidx``"""
    sort: CoreSort
    idx: int


@dataclass(frozen=True)
class SortIdx:
    """``sortidx``"""
    sort: Sort
    idx: int


# ---------------------------------------------------------------------------
# names


@dataclass(frozen=True)
class NameAttrs:
    """Attributes of a ``nameattributes`` (0x02 form).  ``kind`` is the
    leading byte of ``nameattributes`` (0x00, 0x01 or 0x02)."""
    kind: int = 0
    implements: Optional[str] = None       # (implements "in")
    version_suffix: Optional[str] = None   # (versionsuffix "vs")
    external_id: Optional[str] = None      # (external-id n)


# ---------------------------------------------------------------------------
# core types


@dataclass(frozen=True)
class CoreRefType:
    """A core reference type.  ``heap`` is an abstract heap type name
    ('func', 'extern', 'any', 'eq', 'i31', 'struct', 'array', 'exn', 'none',
    'nofunc', 'noextern', 'noexn', 'cont', 'nocont') or a core type index."""
    nullable: bool
    heap: Union[str, int]
    shared: bool = False

    def __repr__(self) -> str:
        h = f"shared {self.heap}" if self.shared else str(self.heap)
        return f"(ref {'null ' if self.nullable else ''}{h})"


CoreValType = Union[str, CoreRefType]


@dataclass(frozen=True)
class CoreFuncType:
    """``core:functype`` (0x60)"""
    params: tuple
    results: tuple


@dataclass(frozen=True)
class CoreFieldType:
    storage: CoreValType     # a CoreValType or 'i8' / 'i16'
    mutable: bool


@dataclass(frozen=True)
class CoreStructType:
    """0x5f"""
    fields: tuple            # of CoreFieldType


@dataclass(frozen=True)
class CoreArrayType:
    """0x5e"""
    field: CoreFieldType


@dataclass(frozen=True)
class CoreContType:
    """0x5d (stack switching)"""
    type_idx: int


CoreCompType = Union[CoreFuncType, CoreStructType, CoreArrayType, CoreContType]


@dataclass(frozen=True)
class CoreSubType:
    """``sub final? x* comptype`` (only produced when the binary spells out a
    ``sub``; a bare comptype is decoded as the comptype itself)."""
    final: bool
    supertypes: tuple
    comptype: CoreCompType


@dataclass(frozen=True)
class CoreRecType:
    """``rec`` group (0x4e): defines ``len(subtypes)`` core type indices."""
    subtypes: tuple          # of CoreSubType or CoreCompType


@dataclass(frozen=True)
class Limits:
    min: int
    max: Optional[int] = None


@dataclass(frozen=True)
class CoreTableType:
    elem: CoreRefType
    limits: Limits
    table64: bool = False
    shared: bool = False


@dataclass(frozen=True)
class CoreMemoryType:
    limits: Limits
    shared: bool = False
    memory64: bool = False
    page_size_log2: Optional[int] = None


@dataclass(frozen=True)
class CoreGlobalType:
    valtype: CoreValType
    mutable: bool
    shared: bool = False


@dataclass(frozen=True)
class CoreTagType:
    type_idx: int


@dataclass(frozen=True)
class CoreFuncExtern:
    """``core:externtype`` func: a function of core type ``type_idx``."""
    type_idx: int


CoreExternType = Union[CoreFuncExtern, CoreTableType, CoreMemoryType,
                       CoreGlobalType, CoreTagType]


# core:moduledecl -------------------------------------------------------------


@dataclass(frozen=True)
class CoreImportDecl:
    module: str
    name: str
    type: CoreExternType


@dataclass(frozen=True)
class CoreTypeDecl:
    """``0x01 core:type`` inside a module type (defines core type indices:
    one, or ``len(subtypes)`` for a ``CoreRecType``)."""
    type: object             # CoreRecType | CoreSubType | CoreCompType


@dataclass(frozen=True)
class CoreOuterAliasDecl:
    """``(alias outer ct idx (type))`` inside a module type."""
    count: int
    idx: int
    sort: CoreSort = CoreSort.TYPE


@dataclass(frozen=True)
class CoreExportDecl:
    name: str
    type: CoreExternType


@dataclass(frozen=True)
class CoreModuleType:
    """``core:moduletype`` (0x50)"""
    decls: tuple


# ---------------------------------------------------------------------------
# component value types


class PrimValType(enum.Enum):
    """``primvaltype``; ``.value`` is the spec name."""
    BOOL = "bool"
    S8 = "s8"
    U8 = "u8"
    S16 = "s16"
    U16 = "u16"
    S32 = "s32"
    U32 = "u32"
    S64 = "s64"
    U64 = "u64"
    F32 = "f32"
    F64 = "f64"
    CHAR = "char"
    STRING = "string"
    ERROR_CONTEXT = "error-context"

    def __repr__(self) -> str:
        return self.value

    def __str__(self) -> str:
        return self.value


ValType = Union[PrimValType, int]


@dataclass(frozen=True)
class LabelValType:
    label: str
    type: ValType


@dataclass(frozen=True)
class RecordType:
    fields: tuple            # of LabelValType


@dataclass(frozen=True)
class Case:
    label: str
    type: Optional[ValType]


@dataclass(frozen=True)
class VariantType:
    cases: tuple             # of Case


@dataclass(frozen=True)
class ListType:
    elem: ValType
    length: Optional[int] = None   # fixed-length list (0x67) when set


@dataclass(frozen=True)
class TupleType:
    types: tuple


@dataclass(frozen=True)
class FlagsType:
    labels: tuple


@dataclass(frozen=True)
class EnumType:
    labels: tuple


@dataclass(frozen=True)
class OptionType:
    type: ValType


@dataclass(frozen=True)
class ResultType:
    ok: Optional[ValType]
    err: Optional[ValType]


@dataclass(frozen=True)
class OwnType:
    type_idx: int


@dataclass(frozen=True)
class BorrowType:
    type_idx: int


@dataclass(frozen=True)
class StreamType:
    elem: Optional[ValType]


@dataclass(frozen=True)
class FutureType:
    elem: Optional[ValType]


@dataclass(frozen=True)
class MapType:
    key: ValType
    value: ValType


DefValType = Union[PrimValType, RecordType, VariantType, ListType, TupleType,
                   FlagsType, EnumType, OptionType, ResultType, OwnType,
                   BorrowType, StreamType, FutureType, MapType]


@dataclass(frozen=True)
class FuncType:
    """``functype``: 0x40, or 0x43 (``is_async``)."""
    params: tuple            # of LabelValType
    result: Optional[ValType]
    is_async: bool = False


@dataclass(frozen=True)
class ResourceType:
    """``resourcetype`` 0x3f: ``rep`` is a core valtype (always 'i32' today),
    ``dtor`` a core func index or None."""
    rep: CoreValType
    dtor: Optional[int] = None


@dataclass(frozen=True)
class ComponentType:
    """``componenttype`` 0x41.  ``decls`` holds, in order: ``ImportDef``
    (importdecl), ``CoreTypeDef``, ``TypeDef``, ``AliasDef`` and
    ``ExportDecl``."""
    decls: tuple


@dataclass(frozen=True)
class InstanceType:
    """``instancetype`` 0x42.  ``decls`` as ``ComponentType`` minus imports."""
    decls: tuple


DefType = Union[DefValType, FuncType, ComponentType, InstanceType, ResourceType]


# externtype ------------------------------------------------------------------


class ExternType:
    """Base of the ``externtype`` cases; ``sort`` is the sort it describes."""
    sort: ClassVar[Sort]


@dataclass(frozen=True)
class CoreModuleExtern(ExternType):
    """``(core module (type i))``: i is a core type index."""
    core_type_idx: int
    sort: ClassVar[Sort] = Sort.CORE_MODULE


@dataclass(frozen=True)
class FuncExtern(ExternType):
    type_idx: int
    sort: ClassVar[Sort] = Sort.FUNC


@dataclass(frozen=True)
class ValueExtern(ExternType):
    """``(value b)``: exactly one of ``eq_value_idx`` / ``type`` is set."""
    eq_value_idx: Optional[int] = None
    type: Optional[ValType] = None
    sort: ClassVar[Sort] = Sort.VALUE


@dataclass(frozen=True)
class TypeExtern(ExternType):
    """``(type b)``: ``(eq i)`` when ``eq_idx`` is set, else ``(sub resource)``."""
    eq_idx: Optional[int] = None
    sort: ClassVar[Sort] = Sort.TYPE

    @property
    def is_sub_resource(self) -> bool:
        return self.eq_idx is None


@dataclass(frozen=True)
class ComponentExtern(ExternType):
    type_idx: int
    sort: ClassVar[Sort] = Sort.COMPONENT


@dataclass(frozen=True)
class InstanceExtern(ExternType):
    type_idx: int
    sort: ClassVar[Sort] = Sort.INSTANCE


# ---------------------------------------------------------------------------
# definitions


class Definition:
    """Base of everything in ``Component.definitions``.

    ``index_sort`` is the index space this definition appends ONE index to
    (``None`` when it appends nothing or a variable number: ``CoreTypeDef``
    of a ``CoreRecType`` adds ``len(subtypes)``, ``StartDef`` adds
    ``results`` values)."""

    @property
    def index_sort(self) -> Optional[Sort]:
        return None


@dataclass
class CustomSection:
    """``section_0``: not a definition; kept in ``Component.custom_sections``."""
    name: str
    data: bytes
    offset: int = 0

    def __repr__(self) -> str:
        return f"CustomSection({self.name!r}, <{len(self.data)} bytes>)"


@dataclass(eq=False)
class CoreModuleDef(Definition):
    """``section_1``: ``data`` is exactly the embedded module's bytes
    (``\\0asm`` .. end), ready for ``wasmtime.Module(engine, data)``;
    ``offset`` is its absolute offset in the decoded input."""
    data: bytes
    offset: int = 0

    @property
    def index_sort(self) -> Sort:
        return Sort.CORE_MODULE

    def __repr__(self) -> str:
        return f"CoreModuleDef(<{len(self.data)} bytes @0x{self.offset:x}>)"


# core instances ----------------------------------------------------------------


class CoreInstanceDef(Definition):
    """Base of ``core:instance`` (``CoreInstantiate`` / ``CoreInlineExports``)."""

    @property
    def index_sort(self) -> Sort:
        return Sort.CORE_INSTANCE


@dataclass(frozen=True)
class CoreInstantiateArg:
    """``(with name (instance i))``: ``instance_idx`` is a core instance index."""
    name: str
    instance_idx: int


@dataclass(frozen=True)
class CoreInstantiate(CoreInstanceDef):
    """``0x00 m arg*``"""
    module_idx: int
    args: tuple


@dataclass(frozen=True)
class CoreInlineExport:
    name: str
    sortidx: CoreSortIdx


@dataclass(frozen=True)
class CoreInlineExports(CoreInstanceDef):
    """``0x01 e*``"""
    exports: tuple


@dataclass(frozen=True)
class CoreTypeDef(Definition):
    """``core:type``: ``type`` is a CoreModuleType, CoreRecType, CoreSubType
    or a bare CoreFuncType / CoreStructType / CoreArrayType / CoreContType."""
    type: object

    @property
    def index_sort(self) -> Optional[Sort]:
        return None if isinstance(self.type, CoreRecType) else Sort.CORE_TYPE

    @property
    def index_count(self) -> int:
        return len(self.type.subtypes) if isinstance(self.type, CoreRecType) else 1


@dataclass(eq=False)
class ComponentDef(Definition):
    """``section_4``: a nested component, decoded.  ``data`` is a zero-copy
    memoryview of its raw bytes; ``component.offset``/``.end`` its span in
    the top-level input."""
    component: "Component"
    data: memoryview = field(repr=False, default=None)

    @property
    def index_sort(self) -> Sort:
        return Sort.COMPONENT

    def __repr__(self) -> str:
        return f"ComponentDef({self.component!r})"


# component instances -----------------------------------------------------------


class InstanceDef(Definition):
    """Base of ``instance`` (``Instantiate`` / ``InlineExports``)."""

    @property
    def index_sort(self) -> Sort:
        return Sort.INSTANCE


@dataclass(frozen=True)
class InstantiateArg:
    name: str
    sortidx: SortIdx


@dataclass(frozen=True)
class Instantiate(InstanceDef):
    """``0x00 c arg*``"""
    component_idx: int
    args: tuple


@dataclass(frozen=True)
class InlineExport:
    name: str
    sortidx: SortIdx
    attrs: Optional[NameAttrs] = None


@dataclass(frozen=True)
class InlineExports(InstanceDef):
    """``0x01 e*``"""
    exports: tuple


# aliases -------------------------------------------------------------------------


class AliasDef(Definition):
    """Base of ``alias``; every case has ``sort: Sort``."""
    sort: Sort

    @property
    def index_sort(self) -> Sort:
        return self.sort


@dataclass(frozen=True)
class ExportAlias(AliasDef):
    """``(alias export i n (sort))``"""
    sort: Sort
    instance_idx: int
    name: str


@dataclass(frozen=True)
class CoreExportAlias(AliasDef):
    """``(alias core export i n (core sort))``; ``sort`` is a ``Sort.CORE_*``."""
    sort: Sort
    core_instance_idx: int
    name: str


@dataclass(frozen=True)
class OuterAlias(AliasDef):
    """``(alias outer ct idx (sort))``"""
    sort: Sort
    count: int
    idx: int


# types -------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeDef(Definition):
    """``type``: ``type`` is a DefValType (incl. a bare PrimValType),
    FuncType, ComponentType, InstanceType or ResourceType."""
    type: object

    @property
    def index_sort(self) -> Sort:
        return Sort.TYPE


# canon -------------------------------------------------------------------------


@dataclass(frozen=True)
class CanonOpts:
    """``canonopt*``.  ``string_encoding`` is 'utf8' (default), 'utf16' or
    'latin1+utf16'.  ``core_type``/``gc`` are wasm-tools' GC options
    (0x08/0x09), not in Binary.md.

    Duplicate or conflicting options are *invalid*, not malformed, so the
    decoder accepts them: the fields hold the last occurrence and ``raw``
    lists every option in binary order as ``(field_name, value)`` pairs
    (e.g. ``('string_encoding', 'utf16')``, ``('memory', 0)``) so a
    validator can reject duplicates (see ``duplicates``)."""
    string_encoding: str = "utf8"
    memory: Optional[int] = None
    realloc: Optional[int] = None
    post_return: Optional[int] = None
    is_async: bool = False
    callback: Optional[int] = None
    core_type: Optional[int] = None
    gc: bool = False
    raw: tuple = field(default=(), compare=False, repr=False)

    @property
    def duplicates(self) -> tuple:
        """Field names given more than once (empty for valid options)."""
        seen, dup = set(), []
        for k, _ in self.raw:
            if k in seen and k not in dup:
                dup.append(k)
            seen.add(k)
        return tuple(dup)

    def __repr__(self) -> str:
        parts = []
        for k in ("string_encoding", "memory", "realloc", "post_return",
                  "is_async", "callback", "core_type", "gc"):
            v = getattr(self, k)
            if v != CanonOpts.__dataclass_fields__[k].default:
                parts.append(f"{k}={v!r}")
        return f"CanonOpts({', '.join(parts)})"


NO_OPTS = CanonOpts()


class CanonDef(Definition):
    """Base of ``canon``.  ``op`` is the spec's name ('lift', 'lower',
    'resource.new', 'task.return', ...); ``opcode`` the binary opcode.
    ``lift`` defines a component func, every other canon a core func."""
    op: ClassVar[str]
    opcode: ClassVar[int]

    @property
    def index_sort(self) -> Sort:
        return Sort.CORE_FUNC


def _canon(op, opcode):
    def deco(cls):
        cls.op = op
        cls.opcode = opcode
        return dataclass(frozen=True)(cls)
    return deco


@_canon("lift", 0x00)
class CanonLift(CanonDef):
    core_func_idx: int
    opts: CanonOpts
    type_idx: int

    @property
    def index_sort(self) -> Sort:
        return Sort.FUNC


@_canon("lower", 0x01)
class CanonLower(CanonDef):
    func_idx: int
    opts: CanonOpts


@_canon("resource.new", 0x02)
class CanonResourceNew(CanonDef):
    type_idx: int


@_canon("resource.drop", 0x03)
class CanonResourceDrop(CanonDef):
    """``is_async`` is the pre-Binary.md 0x07 ``resource.drop rt async``."""
    type_idx: int
    is_async: bool = False


@_canon("resource.rep", 0x04)
class CanonResourceRep(CanonDef):
    type_idx: int


@_canon("backpressure.set", 0x08)
class CanonBackpressureSet(CanonDef):
    """Older opcode, not in the current Binary.md; decoded for compatibility."""


@_canon("backpressure.inc", 0x24)
class CanonBackpressureInc(CanonDef):
    pass


@_canon("backpressure.dec", 0x25)
class CanonBackpressureDec(CanonDef):
    pass


@_canon("task.return", 0x09)
class CanonTaskReturn(CanonDef):
    result: Optional[ValType]
    opts: CanonOpts


@_canon("task.cancel", 0x05)
class CanonTaskCancel(CanonDef):
    pass


@_canon("context.get", 0x0a)
class CanonContextGet(CanonDef):
    valtype: CoreValType
    index: int


@_canon("context.set", 0x0b)
class CanonContextSet(CanonDef):
    valtype: CoreValType
    index: int


@_canon("subtask.cancel", 0x06)
class CanonSubtaskCancel(CanonDef):
    is_async: bool = False


@_canon("subtask.drop", 0x0d)
class CanonSubtaskDrop(CanonDef):
    pass


@_canon("stream.new", 0x0e)
class CanonStreamNew(CanonDef):
    type_idx: int


@_canon("stream.read", 0x0f)
class CanonStreamRead(CanonDef):
    type_idx: int
    opts: CanonOpts


@_canon("stream.write", 0x10)
class CanonStreamWrite(CanonDef):
    type_idx: int
    opts: CanonOpts


@_canon("stream.cancel-read", 0x11)
class CanonStreamCancelRead(CanonDef):
    type_idx: int
    is_async: bool = False


@_canon("stream.cancel-write", 0x12)
class CanonStreamCancelWrite(CanonDef):
    type_idx: int
    is_async: bool = False


@_canon("stream.drop-readable", 0x13)
class CanonStreamDropReadable(CanonDef):
    type_idx: int


@_canon("stream.drop-writable", 0x14)
class CanonStreamDropWritable(CanonDef):
    type_idx: int


@_canon("stream.forward", 0x2e)
class CanonStreamForward(CanonDef):
    """wasm-tools' opcode 0x2e, not in Binary.md, whose ``task-switch``
    branch gives 0x2e to ``thread.set-task``: no longer decoded."""
    type_idx: int


@_canon("future.new", 0x15)
class CanonFutureNew(CanonDef):
    type_idx: int


@_canon("future.read", 0x16)
class CanonFutureRead(CanonDef):
    type_idx: int
    opts: CanonOpts


@_canon("future.write", 0x17)
class CanonFutureWrite(CanonDef):
    type_idx: int
    opts: CanonOpts


@_canon("future.cancel-read", 0x18)
class CanonFutureCancelRead(CanonDef):
    type_idx: int
    is_async: bool = False


@_canon("future.cancel-write", 0x19)
class CanonFutureCancelWrite(CanonDef):
    type_idx: int
    is_async: bool = False


@_canon("future.drop-readable", 0x1a)
class CanonFutureDropReadable(CanonDef):
    type_idx: int


@_canon("future.drop-writable", 0x1b)
class CanonFutureDropWritable(CanonDef):
    type_idx: int


@_canon("thread.set-task", 0x2e)
class CanonThreadSetTask(CanonDef):
    """The spec's ``task-switch`` branch (component-model #659): opcode 0x2e,
    which wasm-tools gives ``stream.forward``; the spec's number wins."""


@_canon("future.forward", 0x2f)
class CanonFutureForward(CanonDef):
    """wasm-tools opcode 0x2f, not (yet) in Binary.md."""
    type_idx: int


@_canon("error-context.new", 0x1c)
class CanonErrorContextNew(CanonDef):
    opts: CanonOpts


@_canon("error-context.debug-message", 0x1d)
class CanonErrorContextDebugMessage(CanonDef):
    opts: CanonOpts


@_canon("error-context.drop", 0x1e)
class CanonErrorContextDrop(CanonDef):
    pass


@_canon("waitable-set.new", 0x1f)
class CanonWaitableSetNew(CanonDef):
    pass


@_canon("waitable-set.wait", 0x20)
class CanonWaitableSetWait(CanonDef):
    cancellable: bool
    memory: int


@_canon("waitable-set.poll", 0x21)
class CanonWaitableSetPoll(CanonDef):
    cancellable: bool
    memory: int


@_canon("waitable-set.drop", 0x22)
class CanonWaitableSetDrop(CanonDef):
    pass


@_canon("waitable.join", 0x23)
class CanonWaitableJoin(CanonDef):
    pass


@_canon("thread.index", 0x26)
class CanonThreadIndex(CanonDef):
    pass


@_canon("thread.new-indirect", 0x27)
class CanonThreadNewIndirect(CanonDef):
    core_type_idx: int
    table_idx: int


@_canon("thread.resume-later", 0x28)
class CanonThreadResumeLater(CanonDef):
    pass


@_canon("thread.suspend", 0x29)
class CanonThreadSuspend(CanonDef):
    cancellable: bool = False


@_canon("thread.yield", 0x0c)
class CanonThreadYield(CanonDef):
    cancellable: bool = False


@_canon("thread.suspend-then-resume", 0x2a)
class CanonThreadSuspendThenResume(CanonDef):
    cancellable: bool = False


@_canon("thread.yield-then-resume", 0x2b)
class CanonThreadYieldThenResume(CanonDef):
    cancellable: bool = False


@_canon("thread.suspend-then-promote", 0x2c)
class CanonThreadSuspendThenPromote(CanonDef):
    cancellable: bool = False


@_canon("thread.yield-then-promote", 0x2d)
class CanonThreadYieldThenPromote(CanonDef):
    cancellable: bool = False


@_canon("thread.spawn-ref", 0x40)
class CanonThreadSpawnRef(CanonDef):
    """Encoded by wasm-tools as ``0x40 ft`` (no ``shared?`` byte, unlike
    Binary.md's 🧵② ``0x40 sh? ft``); ``shared`` is therefore always False."""
    core_type_idx: int
    shared: bool = False


@_canon("thread.spawn-indirect", 0x41)
class CanonThreadSpawnIndirect(CanonDef):
    """Encoded by wasm-tools as ``0x41 ft tbl`` (no ``shared?`` byte)."""
    core_type_idx: int
    table_idx: int
    shared: bool = False


@_canon("thread.available-parallelism", 0x42)
class CanonThreadAvailableParallelism(CanonDef):
    """Encoded by wasm-tools as ``0x42`` alone (no ``shared?`` byte)."""
    shared: bool = False


#: every canon class, by opcode (0x07 resource.drop async maps to CanonResourceDrop)
CANON_CLASSES = {cls.opcode: cls for cls in [
    v for v in list(globals().values())
    if isinstance(v, type) and issubclass(v, CanonDef) and v not in (CanonDef, CanonStreamForward)]}


# start / import / export / value ---------------------------------------------


@dataclass(frozen=True)
class StartDef(Definition):
    """``start f arg* r``: appends ``results`` values to the value space."""
    func_idx: int
    args: tuple              # value indices
    results: int


@dataclass(frozen=True)
class ImportDef(Definition):
    """``import`` (also used for ``importdecl`` inside a ComponentType).
    ``name`` is the plain externname string (e.g. 'wasi:io/poll@0.2.0',
    '[method]r.m', 'f')."""
    name: str
    type: ExternType
    attrs: Optional[NameAttrs] = None

    @property
    def index_sort(self) -> Sort:
        return self.type.sort


@dataclass(frozen=True)
class ExportDef(Definition):
    """``export``: exports introduce a new index of ``sortidx.sort``."""
    name: str
    sortidx: SortIdx
    type: Optional[ExternType] = None
    attrs: Optional[NameAttrs] = None

    @property
    def index_sort(self) -> Sort:
        return self.sortidx.sort


@dataclass(frozen=True)
class ExportDecl:
    """``exportdecl`` inside ComponentType / InstanceType."""
    name: str
    type: ExternType
    attrs: Optional[NameAttrs] = None

    @property
    def index_sort(self) -> Sort:
        return self.type.sort


@dataclass(eq=False)
class ValueDef(Definition):
    """🪙 ``value``: ``data`` is the undecoded ``val(t)`` bytes."""
    type: ValType
    data: bytes

    @property
    def index_sort(self) -> Sort:
        return Sort.VALUE

    def __repr__(self) -> str:
        return f"ValueDef({self.type!r}, {bytes(self.data).hex()})"


# ---------------------------------------------------------------------------
# component


@dataclass
class ComponentNames:
    """Parsed ``component-name`` custom section.  ``sort_names`` maps a
    ``Sort`` to ``{index: name}``."""
    component: Optional[str] = None
    sort_names: dict = field(default_factory=dict)

    def name_of(self, sort: Sort, idx: int) -> Optional[str]:
        return self.sort_names.get(sort, {}).get(idx)


@dataclass(eq=False)
class Component:
    """A decoded component.  ``definitions`` are in section order;
    ``offset``/``end`` are the absolute span of this component (preamble
    included) in the top-level input."""
    definitions: list = field(default_factory=list)
    custom_sections: list = field(default_factory=list)
    names: Optional[ComponentNames] = None
    offset: int = 0
    end: int = 0

    def of(self, cls) -> list:
        """Definitions that are instances of ``cls`` (in order)."""
        return [d for d in self.definitions if isinstance(d, cls)]

    @property
    def core_modules(self) -> list:
        return self.of(CoreModuleDef)

    @property
    def components(self) -> list:
        return self.of(ComponentDef)

    @property
    def imports(self) -> list:
        return self.of(ImportDef)

    @property
    def exports(self) -> list:
        return self.of(ExportDef)

    def __repr__(self) -> str:
        name = f" {self.names.component!r}" if self.names and self.names.component else ""
        return (f"<Component{name} {len(self.definitions)} definitions "
                f"@0x{self.offset:x}..0x{self.end:x}>")

    def pretty(self, indent: int = 0) -> str:
        """A multi-line listing, one definition per line, nested components
        indented."""
        pad = "  " * indent
        lines = [pad + repr(self)]
        for i, d in enumerate(self.definitions):
            if isinstance(d, ComponentDef):
                lines.append(f"{pad}  [{i}] ComponentDef:")
                lines.append(d.component.pretty(indent + 2))
            else:
                lines.append(f"{pad}  [{i}] {d!r}")
        for c in self.custom_sections:
            lines.append(f"{pad}  {c!r}")
        return "\n".join(lines)

    __str__ = pretty

"""The directives of a component WAST script, and its value constants.

:func:`parse_script` turns the text of a ``.wast`` file into a list of
:class:`Command` objects; it checks syntax only (every directive recognised,
every value constant well formed). Components are not compiled here: a
:class:`ModuleSource` compiles itself to bytes when the runner asks.

Value constants are parsed into :class:`WastValue` nodes (what was written),
and :meth:`WastValue.to_host` turns one into the spec's host representation,
type-directed when a type is given (flags need it to fill in false labels):

=================  ============================================================
wast               host value
=================  ============================================================
bool.const         ``bool``
u8 ... s64.const   ``int``
f32/f64.const      ``float`` (NaN patterns kept on the WastValue for compare)
char.const         ``str`` of one character
str.const          ``str``
list.const         ``list``
record.const       ``dict`` label -> value
tuple.const        ``dict`` ``'0'``, ``'1'``, ... -> value
variant.const      ``{label: value}`` (``{label: None}`` with no payload)
enum.const         ``{label: None}``
option.none/some   ``{'none': None}`` / ``{'some': v}``
result.ok/err      ``{'ok': v}`` / ``{'error': v}`` (v is None with no payload)
flags.const        ``dict`` label -> bool
map (list.const    ``list`` of ``(key, value)`` Python tuples
 of tuple.const)
=================  ============================================================
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from ..component import types as T
from .assemble import assemble, needs_assembly
from .sexpr import Annotation, Atom, Node, SExprError, SList, String, describe, parse


class ScriptError(ValueError):
    """A well-formed S-expression that is not a valid directive or value."""

    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.message = message
        self.line = line


# --------------------------------------------------------------------------
# Values


_INT_BITS = {"u8": 8, "s8": 8, "u16": 16, "s16": 16, "u32": 32, "s32": 32, "u64": 64, "s64": 64}
_INT_RE = re.compile(r"[+-]?(?:0x[0-9a-fA-F](?:_?[0-9a-fA-F])*|[0-9](?:_?[0-9])*)\Z")
_DEC_FLOAT_RE = re.compile(
    r"[+-]?[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?(?:[eE][+-]?[0-9](?:_?[0-9])*)?\Z"
)
_HEX_FLOAT_RE = re.compile(
    r"[+-]?0x[0-9a-fA-F](?:_?[0-9a-fA-F])*(?:\.(?:[0-9a-fA-F](?:_?[0-9a-fA-F])*)?)?"
    r"(?:[pP][+-]?[0-9](?:_?[0-9])*)?\Z"
)
F32_CANONICAL_PAYLOAD = 1 << 22
F64_CANONICAL_PAYLOAD = 1 << 51


@dataclass
class WastValue:
    """A value constant as written. ``kind`` is the keyword before ``.const``
    (``u32``, ``f64``, ``str``, ``record``, ``variant``, ``option``, ``result``,
    ...); ``value`` depends on it:

    * ints, bool, char, str: the Python value;
    * f32/f64: a float, or for NaN a ``(sign, pattern)`` pair where pattern is
      ``"canonical"``, ``"arithmetic"`` or an int payload;
    * list, tuple: a list of WastValue;
    * record: a list of (label, WastValue);
    * variant: (label, WastValue | None); enum: label;
    * option: ("none", None) or ("some", WastValue);
    * result: ("ok" | "error", WastValue | None);
    * flags: a list of labels.
    """

    kind: str
    value: Any
    text: str = ""
    line: int = 0

    @property
    def is_nan(self) -> bool:
        return self.kind in ("f32", "f64") and isinstance(self.value, tuple)

    def __str__(self) -> str:
        return self.text

    def to_host(self, t: Optional[T.ValType] = None) -> Any:
        """The spec's host representation of this value, directed by ``t``
        when given. Raises :class:`ValueError` when the value does not fit."""
        return _to_host(self, t)


def _err(node: Node, msg: str) -> ScriptError:
    return ScriptError(f"{msg}: {describe(node)}", getattr(node, "line", 0))


def parse_int(text: str, kind: str, node: Node | None = None) -> int:
    bits = _INT_BITS[kind]
    t = str(text)
    if not _INT_RE.match(t):
        raise _err(node if node is not None else Atom(t), f"malformed {kind} constant")
    neg = t.startswith("-")
    body = t.lstrip("+-").replace("_", "")
    v = int(body, 16) if body.startswith(("0x", "0X")) else int(body, 10)
    if neg:
        v = -v
    if kind[0] == "u":
        ok = 0 <= v < (1 << bits)
    else:
        # signed: accept the two's-complement bit pattern too (as wast does)
        ok = -(1 << (bits - 1)) <= v < (1 << bits)
        if ok and v >= (1 << (bits - 1)):
            v -= 1 << bits
    if not ok:
        raise _err(node if node is not None else Atom(t), f"{kind} constant out of range")
    return v


def _round_f32(x: float) -> float:
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def parse_float(text: str, kind: str, node: Node | None = None) -> Union[float, tuple]:
    """A float, or for a NaN a ``(sign, pattern)`` pair."""
    t = str(text)
    sign = -1 if t.startswith("-") else 1
    body = t.lstrip("+-")
    bad = _err(node if node is not None else Atom(t), f"malformed {kind} constant")
    if body == "inf":
        return math.copysign(math.inf, sign)
    if body == "nan":
        return (sign, "canonical_exact")
    if body in ("nan:canonical", "nan:arithmetic"):
        return (sign, body[4:])
    if body.startswith("nan:0x"):
        try:
            payload = int(body[6:].replace("_", ""), 16)
        except ValueError:
            raise bad from None
        limit = 1 << (23 if kind == "f32" else 52)
        if not 0 < payload < limit:
            raise _err(node if node is not None else Atom(t), "NaN payload out of range")
        return (sign, payload)
    if _HEX_FLOAT_RE.match(t):
        v = float.fromhex(t.replace("_", ""))
    elif _DEC_FLOAT_RE.match(t):
        v = float(t.replace("_", ""))
    else:
        raise bad
    if kind == "f32":
        v = _round_f32(v)
    if math.isinf(v):
        raise _err(node if node is not None else Atom(t), f"{kind} constant out of range")
    return v


def _string_arg(form: SList, i: int, what: str) -> str:
    if i >= len(form) or not isinstance(form[i], String):
        raise _err(form, f"{what} expects a string")
    try:
        return form[i].text
    except UnicodeDecodeError:
        raise _err(form, f"{what}: string is not valid UTF-8") from None


def parse_value(node: Node) -> WastValue:
    """Parse one parenthesised value constant, e.g. ``(u32.const 1)``."""
    if not isinstance(node, SList) or not node or not isinstance(node[0], Atom):
        raise _err(node, "expected a value constant")
    items = [c for c in node if not isinstance(c, Annotation)]
    return _parse_value_items(items, node)


def _parse_value_items(items: list, node: SList) -> WastValue:
    """Parse a value given as the keyword and its arguments (``items``);
    ``node`` is the enclosing form, for text and error messages."""
    head = str(items[0])
    args = items[1:]
    if isinstance(node, SList) and node and items[0] is node[0]:
        text = " ".join(node.text.split())
    else:  # an inline value inside (field "label" kind.const ...)
        src = node.source.text
        text = "(" + " ".join(src[items[0].start:items[-1].end].split()) + ")"
    line = node.line
    kind, _, op = head.partition(".")

    def need(n: int):
        if len(args) != n:
            raise _err(node, f"{head} expects {n} argument{'s' if n != 1 else ''}")

    def sub(i: int) -> WastValue:
        a = args[i]
        if not isinstance(a, SList):
            raise _err(node, f"{head}: expected a parenthesised value")
        return parse_value(a)

    if op == "const" and kind in _INT_BITS:
        need(1)
        if not isinstance(args[0], Atom):
            raise _err(node, f"malformed {kind} constant")
        return WastValue(kind, parse_int(args[0], kind, node), text, line)
    if op == "const" and kind in ("f32", "f64"):
        need(1)
        if not isinstance(args[0], Atom):
            raise _err(node, f"malformed {kind} constant")
        return WastValue(kind, parse_float(args[0], kind, node), text, line)
    if head == "bool.const":
        need(1)
        if args[0] not in ("true", "false") or not isinstance(args[0], Atom):
            raise _err(node, "bool.const expects true or false")
        return WastValue("bool", args[0] == "true", text, line)
    if head == "char.const":
        need(1)
        s = _string_arg(items, 1, head)
        if len(s) != 1:
            raise _err(node, "char.const expects exactly one character")
        return WastValue("char", s, text, line)
    if head in ("str.const", "string.const"):
        need(1)
        return WastValue("str", _string_arg(items, 1, head), text, line)
    if head == "list.const":
        return WastValue("list", [sub(i) for i in range(len(args))], text, line)
    if head == "tuple.const":
        return WastValue("tuple", [sub(i) for i in range(len(args))], text, line)
    if head == "record.const":
        fields = []
        for a in args:
            fields.append(_parse_field(a, node))
        return WastValue("record", fields, text, line)
    if head == "variant.const":
        if len(args) not in (1, 2):
            raise _err(node, "variant.const expects a label and an optional value")
        label = _string_arg(items, 1, head)
        return WastValue("variant", (label, sub(1) if len(args) == 2 else None), text, line)
    if head == "enum.const":
        need(1)
        return WastValue("enum", _string_arg(items, 1, head), text, line)
    if head == "option.none":
        need(0)
        return WastValue("option", ("none", None), text, line)
    if head == "option.some":
        need(1)
        return WastValue("option", ("some", sub(0)), text, line)
    if head in ("result.ok", "result.err", "result.error"):
        if len(args) > 1:
            raise _err(node, f"{head} expects at most one value")
        case = "ok" if head == "result.ok" else "error"
        return WastValue("result", (case, sub(0) if args else None), text, line)
    if head == "flags.const":
        labels = [_string_arg(items, i, head) for i in range(1, len(items))]
        return WastValue("flags", labels, text, line)
    raise _err(node, f"unknown value constant {head}")


def _parse_field(a: Node, record: SList) -> tuple[str, WastValue]:
    """``(field "label" u32.const 1)`` (wasmtime's syntax) or
    ``(field "label" (u32.const 1))``."""
    if not isinstance(a, SList):
        raise _err(record, "record.const expects (field \"label\" value) forms")
    items = [c for c in a if not isinstance(c, Annotation)]
    if len(items) < 3 or items[0] != "field" or not isinstance(items[0], Atom):
        raise _err(a, "record.const expects (field \"label\" value) forms")
    label = _string_arg(items, 1, "field")
    if len(items) == 3 and isinstance(items[2], SList):
        return label, parse_value(items[2])
    if not isinstance(items[2], Atom):
        raise _err(a, "field expects a value")
    return label, _parse_value_items(items[2:], a)


# ---- host representation ------------------------------------------------


def _kind_mismatch(v: WastValue, t) -> ValueError:
    return ValueError(f"{v.text} does not fit type {type_name(t)}")


_PRIM_KIND = {
    T.BoolType: "bool", T.U8Type: "u8", T.S8Type: "s8", T.U16Type: "u16", T.S16Type: "s16",
    T.U32Type: "u32", T.S32Type: "s32", T.U64Type: "u64", T.S64Type: "s64",
    T.F32Type: "f32", T.F64Type: "f64", T.CharType: "char", T.StringType: "str",
}


def nan_float(kind: str, sign: int, pattern) -> float:
    """A Python float carrying the NaN described by (sign, pattern)."""
    if kind == "f32":
        payload = pattern if isinstance(pattern, int) else F32_CANONICAL_PAYLOAD
        bits = (0x7F800000 | payload) | (0x80000000 if sign < 0 else 0)
        return struct.unpack("<f", struct.pack("<I", bits))[0]
    payload = pattern if isinstance(pattern, int) else F64_CANONICAL_PAYLOAD
    bits = (0x7FF0000000000000 | payload) | ((1 << 63) if sign < 0 else 0)
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def _to_host(v: WastValue, t) -> Any:
    k = v.kind
    if t is not None:
        want = _PRIM_KIND.get(type(t))
        if want is not None and want != k:
            raise _kind_mismatch(v, t)
    if k in _INT_BITS or k in ("bool", "char", "str"):
        return v.value
    if k in ("f32", "f64"):
        if v.is_nan:
            return nan_float(k, *v.value)
        return v.value
    if k == "list":
        if t is None:
            return [e.to_host() for e in v.value]
        if isinstance(t, T.ListType):
            if t.l is not None and len(v.value) != t.l:
                raise ValueError(f"{v.text}: expected {t.l} elements")
            return [_to_host(e, t.t) for e in v.value]
        if isinstance(t, T.MapType):
            out = []
            for e in v.value:
                if e.kind != "tuple" or len(e.value) != 2:
                    raise ValueError(f"{e.text}: a map entry is (tuple.const key value)")
                out.append((_to_host(e.value[0], t.k), _to_host(e.value[1], t.v)))
            return out
        raise _kind_mismatch(v, t)
    if k == "tuple":
        if t is None:
            return {str(i): e.to_host() for i, e in enumerate(v.value)}
        if not isinstance(t, T.TupleType) or len(t.ts) != len(v.value):
            raise _kind_mismatch(v, t)
        return {str(i): _to_host(e, et) for i, (e, et) in enumerate(zip(v.value, t.ts))}
    if k == "record":
        if t is None:
            return {label: e.to_host() for label, e in v.value}
        if not isinstance(t, T.RecordType):
            raise _kind_mismatch(v, t)
        given = dict(v.value)
        want = [f.label for f in t.fields]
        if sorted(given) != sorted(want) or len(given) != len(v.value):
            raise ValueError(f"{v.text}: fields do not match {type_name(t)}")
        return {f.label: _to_host(given[f.label], f.t) for f in t.fields}
    if k == "variant":
        label, payload = v.value
        if t is None:
            return {label: payload.to_host() if payload is not None else None}
        if not isinstance(t, T.VariantType):
            raise _kind_mismatch(v, t)
        for c in t.cases:
            if c.label == label:
                if (c.t is None) != (payload is None):
                    raise ValueError(f"{v.text}: payload does not match case {label!r}")
                return {label: _to_host(payload, c.t) if payload is not None else None}
        raise ValueError(f"{v.text}: no case {label!r} in {type_name(t)}")
    if k == "enum":
        if t is not None:
            if not isinstance(t, T.EnumType):
                raise _kind_mismatch(v, t)
            if v.value not in t.labels:
                raise ValueError(f"{v.text}: no label {v.value!r} in {type_name(t)}")
        return {v.value: None}
    if k == "option":
        case, payload = v.value
        if t is not None and not isinstance(t, T.OptionType):
            raise _kind_mismatch(v, t)
        if case == "none":
            return {"none": None}
        return {"some": _to_host(payload, t.t if t is not None else None)}
    if k == "result":
        case, payload = v.value
        if t is None:
            return {case: payload.to_host() if payload is not None else None}
        if not isinstance(t, T.ResultType):
            raise _kind_mismatch(v, t)
        pt = t.ok if case == "ok" else t.error
        if (pt is None) != (payload is None):
            raise ValueError(f"{v.text}: payload does not match result.{case}")
        return {case: _to_host(payload, pt) if payload is not None else None}
    if k == "flags":
        if t is None:
            return {label: True for label in v.value}
        if not isinstance(t, T.FlagsType):
            raise _kind_mismatch(v, t)
        unknown = [label for label in v.value if label not in t.labels]
        if unknown:
            raise ValueError(f"{v.text}: no flag {unknown[0]!r} in {type_name(t)}")
        return {label: label in v.value for label in t.labels}
    raise ValueError(f"{v.text}: unknown value kind {k}")


def type_name(t) -> str:
    """A WIT-like name for a type, for messages."""
    if t is None:
        return "?"
    k = _PRIM_KIND.get(type(t))
    if k is not None:
        return "string" if k == "str" else k
    if isinstance(t, T.ListType):
        return f"list<{type_name(t.t)}{'' if t.l is None else f', {t.l}'}>"
    if isinstance(t, T.MapType):
        return f"map<{type_name(t.k)}, {type_name(t.v)}>"
    if isinstance(t, T.TupleType):
        return "tuple<" + ", ".join(type_name(e) for e in t.ts) + ">"
    if isinstance(t, T.RecordType):
        return "record { " + ", ".join(f"{f.label}: {type_name(f.t)}" for f in t.fields) + " }"
    if isinstance(t, T.VariantType):
        return "variant { " + ", ".join(
            c.label if c.t is None else f"{c.label}({type_name(c.t)})" for c in t.cases) + " }"
    if isinstance(t, T.EnumType):
        return "enum { " + ", ".join(t.labels) + " }"
    if isinstance(t, T.FlagsType):
        return "flags { " + ", ".join(t.labels) + " }"
    if isinstance(t, T.OptionType):
        return f"option<{type_name(t.t)}>"
    if isinstance(t, T.ResultType):
        return f"result<{type_name(t.ok) if t.ok else '_'}, {type_name(t.error) if t.error else '_'}>"
    if isinstance(t, T.OwnType):
        return f"own<{t.rt.name or 'resource'}>"
    if isinstance(t, T.BorrowType):
        return f"borrow<{t.rt.name or 'resource'}>"
    if isinstance(t, T.StreamType):
        return f"stream<{type_name(t.t) if t.t else '_'}>"
    if isinstance(t, T.FutureType):
        return f"future<{type_name(t.t) if t.t else '_'}>"
    if isinstance(t, T.ErrorContextType):
        return "error-context"
    return type(t).__name__


# --------------------------------------------------------------------------
# Directives


@dataclass
class ModuleSource:
    """A component (or core module) as a script spells it. ``fmt`` is
    ``"text"`` (``data`` is the text for wat2wasm), ``"binary"`` (``data`` is
    the bytes) or ``"quote"`` (``data`` is the quoted text, form keyword and
    parentheses added back)."""

    kind: str  # "component" or "module"
    fmt: str
    data: Union[str, bytes]
    id: Optional[str]
    line: int

    def to_bytes(self) -> bytes:
        """The binary. Raises ``wasmtime.WasmtimeError`` when the text does not
        parse."""
        if self.fmt == "binary":
            return bytes(self.data)
        compiled = self.__dict__.get("_compiled")
        if compiled is None:
            import wasmtime

            if self.kind == "component" and needs_assembly(self.data):
                # thread.set-task / cancellable: wat2wasm cannot (see assemble.py)
                compiled = self.__dict__["_compiled"] = assemble(self.data)
            else:
                compiled = self.__dict__["_compiled"] = bytes(wasmtime.wat2wasm(self.data))
        return compiled

    @property
    def is_core_binary(self) -> bool:
        """A binary whose preamble says core module (version 1, layer 0)."""
        return (self.fmt == "binary" and len(self.data) >= 8
                and self.data[:4] == b"\0asm" and self.data[4:8] == b"\x01\x00\x00\x00")


@dataclass
class Invoke:
    instance: Optional[str]
    name: str
    args: list[WastValue]
    line: int
    text: str = ""


@dataclass
class Command:
    line: int


@dataclass
class ComponentCmd(Command):
    """``(component $id? ...)``: define and instantiate, or with
    ``definition`` only define."""

    module: ModuleSource
    definition: bool = False


@dataclass
class InstanceCmd(Command):
    """``(component instance $i $X)``."""

    id: Optional[str]
    definition: str


@dataclass
class ModuleCmd(Command):
    """A top-level core ``(module ...)``: recognised, but callscope runs
    component scripts only."""

    module: ModuleSource


@dataclass
class RegisterCmd(Command):
    name: str
    instance: Optional[str]


@dataclass
class ActionCmd(Command):
    """A bare ``(invoke ...)``."""

    invoke: Invoke


@dataclass
class AssertReturn(Command):
    invoke: Invoke
    results: list[WastValue]


@dataclass
class AssertTrap(Command):
    """``(assert_trap (invoke ...) "msg")`` or, with ``module`` set,
    ``(assert_trap (component ...) "msg")`` (an instantiation trap).
    ``exhaustion`` marks ``assert_exhaustion``."""

    invoke: Optional[Invoke]
    module: Optional[ModuleSource]
    message: str
    exhaustion: bool = False


@dataclass
class AssertInvalid(Command):
    module: ModuleSource
    message: str


@dataclass
class AssertMalformed(Command):
    module: ModuleSource
    message: str


@dataclass
class AssertUnlinkable(Command):
    module: ModuleSource
    message: str


ASSERTIONS = (AssertReturn, AssertTrap, AssertInvalid, AssertMalformed, AssertUnlinkable)


@dataclass
class Script:
    path: Optional[str]
    commands: list[Command] = field(default_factory=list)


def _children(form: SList) -> list[Node]:
    return [c for c in form if not isinstance(c, Annotation)]


def _concat_strings(form: SList, items: list[Node], what: str) -> bytes:
    out = bytearray()
    for s in items:
        if not isinstance(s, String):
            raise _err(form, f"{what} expects only strings")
        out += s.value
    return bytes(out)


def parse_module(form: Node, *, allow_definition: bool = False) -> tuple[ModuleSource, bool]:
    """A ``(component ...)`` or ``(module ...)`` form. Returns the source and
    whether it was a ``definition``."""
    if not isinstance(form, SList) or form.head not in ("component", "module"):
        raise _err(form, "expected (component ...)")
    kind = form.head
    items = _children(form)
    i = 1
    definition = False
    def_atom = None
    if i < len(items) and isinstance(items[i], Atom) and items[i] == "definition":
        if not allow_definition:
            raise _err(form, f"{kind} definition not allowed here")
        definition = True
        def_atom = items[i]
        i += 1
    ident = None
    if i < len(items) and isinstance(items[i], Atom) and items[i].is_id:
        ident = str(items[i])
        i += 1
    if definition and ident is None:
        # an anonymous definition is legal, but cannot be named later
        pass
    if i < len(items) and isinstance(items[i], Atom) and items[i] in ("binary", "quote"):
        mode = str(items[i])
        data = _concat_strings(form, items[i + 1:], f"{kind} {mode}")
        if mode == "binary":
            return ModuleSource(kind, "binary", data, ident, form.line), definition
        try:
            body = data.decode("utf-8")
        except UnicodeDecodeError:
            raise _err(form, f"{kind} quote: not UTF-8 text") from None
        return ModuleSource(kind, "quote", f"({kind} {body})", ident, form.line), definition
    text = form.text
    if def_atom is not None:
        a, b = def_atom.start - form.start, def_atom.end - form.start
        text = text[:a] + " " * (b - a) + text[b:]
    return ModuleSource(kind, "text", text, ident, form.line), definition


def parse_invoke(form: Node) -> Invoke:
    if not isinstance(form, SList) or form.head != "invoke":
        raise _err(form, "expected (invoke ...)")
    items = _children(form)
    i = 1
    inst = None
    if i < len(items) and isinstance(items[i], Atom) and items[i].is_id:
        inst = str(items[i])
        i += 1
    name = _string_arg(items, i, "invoke") if i < len(items) else None
    if name is None:
        raise _err(form, "invoke expects an export name")
    args = []
    for a in items[i + 1:]:
        if not isinstance(a, SList):
            raise _err(form, "invoke arguments must be value constants")
        args.append(parse_value(a))
    return Invoke(inst, name, args, form.line, " ".join(form.text.split()))


def _message(form: SList, items: list, i: int, what: str) -> str:
    if len(items) != i + 1:
        raise _err(form, f"{what} expects a form and a message string")
    return _string_arg(items, i, what)


def parse_command(form: Node) -> Command | None:
    """One top-level directive (None for a top-level annotation)."""
    if isinstance(form, Annotation):
        return None
    if not isinstance(form, SList) or not form or not isinstance(form[0], Atom):
        if isinstance(form, SList) and not form:
            raise _err(form, "empty form")
        raise ScriptError(f"expected a directive, found {describe(form)}",
                          getattr(form, "line", 0))
    head = form.head
    items = _children(form)
    line = form.line
    if head == "component":
        if len(items) > 1 and items[1] == "instance" and isinstance(items[1], Atom):
            rest = items[2:]
            if (len(rest) not in (1, 2) or not all(isinstance(x, Atom) and x.is_id for x in rest)):
                raise _err(form, "expected (component instance $id $definition)")
            if len(rest) == 1:
                return InstanceCmd(line, None, str(rest[0]))
            return InstanceCmd(line, str(rest[0]), str(rest[1]))
        mod, definition = parse_module(form, allow_definition=True)
        return ComponentCmd(line, mod, definition)
    if head == "module":
        mod, definition = parse_module(form, allow_definition=True)
        return ModuleCmd(line, mod)
    if head == "register":
        if len(items) not in (2, 3):
            raise _err(form, "expected (register \"name\" $id?)")
        name = _string_arg(items, 1, "register")
        inst = None
        if len(items) == 3:
            if not (isinstance(items[2], Atom) and items[2].is_id):
                raise _err(form, "expected (register \"name\" $id?)")
            inst = str(items[2])
        return RegisterCmd(line, name, inst)
    if head == "invoke":
        return ActionCmd(line, parse_invoke(form))
    if head == "assert_return":
        if len(items) < 2:
            raise _err(form, "assert_return expects an action")
        inv = parse_invoke(items[1])
        results = []
        for r in items[2:]:
            if not isinstance(r, SList):
                raise _err(form, "assert_return results must be value constants")
            results.append(parse_value(r))
        return AssertReturn(line, inv, results)
    if head in ("assert_trap", "assert_exhaustion"):
        if len(items) < 2:
            raise _err(form, f"{head} expects an action")
        msg = _message(form, items, 2, head)
        target = items[1]
        if isinstance(target, SList) and target.head == "invoke":
            return AssertTrap(line, parse_invoke(target), None, msg, head == "assert_exhaustion")
        if isinstance(target, SList) and target.head == "component":
            return AssertTrap(line, None, parse_module(target)[0], msg, head == "assert_exhaustion")
        raise _err(form, f"{head} expects (invoke ...) or (component ...)")
    if head in ("assert_invalid", "assert_malformed", "assert_unlinkable"):
        if len(items) < 2:
            raise _err(form, f"{head} expects a component")
        msg = _message(form, items, 2, head)
        mod, _ = parse_module(items[1])
        cls = {"assert_invalid": AssertInvalid, "assert_malformed": AssertMalformed,
               "assert_unlinkable": AssertUnlinkable}[head]
        return cls(line, mod, msg)
    raise ScriptError(f"unknown directive ({head} ...)", line)


def parse_script(text: str, path: str | None = None) -> Script:
    """Parse a whole script. Raises :class:`SExprError` (not S-expressions)
    or :class:`ScriptError` (a bad directive)."""
    script = Script(path)
    for form in parse(text, path):
        cmd = parse_command(form)
        if cmd is not None:
            script.commands.append(cmd)
    return script

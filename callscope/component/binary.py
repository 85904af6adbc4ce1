"""Decoder for the component binary format (design/mvp/Binary.md).

``decode(data) -> ast.Component``.  Every section kind is decoded into the
unresolved model of :mod:`callscope.component.ast`, keeping definitions in
section order.  Core modules are kept as raw byte spans (one copy each);
nested components are decoded recursively and also keep a zero-copy
memoryview of their bytes.

Malformed input raises :class:`DecodeError` naming the absolute byte offset
and what was expected; no IndexError/struct.error/UnicodeError escapes.
Merely *invalid* input (duplicate canonopts, bad indices, empty records, ...)
decodes: validation belongs to the linker.  Embedded core modules get only a
structural check (section ids, sizes, order); wasmtime validates the rest.

Where the encoder behind ``wasmtime.wat2wasm`` (wasm-tools, wasmtime-py 50)
and Binary.md differ, the decoder follows the encoder:

* ``thread.spawn-ref`` / ``thread.spawn-indirect`` /
  ``thread.available-parallelism`` (0x40-0x42) carry no ``shared?`` byte.
* ``core:type`` inside a ``core:moduletype`` uses core rectype rules: a bare
  0x50 there is a non-final ``sub`` (the component-level wart, 0x50 = module
  type and 0x00 0x50 = ``sub``, applies only to the core type section and to
  ``0x00`` core type declarators of component/instance types).

Canon 0x2e is ``thread.set-task``, as on the spec's ``task-switch`` branch
(wasm-tools encodes its ``stream.forward`` there: not decoded).
Accepted beyond Binary.md: canon 0x2f ``future.forward`` (wasm-tools), legacy 0x07 ``resource.drop async`` and 0x08
``backpressure.set``, canonopts 0x08 ``core-type`` / 0x09 ``gc``, core GC
types (rec/sub/struct/array/cont, reference types).  Not decoded (absent from
Binary.md and rejected by wat2wasm): async resource destructors,
``thread.switch-to``/``thread.yield-to``.
"""

from __future__ import annotations

from typing import Optional, Union

from . import ast as A

__all__ = ["DecodeError", "decode", "decode_file", "decode_wat",
           "COMPONENT_VERSION", "COMPONENT_LAYER"]

MAGIC = b"\x00asm"
COMPONENT_VERSION = 0x0D
COMPONENT_LAYER = 0x01
CORE_MODULE_HEADER = b"\x00asm\x01\x00\x00\x00"


class DecodeError(ValueError):
    """Malformed component binary.  ``offset`` is the absolute byte offset in
    the decoded input, ``message`` says what was expected."""

    def __init__(self, offset: int, message: str):
        super().__init__(offset, message)
        self.offset = offset
        self.message = message

    def __str__(self) -> str:
        return f"offset 0x{self.offset:x}: {self.message}"


# ---------------------------------------------------------------------------
# opcode tables

_CORE_SORTS = {
    0x00: A.CoreSort.FUNC, 0x01: A.CoreSort.TABLE, 0x02: A.CoreSort.MEMORY,
    0x03: A.CoreSort.GLOBAL, 0x04: A.CoreSort.TAG, 0x10: A.CoreSort.TYPE,
    0x11: A.CoreSort.MODULE, 0x12: A.CoreSort.INSTANCE,
}
_CORE_TO_SORT = {cs: A.Sort.core(cs) for cs in A.CoreSort}
_SORTS = {0x01: A.Sort.FUNC, 0x02: A.Sort.VALUE, 0x03: A.Sort.TYPE,
          0x04: A.Sort.COMPONENT, 0x05: A.Sort.INSTANCE}

_OUTER_ALIAS_SORTS = frozenset([A.Sort.CORE_MODULE, A.Sort.CORE_TYPE,
                                A.Sort.COMPONENT, A.Sort.TYPE])

_PRIMS = {
    0x7F: A.PrimValType.BOOL, 0x7E: A.PrimValType.S8, 0x7D: A.PrimValType.U8,
    0x7C: A.PrimValType.S16, 0x7B: A.PrimValType.U16, 0x7A: A.PrimValType.S32,
    0x79: A.PrimValType.U32, 0x78: A.PrimValType.S64, 0x77: A.PrimValType.U64,
    0x76: A.PrimValType.F32, 0x75: A.PrimValType.F64, 0x74: A.PrimValType.CHAR,
    0x73: A.PrimValType.STRING, 0x64: A.PrimValType.ERROR_CONTEXT,
}

_CORE_NUM = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128"}
_CORE_PACKED = {0x78: "i8", 0x77: "i16"}
_ABSHEAP = {
    0x70: "func", 0x6F: "extern", 0x6E: "any", 0x71: "none", 0x72: "noextern",
    0x73: "nofunc", 0x6D: "eq", 0x6C: "struct", 0x6B: "array", 0x6A: "i31",
    0x69: "exn", 0x74: "noexn", 0x68: "cont", 0x75: "nocont",
}
# core section id -> order rank (0 = custom, allowed anywhere)
_CORE_SECTION_RANK = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9,
                      9: 10, 12: 11, 10: 12, 11: 13}
_STRING_ENCODINGS = {0x00: "utf8", 0x01: "utf16", 0x02: "latin1+utf16"}

_SECTION_NAMES = {
    0: "custom", 1: "core module", 2: "core instance", 3: "core type",
    4: "component", 5: "instance", 6: "alias", 7: "type", 8: "canon",
    9: "start", 10: "import", 11: "export", 12: "value",
}

# canon opcode -> (class, immediates).  Immediate codes:
#   'u' u32, 'o' canonopts, 'a' async?, 'c' cancel?, 's' shared?,
#   'r' resultlist, 'v' core:valtype
_CANON_IMM = {
    0x02: "u", 0x03: "u", 0x04: "u",
    0x08: "", 0x24: "", 0x25: "",
    0x09: "ro", 0x05: "",
    0x0A: "vu", 0x0B: "vu",
    0x06: "a", 0x0D: "",
    0x0E: "u", 0x0F: "uo", 0x10: "uo", 0x11: "ua", 0x12: "ua", 0x13: "u",
    0x14: "u", 0x2E: "",
    0x15: "u", 0x16: "uo", 0x17: "uo", 0x18: "ua", 0x19: "ua", 0x1A: "u",
    0x1B: "u", 0x2F: "u",
    0x1C: "o", 0x1D: "o", 0x1E: "",
    0x1F: "", 0x20: "cu", 0x21: "cu", 0x22: "", 0x23: "",
    0x26: "", 0x27: "uu", 0x28: "", 0x29: "c", 0x0C: "c",
    0x2A: "c", 0x2B: "c", 0x2C: "c", 0x2D: "c",
    # Binary.md gives 0x40-0x42 a leading `shared?` byte, but wasm-tools (the
    # encoder behind wasmtime.wat2wasm) does not emit it; follow the encoder.
    0x40: "u", 0x41: "uu", 0x42: "",
}
_CANON_TABLE = {op: (A.CANON_CLASSES[op], imm) for op, imm in _CANON_IMM.items()}

_EMPTY_OPTS = A.NO_OPTS


# ---------------------------------------------------------------------------


class _Decoder:
    __slots__ = ("buf", "pos", "end", "total")

    def __init__(self, buf):
        self.buf = buf
        self.pos = 0
        self.total = len(buf)
        self.end = self.total

    # -- errors -----------------------------------------------------------

    def err(self, msg: str, at: Optional[int] = None):
        raise DecodeError(self.pos if at is None else at, msg)

    def eof(self, what: str):
        where = "input" if self.end >= self.total else "section"
        raise DecodeError(self.pos, f"unexpected end of {where}, expected {what}")

    # -- primitives ---------------------------------------------------------

    def u8(self, what: str = "byte") -> int:
        pos = self.pos
        if pos >= self.end:
            self.eof(what)
        self.pos = pos + 1
        return self.buf[pos]

    def peek(self, what: str = "byte") -> int:
        if self.pos >= self.end:
            self.eof(what)
        return self.buf[self.pos]

    def expect(self, byte: int, what: str):
        b = self.u8(what)
        if b != byte:
            self.err(f"expected {what} (0x{byte:02x}), found 0x{b:02x}", self.pos - 1)

    def u32(self, what: str = "u32") -> int:
        buf = self.buf
        pos = self.pos
        end = self.end
        if pos < end:
            b = buf[pos]
            if b < 0x80:
                self.pos = pos + 1
                return b
        start = pos
        result = 0
        shift = 0
        while True:
            if pos >= end:
                self.pos = pos
                self.eof(what)
            b = buf[pos]
            pos += 1
            if shift == 28 and b > 0x0F:
                self.err(f"malformed LEB128 {what}: integer too large", start)
            result |= (b & 0x7F) << shift
            if b < 0x80:
                self.pos = pos
                return result
            shift += 7

    def u64(self, what: str = "u64") -> int:
        buf = self.buf
        pos = self.pos
        end = self.end
        start = pos
        result = 0
        shift = 0
        while True:
            if pos >= end:
                self.pos = pos
                self.eof(what)
            b = buf[pos]
            pos += 1
            if shift == 63 and b > 0x01:
                self.err(f"malformed LEB128 {what}: integer too large", start)
            result |= (b & 0x7F) << shift
            if b < 0x80:
                self.pos = pos
                return result
            shift += 7

    def s33(self, what: str) -> int:
        buf = self.buf
        pos = self.pos
        end = self.end
        start = pos
        result = 0
        shift = 0
        while True:
            if pos >= end:
                self.pos = pos
                self.eof(what)
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
            if shift >= 35:
                self.err(f"malformed LEB128 {what}: integer too large", start)
        self.pos = pos
        if b & 0x40:
            result -= 1 << shift
        return result

    def name(self, what: str = "name") -> str:
        n = self.u32(f"{what} length")
        pos = self.pos
        if pos + n > self.end:
            self.eof(f"{what} of {n} bytes")
        self.pos = pos + n
        try:
            return str(self.buf[pos:pos + n], "utf-8")
        except UnicodeDecodeError as e:
            raise DecodeError(pos + e.start, f"malformed UTF-8 in {what}") from None

    def bytes_(self, n: int, what: str) -> bytes:
        pos = self.pos
        if pos + n > self.end:
            self.eof(f"{what} of {n} bytes")
        self.pos = pos + n
        return bytes(self.buf[pos:pos + n])

    def flag(self, what: str) -> bool:
        b = self.u8(what)
        if b > 1:
            self.err(f"expected 0x00 or 0x01 for {what}, found 0x{b:02x}", self.pos - 1)
        return b == 1

    def vec(self, fn, what: str) -> tuple:
        n = self.u32(f"{what} count")
        if n > self.end - self.pos:
            self.err(f"{what} count {n} exceeds the remaining "
                     f"{self.end - self.pos} bytes", self.pos - 1)
        return tuple([fn() for _ in range(n)])

    def optional(self, fn, what: str):
        b = self.u8(f"optional {what}")
        if b == 0:
            return None
        if b == 1:
            return fn()
        self.err(f"expected 0x00 or 0x01 (optional {what}), found 0x{b:02x}", self.pos - 1)

    # -- component --------------------------------------------------------

    def preamble(self):
        start = self.pos
        if self.end - start < 4 or bytes(self.buf[start:start + 4]) != MAGIC:
            got = bytes(self.buf[start:min(start + 4, self.end)]).hex(" ")
            self.err(f"expected magic \\0asm (00 61 73 6d), found {got or 'end of input'}", start)
        if self.end - start < 8:
            self.pos = self.end
            self.eof("version and layer fields")
        v = bytes(self.buf[start + 4:start + 8])
        if v == CORE_MODULE_HEADER[4:]:
            self.err("not a component (this is a core wasm module)", start + 4)
        version = v[0] | (v[1] << 8)
        layer = v[2] | (v[3] << 8)
        if layer != COMPONENT_LAYER:
            self.err(f"expected component layer 0x01 0x00, found {v[2:].hex(' ')}", start + 6)
        if version != COMPONENT_VERSION:
            self.err(f"unsupported component version 0x{version:x} "
                     f"(expected 0x{COMPONENT_VERSION:x})", start + 4)
        self.pos = start + 8

    def component(self) -> A.Component:
        """Decode a component occupying [pos, end)."""
        start = self.pos
        self.preamble()
        comp = A.Component(offset=start)
        defs = comp.definitions
        outer_end = self.end
        while self.pos < outer_end:
            sec_start = self.pos
            sid = self.buf[sec_start]
            self.pos += 1
            if sid > 12:
                self.err(f"expected section id (0-12), found 0x{sid:02x}", sec_start)
            size = self.u32("section size")
            body = self.pos
            if size > outer_end - body:
                self.err(f"{_SECTION_NAMES[sid]} section of 0x{size:x} bytes runs past "
                         f"the end of the {'input' if outer_end >= self.total else 'component'} "
                         f"(0x{outer_end:x})", sec_start)
            sec_end = body + size
            self.end = sec_end
            if sid == 1:
                defs.append(self.core_module(sec_end))
            elif sid == 0:
                self.custom(comp, sec_start)
            elif sid == 4:
                sub = self.component()
                defs.append(A.ComponentDef(sub, memoryview(self.buf)[body:sec_end]))
            elif sid == 9:
                defs.append(self.start())
            else:
                fn = self._VEC_SECTIONS[sid]
                n = self.u32(f"{_SECTION_NAMES[sid]} section count")
                for _ in range(n):
                    defs.append(fn(self))
            if self.pos != sec_end:
                self.err(f"{_SECTION_NAMES[sid]} section ends at 0x{sec_end:x} but its "
                         f"contents end at 0x{self.pos:x}" if self.pos < sec_end else
                         f"{_SECTION_NAMES[sid]} section overrun", self.pos)
            self.end = outer_end
        comp.end = self.pos
        return comp

    def core_module(self, sec_end: int) -> A.CoreModuleDef:
        start = self.pos
        if sec_end - start < 8:
            self.pos = sec_end
            self.eof("core module header")
        hdr = bytes(self.buf[start:start + 8])
        if hdr != CORE_MODULE_HEADER:
            if hdr[:4] == MAGIC and hdr[6:8] == b"\x01\x00":
                self.err("expected a core module in core module section, found a component", start)
            self.err(f"expected core module header 00 61 73 6d 01 00 00 00, found {hdr.hex(' ')}", start)
        self.pos = start + 8
        self.scan_core_sections(sec_end)
        data = bytes(self.buf[start:sec_end])
        self.pos = sec_end
        return A.CoreModuleDef(data, start)

    def scan_core_sections(self, mod_end: int):
        """Light structural check of an embedded core module: section ids,
        sizes and order (contents are left to wasmtime).  O(#sections)."""
        buf = self.buf
        last = 0
        while self.pos < mod_end:
            at = self.pos
            sid = buf[at]
            self.pos = at + 1
            rank = _CORE_SECTION_RANK.get(sid)
            if rank is None:
                self.err(f"expected core section id (0-13), found 0x{sid:02x}", at)
            size = self.u32("core section size")
            if size > mod_end - self.pos:
                self.err(f"core section {sid} of 0x{size:x} bytes runs past the end of "
                         f"the core module (0x{mod_end:x})", at)
            if rank:
                if rank <= last:
                    self.err(f"core section {sid} out of order", at)
                last = rank
            self.pos += size

    def custom(self, comp: A.Component, sec_start: int):
        name = self.name("custom section name")
        start = self.pos
        end = self.end
        data = bytes(self.buf[start:end])
        comp.custom_sections.append(A.CustomSection(name, data, sec_start))
        if name == "component-name" and comp.names is None:
            try:
                comp.names = self.name_section()
            except DecodeError:
                comp.names = None       # invalid name sections are ignored
        self.pos = end

    def name_section(self) -> A.ComponentNames:
        names = A.ComponentNames()
        while self.pos < self.end:
            sub = self.u8("name subsection id")
            size = self.u32("name subsection size")
            sub_end = self.pos + size
            if sub_end > self.end:
                self.eof("name subsection")
            if sub == 0:
                names.component = self.name()
            elif sub == 1:
                sort = self.sort()
                m = names.sort_names.setdefault(sort, {})
                for _ in range(self.u32("name map count")):
                    idx = self.u32("index")
                    m[idx] = self.name()
            self.pos = sub_end
        return names

    # -- sorts ----------------------------------------------------------------

    def core_sort(self) -> A.CoreSort:
        b = self.u8("core sort")
        try:
            return _CORE_SORTS[b]
        except KeyError:
            self.err(f"expected core sort (0x00-0x04, 0x10-0x12), found 0x{b:02x}", self.pos - 1)

    def sort(self) -> A.Sort:
        b = self.u8("sort")
        if b == 0:
            return _CORE_TO_SORT[self.core_sort()]
        try:
            return _SORTS[b]
        except KeyError:
            self.err(f"expected sort (0x00-0x05), found 0x{b:02x}", self.pos - 1)

    def core_sortidx(self) -> A.CoreSortIdx:
        s = self.core_sort()
        return A.CoreSortIdx(s, self.u32(f"core {s.value} index"))

    def sortidx(self) -> A.SortIdx:
        s = self.sort()
        return A.SortIdx(s, self.u32(f"{s.value} index"))

    # -- section 2: core instances --------------------------------------------------

    def core_instance(self) -> A.CoreInstanceDef:
        tag = self.u8("core instance expression")
        if tag == 0x00:
            m = self.u32("core module index")
            args = self.vec(self._core_instantiate_arg, "instantiate argument")
            return A.CoreInstantiate(m, args)
        if tag == 0x01:
            return A.CoreInlineExports(self.vec(self._core_inline_export, "inline export"))
        self.err(f"expected core instance expression (0x00 instantiate or 0x01 exports), "
                 f"found 0x{tag:02x}", self.pos - 1)

    def _core_instantiate_arg(self):
        n = self.name("instantiate argument name")
        self.expect(0x12, "core sort `instance` in instantiate argument")
        return A.CoreInstantiateArg(n, self.u32("core instance index"))

    def _core_inline_export(self):
        n = self.name("export name")
        return A.CoreInlineExport(n, self.core_sortidx())

    # -- section 5: instances --------------------------------------------------

    def instance(self) -> A.InstanceDef:
        tag = self.u8("instance expression")
        if tag == 0x00:
            c = self.u32("component index")
            args = self.vec(self._instantiate_arg, "instantiate argument")
            return A.Instantiate(c, args)
        if tag == 0x01:
            return A.InlineExports(self.vec(self._inline_export, "inline export"))
        self.err(f"expected instance expression (0x00 instantiate or 0x01 exports), "
                 f"found 0x{tag:02x}", self.pos - 1)

    def _instantiate_arg(self):
        n = self.name("instantiate argument name")
        return A.InstantiateArg(n, self.sortidx())

    def _inline_export(self):
        n, attrs = self.nameattributes()
        return A.InlineExport(n, self.sortidx(), attrs)

    # -- names with attributes ------------------------------------------------

    def nameattributes(self):
        k = self.u8("name kind")
        if k == 0x00:
            return self.name("extern name"), None
        if k == 0x01:
            return self.name("extern name"), A.NameAttrs(kind=1)
        if k == 0x02:
            n = self.name("extern name")
            implements = version = ext_id = None
            for _ in range(self.u32("attribute count")):
                a = self.u8("attribute")
                if a == 0x00:
                    implements = self.name("interface name")
                elif a == 0x01:
                    version = self.name("version suffix")
                elif a == 0x02:
                    ext_id = self.name("external id")
                else:
                    self.err(f"expected name attribute (0x00-0x02), found 0x{a:02x}", self.pos - 1)
            return n, A.NameAttrs(2, implements, version, ext_id)
        self.err(f"expected name kind (0x00-0x02), found 0x{k:02x}", self.pos - 1)

    # -- section 6: aliases ----------------------------------------------------

    def alias(self) -> A.AliasDef:
        at = self.pos
        s = self.sort()
        tag = self.u8("alias target")
        if tag == 0x00:
            i = self.u32("instance index")
            return A.ExportAlias(s, i, self.name("export name"))
        if tag == 0x01:
            i = self.u32("core instance index")
            return A.CoreExportAlias(s, i, self.name("export name"))
        if tag == 0x02:
            if s not in _OUTER_ALIAS_SORTS:
                self.err(f"expected outer alias sort (core module, core type, component "
                         f"or type), found {s.value}", at)
            ct = self.u32("outer count")
            return A.OuterAlias(s, ct, self.u32("outer index"))
        self.err(f"expected alias target (0x00 export, 0x01 core export, 0x02 outer), "
                 f"found 0x{tag:02x}", self.pos - 1)

    # -- core types ------------------------------------------------------------

    def core_valtype(self, what: str = "core value type") -> A.CoreValType:
        b = self.u8(what)
        t = _CORE_NUM.get(b)
        if t is not None:
            return t
        return self._core_reftype_rest(b, what)

    def _core_reftype_rest(self, b: int, what: str) -> A.CoreRefType:
        h = _ABSHEAP.get(b)
        if h is not None:
            return A.CoreRefType(True, h)
        if b == 0x63 or b == 0x64:
            heap, shared = self.heaptype()
            return A.CoreRefType(b == 0x63, heap, shared)
        self.err(f"expected {what}, found 0x{b:02x}", self.pos - 1)

    def core_reftype(self) -> A.CoreRefType:
        return self._core_reftype_rest(self.u8("reference type"), "reference type")

    def heaptype(self):
        b = self.peek("heap type")
        if b == 0x65:
            self.pos += 1
            b = self.u8("heap type")
            h = _ABSHEAP.get(b)
            if h is None:
                self.err(f"expected abstract heap type after `shared`, found 0x{b:02x}", self.pos - 1)
            return h, True
        h = _ABSHEAP.get(b)
        if h is not None:
            self.pos += 1
            return h, False
        at = self.pos
        idx = self.s33("heap type")
        if idx < 0:
            self.err(f"expected heap type, found 0x{b:02x}", at)
        return idx, False

    def storage_type(self):
        b = self.peek("storage type")
        if b in _CORE_PACKED:
            self.pos += 1
            return _CORE_PACKED[b]
        return self.core_valtype("storage type")

    def field_type(self) -> A.CoreFieldType:
        st = self.storage_type()
        return A.CoreFieldType(st, self.flag("field mutability"))

    def comptype(self, b: int):
        if b == 0x60:
            ps = self.vec(self.core_valtype, "param")
            rs = self.vec(self.core_valtype, "result")
            return A.CoreFuncType(ps, rs)
        if b == 0x5F:
            return A.CoreStructType(self.vec(self.field_type, "field"))
        if b == 0x5E:
            return A.CoreArrayType(self.field_type())
        if b == 0x5D:
            return A.CoreContType(self.s33("continuation type index"))
        self.err(f"expected core composite type (0x60 func, 0x5f struct, 0x5e array), "
                 f"found 0x{b:02x}", self.pos - 1)

    def subtype(self, allow_bare_50: bool = True):
        b = self.u8("core type")
        final = None
        if b == 0x00:
            self.expect(0x50, "`sub` opcode after 0x00")
            final = False
        elif b == 0x50 and allow_bare_50:
            final = False
        elif b == 0x4F:
            final = True
        if final is None:
            return self.comptype(b)
        sups = self.vec(lambda: self.u32("supertype index"), "supertype")
        ct = self.comptype(self.u8("core composite type"))
        return A.CoreSubType(final, sups, ct)

    def core_rectype(self):
        """``core:rectype`` where 0x50 means non-final ``sub`` (module decls,
        rec groups)."""
        if self.peek("core type") == 0x4E:
            self.pos += 1
            return A.CoreRecType(self.vec(self.subtype, "rec group member"))
        return self.subtype()

    def core_type(self) -> A.CoreTypeDef:
        """``core:type`` at component level (0x50 = module type)."""
        b = self.peek("core type")
        if b == 0x50:
            self.pos += 1
            return A.CoreTypeDef(A.CoreModuleType(self.vec(self.module_decl, "module declaration")))
        if b == 0x4E:
            return A.CoreTypeDef(self.core_rectype())
        return A.CoreTypeDef(self.subtype(allow_bare_50=False))

    def module_decl(self):
        tag = self.u8("module declaration")
        if tag == 0x00:
            return self.core_import()
        if tag == 0x01:
            return A.CoreTypeDecl(self.core_rectype())
        if tag == 0x02:
            self.expect(0x10, "core sort `type` in module alias")
            self.expect(0x01, "`outer` in module alias")
            ct = self.u32("outer count")
            return A.CoreOuterAliasDecl(ct, self.u32("outer index"))
        if tag == 0x03:
            n = self.name("export name")
            return A.CoreExportDecl(n, self.core_externtype())
        self.err(f"expected module declaration (0x00-0x03), found 0x{tag:02x}", self.pos - 1)

    def core_import(self) -> A.CoreImportDecl:
        m = self.name("import module name")
        n = self.name("import name")
        return A.CoreImportDecl(m, n, self.core_externtype())

    def limits(self, flags: int) -> A.Limits:
        mn = self.u64("limits minimum")
        mx = self.u64("limits maximum") if flags & 1 else None
        return A.Limits(mn, mx)

    def core_externtype(self):
        k = self.u8("core extern type")
        if k == 0x00:
            return A.CoreFuncExtern(self.u32("core type index"))
        if k == 0x01:
            rt = self.core_reftype()
            flags = self.u8("table limits flags")
            if flags & ~0x07:
                self.err(f"expected table limits flags, found 0x{flags:02x}", self.pos - 1)
            return A.CoreTableType(rt, self.limits(flags), bool(flags & 4), bool(flags & 2))
        if k == 0x02:
            flags = self.u8("memory limits flags")
            if flags & ~0x0F:
                self.err(f"expected memory limits flags, found 0x{flags:02x}", self.pos - 1)
            lim = self.limits(flags)
            psl = self.u32("page size log2") if flags & 8 else None
            return A.CoreMemoryType(lim, bool(flags & 2), bool(flags & 4), psl)
        if k == 0x03:
            vt = self.core_valtype()
            m = self.u8("global mutability")
            if m & ~0x03:
                self.err(f"expected global mutability (0x00/0x01), found 0x{m:02x}", self.pos - 1)
            return A.CoreGlobalType(vt, bool(m & 1), bool(m & 2))
        if k == 0x04:
            self.expect(0x00, "tag attribute")
            return A.CoreTagType(self.u32("core type index"))
        self.err(f"expected core extern type (0x00-0x04), found 0x{k:02x}", self.pos - 1)

    # -- section 7: types ------------------------------------------------------

    def valtype(self) -> A.ValType:
        b = self.peek("value type")
        p = _PRIMS.get(b)
        if p is not None:
            self.pos += 1
            return p
        at = self.pos
        i = self.s33("value type")
        if i < 0:
            self.err(f"expected value type (primitive or type index), found 0x{b:02x}", at)
        return i

    def _labelvaltype(self) -> A.LabelValType:
        l = self.name("label")
        return A.LabelValType(l, self.valtype())

    def _case(self) -> A.Case:
        l = self.name("case label")
        t = self.optional(self.valtype, "case type")
        self.expect(0x00, "end of variant case")
        return A.Case(l, t)

    def _label(self) -> str:
        return self.name("label")

    def type(self) -> A.TypeDef:
        return A.TypeDef(self.deftype())

    def deftype(self):
        b = self.u8("type definition")
        p = _PRIMS.get(b)
        if p is not None:
            return p
        if b == 0x40 or b == 0x43:
            ps = self.vec(self._labelvaltype, "param")
            return A.FuncType(ps, self.resultlist(), b == 0x43)
        if b == 0x72:
            return A.RecordType(self.vec(self._labelvaltype, "field"))
        if b == 0x71:
            return A.VariantType(self.vec(self._case, "case"))
        if b == 0x70:
            return A.ListType(self.valtype())
        if b == 0x67:
            t = self.valtype()
            return A.ListType(t, self.u32("fixed list length"))
        if b == 0x6F:
            return A.TupleType(self.vec(self.valtype, "tuple element"))
        if b == 0x6E:
            return A.FlagsType(self.vec(self._label, "flag"))
        if b == 0x6D:
            return A.EnumType(self.vec(self._label, "enum case"))
        if b == 0x6B:
            return A.OptionType(self.valtype())
        if b == 0x6A:
            ok = self.optional(self.valtype, "result type")
            return A.ResultType(ok, self.optional(self.valtype, "error type"))
        if b == 0x69:
            return A.OwnType(self.u32("resource type index"))
        if b == 0x68:
            return A.BorrowType(self.u32("resource type index"))
        if b == 0x66:
            return A.StreamType(self.optional(self.valtype, "stream element type"))
        if b == 0x65:
            return A.FutureType(self.optional(self.valtype, "future element type"))
        if b == 0x63:
            k = self.valtype()
            return A.MapType(k, self.valtype())
        if b == 0x41:
            return A.ComponentType(self.vec(self.component_decl, "component type declaration"))
        if b == 0x42:
            return A.InstanceType(self.vec(self.instance_decl, "instance type declaration"))
        if b == 0x3F:
            rep = self.core_valtype("resource representation")
            return A.ResourceType(rep, self.optional(
                lambda: self.u32("destructor core func index"), "destructor"))
        self.err(f"expected type definition opcode, found 0x{b:02x}", self.pos - 1)

    def resultlist(self) -> Optional[A.ValType]:
        b = self.u8("result list")
        if b == 0x00:
            return self.valtype()
        if b == 0x01:
            n = self.u32("named result count")
            if n != 0:
                self.err("named results are not supported (expected 0x01 0x00)", self.pos - 1)
            return None
        self.err(f"expected result list (0x00 or 0x01), found 0x{b:02x}", self.pos - 1)

    def component_decl(self):
        if self.peek("component type declaration") == 0x03:
            self.pos += 1
            n, attrs = self.nameattributes()
            return A.ImportDef(n, self.externtype(), attrs)
        return self.instance_decl()

    def instance_decl(self):
        tag = self.u8("instance type declaration")
        if tag == 0x00:
            return self.core_type()
        if tag == 0x01:
            return self.type()
        if tag == 0x02:
            return self.alias()
        if tag == 0x04:
            n, attrs = self.nameattributes()
            return A.ExportDecl(n, self.externtype(), attrs)
        self.err(f"expected type declaration (0x00 core type, 0x01 type, 0x02 alias, "
                 f"0x03 import, 0x04 export), found 0x{tag:02x}", self.pos - 1)

    def externtype(self) -> A.ExternType:
        k = self.u8("extern type")
        if k == 0x00:
            self.expect(0x11, "core sort `module` in extern type")
            return A.CoreModuleExtern(self.u32("core type index"))
        if k == 0x01:
            return A.FuncExtern(self.u32("type index"))
        if k == 0x02:
            b = self.u8("value bound")
            if b == 0x00:
                return A.ValueExtern(eq_value_idx=self.u32("value index"))
            if b == 0x01:
                return A.ValueExtern(type=self.valtype())
            self.err(f"expected value bound (0x00 eq, 0x01 type), found 0x{b:02x}", self.pos - 1)
        if k == 0x03:
            b = self.u8("type bound")
            if b == 0x00:
                return A.TypeExtern(self.u32("type index"))
            if b == 0x01:
                return A.TypeExtern(None)
            self.err(f"expected type bound (0x00 eq, 0x01 sub resource), found 0x{b:02x}",
                     self.pos - 1)
        if k == 0x04:
            return A.ComponentExtern(self.u32("type index"))
        if k == 0x05:
            return A.InstanceExtern(self.u32("type index"))
        self.err(f"expected extern type (0x00-0x05), found 0x{k:02x}", self.pos - 1)

    # -- section 8: canon ------------------------------------------------------

    def canonopts(self) -> A.CanonOpts:
        n = self.u32("canonopt count")
        if n == 0:
            return _EMPTY_OPTS
        kw = {}
        raw = []
        for _ in range(n):
            at = self.pos
            b = self.u8("canonopt")
            enc = _STRING_ENCODINGS.get(b)
            if enc is not None:
                key, val = "string_encoding", enc
            elif b == 0x03:
                key, val = "memory", self.u32("memory index")
            elif b == 0x04:
                key, val = "realloc", self.u32("realloc func index")
            elif b == 0x05:
                key, val = "post_return", self.u32("post-return func index")
            elif b == 0x06:
                key, val = "is_async", True
            elif b == 0x07:
                key, val = "callback", self.u32("callback func index")
            elif b == 0x08:
                key, val = "core_type", self.u32("core type index")
            elif b == 0x09:
                key, val = "gc", True
            else:
                self.err(f"expected canonopt (0x00-0x09), found 0x{b:02x}", at)
            kw[key] = val
            raw.append((key, val))
        return A.CanonOpts(**kw, raw=tuple(raw))

    def canon(self) -> A.CanonDef:
        at = self.pos
        op = self.u8("canon opcode")
        if op == 0x00:
            self.expect(0x00, "`func` sort after canon lift")
            f = self.u32("core func index")
            opts = self.canonopts()
            return A.CanonLift(f, opts, self.u32("type index"))
        if op == 0x01:
            self.expect(0x00, "`func` sort after canon lower")
            f = self.u32("func index")
            return A.CanonLower(f, self.canonopts())
        if op == 0x07:
            return A.CanonResourceDrop(self.u32("resource type index"), True)
        entry = _CANON_TABLE.get(op)
        if entry is None:
            self.err(f"expected canon opcode, found 0x{op:02x}", at)
        cls, imms = entry
        if not imms:
            return cls()
        args = []
        for c in imms:
            if c == "u":
                args.append(self.u32("index"))
            elif c == "o":
                args.append(self.canonopts())
            elif c == "a":
                args.append(self.flag("`async?`"))
            elif c == "c":
                args.append(self.flag("`cancellable?`"))
            elif c == "s":
                args.append(self.flag("`shared?`"))
            elif c == "r":
                args.append(self.resultlist())
            else:  # 'v'
                args.append(self.core_valtype())
        return cls(*args)

    # -- start / import / export / value ----------------------------------------

    def start(self) -> A.StartDef:
        f = self.u32("func index")
        args = self.vec(lambda: self.u32("value index"), "start argument")
        return A.StartDef(f, args, self.u32("result count"))

    def import_(self) -> A.ImportDef:
        n, attrs = self.nameattributes()
        return A.ImportDef(n, self.externtype(), attrs)

    def export(self) -> A.ExportDef:
        n, attrs = self.nameattributes()
        si = self.sortidx()
        et = self.optional(self.externtype, "export type ascription")
        return A.ExportDef(n, si, et, attrs)

    def value(self) -> A.ValueDef:
        t = self.valtype()
        n = self.u32("value length")
        return A.ValueDef(t, self.bytes_(n, "value"))

    _VEC_SECTIONS = {
        2: core_instance, 3: core_type, 5: instance, 6: alias, 7: type,
        8: canon, 10: import_, 11: export, 12: value,
    }


# ---------------------------------------------------------------------------


def decode(data: Union[bytes, bytearray, memoryview]) -> A.Component:
    """Decode a component binary into an :class:`ast.Component`.

    Raises :class:`DecodeError` for malformed input (including a core module
    passed where a component is expected)."""
    if isinstance(data, bytes):
        buf = data
    elif isinstance(data, (bytearray, memoryview)):
        buf = memoryview(data).cast("B") if isinstance(data, memoryview) else memoryview(data)
    else:
        raise TypeError(f"decode() expects bytes-like data, got {type(data).__name__}")
    d = _Decoder(buf)
    try:
        return d.component()
    except DecodeError:
        raise
    except (IndexError, ValueError, TypeError, RecursionError) as e:  # defensive
        raise DecodeError(d.pos, f"malformed component ({type(e).__name__}: {e})") from None


def decode_file(path) -> A.Component:
    with open(path, "rb") as f:
        return decode(f.read())


def decode_wat(text: str) -> A.Component:
    """Convenience: ``decode(wasmtime.wat2wasm(text))``."""
    import wasmtime
    return decode(bytes(wasmtime.wat2wasm(text)))

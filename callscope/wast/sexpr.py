"""A small, fast S-expression reader for ``.wast`` scripts.

It knows only the lexical rules of the WebAssembly text format: atoms,
strings (with the wasm escapes ``\\n \\t \\r \\\\ \\' \\" \\hh \\u{...}``),
``;;`` line comments, nested ``(; ... ;)`` block comments and annotations
``(@name ...)``. It does not know what any keyword means: that is
:mod:`callscope.wast.script`'s job.

Every node remembers where it came from: its start and end offsets in the
source text and its 1-based line. A component form's exact text can therefore
be cut out of the script (``node.text``) and handed to ``wasmtime.wat2wasm``.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Union


class SExprError(ValueError):
    """The text is not a well-formed S-expression sequence."""

    def __init__(self, message: str, line: int):
        super().__init__(f"{message} at line {line}")
        self.message = message
        self.line = line


class Source:
    """The text being read, with a line index for offset -> line lookups."""

    __slots__ = ("text", "path", "_newlines")

    def __init__(self, text: str, path: str | None = None):
        self.text = text
        self.path = path
        self._newlines = [m.start() for m in re.finditer("\n", text)]

    def line_of(self, pos: int) -> int:
        return bisect_right(self._newlines, pos - 1) + 1


class Atom(str):
    """A keyword, identifier (``$x``) or number. Compares equal to its text.

    ``start``/``end``/``line`` say where it was read."""

    start: int
    end: int
    line: int

    @property
    def is_id(self) -> bool:
        return self.startswith("$")


class String:
    """A string literal. ``value`` is its bytes after unescaping; ``raw`` is the
    literal as written, quotes included."""

    __slots__ = ("value", "raw", "start", "end", "line")

    def __init__(self, value: bytes, raw: str, start: int, end: int, line: int):
        self.value = value
        self.raw = raw
        self.start = start
        self.end = end
        self.line = line

    @property
    def text(self) -> str:
        """The value as UTF-8 text; raises UnicodeDecodeError when it is not."""
        return self.value.decode("utf-8")

    def __eq__(self, other):
        if isinstance(other, String):
            return self.value == other.value
        if isinstance(other, bytes):
            return self.value == other
        if isinstance(other, str):
            return self.value == other.encode("utf-8")
        return NotImplemented

    def __hash__(self):
        return hash(self.value)

    def __repr__(self) -> str:
        return f"String({self.raw})"


class SList(list):
    """A parenthesised form: a list of child nodes. ``start``/``end`` are the
    offsets of its ``(`` and one past its ``)``; ``text`` is the exact source."""

    __slots__ = ("start", "end", "line", "source")

    @property
    def text(self) -> str:
        return self.source.text[self.start:self.end]

    @property
    def head(self) -> str | None:
        """The leading keyword, if the first child is an atom."""
        if self and isinstance(self[0], Atom):
            return str(self[0])
        return None

    def __repr__(self) -> str:
        return f"SList(line={self.line}, {list.__repr__(self)})"


class Annotation(SList):
    """An annotation ``(@name ...)``. Kept as a node (its ``text`` is the
    exact source) so spans stay exact; script readers skip it."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return str(self[0])[1:] if self else ""


Node = Union[Atom, String, SList]

# One alternative per token kind. Group numbers are used below.
_TOKEN = re.compile(
    r"""
    (\s+)                       # 1 whitespace
  | (;;[^\n]*)                  # 2 line comment
  | (\(;)                       # 3 block comment start
  | (\(@)                       # 4 annotation start
  | (\()                        # 5 open
  | (\))                        # 6 close
  | ("(?:[^"\\\n]|\\.)*")       # 7 string
  | ([^\s()";]+)                # 8 atom
  | (.)                         # 9 anything else: an error
    """,
    re.VERBOSE | re.DOTALL,
)
_BLOCK = re.compile(r"\(;|;\)")
_ESCAPE = re.compile(r"\\(u\{([0-9a-fA-F_]+)\}|[0-9a-fA-F]{2}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\", "'": b"'", '"': b'"'}


def unescape(body: str, line: int = 0) -> bytes:
    """Decode the inside of a wasm string literal to bytes."""
    if "\\" not in body:
        return body.encode("utf-8")
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(body):
        out += body[pos:m.start()].encode("utf-8")
        pos = m.end()
        esc = m.group(1)
        if m.group(2) is not None:
            cp = int(m.group(2).replace("_", ""), 16)
            if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                raise SExprError(f"invalid unicode escape \\u{{{m.group(2)}}}", line)
            out += chr(cp).encode("utf-8")
        elif len(esc) == 2:
            out.append(int(esc, 16))
        elif esc in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[esc]
        else:
            raise SExprError(f"invalid escape \\{esc} in string", line)
    out += body[pos:].encode("utf-8")
    return bytes(out)


def parse(text: str, path: str | None = None) -> list[Node]:
    """Read every top-level form of ``text``. Raises :class:`SExprError`."""
    src = Source(text, path)
    line_of = src.line_of
    match = _TOKEN.match
    n = len(text)
    pos = 0
    top: list[Node] = []
    stack: list[SList] = []
    cur: list = top
    while pos < n:
        m = match(text, pos)
        kind = m.lastindex
        end = m.end()
        if kind <= 2:  # whitespace, line comment
            pass
        elif kind == 8:
            a = Atom(m.group(8))
            a.start = pos
            a.end = end
            a.line = line_of(pos)
            cur.append(a)
        elif kind == 5 or kind == 4:
            node = Annotation() if kind == 4 else SList()
            node.start = pos
            node.line = line_of(pos)
            node.source = src
            cur.append(node)
            stack.append(node)
            cur = node
            if kind == 4:
                # the annotation's name is the atom glued to "(@"
                nm = _TOKEN.match(text, pos + 2)
                if nm is None or nm.lastindex != 8:
                    raise SExprError("empty annotation name", line_of(pos))
                a = Atom("@" + nm.group(8))
                a.start = pos + 1
                a.end = nm.end()
                a.line = node.line
                node.append(a)
                end = nm.end()
        elif kind == 6:
            if not stack:
                raise SExprError("unbalanced parenthesis: unexpected ')'", line_of(pos))
            node = stack.pop()
            node.end = end
            cur = stack[-1] if stack else top
        elif kind == 7:
            raw = m.group(7)
            line = line_of(pos)
            cur.append(String(unescape(raw[1:-1], line), raw, pos, end, line))
        elif kind == 3:
            end = _skip_block_comment(text, pos, line_of)
        else:  # kind == 9
            ch = m.group(9)
            if ch == '"':
                raise SExprError("unterminated string", line_of(pos))
            if ch == ";":
                raise SExprError("unexpected ';'", line_of(pos))
            raise SExprError(f"unexpected character {ch!r}", line_of(pos))
        pos = end
    if stack:
        raise SExprError("unbalanced parenthesis: '(' never closed", stack[-1].line)
    return top


def _skip_block_comment(text: str, pos: int, line_of) -> int:
    depth = 0
    for m in _BLOCK.finditer(text, pos):
        if m.group() == "(;":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return m.end()
    raise SExprError("unterminated block comment", line_of(pos))


def strip_annotations(form: SList) -> list[Node]:
    """The children of ``form`` that are not annotations."""
    return [c for c in form if not isinstance(c, Annotation)]


def describe(node: Node, limit: int = 60) -> str:
    """Short human-readable text of a node for messages."""
    if isinstance(node, SList):
        t = " ".join(node.text.split())
    elif isinstance(node, String):
        t = node.raw
    else:
        t = str(node)
    return t if len(t) <= limit else t[: limit - 3] + "..."

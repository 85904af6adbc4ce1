"""Text from traces, paths and user input made safe for a terminal.

Trace strings come from guests and from files attached to bug reports: an
ESC or OSC sequence in one would drive the terminal (retitle it, move the
cursor, write to the clipboard). Every text output shows such characters
escaped, as Python writes them: ``\\x1b``, ``\\x9b``, ``\\u202e``.
Escaped are the C0 controls (tab and newline too, unless kept), DEL, the
C1 controls, and the Unicode format characters that reorder or hide text
(bidi embeddings/overrides/isolates, zero-width joiners, line/paragraph
separators). A backslash itself is left alone (the output is for people).
"""

from __future__ import annotations

import re

_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff"
_RE = re.compile(f"[{_UNSAFE}\t\n]")
_RE_KEEP_NL = re.compile(f"[{_UNSAFE}\t]")
_RE_JSON = re.compile(f"[{_UNSAFE}]")


def _repl(m: "re.Match[str]") -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def escape_controls(s: object, keep_newlines: bool = False) -> str:
    """``s`` (made a string) with control and format characters escaped."""
    s = s if isinstance(s, str) else str(s)
    return (_RE_KEEP_NL if keep_newlines else _RE).sub(_repl, s)


def escape_json(line: str) -> str:
    """A JSON text with the characters JSON leaves raw (DEL, C1, bidi...)
    written as ``\\uXXXX`` escapes: still the same JSON value."""
    return _RE_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


def safe_print(msg: object, file=None) -> None:
    """Print one line of text that may hold input (a path, a trace string)."""
    import sys

    print(escape_controls(msg), file=file if file is not None else sys.stderr)

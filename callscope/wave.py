"""WAVE: the WebAssembly Value Encoding that ``wasmtime run --invoke`` takes,
parsed against a component type into the spec's host representation, and
printed back.

``parse_call('handle(7, "https://a.test/x")')`` gives ``("handle", [args
text])``; ``parse_value(text, type)`` the value.
"""

from __future__ import annotations

import math
from typing import Any

from callscope.component import types as T


class WaveError(ValueError):
    pass


class _P:
    def __init__(self, text: str):
        self.s = text
        self.i = 0

    def ws(self):
        s, i = self.s, self.i
        while i < len(s) and s[i] in " \t\r\n":
            i += 1
        self.i = i

    def peek(self) -> str:
        self.ws()
        return self.s[self.i] if self.i < len(self.s) else ""

    def eat(self, ch: str) -> bool:
        if self.peek() == ch:
            self.i += 1
            return True
        return False

    def expect(self, ch: str):
        if not self.eat(ch):
            got = self.s[self.i:self.i + 10] or "end of input"
            raise WaveError(f"expected {ch!r} at column {self.i + 1}, found {got!r}")

    def word(self) -> str:
        self.ws()
        s, i = self.s, self.i
        j = i
        while j < len(s) and (s[j].isalnum() or s[j] in "-_%.+"):
            j += 1
        if j == i:
            got = s[i:i + 10] or "end of input"
            raise WaveError(f"expected a value at column {i + 1}, found {got!r}")
        self.i = j
        w = s[i:j]
        return w[1:] if w.startswith("%") else w

    def quoted(self, q: str) -> str:
        self.expect(q)
        s = self.s
        out = []
        while True:
            if self.i >= len(s):
                raise WaveError("unterminated quoted text")
            c = s[self.i]
            self.i += 1
            if c == q:
                return "".join(out)
            if c == "\\":
                e = s[self.i]
                self.i += 1
                if e == "n":
                    out.append("\n")
                elif e == "t":
                    out.append("\t")
                elif e == "r":
                    out.append("\r")
                elif e in "\\'\"":
                    out.append(e)
                elif e == "u":
                    self.expect("{")
                    j = s.index("}", self.i)
                    out.append(chr(int(s[self.i:j], 16)))
                    self.i = j + 1
                else:
                    raise WaveError(f"unknown escape \\{e}")
            else:
                out.append(c)


_INT_RANGES = {
    T.U8Type: (0, 2 ** 8 - 1), T.U16Type: (0, 2 ** 16 - 1), T.U32Type: (0, 2 ** 32 - 1),
    T.U64Type: (0, 2 ** 64 - 1), T.S8Type: (-2 ** 7, 2 ** 7 - 1), T.S16Type: (-2 ** 15, 2 ** 15 - 1),
    T.S32Type: (-2 ** 31, 2 ** 31 - 1), T.S64Type: (-2 ** 63, 2 ** 63 - 1),
}


def _value(p: _P, t) -> Any:
    tt = type(t)
    if tt in _INT_RANGES:
        w = p.word()
        try:
            v = int(w, 0)
        except ValueError:
            raise WaveError(f"expected an integer, found {w!r}") from None
        lo, hi = _INT_RANGES[tt]
        if not lo <= v <= hi:
            raise WaveError(f"{v} out of range for {tt.__name__[:-4].lower()}")
        return v
    if tt in (T.F32Type, T.F64Type):
        w = p.word()
        if w == "nan":
            return math.nan
        if w in ("inf", "+inf"):
            return math.inf
        if w == "-inf":
            return -math.inf
        try:
            return float(w)
        except ValueError:
            raise WaveError(f"expected a number, found {w!r}") from None
    if tt is T.BoolType:
        w = p.word()
        if w not in ("true", "false"):
            raise WaveError(f"expected true or false, found {w!r}")
        return w == "true"
    if tt is T.CharType:
        c = p.quoted("'")
        if len(c) != 1:
            raise WaveError(f"expected one character, found {c!r}")
        return c
    if tt is T.StringType:
        return p.quoted('"')
    if tt is T.ListType:
        p.expect("[")
        out = []
        while not p.eat("]"):
            out.append(_value(p, t.t))
            if not p.eat(","):
                p.expect("]")
                break
        return out
    if tt is T.TupleType:
        p.expect("(")
        out = {}
        for i, et in enumerate(t.ts):
            if i:
                p.expect(",")
            out[str(i)] = _value(p, et)
        p.eat(",")
        p.expect(")")
        return out
    if tt is T.RecordType:
        p.expect("{")
        fields = {f.label: f.t for f in t.fields}
        out = {}
        while not p.eat("}"):
            name = p.word()
            if name not in fields:
                raise WaveError(f"record has no field {name!r}")
            p.expect(":")
            out[name] = _value(p, fields[name])
            if not p.eat(","):
                p.expect("}")
                break
        for name, ft in fields.items():
            if name not in out:
                if isinstance(ft, T.OptionType):
                    out[name] = {"none": None}
                else:
                    raise WaveError(f"record field {name!r} missing")
        return out
    if tt is T.FlagsType:
        p.expect("{")
        out = {label: False for label in t.labels}
        while not p.eat("}"):
            name = p.word()
            if name not in out:
                raise WaveError(f"unknown flag {name!r}")
            out[name] = True
            if not p.eat(","):
                p.expect("}")
                break
        return out
    if tt is T.EnumType:
        w = p.word()
        if w not in t.labels:
            raise WaveError(f"unknown enum case {w!r}")
        return {w: None}
    if tt is T.OptionType:
        w = p.word()
        if w == "none":
            return {"none": None}
        if w == "some":
            p.expect("(")
            v = _value(p, t.t)
            p.expect(")")
            return {"some": v}
        raise WaveError(f"expected some(...) or none, found {w!r}")
    if tt is T.ResultType:
        w = p.word()
        if w not in ("ok", "err"):
            raise WaveError(f"expected ok or err, found {w!r}")
        label = "ok" if w == "ok" else "error"
        payload_t = t.ok if w == "ok" else t.error
        if payload_t is not None:
            p.expect("(")
            v = _value(p, payload_t)
            p.expect(")")
            return {label: v}
        return {label: None}
    if tt is T.VariantType:
        w = p.word()
        for c in t.cases:
            if c.label == w:
                if c.t is None:
                    return {w: None}
                p.expect("(")
                v = _value(p, c.t)
                p.expect(")")
                return {w: v}
        raise WaveError(f"unknown variant case {w!r}")
    raise WaveError(f"values of type {tt.__name__} cannot be written in WAVE here")


def parse_value(text: str, t) -> Any:
    p = _P(text)
    v = _value(p, t)
    p.ws()
    if p.i != len(p.s):
        raise WaveError(f"unexpected text after value: {p.s[p.i:p.i + 20]!r}")
    return v


def split_call(text: str) -> tuple[str, str]:
    """``'ns:pkg/iface#handle(1, "x")'`` → ``('ns:pkg/iface#handle', '1, "x"')``."""
    text = text.strip()
    i = text.find("(")
    if i <= 0 or not text.endswith(")"):
        raise WaveError(f"expected a call like name(arg, ...), found {text!r}")
    return text[:i].strip(), text[i + 1:-1]


def parse_args(text: str, ft: T.FuncType) -> list:
    p = _P(text)
    out = []
    for i, (name, t) in enumerate(ft.params):
        if i:
            p.expect(",")
        out.append(_value(p, t))
    p.eat(",")
    p.ws()
    if p.i != len(p.s):
        raise WaveError(f"too many arguments: {p.s[p.i:p.i + 20]!r} (expected {len(ft.params)})")
    return out


def _q(s: str, q: str) -> str:
    out = []
    for c in s:
        if c == q or c == "\\":
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20:
            out.append("\\u{%x}" % ord(c))
        else:
            out.append(c)
    return q + "".join(out) + q


def format_value(v, t=None) -> str:
    """Print a host value in WAVE (type-directed when ``t`` is given)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        if t is not None and isinstance(t, T.CharType):
            return _q(v, "'")
        return _q(v, '"')
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        et = t.t if isinstance(t, T.ListType) else None
        return "[" + ", ".join(format_value(x, et) for x in v) + "]"
    if isinstance(v, dict):
        if isinstance(t, T.TupleType):
            return "(" + ", ".join(format_value(v[str(i)], et) for i, et in enumerate(t.ts)) + ")"
        if isinstance(t, T.RecordType):
            return "{" + ", ".join(f"{f.label}: {format_value(v[f.label], f.t)}" for f in t.fields) + "}"
        if isinstance(t, T.FlagsType):
            return "{" + ", ".join(k for k, on in v.items() if on) + "}"
        if len(v) == 1:
            (k, x), = v.items()
            if k == "error":
                k = "err"
            if x is None:
                return k
            return f"{k}({format_value(x)})"
        return "{" + ", ".join(f"{k}: {format_value(x)}" for k, x in v.items()) + "}"
    if v is None:
        return "none"
    return repr(v)

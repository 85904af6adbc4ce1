"""Taint tokens: the forms a planted token is searched in, and the width of
the ids the drivers plant.

A guest rarely passes a request's data on byte for byte: it percent-encodes
a URL into a query string, JSON-escapes it into a body, base64s it into a
header. The drivers plant each token together with those encoded forms
(``encoded_forms``), so the recorder's plain substring search (TaintIndex
and its C twin) finds them without decoding anything per call; the model
maps a found form back to its token (``decode_form``) for the evidence.

Pure Python: the model and the runtime both use it (no wasmtime here).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Iterable, Optional
from urllib.parse import quote

__all__ = ["MIN_FORM", "encoded_forms", "expand_tokens", "request_id", "id_width"]

MIN_FORM = 6  # an encoded form shorter than this is not planted (chance hits)


def id_width(total: int) -> int:
    """The digits of the request ids of a run of ``total`` requests: fixed
    for the whole run (at least 4), so no id is a prefix of another."""
    return max(4, len(str(max(total, 1))))


def request_id(n: int, width: int) -> str:
    """``req-0007``: request ``n``'s id (taint token and label head)."""
    return f"req-{n:0{width}d}"


def _lower_hex(s: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), s)


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")  # what percent-encoding leaves as it is
_JSON_PLAIN = re.compile(r'[^"\\/\x00-\x1f\x7f-\U0010ffff]*')  # what JSON escaping leaves as it is


_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-")
# ASCII characters percent-encoded, upper- and lower-case hex (str.translate tables)
_PCT_UP = {i: f"%{i:02X}" for i in range(128) if chr(i) not in _SAFE}
_PCT_LO = {i: f"%{i:02x}" for i in range(128) if chr(i) not in _SAFE}
_B64_URL = str.maketrans("+/", "-_")


def encoded_forms(token: str) -> list:
    """``[(form, encoding)]``: the token's percent-encoded (upper- and
    lower-case hex; slashes kept or not; ``+`` for spaces),
    JSON/backslash-escaped and base64 (standard and URL-safe, any alignment)
    forms that differ from it, each once, in that order."""
    seen = {token}
    out: list = []
    for form, enc in _forms(token):
        if len(form) >= MIN_FORM and form not in seen:
            seen.add(form)
            out.append((form, enc))
    return out


def _forms(token: str):
    if not _UNRESERVED.fullmatch(token):
        if token.isascii():
            up, lo = token.translate(_PCT_UP), token.translate(_PCT_LO)
        else:
            up = quote(token, safe="")
            lo = _lower_hex(up)
        yield up, "percent"
        yield lo, "percent"
        if "%2F" in up:
            up1, lo1 = up.replace("%2F", "/"), lo.replace("%2f", "/")
            yield up1, "percent"
            yield lo1, "percent"
            if "%3A" in up1:
                yield up1.replace("%3A", ":"), "percent"
                yield lo1.replace("%3a", ":"), "percent"
        if "%20" in up:
            yield up.replace("%20", "+"), "percent"
    if not _JSON_PLAIN.fullmatch(token):
        j = json.dumps(token)[1:-1]
        yield j, "json"
        if "/" in j:
            yield j.replace("/", "\\/"), "json"
        if not token.isascii():
            yield json.dumps(token, ensure_ascii=False)[1:-1], "json"
    data = token.encode("utf-8")
    yield base64.b64encode(data).decode("ascii").rstrip("="), "base64"  # the token alone
    n = len(data)
    for k in (0, 1, 2):  # the characters that depend only on the token, wherever it starts
        first = -(-8 * k // 6)
        last = (8 * (k + n)) // 6
        if last - first >= MIN_FORM:
            f = base64.b64encode(b"\0" * k + data).decode("ascii")[first:last]
            yield f, "base64"
            if "+" in f or "/" in f:
                yield f.translate(_B64_URL), "base64"


class Planted(tuple):
    """A root's tokens: the first ``plain`` are the tokens themselves
    (recorded as ``taint.plant``), the rest their encoded forms (searched
    for, not recorded: the model derives them from the plain ones)."""

    plain: int

    @classmethod
    def make(cls, plain: list, forms: list) -> "Planted":
        t = cls(list(plain) + list(forms))
        t.plain = len(plain)
        return t


def expand_tokens(tokens: Iterable[str]) -> tuple:
    """The tokens, then every token's encoded forms (what a driver plants:
    a :class:`Planted` whose ``plain`` counts the tokens)."""
    toks = list(dict.fromkeys(t for t in tokens if t))
    seen = set(toks)
    forms = []
    for t in toks:
        for form, _ in encoded_forms(t):
            if form not in seen:
                seen.add(form)
                forms.append(form)
    return Planted.make(toks, forms)


def decode_form(form: str, candidates: Iterable[str]) -> Optional[tuple]:
    """``(token, encoding)`` when ``form`` is one of ``candidates`` or an
    encoded form of one; None otherwise."""
    cands = list(candidates)
    if form in cands:
        return form, "plain"
    for t in cands:
        for f, enc in encoded_forms(t):
            if f == form:
                return t, enc
    return None

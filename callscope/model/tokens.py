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

import functools
import json
import re
from binascii import b2a_base64
from typing import Iterable, Optional
from urllib.parse import quote

__all__ = ["MIN_FORM", "encoded_forms", "expand_tokens", "plant_tokens", "request_id", "id_width"]

MIN_FORM = 6  # an encoded form shorter than this is not planted (chance hits)


# root tasks that ended whose tokens the recorder still searches imports for
# (the taint window, --taint-window; docs/verdicts.md): an older root's are
# retired, so the index of a long recording (serve) stays bounded
DEFAULT_TAINT_WINDOW = 4096


def id_width(total: int) -> int:
    """The digits of the request ids of a run of ``total`` requests: fixed
    for the whole run (at least 4), so no id is a prefix of another."""
    return max(4, len(str(max(total, 1))))


def request_id(n: int, width: int) -> str:
    """``req-0007``: request ``n``'s id (taint token and label head)."""
    return f"req-{n:0{width}d}"


def _lower_hex(s: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), s)


_JSON_PLAIN = re.compile(r'[^"\\/\x00-\x1f\x7f-\U0010ffff]*')  # what JSON escaping leaves as it is


_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-")
# an ASCII character percent-encoded, upper- and lower-case hex
_PCT_UP = {chr(i): f"%{i:02X}" for i in range(128) if chr(i) not in _SAFE}
_PCT_LO = {chr(i): f"%{i:02x}" for i in range(128) if chr(i) not in _SAFE}
_ALIGN = (b"", b"\0", b"\0\0")
# a token of only these characters (a request id) has only base64 forms:
# percent-encoding and JSON escaping leave it as it is
BASE64_ONLY = "".join(sorted(_SAFE))


def encoded_forms(token: str) -> tuple:
    """``((form, encoding), ...)``: the token's percent-encoded (upper- and
    lower-case hex; slashes kept or not; ``+`` for spaces),
    JSON/backslash-escaped and base64 (standard and URL-safe, any alignment)
    forms that differ from it, each once, in that order. Cached: the
    drivers and the model ask for the same tokens' forms (the cache is
    bounded)."""
    return _encoded_forms(token)


try:  # the same forms of an ASCII token, made in C (~20x quicker; None: not ASCII)
    from callscope.trace._sink import ascii_forms as _ascii_forms
except ImportError:  # (the extension not built: the Python steps below)
    _ascii_forms = None


@functools.lru_cache(maxsize=4096)
def _encoded_forms(token: str) -> tuple:
    if _ascii_forms is not None and token.__class__ is str:
        forms = _ascii_forms(token)
        if forms is not None:
            return forms
    return _py_encoded_forms(token)


def _py_encoded_forms(token: str) -> tuple:
    seen = {token}
    out: list = []
    for form, enc in _forms(token):
        if len(form) >= MIN_FORM and form not in seen:
            seen.add(form)
            out.append((form, enc))
    return tuple(out)


def _forms(token: str) -> list:
    out: list = []
    reserved = set(token).difference(_SAFE)  # what percent-encoding changes
    if reserved:
        if token.isascii():
            # a str.replace per distinct character ("%" first: the others
            # bring in "%"); str.translate with a dict of strings costs ~5x this
            up = lo = token.replace("%", "%25") if "%" in reserved else token
            reserved.discard("%")
            for c in reserved:
                up = up.replace(c, _PCT_UP[c])
                lo = lo.replace(c, _PCT_LO[c])
        else:
            up = quote(token, safe="")
            lo = _lower_hex(up)
        out.append((up, "percent"))
        out.append((lo, "percent"))
        if "%2F" in up:
            up1, lo1 = up.replace("%2F", "/"), lo.replace("%2f", "/")
            out.append((up1, "percent"))
            out.append((lo1, "percent"))
            if "%3A" in up1:
                out.append((up1.replace("%3A", ":"), "percent"))
                out.append((lo1.replace("%3a", ":"), "percent"))
        if "%20" in up:
            out.append((up.replace("%20", "+"), "percent"))
    if not _JSON_PLAIN.fullmatch(token):
        j = json.dumps(token)[1:-1]
        out.append((j, "json"))
        if "/" in j:
            out.append((j.replace("/", "\\/"), "json"))
        if not token.isascii():
            out.append((json.dumps(token, ensure_ascii=False)[1:-1], "json"))
    data = token.encode("utf-8")
    out.append((b2a_base64(data, newline=False).decode("ascii").rstrip("="), "base64"))  # the token alone
    n = len(data)
    for k in (0, 1, 2):  # the characters that depend only on the token, wherever it starts
        first = -(-8 * k // 6)
        last = (8 * (k + n)) // 6
        if last - first >= MIN_FORM:
            f = b2a_base64(_ALIGN[k] + data, newline=False).decode("ascii")[first:last]
            out.append((f, "base64"))
            if "+" in f or "/" in f:  # (str.replace: ~10x quicker than str.translate here)
                out.append((f.replace("+", "-").replace("/", "_"), "base64"))
    return out


class Planted(tuple):
    """A root's tokens: the first ``plain`` are the tokens themselves
    (recorded as ``taint.plant``), the rest their encoded forms (searched
    for, not recorded: the model derives them from the plain ones).
    ``forms``: the tokens' encoded forms are to be searched for too, but are
    not in the tuple: the recorder's index adds them when it first searches
    a string that is not a token as it is (runtime/observe.py TaintIndex)."""

    plain: int
    forms: bool = False

    @classmethod
    def make(cls, plain: list, forms: list) -> "Planted":
        t = cls(list(plain) + list(forms))
        t.plain = len(plain)
        return t


def _plain_tokens(tokens: Iterable[str]) -> dict:
    """The tokens, each once, in order, the empty ones left out (the keys of
    a dict; made with no generator when none is empty: once a recorded
    request)."""
    toks = dict.fromkeys(tokens)
    if not all(toks):
        toks = dict.fromkeys([t for t in toks if t])
    return toks


def expand_tokens(tokens: Iterable[str]) -> tuple:
    """The tokens, then every token's encoded forms (what a driver plants:
    a :class:`Planted` whose ``plain`` counts the tokens)."""
    toks = list(_plain_tokens(tokens))
    seen = set(toks)
    forms = []
    for t in toks:
        for form, _ in encoded_forms(t):
            if form not in seen:
                seen.add(form)
                forms.append(form)
    return Planted.make(toks, forms)


class _PlantedLazily(Planted):
    """A :class:`Planted` of plain tokens only, with ``forms``: its
    ``plain`` is its length, both read off the class (no instance
    ``__dict__`` made: a recorded request made one and set two attributes,
    ~150 ns of the ~350 ns plant_tokens took)."""

    plain = property(len)  # (len itself: read with no Python frame)
    forms = True


def plant_tokens(tokens: Iterable[str]) -> tuple:
    """What a driver plants: the tokens, their encoded forms to be searched
    for too but made only when the recorder first needs them (a
    :class:`Planted` with ``forms``; the same verdicts as
    :func:`expand_tokens`' eager list)."""
    if tokens.__class__ is list and len(tokens) == 1 and tokens[0]:
        # (one token, the drivers' common case: nothing to drop or merge;
        # ~130 ns, not the ~540 ns of the dict below, once a recorded request)
        return _PlantedLazily(tokens)
    return _PlantedLazily(_plain_tokens(tokens))


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

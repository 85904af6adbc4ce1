"""Secrets kept out of the command line a trace records (issue 13).

A trace's header keeps the argv of the run (docs/trace-format.md), and
traces travel with bug reports. Before it is written:

* in ``--request`` values, the value of a header whose name is sensitive
  (``authorization``, ``proxy-authorization``, ``cookie``, ``set-cookie``;
  any case) becomes ``<redacted>``: ``authorization:<redacted>``;
* in ``--upstream`` URLs, the userinfo (``user:password@``) becomes
  ``<redacted>@``.

Both the ``--opt VALUE`` and ``--opt=VALUE`` spellings are covered.
"""

from __future__ import annotations

import re
from typing import Sequence

SENSITIVE_HEADERS = frozenset(("authorization", "proxy-authorization", "cookie", "set-cookie"))
REDACTED = "<redacted>"

_HEADER = re.compile(r"(?P<name>[^\s:]+):(?P<value>\S*)")
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@]*)@")


def redact_request(text: str) -> str:
    def one(m: "re.Match[str]") -> str:
        if m.group("name").lower() in SENSITIVE_HEADERS:
            return f"{m.group('name')}:{REDACTED}"
        return m.group()

    return _HEADER.sub(one, text)


def redact_url(url: str) -> str:
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", url)


_BY_OPTION = {"--request": redact_request, "--upstream": redact_url}


def redact_argv(argv: Sequence[str]) -> list:
    out = []
    pending = None
    for a in argv:
        a = str(a)
        if pending is not None:
            out.append(pending(a))
            pending = None
            continue
        opt, eq, val = a.partition("=")
        f = _BY_OPTION.get(opt)
        if f is not None and eq:
            out.append(f"{opt}={f(val)}")
        elif f is not None and not eq:
            out.append(a)
            pending = f
        else:
            out.append(a)
    return out

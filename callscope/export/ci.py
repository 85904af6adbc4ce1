"""Findings for CI: ``check --junit FILE`` (JUnit XML: one test case per
root call, a failure per misattributed import attributed to it) and ``check
--sarif FILE`` (SARIF 2.1.0: one result per finding). docs/ci-reports.md
gives both shapes.

:func:`finding_record` is the one place a finding becomes machine-readable
fields (the same fields as ``check --json``: the verdicts issue's
``finding_json`` when present)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence
from urllib.parse import quote as url_quote

from ..model import Finding

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
FAILING_LINTS = ("misattributed",)  # what makes check exit 1: errors in SARIF, failures in JUnit


def _json_value(v: Any, depth: int = 0) -> Any:
    if isinstance(v, dict):
        return {str(k): _json_value(x, depth + 1) for k, x in v.items()} if depth < 8 else None
    if isinstance(v, (list, tuple)):
        return [_json_value(x, depth + 1) for x in v] if depth < 8 else None
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def finding_record(f: Finding) -> dict:
    """The machine-readable fields of a finding: ``lint``, ``severity``,
    ``n``, ``time``, ``message`` and its details (``call``, ``import``,
    ``stack_root``, ``origins``, ``evidence``, ...)."""
    try:  # the verdicts issue's mapping (check --json), when this tree has it
        from ..model.findings import finding_json  # type: ignore[attr-defined]
    except ImportError:
        finding_json = None
    if finding_json is not None:
        return finding_json(f)
    rec = {"lint": f.lint, "severity": f.severity, "n": f.n, "time": f.time}
    for k, v in f.details.items():
        rec.setdefault(k, _json_value(v))
    if f.lint == "misattributed" and "origins" not in rec and "origin" in rec:
        rec["origins"] = [rec["origin"]]
    rec["message"] = f.message
    return rec


# -- root calls, from the trace ------------------------------------------------


@dataclass
class RootCall:
    task: int
    inst: int
    func: Optional[str]
    label: Optional[str]
    start: int  # time of task.new
    end: Optional[int] = None  # time of task.exit (None: never exited)


def root_calls(events: Iterable[Any]) -> list[RootCall]:
    roots: dict[int, RootCall] = {}
    for ev in events:
        kind = ev[1]
        if kind == "task.new":
            f = ev[3]
            if f[3] is None:
                roots[f[0]] = RootCall(f[0], f[1], f[2], f[5], ev[2])
        elif kind == "task.exit":
            r = roots.get(ev[3][0])
            if r is not None and r.end is None:
                r.end = ev[2]
    return list(roots.values())


# -- JUnit ---------------------------------------------------------------------

_XML_BAD = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(s: object, limit: int = 4000) -> str:
    """A string XML 1.0 can hold: characters it forbids (most control
    characters, lone surrogates) replaced by U+FFFD, cut at ``limit``."""
    s = _XML_BAD.sub("\ufffd", str(s))
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _root_of(f: Finding) -> Optional[int]:
    d = f.details
    for key in ("stack_root", "root", "copied_from"):
        if d.get(key) is not None:
            return d[key]
    return None


def junit_xml(roots: Sequence[RootCall], findings: Sequence[Finding], suite: str) -> bytes:
    """JUnit XML: ``<testsuites>`` holding one ``<testsuite>`` (``suite``:
    the guest), one ``<testcase>`` per root call (name: its request label
    and task id; classname: its export function; time: task.new to
    task.exit in trace time, seconds), one ``<failure>`` per misattributed
    import attributed to that root (type ``misattributed``, message: which
    import, attributed to whom, caused by whom); its other findings in
    ``<system-out>``. Findings about no root call go to the suite's
    ``<system-out>``."""
    by_root: dict[Optional[int], list] = {}
    for f in findings:
        by_root.setdefault(_root_of(f), []).append(f)
    known = {r.task for r in roots}
    failures = sum(1 for r in roots for f in by_root.get(r.task, ()) if f.lint in FAILING_LINTS)
    total = 0.0
    cases = []
    for r in roots:
        secs = max(0, ((r.end if r.end is not None else r.start) - r.start)) / 1e9
        total += secs
        name = f"{r.label} (root task {r.task})" if r.label else f"root task {r.task}"
        tc = ET.Element("testcase", {"name": xml_text(name, 500), "classname": xml_text(r.func or "export", 500),
                                     "time": f"{secs:.6f}"})
        mine = by_root.get(r.task, [])
        for f in mine:
            if f.lint not in FAILING_LINTS:
                continue
            d = f.details
            origins = d.get("origins") or ([d["origin"]] if d.get("origin") is not None else [])
            msg = (f"import {d.get('import')} (call {d.get('call')}, event #{f.n}) attributed to root task "
                   f"{d.get('stack_root')}, caused by root task {' and '.join(str(o) for o in origins)}")
            fe = ET.SubElement(tc, "failure", {"type": f.lint, "message": xml_text(msg, 1000)})
            fe.text = xml_text(f.message + "\n" + json.dumps(finding_record(f), ensure_ascii=True, sort_keys=True))
        rest = [f for f in mine if f.lint not in FAILING_LINTS]
        if rest:
            so = ET.SubElement(tc, "system-out")
            so.text = xml_text("\n".join(f"{f.severity}[{f.lint}] #{f.n}: {f.message}" for f in rest[:200])
                               + (f"\n... and {len(rest) - 200} more" if len(rest) > 200 else ""), 200_000)
        if r.end is None:
            tc.set("time", "0")
            se = ET.SubElement(tc, "system-err")
            se.text = "the root task never exited in this trace"
        cases.append(tc)
    ts = ET.Element("testsuite", {"name": xml_text(suite, 500), "tests": str(len(cases)),
                                  "failures": str(failures), "errors": "0", "skipped": "0",
                                  "time": f"{total:.6f}"})
    ts.extend(cases)
    orphans = [f for k, fs in by_root.items() if k not in known for f in fs]
    if orphans:
        so = ET.SubElement(ts, "system-out")
        so.text = xml_text("\n".join(f"{f.severity}[{f.lint}] #{f.n}: {f.message}" for f in orphans[:200]), 200_000)
    top = ET.Element("testsuites", {"name": "callscope check", "tests": str(len(cases)),
                                    "failures": str(failures), "errors": "0", "time": f"{total:.6f}"})
    top.append(ts)
    ET.indent(top)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(top, encoding="utf-8") + b"\n"


# -- SARIF ---------------------------------------------------------------------


def _rules() -> list[dict]:
    from ..model.findings import DEFAULT_LINTS

    out = []
    for cls in DEFAULT_LINTS:
        doc = " ".join((cls.__doc__ or cls.name).split("\n\n")[0].split())
        out.append({
            "id": cls.name,
            "name": "".join(w.capitalize() for w in cls.name.split("-")),
            "shortDescription": {"text": f"{cls.noun[1]} {cls.what}" if isinstance(cls.what, str) else cls.name},
            "fullDescription": {"text": doc},
            "defaultConfiguration": {"level": "error" if cls.name in FAILING_LINTS else "warning"},
        })
    return out


def _uri(path: str) -> str:
    """A URI reference for ``path`` (relative stays relative)."""
    p = path.replace(os.sep, "/")
    if os.path.isabs(path):
        return "file://" + url_quote(p)
    return url_quote(p)


def sarif_log(findings: Sequence[Finding], guest: Optional[str], trace: str, version: str,
              exit_code: Optional[int] = None) -> dict:
    """A SARIF 2.1.0 log: one run of the ``callscope`` tool, its lints as
    rules, one result per finding (``ruleId`` the lint, ``level`` error for
    misattributed imports and warning otherwise, ``message.text`` the
    finding's one line, the guest as the artifact, the import and its request
    as a logical location, a stable fingerprint, the finding's fields in
    ``properties``)."""
    rules = _rules()
    index = {r["id"]: i for i, r in enumerate(rules)}
    artifact = _uri(guest) if guest else _uri(trace)
    results = []
    for f in findings:
        rec = finding_record(f)
        d = f.details
        where = d.get("import") or (f"task {d['task']}" if d.get("task") is not None else f"event {f.n}")
        root = d.get("stack_root_label") or d.get("root_label") or d.get("label")
        fq = f"{root} / {where}" if root else str(where)
        if d.get("call") is not None:
            fq += f" (call {d['call']})"
        ident = json.dumps([f.lint, d.get("import"), d.get("call"), f.n], sort_keys=True)
        res = {
            "ruleId": f.lint,
            "level": "error" if f.lint in FAILING_LINTS else "warning",
            "message": {"text": xml_text(f.message, 4000)},
            "locations": [{
                "physicalLocation": {"artifactLocation": {"uri": artifact}},
                "logicalLocations": [{"name": xml_text(where, 300), "fullyQualifiedName": xml_text(fq, 600),
                                      "kind": "function"}],
            }],
            "partialFingerprints": {"callscopeFinding/v1": hashlib.sha256(ident.encode()).hexdigest()[:32]},
            "properties": _json_value(rec),
        }
        if f.lint in index:
            res["ruleIndex"] = index[f.lint]
        results.append(res)
    run: dict = {
        "tool": {"driver": {"name": "callscope", "version": version, "rules": rules}},
        "artifacts": [{"location": {"uri": artifact}}],
        "results": results,
        "properties": {"trace": trace},
    }
    if exit_code is not None:
        run["invocations"] = [{"executionSuccessful": True, "exitCode": exit_code}]
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def sarif_bytes(log: dict) -> bytes:
    return (json.dumps(log, indent=1, ensure_ascii=True) + "\n").encode()


# -- check --junit / --sarif ------------------------------------------------------


def add_ci_arguments(p) -> None:
    p.add_argument("--junit", metavar="FILE", default=None,
                   help="also write JUnit XML: one test case per root call, a failure per misattributed import "
                        "(default: none written)")
    p.add_argument("--sarif", metavar="FILE", default=None,
                   help="also write SARIF 2.1.0: one result per finding, for code review tools (default: none written)")


def write_ci_reports(args, trace_path: str, findings: Sequence[Finding], guest: Optional[str],
                     exit_code: Optional[int] = None) -> None:
    """Write the --junit/--sarif files ``args`` asks for. Raises CliError
    (one line, exit 2) when one cannot be written."""
    junit, sarif = getattr(args, "junit", None), getattr(args, "sarif", None)
    if not junit and not sarif:
        return
    from ..cli import CliError, _version
    from .api import write_atomically

    try:
        if junit:
            from ..trace.reader import TraceError, TraceReader

            try:
                with TraceReader(trace_path) as r:
                    roots = root_calls(r.events())
            except TraceError as e:
                raise CliError(str(e)) from None
            suite = os.path.basename(guest) if guest else "callscope"
            write_atomically(junit, junit_xml(roots, findings, suite))
        if sarif:
            write_atomically(sarif, sarif_bytes(sarif_log(findings, guest, trace_path, _version(), exit_code)))
    except OSError as e:
        raise CliError(f"{e.filename or junit or sarif}: {e.strerror or e}") from None

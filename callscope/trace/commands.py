"""CLI subcommands over a trace: ``summary TRACE`` and
``events TRACE [--json] [--from N] [--limit N]``.

``callscope/cli.py`` registers them with ``add_arguments(subparsers)`` and
calls ``args.func(args)``; each returns an exit code (0 ok, 2 bad input: one
line on stderr naming the problem).
"""

from __future__ import annotations

from ..argtypes import EVENT, THRESHOLD_MS

import argparse
import base64
import json
import sys
from typing import Any

from ..escape import escape_controls, escape_json


def add_arguments(subparsers: Any) -> None:
    p = subparsers.add_parser("summary", help="counts and findings of a recorded trace")
    p.add_argument("trace", metavar="TRACE", help="trace file written by 'callscope run'")
    p.add_argument("--backpressure-threshold-ms", type=THRESHOLD_MS, default=10.0,
                   help="report calls held back by backpressure longer than this (default 10)")
    p.add_argument("--json", action="store_true",
                   help="the findings and coverage counts as one JSON object (docs/verdicts.md)")
    p.set_defaults(func=cmd_summary)

    p = subparsers.add_parser("events", help="print the events of a recorded trace")
    p.add_argument("trace", metavar="TRACE", help="trace file written by 'callscope run'")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--from", dest="start", type=EVENT, default=0, metavar="N", help="first event number (default 0)")
    p.add_argument("--limit", type=EVENT, default=None, metavar="N", help="print at most N events (default: all)")
    p.set_defaults(func=cmd_events)


def _error(msg: Any) -> None:
    """One line on stderr; a path or trace text in it shown escaped."""
    print(f"callscope: error: {escape_controls(msg)}", file=sys.stderr)


def _open(path: str, escape: bool = False):
    from .reader import TraceError, TraceReader

    try:
        return TraceReader(path, escape=escape)
    except TraceError as e:
        _error(e)
        return None


def cmd_summary(args: argparse.Namespace) -> int:
    from ..model.findings import default_lints
    from ..model.summary import FINDINGS_SHOWN, format_summary, summarize_trace

    r = _open(args.trace, escape=True)
    if r is None:
        return 2
    from .reader import TraceError

    try:
        with r:
            ms = getattr(args, "backpressure_threshold_ms", 10.0)
            # (the listing shows the first FINDINGS_SHOWN and counts the rest: only
            # those are kept; --json gives every finding)
            s = summarize_trace(r, default_lints(int(ms * 1_000_000), keep_verdicts=False),
                                None if getattr(args, "json", False) else FINDINGS_SHOWN)
    except TraceError as e:  # a chunk found damaged while reading it
        _error(e)
        return 2
    if getattr(args, "json", False):
        write_summary_json(sys.stdout, s, args.trace)
        return 0
    # (trace strings in it: a guest's name, labels, messages, shown escaped)
    print(escape_controls(format_summary(s), keep_newlines=True))
    return 0


_FINDINGS = object()  # (in _summary_items: the findings, made one at a time)


def _summary_items(s: Any, trace: str, run: Any) -> list:
    """docs/verdicts.md's object as (key, value) pairs, in order: trace,
    coverage, findings (``_FINDINGS``), truncated and run where there are."""
    items = [("trace", trace), ("coverage", s.coverage), ("findings", _FINDINGS)]
    if s.truncated:
        items.append(("truncated", str(s.truncated)))
    if run is not None:
        items.append(("run", run))
    return items


def summary_json(s: Any, trace: str, run: Any = None) -> dict:
    """docs/verdicts.md's object: trace, coverage, findings (and run)."""
    from ..model.findings import finding_json
    return {k: [finding_json(f) for f in s.findings] if v is _FINDINGS else v for k, v in _summary_items(s, trace, run)}


def write_summary_json(out: Any, s: Any, trace: str, run: Any = None) -> None:
    """``json.dumps(summary_json(...), ensure_ascii=True)`` and a newline,
    the same text, written a finding at a time: a trace of many findings
    never has all of them as JSON objects, or as one string, at once."""
    from ..model.findings import finding_json

    def dumps(v):
        return json.dumps(v, ensure_ascii=True)

    for i, (k, v) in enumerate(_summary_items(s, trace, run)):
        out.write(("{" if i == 0 else ", ") + dumps(k) + ": ")
        if v is _FINDINGS:
            out.write("[")
            for j, f in enumerate(s.findings):
                out.write((", " if j else "") + dumps(finding_json(f)))
            out.write("]")
        else:
            out.write(dumps(v))
    out.write("}\n")
    out.flush()


def _jsonable(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return {"bytes": base64.b64encode(bytes(v)).decode()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if v is None or isinstance(v, (int, float, str, bool)):
        return v
    return repr(v)


def _text(ev: Any) -> str:
    d = ev.asdict()
    fields = " ".join(f"{k}={v!r}" for k, v in d.items() if k not in ("n", "kind", "time"))
    return escape_controls(f"#{ev[0]:<8} {ev[2]:>16} {ev[1]:<20} {fields}")


def cmd_events(args: argparse.Namespace) -> int:
    r = _open(args.trace)
    if r is None:
        return 2
    start = args.start
    if start < 0:
        print(f"callscope: error: --from must be >= 0, not {start}", file=sys.stderr)
        r.close()
        return 2
    if args.limit is not None and args.limit < 0:
        print(f"callscope: error: --limit must be >= 0, not {args.limit}", file=sys.stderr)
        r.close()
        return 2
    from .reader import TraceError

    stop = None if args.limit is None else start + args.limit
    out = sys.stdout
    try:
        with r:
            if r.truncated:
                print(escape_controls(f"callscope: {args.trace}: truncated trace ({r.truncation})"), file=sys.stderr)
            for ev in r.events(start, stop):
                if args.json:
                    out.write(escape_json(json.dumps(_jsonable(ev.asdict()), ensure_ascii=False)) + "\n")
                else:
                    out.write(_text(ev) + "\n")
    except BrokenPipeError:
        return 0
    except TraceError as e:  # a chunk found damaged while reading it
        out.flush()
        _error(e)
        return 2
    return 0

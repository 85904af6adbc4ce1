"""``callscope export TRACE [-o OUT] [--format dot|svg|png|pdf|perfetto]
[--lint NAME]... [--root REQUEST] [--instance ID] [--at N] [--around CALL]
[--max-nodes K] [--only-findings]``: registered by callscope/cli.py."""

from __future__ import annotations

from ..argtypes import COUNT, EVENT

import os
import sys

from .api import FORMATS


def add_export(sub) -> None:
    p = sub.add_parser("export", help="export a trace's call graph (DOT, SVG, PNG, PDF) or timeline (Perfetto)",
                       description="Write the call graph of a recorded trace: root export tasks (with "
                                   "their request labels), subtasks and import calls, one cluster per "
                                   "component instance, a legend; misattributed imports in red "
                                   "('attributed to X, caused by Y', with their evidence) with a dashed "
                                   "edge to their true origin root. Or, with --format perfetto, a Chrome "
                                   "trace-event JSON timeline for ui.perfetto.dev and chrome://tracing.")
    p.add_argument("trace", metavar="TRACE", help="trace file written by 'callscope run'")
    p.add_argument("-o", "--output", metavar="OUT", default=None,
                   help="output file (default: standard output); its extension picks the format "
                        "(.dot .svg .png .pdf .json)")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="output format (default: from OUT's extension, else dot); pdf needs a system Graphviz")
    g = p.add_argument_group("what to show (graphs; --at also cuts a perfetto timeline)")
    g.add_argument("--lint", action="append", default=[], metavar="NAME",
                   help="only the imports (and tasks) with findings of lint NAME, their async call stacks "
                        "and true origins; repeatable (e.g. --lint misattributed; default: every import)")
    g.add_argument("--only-findings", action="store_true", help="the same for every lint (default: off)")
    g.add_argument("--root", metavar="REQUEST", default=None,
                   help="only one root export task: its request label (e.g. 'req-3 GET /') or task id (default: every root)")
    g.add_argument("--instance", type=EVENT, default=None, metavar="ID",
                   help="only the tasks and imports of component instance ID (default: every instance)")
    g.add_argument("--at", type=EVENT, default=None, metavar="N",
                   help="only the history up to and including event N (default: the whole trace)")
    g.add_argument("--around", type=EVENT, default=None, metavar="CALL",
                   help="only import call CALL, its async call stack and its true origin (default: every call)")
    g.add_argument("--max-nodes", type=COUNT, default=None, metavar="K",
                   help="fold repeated subtrees into one node with a count until at most K nodes remain (default: no folding)")
    p.set_defaults(func=cmd_export)


def selection_from(args):
    from .graph import LINT_NAMES, Selection

    lints = tuple(dict.fromkeys(args.lint))
    if args.only_findings:
        lints = LINT_NAMES
    return Selection(lints=lints, root=args.root, instance=args.instance, at=args.at, around=args.around,
                     max_nodes=args.max_nodes)


def cmd_export(args) -> int:
    from ..trace.reader import TraceError, TraceReader
    from .api import ExportError, export_view, resolve_format
    from .graph import SelectionError

    def fail(msg: str) -> int:
        print(f"callscope: error: {msg}", file=sys.stderr)
        return 2

    sel = selection_from(args)
    try:
        sel.check()
        fmt = resolve_format(args.output, args.format)
    except (SelectionError, ExportError) as e:
        return fail(str(e))
    if fmt == "perfetto" and (sel.narrows or sel.max_nodes is not None):
        return fail("--format perfetto writes the whole timeline: of the selections it takes --at only")
    if args.output and args.output != "-":  # (never the trace itself: issue 13)
        from ..outfile import OutputError, check_output
        try:
            check_output(args.output, [args.trace])
        except OutputError as e:
            return fail(str(e))
    try:
        reader = TraceReader(args.trace)
    except TraceError as e:
        return fail(str(e))
    with reader:
        if reader.truncated:
            print(f"callscope: warning: truncated trace: {reader.truncation}", file=sys.stderr)
        out = args.output if args.output and args.output != "-" else None
        try:
            # (written as it is made: a big graph's text is never held whole)
            export_view(reader, sel, out, fmt, title=os.path.basename(args.trace), keep=False,
                        stream=sys.stdout.buffer)
        except (ExportError, TraceError) as e:
            return fail(str(e))
    if out is None:
        sys.stdout.flush()
    return 0

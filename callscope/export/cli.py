"""``callscope export TRACE [-o OUT] [--format dot|svg] [--at N] [--instance ID]
[--only-findings]``: registered by callscope/cli.py."""

from __future__ import annotations

import os
import sys


def add_export(sub) -> None:
    p = sub.add_parser("export", help="export a trace's call graph as Graphviz DOT or SVG",
                       description="Write the call graph of a recorded trace: root export tasks (with "
                                   "their request labels), subtasks and import calls, one cluster per "
                                   "component instance; misattributed imports in red with a dashed "
                                   "edge to their true origin root.")
    p.add_argument("trace", metavar="TRACE", help="trace file written by 'callscope run'")
    p.add_argument("-o", "--output", metavar="OUT", default=None,
                   help="output file (default: standard output)")
    p.add_argument("--format", choices=("dot", "svg"), default=None,
                   help="dot or svg (default: from OUT's extension, else dot)")
    p.add_argument("--at", type=int, default=None, metavar="N",
                   help="only the history up to and including event N (default: the whole trace)")
    p.add_argument("--instance", type=int, default=None, metavar="ID",
                   help="only the tasks and imports of component instance ID (default: every instance)")
    p.add_argument("--only-findings", action="store_true",
                   help="only the imports with findings, their async call stacks and true origins")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from ..trace.reader import TraceError, TraceReader
    from .dot import to_dot
    from .graph import build_graph
    from .render import RenderError, find_renderer, render_svg

    fmt = args.format
    if fmt is None:
        fmt = "svg" if args.output and args.output.lower().endswith(".svg") else "dot"
    if args.at is not None and args.at < 0:
        print("callscope: error: --at must be an event number (0 or more)", file=sys.stderr)
        return 2
    renderer = None
    if fmt == "svg":
        renderer = find_renderer()
        if renderer is None:
            from .render import INSTALL_HINT

            print(f"callscope: error: {INSTALL_HINT}", file=sys.stderr)
            return 2
    try:
        reader = TraceReader(args.trace)
    except TraceError as e:
        print(f"callscope: error: {e}", file=sys.stderr)
        return 2
    with reader:
        if reader.truncated:
            print(f"callscope: warning: truncated trace: {reader.truncation}", file=sys.stderr)
        stop = None if args.at is None else args.at + 1
        try:
            g = build_graph(reader.events(0, stop), at=args.at, instance=args.instance,
                            only_findings=args.only_findings, title=os.path.basename(args.trace))
        except TraceError as e:
            print(f"callscope: error: {e}", file=sys.stderr)
            return 2
    if args.instance is not None and not g.tasks and not g.imports:
        print(f"callscope: warning: instance {args.instance} has no tasks or imports in this trace",
              file=sys.stderr)
    text = to_dot(g)
    if fmt == "svg":
        try:
            data = render_svg(text, renderer)
        except RenderError as e:
            print(f"callscope: error: {e}", file=sys.stderr)
            return 2
    else:
        data = text.encode()
    if args.output and args.output != "-":
        try:
            with open(args.output, "wb") as f:
                f.write(data)
        except OSError as e:
            print(f"callscope: error: {args.output}: {e.strerror or e}", file=sys.stderr)
            return 2
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0

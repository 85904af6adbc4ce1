"""``callscope replay TRACE [--at N]``: registered by callscope/cli.py."""

from __future__ import annotations

from ..argtypes import EVENT

import sys


def add_replay(sub) -> None:
    p = sub.add_parser("replay", help="replay a recorded trace in a terminal UI",
                       description="Step through a recorded trace: the live async call tree of each "
                                   "instance, the events, and the findings (misattributed imports, ...). "
                                   "Keys: ←/→ step, shift+←/→ 100, PgUp/PgDn, Home/End, n/p next/previous "
                                   "finding, / or g go to an event, q quit.")
    p.add_argument("trace", metavar="TRACE", help="trace file written by 'callscope run'")
    p.add_argument("--at", type=EVENT, default=0, metavar="N", help="start at event N (default 0)")
    p.set_defaults(func=cmd_replay)


def cmd_replay(args) -> int:
    from ..trace.reader import TraceError
    from .source import ReplaySource

    from ..escape import escape_controls

    if args.at < 0:
        print(f"callscope: error: --at must be an event number (0 or more), not {args.at}", file=sys.stderr)
        return 2
    try:
        source = ReplaySource(args.trace)
    except TraceError as e:
        print(f"callscope: error: {escape_controls(e)}", file=sys.stderr)
        return 2
    from .app import ReplayApp

    app = ReplayApp(source, start_at=args.at)
    try:
        app.run()
    finally:
        source.close()
    err = app.failure
    if err is not None:  # one line, never a traceback: 2 for a bad trace, else 1
        msg = str(err).splitlines()[0] if str(err) else ""
        if isinstance(err, TraceError):
            print(f"callscope: error: {escape_controls(msg)}", file=sys.stderr)
            return 2
        print(f"callscope: replay failed: {type(err).__name__}: {escape_controls(msg)}", file=sys.stderr)
        return 1
    return app.return_code or 0

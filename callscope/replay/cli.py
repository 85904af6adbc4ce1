"""``callscope replay TRACE [--at N]``: registered by callscope/cli.py."""

from __future__ import annotations

import sys


def add_replay(sub) -> None:
    p = sub.add_parser("replay", help="replay a recorded trace in a terminal UI",
                       description="Step through a recorded trace: the live async call tree of each "
                                   "instance, the events, and the findings (misattributed imports, ...). "
                                   "Keys: ←/→ step, shift+←/→ 100, PgUp/PgDn, Home/End, n/p next/previous "
                                   "finding, / or g go to an event, q quit.")
    p.add_argument("trace", metavar="TRACE", help="trace file written by 'callscope run'")
    p.add_argument("--at", type=int, default=0, metavar="N", help="start at event N (default 0)")
    p.set_defaults(func=cmd_replay)


def cmd_replay(args) -> int:
    from ..trace.reader import TraceError
    from .source import ReplaySource

    try:
        source = ReplaySource(args.trace)
    except TraceError as e:
        print(f"callscope: error: {e}", file=sys.stderr)
        return 2
    from .app import ReplayApp

    try:
        ReplayApp(source, start_at=args.at).run()
    finally:
        source.close()
    return 0

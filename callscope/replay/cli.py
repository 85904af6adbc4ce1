"""``callscope replay TRACE [--at N] [--follow] [--screenshot-dir DIR]``:
registered by callscope/cli.py."""

from __future__ import annotations

import os
import sys
import time


def add_replay(sub) -> None:
    p = sub.add_parser("replay", help="replay a recorded trace in a terminal UI",
                       description="Step through a recorded trace: the live async call tree of each "
                                   "instance, the events, and the findings (misattributed imports, ...). "
                                   "Keys: ←/→ step, space play/pause, +/- speed, n/N next/previous "
                                   "finding, / search, f filter, g go to, w why is it stuck, e export, "
                                   "s screenshot, ? every key, q or ctrl+c quit.")
    p.add_argument("trace", metavar="TRACE", help="trace file written by 'callscope run'")
    p.add_argument("--at", type=int, default=0, metavar="N", help="start at event N (default 0)")
    p.add_argument("--follow", action="store_true",
                   help="the trace is still being written: show new events as they come")
    p.add_argument("--screenshot-dir", metavar="DIR", default=None,
                   help="where s (screenshot) and e (export) write (default: the current directory)")
    p.set_defaults(func=cmd_replay)


def open_source(path: str, follow: bool, wait: float = 10.0, alive=lambda: True):
    """The trace as a ReplaySource; with ``follow``, wait up to ``wait``
    seconds for its writer to create it and write its header (while
    ``alive()``)."""
    from ..trace.reader import TraceError
    from .source import ReplaySource

    deadline = time.monotonic() + wait
    while True:
        try:
            return ReplaySource(path)
        except TraceError:
            if not follow or time.monotonic() > deadline or not alive():
                raise
            time.sleep(0.05)


def cmd_replay(args) -> int:
    from ..trace.reader import TraceError

    if args.screenshot_dir is not None and not os.path.isdir(args.screenshot_dir):
        print(f"callscope: error: --screenshot-dir {args.screenshot_dir}: not a directory", file=sys.stderr)
        return 2
    try:
        source = open_source(args.trace, args.follow)
    except TraceError as e:
        print(f"callscope: error: {e}", file=sys.stderr)
        return 2
    from .app import ReplayApp

    try:
        ReplayApp(source, start_at=args.at, screenshot_dir=args.screenshot_dir, follow=args.follow).run()
    finally:
        source.close()
    return 0

"""``callscope demo [--mode MODE] [--write FILE]``: the built-in demo guest
as a file (a component binary, or its text for a ``.wat`` name), so the
commands that take a ``GUEST.wasm`` can be tried on it. Registered by
callscope/cli.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def add_demo(sub) -> None:
    from . import MODES
    p = sub.add_parser("demo", help="write the built-in demo guest to a file (or print its text)",
                       description="The built-in demo guest (the component `callscope run` runs without "
                                   "a GUEST): it imports callscope-demo:app/upstream#fetch and exports "
                                   "callscope-demo:app/handler#handle(id: u32, url: string). Without "
                                   "--write its component text is printed.")
    p.add_argument("--mode", default="event-loop", choices=MODES,
                   help="which variant (default event-loop)")
    p.add_argument("--write", metavar="FILE",
                   help="write the component to FILE: its text when FILE ends in .wat, else the binary "
                        "(default: print the text to stdout)")
    p.add_argument("--force", action="store_true",
                   help="replace FILE when it exists with other contents (default: refuse, exit 2)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from callscope.cli import CliError
    from . import demo_component, demo_wat
    if args.write is None:
        sys.stdout.write(demo_wat(args.mode))
        return 0
    path = Path(args.write)
    data = demo_wat(args.mode).encode() if path.suffix in (".wat", ".wast") else demo_component(args.mode)
    try:
        if path.is_dir():
            raise CliError(f"{args.write}: is a directory")
        if path.exists() and not args.force:
            if path.read_bytes() == data:
                return 0  # already there
            raise CliError(f"{args.write}: exists with other contents; give --force to replace it")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        raise CliError(f"{args.write}: cannot write: {e.strerror or e}") from None
    return 0

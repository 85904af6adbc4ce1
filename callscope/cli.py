"""The ``callscope`` command line.

Each subcommand is one function ``cmd_NAME(args) -> int`` (its exit status)
plus one ``add_NAME(subparsers)`` registration that declares its arguments and
sets ``func=cmd_NAME``. To add a subcommand, write both and append the
registration to ``SUBCOMMANDS``. Exit statuses: 0 success, 1 a check failed,
2 bad input or usage, 130 interrupted.
"""

from __future__ import annotations

from .argtypes import SEED

import argparse
import os
import sys
from typing import Callable, Optional, Sequence

PROG = "callscope"


class CliError(Exception):
    """Bad input: reported as one line ``callscope: error: ...``, exit 2."""


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("callscope")
    except Exception:
        return "unknown"


# --------------------------------------------------------------------------
# callscope wast FILE...


def add_wast(sub) -> None:
    p = sub.add_parser("wast", help="run component-model WAST scripts",
                       description="Run component-model .wast scripts and report "
                                   "each failed assertion. A file the spec's nyi.txt lists "
                                   "(not yet implemented anywhere; looked for in the directories "
                                   "above the file) and a file with a component wasmtime's text "
                                   "parser cannot read are reported SKIPPED with the reason and "
                                   "not counted, unless --strict. Exit 0 when no assertion failed, "
                                   "1 when one did, 2 for a file that is not a WAST script.")
    p.add_argument("files", nargs="+", metavar="FILE", help=".wast script(s) to run")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also list each passing assertion (default: failures only)")
    p.add_argument("--strict", action="store_true",
                   help="run the files that would be skipped too: their failures count "
                        "(default: skip them)")
    p.add_argument("--seed", type=SEED, default=None, metavar="N",
                   help="seed for the runtime's scheduling choices (default: 0)")
    p.add_argument("--schedule", choices=("fifo", "random"), default="fifo",
                   help="which ready thread runs next: fifo (the longest waiting, as wasmtime; the "
                        "default) or random (picked by the seeded rng, as the spec leaves it)")
    p.add_argument("--dialect", choices=("spec", "wasmtime"), default="spec",
                   help="spec (the default) or wasmtime: its runner's test host imports (host, "
                        "host-return-two, host-echo-u32, wasmtime), named components importable by name, "
                        "register, lenient linking, legacy text syntax and trap wording")
    p.set_defaults(func=cmd_wast)


def cmd_wast(args) -> int:
    from .wast.engine import NotSupported, UnavailableEngine, default_engine
    from .wast.runner import BadInput, Counts, load_script, run_script, skip_reason

    dialect = getattr(args, "dialect", "spec")
    if dialect == "wasmtime":
        # wasm-tools reads this once, at its first parse: before any text
        os.environ.setdefault("WAST_STRICT_COMPONENT_INDICES", "0")
    # Read and check every file first, so bad input stops before anything runs.
    scripts = []
    bad = []
    for path in args.files:
        try:
            scripts.append((path, load_script(path)))
        except BadInput as e:
            bad.append(str(e))
    if bad:
        for msg in bad:
            print(f"{PROG}: error: {msg}", file=sys.stderr)
        return 2

    def report(line: str) -> None:
        print(line, flush=True)

    total = Counts()
    for path, script in scripts:
        reason = None if args.strict else skip_reason(path, script)
        if reason is not None:
            report(f"{path}: SKIPPED: {reason}")
            total.skipped += 1
            continue
        # A fresh engine per file: scripts do not share instances.
        try:
            engine = default_engine(args.seed, getattr(args, "schedule", "fifo"), dialect)
        except NotSupported as e:
            engine = UnavailableEngine(str(e))
        try:
            total += run_script(script, engine, path, report, args.verbose)
        finally:
            close = getattr(engine, "close", None)
            if close is not None:
                close()
    print(total.closing_line())
    return 0 if total.failed == 0 else 1


# --------------------------------------------------------------------------
# Subcommands to come. Each: def add_NAME(sub) + def cmd_NAME(args) -> int,
# then append add_NAME to SUBCOMMANDS below.
#
#   run      run a component, recording a trace
#   check    lint a trace
#   summary  summarize a trace
#   events   list a trace's events
#   replay   replay a recorded trace
#   export   export a trace to other formats


SUBCOMMANDS: list = [
    add_wast,
    "callscope.run_cli:add_run",
    "callscope.run_cli:add_check",
    "callscope.serve:add_serve",
    "callscope.trace.commands:add_arguments",
    "callscope.replay.cli:add_replay",
    "callscope.export.cli:add_export",
    "callscope.demo.cli:add_demo",
]


def _resolve(add):
    """A registration is a function or "module:function" (imported only when
    the parser is built, so importing this module stays cheap)."""
    if isinstance(add, str):
        import importlib
        mod, _, attr = add.partition(":")
        return getattr(importlib.import_module(mod), attr)
    return add


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors: one line, exit 2
        print(f"{PROG}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Record-and-replay debugger for "
                                             "WebAssembly component-model async.")
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in SUBCOMMANDS:
        _resolve(add)(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        parser = build_parser()  # (inside: it imports the subcommands' modules, ~0.1 s a Ctrl-C can land in)
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # a usage error (2), or --help / --version (0)
            return e.code if isinstance(e.code, int) else 2
        return args.func(args)
    except CliError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into e.g. `head`: stop quietly
        import os

        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except Exception:
            pass
        return 1


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()

"""argparse types for numbers on the command line (issue 13): finite and in
range, or a one-line usage error (exit 2) naming the bound."""

from __future__ import annotations

import argparse
import math
from typing import Callable, Optional

INT64_MAX = (1 << 63) - 1


def int_in(lo: int, hi: int = INT64_MAX) -> Callable[[str], int]:
    """An int ``lo <= n <= hi``."""

    def parse(text: str) -> int:
        try:
            n = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(
                f"{text} is out of range ({lo} to {hi})" if hi != INT64_MAX else f"{text} is out of range (at least {lo}, below 2^63)")
        return n

    parse.__name__ = "integer"
    return parse


def float_in(lo: float, hi: float, lo_open: bool = False) -> Callable[[str], float]:
    """A finite float in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""

    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(x):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if x < lo or (lo_open and x == lo) or x > hi:
            raise argparse.ArgumentTypeError(f"{text} is out of range ({'more than' if lo_open else 'from'} {lo:g} "
                                             f"{'up ' if lo_open else ''}to {hi:g})")
        return x

    parse.__name__ = "number"
    return parse


SEED = int_in(0)
EVENT = int_in(0)
COUNT = int_in(1, 10**9)
PORT = int_in(0, 65535)
HTTP_STATUS = int_in(100, 599)
TIMEOUT_S = float_in(0.0, 30 * 86400.0, lo_open=True)  # up to 30 days
THRESHOLD_MS = float_in(0.0, 1e9)


_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
               "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40,
               "tib": 1 << 40}


def size_in(lo: int, hi: int) -> Callable[[str], int]:
    """A size in bytes, ``512M``, ``1G``, ``65536`` (binary units), ``lo <= n <= hi``;
    ``0`` (no limit) is allowed too."""

    def parse(text: str) -> int:
        t = text.strip().lower()
        num = t.rstrip("kmgtib")
        unit = t[len(num):]
        try:
            x = float(num)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a size: {text!r} (write e.g. 512M, 1G)") from None
        if unit not in _SIZE_UNITS or not math.isfinite(x) or x < 0:
            raise argparse.ArgumentTypeError(f"not a size: {text!r} (write e.g. 512M, 1G)")
        n = int(x * _SIZE_UNITS[unit])
        if n != 0 and not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"{text} is out of range ({lo} bytes to {hi >> 30} GiB, or 0: no limit)")
        return n

    parse.__name__ = "size"
    return parse


MEMORY_SIZE = size_in(1 << 16, 1 << 48)
TRACE_SIZE = size_in(1 << 12, 1 << 50)
EVENTS = int_in(0)


def add_taint_window(p) -> None:
    """``--taint-window N`` (run, serve): see docs/verdicts.md."""
    from callscope.model.tokens import DEFAULT_TAINT_WINDOW
    p.add_argument("--taint-window", type=EVENTS, default=DEFAULT_TAINT_WINDOW, metavar="N",
                   help="keep searching imports for the tokens of the last N root calls that ended; an older "
                        f"one's tokens are retired, so a long recording's memory stays flat (default "
                        f"{DEFAULT_TAINT_WINDOW:,}; 0: never retire)")

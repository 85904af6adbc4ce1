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

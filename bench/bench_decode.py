#!/usr/bin/env python3
"""Decoding a ~21 MB component (tests/test_binary.py's large_component: 14
core modules of 1.5 MB, 20,000 type definitions), against copying the same
bytes once, in one run (a ratio: these machines are noisy).

    python bench/bench_decode.py [REPEAT]
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from callscope.component.binary import decode  # noqa: E402
from tests.test_binary import large_component  # noqa: E402


def best(fn, repeat):
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def main() -> None:
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    data = large_component()
    copy = best(lambda: bytearray(data), repeat)
    dec = best(lambda: decode(data), repeat)
    print(f"component {len(data) / 1e6:.1f} MB: decode {dec * 1e3:.1f} ms, "
          f"copy {copy * 1e3:.2f} ms, ratio {dec / copy:.0f}x")


if __name__ == "__main__":
    main()

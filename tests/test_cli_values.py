"""CLI numbers are validated by argparse types (callscope/argtypes.py):
finite, in range, or one line and exit 2 (issue 13)."""

from __future__ import annotations

import pytest

from callscope.cli import main


@pytest.mark.parametrize("argv, needle", [
    (["summary", "t", "--backpressure-threshold-ms", "nan"], "not a finite number"),
    (["summary", "t", "--backpressure-threshold-ms", "inf"], "not a finite number"),
    (["summary", "t", "--backpressure-threshold-ms", "-1"], "out of range"),
    (["events", "t", "--from", "-1"], "out of range"),
    (["events", "t", "--limit", "x"], "not an integer"),
    (["export", "t", "--at", "-5"], "out of range"),
    (["replay", "t", "--at", str(2**70)], "out of range"),
    (["serve", "g", "--port", "70000"], "0 to 65535"),
    (["serve", "g", "--port", "1", "--seed", "-1"], "--seed"),
    (["wast", "--seed", str(10**23), "f"], "--seed"),
    (["run", "--repeat", "0"], "out of range"),
    (["run", "--concurrency", "1e3"], "not an integer"),
])
def test_bad_numbers_are_one_line_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_good_numbers_pass(tmp_path, capsys):
    out = tmp_path / "t.trace"
    assert main(["run", "--demo", "well-behaved", "--seed", str(2**63 - 1), "--timeout", "60", "-o", str(out)]) == 0
    assert main(["summary", str(out), "--backpressure-threshold-ms", "0.5"]) == 0

"""The trace reader's C steps (callscope/trace/_check.c: the per-event
checks, the string references, the times, the Event tuples) against its
Python steps (callscope/trace/reader.py with ``_check`` None): the same
events from every good trace, the same TraceError (message and all) from
every bad one. The traces are the real recordings, mutated as
tests/test_fuzz.py mutates them (bytes, frames, and msgpack contents with
the CRCs recomputed), plus crafted events of every field check."""

from __future__ import annotations

import random

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from callscope.trace import TraceError, TraceReader
from callscope.trace import reader as R
from tests.fuzz.harness import RECORDINGS, join, mutate, seeds, split

pytestmark = pytest.mark.skipif(R._check is None, reason="callscope.trace._check is not built (no C compiler)")

SEEDS = seeds() if RECORDINGS else []


def _read(data: bytes, c: bool, escape: bool = False):
    saved = R._check
    R._check = saved if c else None
    try:
        with TraceReader(data, escape=escape) as r:
            return "ok", [tuple(e) for e in r], [type(e) for e in r.events(0, 5)]
    except TraceError as e:
        return "error", str(e), None
    finally:
        R._check = saved


def _same(data: bytes, escape: bool = False) -> str:
    c, py = _read(data, True, escape), _read(data, False, escape)
    assert c == py
    return c[0]


@pytest.mark.skipif(not SEEDS, reason="recordings/*.trace not present")
def test_the_recordings_read_the_same():
    for data in SEEDS:
        assert _same(data) == "ok"
        assert _same(data, escape=True) == "ok"


@pytest.mark.skipif(not SEEDS, reason="recordings/*.trace not present")
@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.integers(0, 2**63), st.integers(0, max(0, len(SEEDS) - 1)), st.integers(1, 3))
def test_mutated_recordings_read_or_fail_the_same(seed, which, rounds):
    rnd = random.Random(seed)
    data = SEEDS[which]
    for _ in range(rounds):
        data = mutate(rnd, data)
    _same(data)


def _chunk0(data: bytes):
    """(frames, index of the first chunk frame, its meta, its body) of a trace."""
    from tests.fuzz.harness import _decode_chunk
    from callscope.trace import format as F
    frames, _ = split(data)
    i = next(i for i, fr in enumerate(frames) if fr[0] == F.TAG_CHUNK)
    meta, body = _decode_chunk(frames[i][1])
    return frames, i, meta, [body[0], list(body[1]), [list(f) for f in body[2]]]


def _rewritten(frames, i, meta, body) -> bytes:
    from tests.fuzz.harness import _encode_chunk
    frames[i][1] = _encode_chunk(meta, body)
    return join(frames)


@pytest.mark.skipif(not SEEDS, reason="recordings/*.trace not present")
def test_every_field_check_fails_the_same():
    # each field of the first events of each kind set to values of every
    # shape, good or bad for its field type; a value summary nested past
    # the reader's limit and one at it
    nest = lambda d: 1 if d == 0 else [nest(d - 1)]
    bad_values = [1.5, "x", None, True, 7, [1, "a"], [None], [1, 2], ["a", "b"], {"k": [1]}, {(1,): 2}, [[[[1]]]],
                  msgpack.ExtType(9, b"\x00"), msgpack.ExtType(1, b"\xff" * 9), msgpack.ExtType(1, b""),
                  ["a", None], nest(R.MAX_VALUE_DEPTH - 1), nest(R.MAX_VALUE_DEPTH), nest(R.MAX_VALUE_DEPTH + 1)]
    outcomes = set()
    for data in SEEDS[:3]:
        frames, i, meta, body = _chunk0(data)
        firsts = {}
        for j, kid in enumerate(body[0]):
            firsts.setdefault(kid, []).append(j)
        for kid, js in sorted(firsts.items()):
            for j in js[:2]:
                for k in range(len(body[2][j])):
                    for v in bad_values:
                        b = [body[0], body[1], [list(f) for f in body[2]]]
                        b[2][j][k] = v
                        outcomes.add(_same(_rewritten(list(map(list, frames)), i, meta, b)))
    assert outcomes == {"ok", "error"}

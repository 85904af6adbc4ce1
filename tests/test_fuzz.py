"""Untrusted traces (issue 13): whatever the reader hands on is well-formed,
anything else is a TraceError naming the offset and the problem.

A hypothesis suite mutates the real recordings (bytes, frames, and msgpack
contents with the CRC recomputed) and pushes every result through the
reader, the summary, the exporters and replay's source; crafted traces check
the limits named in the issue. The long run is ``python -m
tests.fuzz.harness N`` (docs/trace-format.md, "Reading untrusted traces").
"""

from __future__ import annotations

import random
import struct
import subprocess
import sys
import zlib

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from callscope.trace import TraceError, TraceReader
from callscope.trace import format as F
from tests.fuzz.harness import RECORDINGS, join, mutate, outcome, rechunk, seeds, split

pytestmark = pytest.mark.skipif(not RECORDINGS, reason="recordings/*.trace not present")

SEEDS = seeds() if RECORDINGS else []


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.integers(0, 2**63), st.integers(0, len(SEEDS) - 1 if SEEDS else 0), st.integers(1, 3))
def test_mutated_recordings_read_or_trace_error(seed, which, rounds):
    rnd = random.Random(seed)
    data = SEEDS[which]
    for _ in range(rounds):
        data = mutate(rnd, data)
    assert outcome(data) in ("ok", "trace-error")


def test_the_seeds_read_as_they_are():
    for data in SEEDS:
        assert outcome(data) == "ok"


# ------------------------------------------------------------ crafted

def frames_of(data):
    frames, _ = split(data)
    return frames


def footer_of(frames):
    i = next(i for i, fr in enumerate(frames) if fr[0] == F.TAG_FOOTER)
    return i, msgpack.unpackb(frames[i][1], raw=False)


def with_footer(frames, **changes):
    i, foot = footer_of(frames)
    foot.update(changes)
    frames[i][1] = msgpack.packb(foot, use_bin_type=True)
    return join(frames, fix_index=False)


def chunk_parts(payload):
    (mlen,) = struct.unpack_from("<I", payload)
    return (msgpack.unpackb(payload[4 : 4 + mlen], raw=False),
            msgpack.unpackb(payload[4 + mlen :], raw=False, strict_map_key=False))


def with_chunk(data, change, k=0):
    """``data`` with its chunk ``k``'s (meta, body) changed by ``change``,
    CRC recomputed and the footer's offsets fixed."""
    frames = frames_of(data)
    idx = [i for i, fr in enumerate(frames) if fr[0] == F.TAG_CHUNK][k]
    meta, body = chunk_parts(frames[idx][1])
    change(meta, body)
    m = msgpack.packb(meta, use_bin_type=True)
    frames[idx][1] = struct.pack("<I", len(m)) + m + msgpack.packb(body, use_bin_type=True)
    return join(frames)


def with_header(data, change):
    frames = frames_of(data)
    h = msgpack.unpackb(frames[0][1], raw=False)
    change(h)
    frames[0][1] = msgpack.packb(h, use_bin_type=True)
    return join(frames)


def read_all(data):
    with TraceReader(data) as r:
        return list(r.events())


def event_index(body, kind_name):
    kid = F.KIND_ID[kind_name]
    return body[0].index(kid)


def set_field(kind, i, value):
    def change(meta, body):
        j = event_index(body, kind)
        body[2][j][i] = value
    return change


def every_kind_trace():
    """A trace with one event of every kind (tests/test_trace.py's)."""
    import io

    from callscope.trace import Recorder
    from tests.test_trace import FakeClock, every_kind

    clock = FakeClock()
    buf = io.BytesIO()
    rec = Recorder(buf, clock=clock, flush_clock=clock)
    every_kind(rec, clock)
    rec.close()
    return buf.getvalue()


@pytest.fixture
def base():
    return SEEDS[0]


def expect(data, *words):
    with pytest.raises(TraceError) as e:
        read_all(data)
    msg = str(e.value)
    assert "\n" not in msg and "offset" in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def test_footer_event_count_checked_against_the_chunks(base):
    frames = frames_of(base)
    expect(with_footer(frames, events=2**62), "events is", "its chunks hold")
    frames = frames_of(base)
    _, foot = footer_of(frames)
    expect(with_footer(frames, events=foot["events"] + 1), "its chunks hold")


def test_chunk_claiming_more_events_than_it_holds(base):
    frames = frames_of(base)
    _, foot = footer_of(frames)
    rows = [list(r) for r in foot["chunks"]]
    rows[0][2] = 2**40
    expect(with_footer(frames, chunks=rows, events=2**40), "claims")
    frames = frames_of(base)
    rows = [list(r) for r in foot["chunks"]]
    rows[0][2] -= 1  # consistent footer, but the chunk itself holds one more
    expect(with_footer(frames, chunks=rows, events=foot["events"] - 1), "disagrees")


def test_chunk_offsets_are_bounds_checked(base):
    frames = frames_of(base)
    _, foot = footer_of(frames)
    for off in (-1, 0, 3, len(base) + 10, 2**63):
        rows = [list(r) for r in foot["chunks"]]
        rows[0][0] = off
        frames = frames_of(base)
        if off < 0 or off >= 2**63:
            data = with_footer(frames, chunks=rows)  # (msgpack packs them; the reader refuses)
        else:
            data = with_footer(frames, chunks=rows)
        expect(data, "chunk")


def test_string_ids_out_of_range(base):
    def change(meta, body):
        j = event_index(body, "task.new")
        body[2][j][2] = msgpack.ExtType(F.EXT_STR, (70000).to_bytes(4, "big"))
    expect(with_chunk(base, change), "string id 70000 out of range")


@pytest.mark.parametrize("kind, i, value, words", [
    ("task.new", 0, "7", ("'task'", "string, expected int")),
    ("task.new", 0, [1], ("'task'", "array")),
    ("task.new", 0, {"a": 1}, ("'task'", "map")),
    ("task.new", 0, None, ("'task'", "nil, expected int")),
    ("task.new", 0, True, ("'task'", "bool, expected int")),
    ("task.new", 6, 1, ("'sync'", "expected bool")),
    ("import.call", 3, [1, "x"], ("'stack'", "array holding")),
    ("import.call", 5, [1], ("'taint'", "array holding int")),
    ("import.call", 3, 5, ("'stack'", "expected array")),
    ("trap", 1, None, ("'message'", "expected string")),
])
def test_field_types_checked_against_the_kind(kind, i, value, words):
    data = every_kind_trace()
    expect(with_chunk(data, set_field(kind, i, value)), *words)


def test_short_and_long_field_tuples(base):
    def short(meta, body):
        body[2][event_index(body, "task.new")].pop()
    expect(with_chunk(base, short), "'task.new' has 6 field(s), expected 7")

    def long(meta, body):
        body[2][event_index(body, "task.new")].append(1)
    expect(with_chunk(base, long), "expected 7")

    def not_tuple(meta, body):
        body[2][0] = 5
    expect(with_chunk(base, not_tuple), "fields are int")


def test_kind_ids_in_range(base):
    def change(meta, body):
        body[0] = body[0][:1] + bytes([200]) + body[0][2:]
    expect(with_chunk(base, change), "kind id 200 out of range")


def test_deeply_nested_value(base):
    def change(meta, body):
        v = None
        for _ in range(500):
            v = [v]
        body[2][event_index(body, "import.return")][1] = v
    expect(with_chunk(base, change), "nested deeper")


def test_time_columns(base):
    def change(meta, body):
        body[1][0] = 1.5
    expect(with_chunk(base, change), "time delta")

    def short(meta, body):
        body[1].pop()
    expect(with_chunk(base, short), "columns of")


@pytest.mark.parametrize("change, words", [
    (lambda h: h.update(version=None), ("version None",)),
    (lambda h: h.update(version=[1]), ("version [1]",)),
    (lambda h: h.update(version="1.1"), ("version '1.1'",)),
    (lambda h: h.update(version=[1, "x"]), ("version",)),
    (lambda h: h.update(kinds=5), ("kinds",)),
    (lambda h: h.update(kinds=[]), ("kinds",)),
    (lambda h: h.update(kinds=h["kinds"][:1] + [["task.new", ["x"]]] + h["kinds"][2:]), ("kind 'task.new' has fields",)),
    (lambda h: h.update(kinds=h["kinds"] + [h["kinds"][0]]), ("listed twice",)),
    (lambda h: h.update(kinds=[[1, []]]), ("kinds entry",)),
    (lambda h: h.update(kinds=[["x", []]] * 300), ("kinds",)),
    (lambda h: h.update(guest=[1]), ("guest",)),
    (lambda h: h.update(guest={"name": 5}), ("guest name",)),
    (lambda h: h.update(argv="rm -rf"), ("argv",)),
    (lambda h: h.update(seed="x"), ("seed",)),
])
def test_header_checked(base, change, words):
    msg = expect(with_header(base, change), "trace header", *words)
    assert "offset 8" in msg


def test_a_newer_minor_with_trailing_fields_and_new_kinds_reads(base):
    """What a minor bump may add (docs/trace-format.md) still reads."""
    nk = []

    def hdr(h):
        nk.append(len(h["kinds"]))
        h["version"] = [1, 9]
        h["kinds"] = [[k, fs + (["extra"] if k == "task.start" else [])] for k, fs in h["kinds"]]
        h["kinds"].append(["shiny.new", ["a", "b"]])
    data = with_header(base, hdr)

    def chunk(meta, body):
        for j, k in enumerate(body[0]):
            if k == F.KIND_ID["task.start"]:
                body[2][j].append({"x": [1, 2]})
        body[0] = body[0] + bytes([nk[0]])
        body[1].append(0)
        body[2].append([None, "free"])
        meta[1] += 1
    data = with_chunk(data, chunk)
    frames = frames_of(data)
    _, foot = footer_of(frames)
    rows = [list(r) for r in foot["chunks"]]
    rows[0][2] += 1
    data = with_footer(frames, chunks=rows, events=foot["events"] + 1)
    evs = read_all(data)
    assert evs[-1].kind == "shiny.new" and evs[-1].b == "free"
    assert outcome(data) == "ok"


def test_rechunked_recordings_read_the_same():
    from callscope.trace.reader import read_events

    for p in RECORDINGS:
        d = p.read_bytes()
        assert read_events(rechunk(d, 5)) == read_events(d)


@pytest.mark.parametrize("cmd", ["summary", "events", "export"])
def test_cli_one_line_exit_2(tmp_path, base, cmd):
    data = with_chunk(base, set_field("task.new", 0, "7"))
    p = tmp_path / "bad.trace"
    p.write_bytes(data)
    r = subprocess.run([sys.executable, "-m", "callscope", cmd, str(p)], capture_output=True, text=True)
    assert r.returncode == 2, r
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert "expected int" in r.stderr

"""Fuzzing the trace readers' consumers (issue 13): mutate real recordings,
push each result through the reader, the model's summary, the exporters and
replay's source, and sort the outcomes.

An outcome is ``"ok"`` (read as a well-formed trace), ``"trace-error"`` (a
:class:`TraceError`) or anything else: the exception's type and the place it
was raised, which is a bug. Mutations (``mutate``) are of two sorts: bytes
changed anywhere (most then fail their CRC: the reader must see a truncated
or damaged trace), and a frame's contents changed as msgpack values (a node
replaced, dropped, duplicated; ints pushed to edges; string ids out of
range) and the frame's CRC recomputed, so the damage gets past the checksum.

``python -m tests.fuzz.harness N [SEED]`` runs N random inputs and prints
the counts (the long run of issue 13); tests/test_fuzz.py runs a few thousand
with hypothesis in CI.
"""

from __future__ import annotations

import os
import random
import struct
import sys
import traceback
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import msgpack

from callscope.trace import format as F

ROOT = Path(__file__).resolve().parents[2]
RECORDINGS = sorted((ROOT / "recordings").glob("*.trace"))


def seeds() -> list[bytes]:
    """The recordings as they are, and each cut into chunks of a few events
    (so that footers index many chunks and strings arrive chunk by chunk)."""
    out = []
    for data in [p.read_bytes() for p in RECORDINGS] + [_windowed_demo()]:
        out += [data, rechunk(data, 7), rechunk(data, 40)]
    return out


def _windowed_demo() -> bytes:
    """The event-loop demo recorded now with a taint window of 1 (so the
    seeds hold taint.retire records and the newest format's kinds)."""
    import tempfile
    from callscope.run import RunOptions, run
    with tempfile.TemporaryDirectory() as d, open(os.devnull, "w") as devnull:
        path = os.path.join(d, "w.trace")
        run(RunOptions(demo="event-loop", record=True, output=path, argv=["fuzz"], repeat=4, concurrency=3,
                       taint_window=1), out=devnull)
        with open(path, "rb") as f:
            return f.read()


def rechunk(data: bytes, size: int) -> bytes:
    """The trace ``data`` rewritten with ``size`` events per chunk (strings
    still interned, each defined in the chunk of its first use)."""
    frames, _ = split(data)
    header = next(p for t, p in frames if t == F.TAG_HEADER)
    footer = msgpack.unpackb(next(p for t, p in frames if t == F.TAG_FOOTER), raw=False)
    strings = footer["strings"]
    evs = []
    for t, p in frames:
        if t == F.TAG_CHUNK:
            (mlen,) = struct.unpack_from("<I", p)
            kinds, deltas, fields = msgpack.unpackb(p[4 + mlen :], raw=False)
            tm = 0
            for i, (k, d, f) in enumerate(zip(kinds, deltas, fields)):
                tm = d if i == 0 else tm + d
                evs.append((k, tm, f))
    nkinds = len(msgpack.unpackb(header, raw=False)["kinds"])
    out = [[F.TAG_HEADER, header]]
    rows = []
    defined = nkinds
    for c in range(0, len(evs), size):
        part = evs[c : c + size]
        used = max([defined] + [int.from_bytes(x.data, "big") + 1 for _, _, f in part
                                for x in _exts(f)])
        meta = [c, len(part), part[0][1], part[-1][1], defined, strings[defined:used]]
        deltas = [part[0][1]] + [b[1] - a[1] for a, b in zip(part, part[1:])]
        body = [bytes(k for k, _, _ in part), deltas, [f for _, _, f in part]]
        defined = used
        rows.append([0, c, len(part), part[0][1], part[-1][1]])
        out.append([F.TAG_CHUNK, _encode_chunk(meta, body)])
    if defined == nkinds:  # (no event used a string: the first chunk defines them all)
        pass
    foot = dict(footer, chunks=rows, strings=strings[:defined] if rows else strings[:nkinds], events=len(evs))
    out.append([F.TAG_FOOTER, msgpack.packb(foot, use_bin_type=True)])
    return join(out)


def _exts(v: Any):
    if isinstance(v, msgpack.ExtType) and v.code == F.EXT_STR:
        yield v
    elif isinstance(v, (list, tuple)):
        for x in v:
            yield from _exts(x)
    elif isinstance(v, dict):
        for k, x in v.items():
            yield from _exts(k)
            yield from _exts(x)


# ------------------------------------------------------------- exercise

def exercise(data: bytes, deep: bool = True) -> str:
    """Read ``data`` as a trace through every consumer. Returns "ok" or
    "trace-error"; anything else raises."""
    from callscope.trace.reader import TraceError, TraceReader

    try:
        with TraceReader(data) as r:
            evs = list(r.events())
            assert len(evs) == r.event_count, (len(evs), r.event_count)
            if not deep:
                return "ok"
            from callscope.model.summary import format_summary, summarize_trace

            format_summary(summarize_trace(r))
            from callscope.export.dot import to_dot
            from callscope.export.graph import build_graph

            to_dot(build_graph(iter(evs), title="fuzz"))
            if evs:
                r.event(len(evs) - 1)
                r.first_event_at(evs[len(evs) // 2][2])
        from callscope.replay.source import ReplaySource

        src = ReplaySource(data, every=64)
        try:
            src.index()
            for n in (0, src.total // 2, src.total - 1):
                st = src.state_after(n)
                st.render_tree()
                ev = src.event(n)
                if ev is not None:
                    src.describe_task(ev.get("task"), st)
        finally:
            src.close()
    except TraceError:
        return "trace-error"
    return "ok"


def outcome(data: bytes, deep: bool = True) -> str:
    """:func:`exercise`, with any other exception named by type and place."""
    try:
        return exercise(data, deep)
    except RecursionError:
        return "RecursionError"
    except Exception as e:
        tb = traceback.extract_tb(e.__traceback__)
        where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb)
                      if "callscope" in f.filename), "?")
        return f"{type(e).__name__} at {where}: {str(e)[:80]}"


# ---------------------------------------------------------------- frames

def split(data: bytes) -> tuple[list[list], bytes]:
    """The frames of a trace as [tag, payload] (in order) and the bytes
    after the last frame (the trailer)."""
    off = len(F.MAGIC)
    frames = []
    while off + F.FRAME_HEADER_SIZE <= len(data):
        tag, length, _ = struct.unpack_from(F.FRAME_HEADER, data, off)
        if tag not in (F.TAG_HEADER, F.TAG_CHUNK, F.TAG_FOOTER):
            break
        frames.append([tag, data[off + F.FRAME_HEADER_SIZE : off + F.FRAME_HEADER_SIZE + length]])
        off += F.FRAME_HEADER_SIZE + length
    return frames, data[off:]


def join(frames: list[list], fix_index: bool = True) -> bytes:
    """A trace of ``frames`` with CRCs recomputed; with ``fix_index`` the
    footer's chunk offsets and the trailer are rewritten to match."""
    out = bytearray(F.MAGIC)
    offsets = []
    footer_off = None
    for i, (tag, payload) in enumerate(frames):
        if tag == F.TAG_CHUNK:
            offsets.append(len(out))
        if tag == F.TAG_FOOTER:
            footer_off = len(out)
            if fix_index:
                try:
                    foot = msgpack.unpackb(payload, raw=False, strict_map_key=False)
                    if isinstance(foot, dict) and isinstance(foot.get("chunks"), list):
                        for row, o in zip(foot["chunks"], offsets):
                            if isinstance(row, list) and row:
                                row[0] = o
                        payload = msgpack.packb(foot, use_bin_type=True)
                except Exception:
                    pass
        out += struct.pack(F.FRAME_HEADER, tag, len(payload), zlib.crc32(payload)) + payload
    if footer_off is not None:
        out += struct.pack(F.TRAILER, footer_off, F.TRAILER_MAGIC)
    return bytes(out)


# -------------------------------------------------------------- mutation

_EDGE_INTS = [0, 1, -1, 2, 7, 255, 256, 65535, 2**31, 2**32 - 1, 2**32, 2**62, 2**63 - 1, -(2**63), 2**64 - 1]


def _random_value(rnd: random.Random, depth: int = 0) -> Any:
    c = rnd.randrange(14)
    if c == 0:
        return None
    if c == 1:
        return rnd.choice([True, False])
    if c in (2, 3):
        return rnd.choice(_EDGE_INTS)
    if c == 4:
        return rnd.choice([0.0, float("nan"), float("inf"), -1.5])
    if c == 5:
        return rnd.choice(["", "x", "\x1b]0;pwned\x07", "[/]", "[bold]x", "a" * 300, "task.new", "\u202e"])
    if c == 6:
        return rnd.choice([b"", b"\x00\xff", b"x" * 40])
    if c == 7:
        return msgpack.ExtType(F.EXT_STR, rnd.choice([0, 1, 200, 70000, 2**32 - 1]).to_bytes(rnd.choice([1, 2, 4, 5]), "big", signed=False) if True else b"")
    if c == 8:
        return msgpack.ExtType(rnd.choice([2, 5, 127]), b"\x01")
    if c == 9 and depth < 4:
        return [_random_value(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    if c == 10 and depth < 4:
        return {_random_value(rnd, 9): _random_value(rnd, depth + 1) for _ in range(rnd.randrange(3))}
    if c == 11:
        d = rnd.randrange(1, 1100)
        v: Any = None
        for _ in range(min(d, 900)):
            v = [v]
        return v
    return rnd.randrange(-5, 50)


def _nodes(v: Any, path: tuple = ()) -> list[tuple]:
    """Paths to every node of a msgpack value (lists and maps walked)."""
    out = [path]
    if isinstance(v, list) and len(path) < 12:
        for i, x in enumerate(v[:64]):
            out += _nodes(x, path + (i,))
    elif isinstance(v, dict) and len(path) < 12:
        for k in list(v)[:64]:
            out += _nodes(v[k], path + (k,))
    return out


def _mutate_value(rnd: random.Random, v: Any) -> Any:
    paths = _nodes(v)
    path = rnd.choice(paths)
    if not path:
        return _random_value(rnd)
    parent = v
    for p in path[:-1]:
        parent = parent[p]
    last = path[-1]
    op = rnd.randrange(6)
    if op <= 2:
        parent[last] = _random_value(rnd)
    elif op == 3:
        old = parent[last]
        if isinstance(old, int) and not isinstance(old, bool):
            parent[last] = rnd.choice([old + 1, old - 1, -old, old * 2**20, rnd.choice(_EDGE_INTS)])
        elif isinstance(old, list):
            if old and rnd.random() < 0.5:
                del old[rnd.randrange(len(old))]
            else:
                old.append(_random_value(rnd))
        else:
            parent[last] = _random_value(rnd)
    elif op == 4 and isinstance(parent, list):
        del parent[last]
    elif isinstance(parent, list):
        parent.insert(last, _random_value(rnd))
    else:
        parent[last] = _random_value(rnd)
    return v


def _decode_chunk(payload: bytes) -> Optional[tuple[Any, Any]]:
    try:
        (mlen,) = struct.unpack_from("<I", payload)
        meta = msgpack.unpackb(payload[4 : 4 + mlen], raw=False)
        body = msgpack.unpackb(payload[4 + mlen :], raw=False, strict_map_key=False)
        return meta, body
    except Exception:
        return None


def _encode_chunk(meta: Any, body: Any) -> bytes:
    m = msgpack.packb(meta, use_bin_type=True)
    return struct.pack("<I", len(m)) + m + msgpack.packb(body, use_bin_type=True)


def mutate(rnd: random.Random, data: bytes) -> bytes:
    """One mutation of the trace ``data``."""
    kind = rnd.randrange(10)
    if not data:
        return bytes(rnd.randrange(256) for _ in range(rnd.randrange(20)))
    if kind == 0:  # bytes flipped anywhere (mostly caught by the CRC)
        b = bytearray(data)
        for _ in range(rnd.randrange(1, 4)):
            i = rnd.randrange(len(b))
            b[i] = rnd.randrange(256)
        return bytes(b)
    if kind == 1:  # truncated
        return data[: rnd.randrange(len(data) + 1)]
    frames, _tail = split(data)
    if not frames:
        return data
    if kind == 2:  # frames dropped, duplicated or swapped, CRCs fine
        i = rnd.randrange(len(frames))
        op = rnd.randrange(3)
        if op == 0 and len(frames) > 1:
            del frames[i]
        elif op == 1:
            frames.insert(i, list(frames[i]))
        else:
            j = rnd.randrange(len(frames))
            frames[i], frames[j] = frames[j], frames[i]
        return join(frames, rnd.random() < 0.7)
    if kind == 3:  # a frame's payload bytes changed, CRC recomputed
        i = rnd.randrange(len(frames))
        p = bytearray(frames[i][1])
        if p:
            for _ in range(rnd.randrange(1, 4)):
                p[rnd.randrange(len(p))] = rnd.randrange(256)
        frames[i][1] = bytes(p)
        return join(frames, rnd.random() < 0.5)
    # the contents of one frame changed as msgpack values, CRC recomputed
    # (a chunk more often than the header or footer)
    chunks = [j for j, fr in enumerate(frames) if fr[0] == F.TAG_CHUNK]
    i = rnd.choice(chunks) if chunks and rnd.random() < 0.75 else rnd.randrange(len(frames))
    tag, payload = frames[i]
    try:
        if tag == F.TAG_CHUNK:
            dec = _decode_chunk(payload)
            if dec is None:
                return join(frames)
            meta, body = dec
            if rnd.random() < 0.3:
                meta = _mutate_value(rnd, meta)
            else:
                body = _mutate_value(rnd, body)
            frames[i][1] = _encode_chunk(meta, body)
        else:
            v = msgpack.unpackb(payload, raw=False, strict_map_key=False)
            for _ in range(rnd.randrange(1, 3)):
                v = _mutate_value(rnd, v)
            frames[i][1] = msgpack.packb(v, use_bin_type=True)
    except (ValueError, TypeError, OverflowError):  # (a value msgpack cannot pack)
        return join(frames)
    return join(frames, rnd.random() < 0.9)


# ------------------------------------------------------------------- main

def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 10000
    seed = int(argv[1]) if len(argv) > 1 else 0
    deep_every = int(argv[2]) if len(argv) > 2 else 1
    rnd = random.Random(seed)
    base = seeds()
    counts: Counter = Counter()
    bad: Counter = Counter()
    for i in range(n):
        data = rnd.choice(base)
        for _ in range(rnd.choice((1, 1, 1, 2, 3))):
            data = mutate(rnd, data)
        o = outcome(data, deep=(i % deep_every == 0))
        if o in ("ok", "trace-error"):
            counts[o] += 1
        else:
            counts["other"] += 1
            bad[o] += 1
            if bad[o] == 1:
                os.makedirs("/tmp/fuzz-crashes", exist_ok=True)
                Path(f"/tmp/fuzz-crashes/{seed}-{i}.trace").write_bytes(data)
        if (i + 1) % 10000 == 0:
            print(f"{i + 1} inputs: {dict(counts)}", flush=True)
    print(f"done: {n} inputs, seed {seed}: {dict(counts)}")
    for o, c in bad.most_common():
        print(f"  {c:8d}  {o}")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

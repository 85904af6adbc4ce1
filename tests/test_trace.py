"""The trace format: writer/reader round trip, seeking, truncation (including
a real SIGKILL), the 100 ms flush rule, summaries, the CLI commands."""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from callscope.trace import Recorder, TraceError, TraceReader, read_events, summarize
from callscope.trace import format as F
from callscope.trace.commands import add_arguments


class FakeClock:
    def __init__(self, t: int = 0):
        self.t = t

    def __call__(self) -> int:
        return self.t

    def advance(self, ns: int) -> None:
        self.t += ns


def every_kind(rec: Recorder, clock: FakeClock) -> list[tuple]:
    """Call every Recorder method once; return the expected (kind, fields)."""
    exp = []

    def step(kind, fields):
        exp.append((kind, fields))
        clock.advance(1 + len(exp) * 37)

    rec.instance_new(0, "root", None); step("instance.new", (0, "root", None))
    rec.task_new(1, 0, "run", None, 1, "GET /", False); step("task.new", (1, 0, "run", None, 1, "GET /", False))
    rec.task_start(1); step("task.start", (1,))
    rec.task_return(1, [1, "x"]); step("task.return", (1, (1, "x")))
    rec.task_cancel(1); step("task.cancel", (1,))
    rec.task_exit(1); step("task.exit", (1,))
    rec.task_resolved(1); step("task.resolved", (1,))
    rec.subtask_state(2, 5, "returned"); step("subtask.state", (2, 5, 2))
    rec.subtask_cancel(2, 5); step("subtask.cancel", (2, 5))
    rec.subtask_drop(2, 5); step("subtask.drop", (2, 5))
    for op in ("inc", "dec", "set"):
        rec.backpressure(0, 3, op); step(f"backpressure.{op}", (0, 3))
    rec.call_queued(4); step("call.queued", (4,))
    rec.call_admitted(4); step("call.admitted", (4,))
    rec.waitable_set_new(0, 1); step("waitable-set.new", (0, 1))
    rec.waitable_join(0, 5, 1); step("waitable.join", (0, 5, 1))
    rec.waitable_set_wait(3, 1); step("waitable-set.wait", (3, 1))
    rec.waitable_set_poll(3, 1); step("waitable-set.poll", (3, 1))
    rec.event_delivered(3, 1, 5, 2); step("event.delivered", (3, 1, 5, 2))
    rec.waitable_set_drop(0, 1); step("waitable-set.drop", (0, 1))
    for kind in ("stream", "future"):
        for op in F.COPY_OPS:
            rec.copy(kind, op, 9, 4, 0x41, 0); step(f"{kind}.{op}", (9, 4, 0x41, 0))
    rec.thread_switch(None, 3); step("thread.switch", (None, 3))
    rec.thread_new(3, 1); step("thread.new", (3, 1))
    rec.thread_set_task(3, 1, 2); step("thread.set-task", (3, 1, 2))
    stack = [1]
    rec.import_call(7, 0, "wasi:http/handler", stack, {"a": 1}, ["tok"], [1], [9])
    stack.append(99)  # the runtime reuses its list: the trace must not see it
    step("import.call", (7, 0, "wasi:http/handler", (1,), {"a": 1}, ("tok",), (1,), (9,)))
    rec.import_return(7, "ok"); step("import.return", (7, "ok"))
    rec.handle_new("resource", 0, 2, 1); step("handle.new", ("resource", 0, 2, 1))
    rec.taint_plant(1, "tok"); step("taint.plant", (1, "tok"))
    rec.taint_retire(1); step("taint.retire", (1,))
    rec.note("hello"); step("note", ("hello",))
    rec.trap(1, "unreachable"); step("trap", (1, "unreachable"))
    rec.deadlock("stuck"); step("deadlock", ("stuck",))
    rec.oracle_verdict(7, "misattributed", [2], 1); step("oracle.verdict", (7, "misattributed", (2,), 1))
    rec.oracle_end("ran", 1, 1, 0); step("oracle.end", ("ran", 1, 1, 0))
    return exp


def test_every_kind_round_trips(tmp_path):
    clock = FakeClock(10**12)
    path = tmp_path / "t.cstrace"
    guest = tmp_path / "g.wasm"
    guest.write_bytes(b"\0asm\x0d\0\x01\0")
    rec = Recorder(path, clock=clock, flush_clock=clock, guest=guest, seed=42, argv=["callscope", "run", "g.wasm"])
    exp = every_kind(rec, clock)
    rec.close()
    with TraceReader(path) as r:
        assert not r.truncated and r.truncation is None
        h = r.header
        assert h["format"] == "callscope-trace" and tuple(h["version"]) == F.FORMAT_VERSION
        assert h["guest"]["name"] == "g.wasm" and h["guest"]["size"] == 8 and len(h["guest"]["sha256"]) == 64
        assert h["seed"] == 42 and h["argv"] == ["callscope", "run", "g.wasm"]
        assert h["callscope_version"] and "wasmtime_version" in h and h["start_time"].endswith("Z")
        evs = list(r)
    assert len(evs) == len(exp) == len(F.KINDS)  # one of every kind
    assert [(e.kind, e.fields) for e in evs] == exp
    assert [e.n for e in evs] == list(range(len(exp)))
    times = [e.time for e in evs]
    assert times[0] == 10**12 and times == sorted(times) and len(set(times)) == len(times)
    ev = evs[1]
    assert ev.task == 1 and ev.label == "GET /" and ev.get("sync") is False and ev.get("nope", 5) == 5
    assert ev.asdict() == {"n": 1, "kind": "task.new", "time": ev.time, "task": 1, "inst": 0, "func": "run",
                           "caller": None, "root": 1, "label": "GET /", "sync": False}
    with pytest.raises(AttributeError):
        ev.nope


def test_a_new_trace_replaces_the_file_not_its_contents(tmp_path):
    # recording over a trace makes a new file (a truncated one costs a
    # write-back at close on ext4): a hard link to the old trace keeps it,
    # and a symlink is written through as before
    def record(path, note):
        rec = Recorder(path, clock=FakeClock(1))
        rec.note(note)
        rec.close()

    def notes(path):
        with TraceReader(path) as r:
            return [e.fields[0] for e in r]

    path = tmp_path / "t.cstrace"
    record(path, "first")
    os.link(path, tmp_path / "kept.cstrace")
    record(path, "second")
    assert notes(path) == ["second"] and notes(tmp_path / "kept.cstrace") == ["first"]
    target = tmp_path / "target.cstrace"
    target.write_bytes(b"old")
    (tmp_path / "link.cstrace").symlink_to(target)
    record(tmp_path / "link.cstrace", "third")
    assert (tmp_path / "link.cstrace").is_symlink() and notes(target) == ["third"]
    # a trace made read-only is not replaced (as before: writing it fails)
    os.chmod(path, 0o444)
    if not os.access(path, os.W_OK):  # (root may write anything)
        with pytest.raises(PermissionError):
            record(path, "fourth")
        assert notes(path) == ["second"]


def test_switch_through_the_loop_is_one_event(tmp_path):
    """X -> loop then loop -> Y with nothing recorded in between is one
    thread.switch X -> Y (at X's time); an event or a flush in between keeps
    both."""
    clock = FakeClock(100)
    path = tmp_path / "t.cstrace"
    rec = Recorder(path, clock=clock, flush_clock=clock)
    rec.thread_switch(None, 1); clock.advance(1)
    rec.thread_switch(1, None); clock.advance(1)   # } one event: 1 -> 2, time 101
    rec.thread_switch(None, 2); clock.advance(1)   # }
    rec.task_start(7); clock.advance(1)
    rec.thread_switch(2, None); clock.advance(1)   # } one event: 2 -> 2
    rec.thread_switch(None, 2); clock.advance(1)   # }
    rec.thread_switch(2, None); clock.advance(1)
    rec.note("loop"); clock.advance(1)              # kept apart by an event
    rec.thread_switch(None, 3); clock.advance(1)
    rec.thread_switch(3, None); clock.advance(1)
    rec.flush()                                     # ... or by a flush
    rec.thread_switch(None, 1); clock.advance(1)
    rec.thread_switch(1, 4); clock.advance(1)       # not through the loop: kept
    rec.thread_switch(4, 1)
    rec.close()
    with TraceReader(path) as r:
        evs = [(e.kind, e.time, e.fields) for e in r]
    sw = "thread.switch"
    assert evs == [(sw, 100, (None, 1)), (sw, 101, (1, 2)), ("task.start", 103, (7,)), (sw, 104, (2, 2)),
                   (sw, 106, (2, None)), ("note", 107, ("loop",)), (sw, 108, (None, 3)), (sw, 109, (3, None)),
                   (sw, 110, (None, 1)), (sw, 111, (1, 4)), (sw, 112, (4, 1))]


def many(rec: Recorder, clock: FakeClock, n: int) -> None:
    for i in range(n):
        rec.task_new(i, i % 3, f"f{i % 5}", None, i, f"label{i % 7}", False)
        clock.advance(1_000_000 + i % 1000)  # real-clock mode checks fullness once per ms
        rec.copy("stream", "read", i, 64, i * 3, 1)


def test_many_chunks_seek_and_strings(tmp_path):
    clock = FakeClock()
    path = tmp_path / "t.cstrace"
    rec = Recorder(path, clock=clock, flush_clock=clock, chunk_events=100)
    many(rec, clock, 2000)
    assert rec.events_written == 4000
    rec.close()
    r = TraceReader(path)
    assert r.event_count == 4000 and len(r.chunks) == 40
    assert all(c.count == 100 for c in r.chunks)
    evs = list(r)
    assert [e.n for e in evs] == list(range(4000))
    assert evs[2 * 1234].label == "label2" and evs[2 * 1234].func == "f4"
    # seek: any event, any range, matches the linear read
    for n in (0, 1, 99, 100, 101, 2345, 3999):
        assert r.event(n) == evs[n]
    assert r.event(-1) == evs[-1]
    assert list(r.events(150, 420)) == evs[150:420]
    assert list(r.events(3990)) == evs[3990:]
    assert list(r.events(10, 10)) == []
    with pytest.raises(IndexError):
        r.event(4000)
    # seek by time
    t = evs[2500].time
    k = r.first_event_at(t)
    assert evs[k].time >= t and (k == 0 or evs[k - 1].time < t)
    assert r.first_event_at(10**18) == 4000
    r.close()


def _unique_strings_run(path, sink, intern_cap) -> Recorder:
    """A serve-like recording: each root a unique label and token, hot
    import names used throughout, the same events whatever the cap."""
    clock = FakeClock()
    rec = Recorder(path, clock=clock, flush_clock=clock, chunk_events=50, sink=sink, intern_cap=intern_cap)
    rec.instance_new(0, "guest", None)
    rec.flush()  # (the first chunk: its strings stay in the lookup)
    for i in range(1, 1500):
        rec.task_new(i, 0, "handle", None, i, f"req-{i:06d} GET /x", False)
        rec.taint_plant(i, f"req-{i:06d}")
        rec.import_call(i, 0, f"wasi:http/client#send{i % 3}", [i], "x", [f"req-{i:06d}"], [], None)
        rec.handle_new("stream", 0, i, i)
        clock.advance(1000)
    return rec


@pytest.mark.parametrize("sink", ["py", "c"])
def test_intern_lookup_is_bounded_events_unchanged(tmp_path, sink):
    """The string table's lookup stays near intern_cap; a string forgotten
    and used again gets a new id; readers (footer or scan) see the same
    events as with no bound."""
    from callscope.trace.sink import CSink, PySink
    cls = PySink if sink == "py" else CSink
    if cls is None:
        pytest.skip("the C extension is not built")
    unbounded = _unique_strings_run(tmp_path / "a.trace", cls, 1 << 30)
    unbounded.close()
    rec = _unique_strings_run(tmp_path / "b.trace", cls, 128)
    assert len(rec._sink.strings) <= 128 + 50 * 5  # (at most a chunk's worth past the cap)
    assert "guest" in rec._sink.strings and all(k in rec._sink.strings for k in F.KIND_NAMES)
    rec.close()
    with TraceReader(tmp_path / "a.trace") as a, TraceReader(tmp_path / "b.trace") as b:
        exp = [(e.kind, e.time, e.fields) for e in a]
        assert [(e.kind, e.time, e.fields) for e in b] == exp
        assert len(set(a.strings)) == len(a.strings)  # no bound: each string once
        assert len(b.strings) > len(set(b.strings)) and set(b.strings) == set(a.strings)
        assert b.strings[:len(F.KIND_NAMES)] == list(F.KIND_NAMES)
    # without the footer (the table rebuilt from the chunks): the same events
    data = (tmp_path / "b.trace").read_bytes()
    (tmp_path / "c.trace").write_bytes(data[:-F.TRAILER_SIZE])
    with TraceReader(tmp_path / "c.trace") as c:
        assert c.truncated and [(e.kind, e.time, e.fields) for e in c] == exp


@pytest.mark.parametrize("sink", ["py", "c"])
def test_strings_spilled_to_a_file_give_the_same_bytes(tmp_path, sink, monkeypatch):
    """Past SPILL_STRINGS strings already in chunks, the recorder moves them
    to a spill file and the sink drops them (string_base); the footer
    streamed from it is byte for byte the one made from the list (the
    footer's clock fixed), so readers see the same table and events."""
    from callscope.trace.sink import CSink, PySink
    cls = PySink if sink == "py" else CSink
    if cls is None:
        pytest.skip("the C extension is not built")
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_000_000_000)
    kept = _unique_strings_run(tmp_path / "a.trace", cls, 128)
    assert kept._spill is None
    kept.close()
    monkeypatch.setattr(Recorder, "SPILL_STRINGS", 100)
    rec = _unique_strings_run(tmp_path / "b.trace", cls, 128)
    sink = rec._sink
    assert rec._spill is not None and sink.string_base > 2000 and len(sink.string_list) < 400
    assert rec._head == [x for x in rec._head if x] and set(F.KIND_NAMES) <= set(rec._head)  # (the lookup's head)
    rec.close()
    assert rec._spill is None
    assert (tmp_path / "a.trace").read_bytes() == (tmp_path / "b.trace").read_bytes()
    with TraceReader(tmp_path / "b.trace") as b:
        assert not b.truncated and None not in b.strings and len(list(b)) > 4000


def test_truncated_file_reads_up_to_last_complete_chunk(tmp_path):
    clock = FakeClock()
    buf = io.BytesIO()
    rec = Recorder(buf, clock=clock, flush_clock=clock, chunk_events=100)
    many(rec, clock, 500)  # 10 chunks
    rec.close()
    data = buf.getvalue()
    full = TraceReader(data)
    evs = list(full)
    chunk_offsets = [c.offset for c in full.chunks]
    # cut inside chunk 6: chunks 0..5 survive
    cut = chunk_offsets[6] + 50
    r = TraceReader(data[:cut])
    assert r.truncated and "no footer" in r.truncation and "6 complete chunk(s), 600 event(s)" in r.truncation
    assert list(r) == evs[:600]
    assert r.event(599) == evs[599]
    # cut exactly at a chunk boundary: nothing partial
    r = TraceReader(data[: chunk_offsets[3]])
    assert r.truncated and r.event_count == 300 and "trailing" not in r.truncation
    # a damaged (not short) last chunk is dropped by its checksum
    bad = bytearray(data[: chunk_offsets[4]])
    bad[-3] ^= 0xFF
    r = TraceReader(bytes(bad))
    assert r.truncated and r.event_count == 300
    # header only
    r = TraceReader(data[: chunk_offsets[0]])
    assert r.truncated and r.event_count == 0 and list(r) == []
    # footer present but trailer cut off
    r = TraceReader(data[:-5])
    assert r.truncated and r.event_count == 1000 and list(r) == evs


WRITER = textwrap.dedent(
    """
    import sys, time
    from callscope.trace import Recorder
    rec = Recorder(sys.argv[1], chunk_events=1000)
    i = 0
    while True:
        rec.task_new(i, 1, "handle", None, i, "GET /x", False)
        rec.copy("stream", "write", i, 16, i, 1)
        i += 1
        if i == 5000:
            rec.flush()
            print("ready", flush=True)
    """
)


def test_sigkill_mid_run_reads_up_to_last_chunk(tmp_path):
    path = tmp_path / "killed.cstrace"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.2)  # let it write more, mid-chunk
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    r = TraceReader(path)
    assert r.truncated and "no footer" in r.truncation
    assert r.event_count >= 10000  # everything flushed before "ready"
    evs = list(r)
    assert len(evs) == r.event_count
    assert [e.n for e in evs] == list(range(len(evs)))
    assert all(e.kind == ("task.new" if e.n % 2 == 0 else "stream.write") for e in evs)
    assert evs[-1].fields[0] == (len(evs) - 1) // 2
    assert r.event(len(evs) // 2) == evs[len(evs) // 2]


def frames_written(data: bytes) -> int:
    """Chunk frames in ``data`` (possibly a prefix of a trace)."""
    return len(TraceReader(data).chunks)


def test_flush_at_least_every_100ms_fake_clock():
    clock = FakeClock()
    buf = io.BytesIO()
    rec = Recorder(buf, clock=clock, flush_clock=clock)
    rec.task_start(1)
    clock.advance(50_000_000)
    rec.task_start(2)
    assert frames_written(buf.getvalue()) == 0  # 50 ms: still buffered
    clock.advance(60_000_000)
    rec.task_start(3)  # 110 ms since the last flush: this append flushes
    assert frames_written(buf.getvalue()) == 1
    assert [e.fields[0] for e in TraceReader(buf.getvalue())] == [1, 2, 3]
    clock.advance(10_000_000)
    rec.task_start(4)
    assert frames_written(buf.getvalue()) == 1
    rec.flush()  # the runtime going idle
    assert frames_written(buf.getvalue()) == 2
    rec.flush()  # nothing buffered: no empty chunk
    assert frames_written(buf.getvalue()) == 2
    rec.close()
    r = TraceReader(buf.getvalue())
    assert not r.truncated and [c.count for c in r.chunks] == [3, 1]


def test_flush_every_100ms_with_simulated_clock():
    # event times come from a simulated clock that barely moves; the 100 ms
    # rule follows the (fake) real clock
    real, sim = FakeClock(), FakeClock(5)
    buf = io.BytesIO()
    rec = Recorder(buf, clock=sim, flush_clock=real)
    for i in range(10):
        rec.task_start(i)
        real.advance(15_000_000)  # 15 ms real per event
    # event i arrives at 15*i ms real: event 7 (105 ms) finds >= 100 ms since
    # the last flush and flushes events 0..7
    r = TraceReader(buf.getvalue())
    assert [c.count for c in r.chunks] == [8]
    assert all(e.time == 5 for e in r)
    rec.close()
    assert TraceReader(buf.getvalue()).event_count == 10


def test_chunk_full_flushes():
    clock = FakeClock()
    buf = io.BytesIO()
    rec = Recorder(buf, clock=clock, flush_clock=clock, chunk_events=10)
    for i in range(35):
        rec.task_start(i)
        clock.advance(2_000_000)  # real-clock mode checks at most once per ms
    rec.close()
    counts = [c.count for c in TraceReader(buf.getvalue()).chunks]
    assert counts == [10, 10, 10, 5]


def test_chunk_full_is_exact_with_simulated_clock():
    sim, real = FakeClock(), FakeClock()
    buf = io.BytesIO()
    rec = Recorder(buf, clock=sim, flush_clock=real, chunk_events=10)
    for i in range(35):
        rec.task_start(i)  # neither clock moves
    rec.close()
    assert [c.count for c in TraceReader(buf.getvalue()).chunks] == [10, 10, 10, 5]


def test_bytes_per_event_is_small():
    buf = io.BytesIO()
    rec = Recorder(buf, chunk_events=4096)  # the real clock
    for i in range(20000):
        rec.task_start(i % 200)
        rec.copy("stream", "read", i % 50, 64, 0x401, 1)
        rec.thread_switch(i % 10, (i + 1) % 10)
    rec.close()
    r = TraceReader(buf.getvalue())
    body = len(buf.getvalue()) - r.chunks[0].offset
    assert body / r.event_count <= 24


def test_huge_values_are_summarized_not_lost():
    buf = io.BytesIO()
    rec = Recorder(buf)
    rec.task_return(1, 2**80)
    rec.event_delivered(1, 1, 2, -(2**70))
    rec.import_call(1, 0, "f", [1], list(range(1000)), [], [])
    rec.close()
    evs = read_events(buf.getvalue())
    assert evs[0].value == str(2**80) and evs[1].payload == str(-(2**70))
    assert evs[2].args[:8] == tuple(range(8)) and evs[2].args[8] == "…+992"


def test_summarize_bounds():
    assert summarize(5) == 5 and summarize(None) is None and summarize(True) is True and summarize(1.5) == 1.5
    assert summarize("x" * 100, max_str=10) == "x" * 10 + "…"
    assert summarize(list(range(20)), max_items=3) == [0, 1, 2, "…+17"]
    assert summarize({"a": {"b": {"c": {"d": 1}}}}, max_depth=2) == {"a": {"b": "{…1}"}}
    d = summarize({i: i for i in range(20)}, max_items=2)
    assert d == {0: 0, 1: 1, "…": 18}
    assert summarize(b"\0" * 100, max_str=4) == b"\0\0\0\0..."
    big = summarize([["y" * 40] * 8] * 8, max_bytes=100)
    import msgpack

    assert len(msgpack.packb(big)) < 400
    assert summarize(object()).startswith("<object")


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        (b"", "not a callscope trace"),
        (b"PK\x03\x04 this is a zip", "not a callscope trace"),
        (F.MAGIC + b"\x48\x05", "damaged or incomplete header"),
    ],
)
def test_bad_input(tmp_path, content, message):
    path = tmp_path / "x.cstrace"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TraceError, match=message):
        TraceReader(path)


def test_newer_major_version_is_refused(tmp_path):
    import msgpack, struct, zlib

    header = msgpack.packb({"format": "callscope-trace", "version": [F.FORMAT_VERSION[0] + 1, 0]})
    data = F.MAGIC + struct.pack(F.FRAME_HEADER, F.TAG_HEADER, len(header), zlib.crc32(header)) + header
    with pytest.raises(TraceError, match="not supported"):
        TraceReader(data)


# ------------------------------------------------------------------ CLI


def run_cli(argv, capsys):
    ap = argparse.ArgumentParser(prog="callscope")
    add_arguments(ap.add_subparsers(dest="command"))
    args = ap.parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def small_trace(path):
    clock = FakeClock()
    rec = Recorder(path, clock=clock, flush_clock=clock)
    every_kind(rec, clock)
    rec.close()


def test_cli_events(tmp_path, capsys):
    path = tmp_path / "t.cstrace"
    small_trace(path)
    code, out, err = run_cli(["events", str(path), "--json", "--from", "1", "--limit", "2"], capsys)
    assert code == 0 and err == ""
    lines = [json.loads(x) for x in out.splitlines()]
    assert [d["n"] for d in lines] == [1, 2] and lines[0]["kind"] == "task.new" and lines[0]["label"] == "GET /"
    code, out, err = run_cli(["events", str(path)], capsys)
    assert code == 0 and len(out.splitlines()) == len(F.KINDS) and "import.call" in out


def test_cli_summary(tmp_path, capsys):
    path = tmp_path / "t.cstrace"
    small_trace(path)
    code, out, err = run_cli(["summary", str(path)], capsys)
    assert code == 0 and "instances: 1" in out and "tasks: 1 (1 root)" in out and "imports: 1" in out


@pytest.mark.parametrize("cmd", ["summary", "events"])
def test_cli_bad_input(tmp_path, capsys, cmd):
    code, out, err = run_cli([cmd, str(tmp_path / "missing.cstrace")], capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and "no such file" in err
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello")
    code, out, err = run_cli([cmd, str(junk)], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "not a callscope trace" in err


def test_cli_truncated_is_reported(tmp_path, capsys):
    path = tmp_path / "t.cstrace"
    small_trace(path)
    data = path.read_bytes()
    path.write_bytes(data[:-30])
    code, out, err = run_cli(["events", str(path), "--limit", "1"], capsys)
    assert code == 0 and "truncated" in err
    code, out, err = run_cli(["summary", str(path)], capsys)
    assert code == 0 and "TRUNCATED" in out


def test_doc_lists_every_kind_and_field():
    doc = open(os.path.join(os.path.dirname(__file__), "..", "docs", "trace-format.md"), encoding="utf-8").read()
    for kind, fields in F.KINDS:
        short = kind.split(".", 1)[-1]
        assert f"`{kind}`" in doc or f"`.{short}`" in doc or f"/ `.{short}`" in doc, kind
        for name in fields:
            assert name in doc, (kind, name)


def test_null_recorder_accepts_every_call():
    from callscope.trace import NullRecorder

    rec = NullRecorder()
    every_kind(rec, FakeClock())
    rec.flush()
    rec.close()
    with pytest.raises(AttributeError):
        rec.no_such_method


@pytest.mark.parametrize("cmd", ["summary", "events"])
def test_cli_damaged_chunk_is_one_line_error(tmp_path, capsys, cmd):
    """A chunk whose checksum fails is only found while reading it (after the
    reader opened the file): still a one-line error and status 2."""
    from callscope.cli import main

    clock = FakeClock()
    path = tmp_path / "t.cstrace"
    rec = Recorder(path, clock=clock, flush_clock=clock, chunk_events=100)
    many(rec, clock, 300)
    rec.close()
    data = bytearray(path.read_bytes())
    off = TraceReader(bytes(data)).chunks[1].offset
    data[off + 40] ^= 0xFF
    path.write_bytes(bytes(data))
    code = main([cmd, str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err and err.strip().splitlines()[-1].startswith("callscope: error:")
    assert "damaged" in err



class _Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


@pytest.mark.parametrize("cap", [4, 1 << 20])
def test_interned_strings_packed_from_c_stay_right_across_forgetting(tmp_path, cap):
    """The C core's task.new packs a name's and a label's references from a
    cache kept while the string table only grew (trace/_sink.c pk_intern):
    with the lookup forgotten at every chunk (intern_cap 4: a name used
    again is interned again under a new id) or never, its chunks are the
    bytes the Python sink's lookups give."""
    import struct

    from callscope.runtime.observe import RecordingObserver
    from callscope.trace.sink import CSink, Core, PySink
    if CSink is None or Core is None:
        pytest.skip("the C extension is not built")
    got = {}
    for cls in (CSink, PySink):
        path = tmp_path / f"{cls.__name__}.trace"
        rec = Recorder(str(path), sink=cls, clock=lambda: 0, argv=["test"], chunk_events=7,
                       flush_interval_ns=10 ** 12, intern_cap=cap)
        obs = RecordingObserver(rec)
        inst, ft = _Obj(id=1), _Obj(async_=True)
        names = ["pkg:app/handler#first"] + [f"pkg:app/handler#f{k}" for k in range(3)]
        for i in range(1, 200):
            root = _Obj(id=i)
            # (names first used after the first chunk, whose strings the lookup keeps)
            # (each name one object, as a function's is)
            name = names[0] if i < 8 else names[1 + i % 3]
            task = _Obj(id=i, inst=inst, name=name, caller=None, root=root,
                        label=f"req-{i:04d}" if i % 4 else None, ft=ft, tokens=None)
            obs.task_new(task)
            if i % 11 == 0:
                rec._s(f"host-{i}")  # (a string interned from Python: the table changed by another caller)
        rec.close()
        data = path.read_bytes()
        n = len(F.MAGIC)
        header_len = struct.unpack_from(F.FRAME_HEADER, data, n)[1]
        footer_at = struct.unpack_from(F.TRAILER, data, len(data) - F.TRAILER_SIZE)[0]
        with TraceReader(str(path)) as rd:
            got[cls] = (data[n + F.FRAME_HEADER_SIZE + header_len:footer_at], rd.strings)
    assert got[CSink] == got[PySink]
    strings = got[CSink][1]
    assert (len(strings) > len(set(strings))) == (cap == 4)  # (names forgotten and interned again)


def test_the_demo_recorded_by_the_c_core_is_the_python_sinks_bytes(tmp_path, monkeypatch):
    """The demo (each import.call's argument a planted URL passed on as it
    is: its taint reference packed in line by the C core, pk_intern)
    recorded with the C sink and with the Python one: the same chunks, byte
    for byte, and the same string table."""
    import os
    import struct

    import callscope.trace.recorder as recorder
    from callscope.run import RunOptions, run
    from callscope.trace.sink import CSink, PySink
    if CSink is None:
        pytest.skip("the C extension is not built")
    got = {}
    for cls in (CSink, PySink):
        with monkeypatch.context() as m:
            m.setattr(recorder, "Sink", cls)
            # (no flush by real time: both cut their chunks at the same events)
            for k, v in (("flush_interval_ns", 10 ** 12), ("chunk_events", 64)):
                m.setitem(recorder.Recorder.__init__.__kwdefaults__, k, v)
            path = tmp_path / f"{cls.__name__}.trace"
            with open(os.devnull, "w") as devnull:
                r = run(RunOptions(demo="event-loop", record=True, output=str(path), argv=["test"], repeat=40,
                                   concurrency=4), out=devnull)
            assert r.fault is None, r.fault_message
        data = path.read_bytes()
        n = len(F.MAGIC)
        header_len = struct.unpack_from(F.FRAME_HEADER, data, n)[1]
        footer_at = struct.unpack_from(F.TRAILER, data, len(data) - F.TRAILER_SIZE)[0]
        with TraceReader(str(path)) as rd:
            calls = [e for e in rd.events() if e.kind == "import.call"]
            got[cls] = (data[n + F.FRAME_HEADER_SIZE + header_len:footer_at], rd.strings)
    assert len(calls) == 40 and all(e.fields[5] == e.fields[4] for e in calls)  # (taint: the URL itself)
    assert got[CSink] == got[PySink]

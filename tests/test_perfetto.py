"""callscope export --format perfetto: Chrome trace-event JSON, checked
against the format's rules (not just "it is JSON"): metadata names every
process and thread used, duration slices balance per track and nest, flows
have one start and one end each, forward in time, both bound to slices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from callscope.export import export_view, to_perfetto
from callscope.export.perfetto import TASK_TID0
from callscope.trace import TraceReader

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_export import INJECT, injection, many_requests, ten_thousand  # noqa: E402
from test_replay import misattribution_script, write_trace  # noqa: E402

PHASES = {"B", "E", "i", "s", "f", "M"}
METADATA = {"process_name", "thread_name", "process_sort_index", "thread_sort_index"}


def validate(doc: dict) -> dict:
    """Check ``doc`` against the trace-event format's rules; return what a
    test wants to look at (slices, flows, names)."""
    assert isinstance(doc, dict) and isinstance(doc["traceEvents"], list)
    assert doc.get("displayTimeUnit") in (None, "ms", "ns")
    procs: dict[int, str] = {}
    threads: dict[tuple, str] = {}
    used_threads: set = set()
    used_procs: set = set()
    per_track: dict[tuple, list] = {}
    flows: dict[int, dict] = {}
    for k, e in enumerate(doc["traceEvents"]):
        assert e["ph"] in PHASES, e
        assert isinstance(e["pid"], int) and isinstance(e.get("tid", 0), int), e
        assert isinstance(e.get("name", ""), str)
        if e["ph"] == "M":
            assert e["name"] in METADATA, e
            if e["name"] == "process_name":
                assert isinstance(e["args"]["name"], str) and e["args"]["name"]
                procs[e["pid"]] = e["args"]["name"]
            elif e["name"] == "thread_name":
                assert isinstance(e["args"]["name"], str) and e["args"]["name"]
                threads[(e["pid"], e["tid"])] = e["args"]["name"]
            else:
                assert isinstance(e["args"]["sort_index"], int)
            continue
        assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0, e
        used_procs.add(e["pid"])
        if e["ph"] == "i":
            assert e["s"] in ("t", "p", "g"), e
            if e["s"] == "t":
                used_threads.add((e["pid"], e["tid"]))
            if "args" in e:
                json.dumps(e["args"])
            continue
        used_threads.add((e["pid"], e["tid"]))
        if e["ph"] in ("B", "E"):
            per_track.setdefault((e["pid"], e["tid"]), []).append((e["ts"], k, e))
        else:
            assert isinstance(e["id"], int)
            fl = flows.setdefault(e["id"], {})
            assert e["ph"] not in fl, f"flow {e['id']} has two {e['ph']} events"
            fl[e["ph"]] = e
            if e["ph"] == "f":
                assert e.get("bp") == "e", e  # bound to the enclosing slice
    # metadata names every process and thread that has events
    assert used_procs <= set(procs), used_procs - set(procs)
    assert used_threads <= set(threads), used_threads - set(threads)
    # B/E balance per track and nest (stack discipline), end >= begin
    slices: dict[tuple, list] = {}
    for track, evs in per_track.items():
        evs.sort(key=lambda x: (x[0], x[1]))
        stack: list = []
        for ts, _, e in evs:
            if e["ph"] == "B":
                stack.append(e)
            else:
                assert stack, f"E without B on {track} at {ts}"
                b = stack.pop()
                assert ts >= b["ts"]
                slices.setdefault(track, []).append((b["ts"], ts, b))
        assert not stack, f"unclosed slices on {track}: {[b['name'] for b in stack]}"
    # flows: a start and an end each, forward in time, each inside a slice of its track

    def enclosing(e) -> dict:
        for start, end, b in slices.get((e["pid"], e["tid"]), ()):
            if start <= e["ts"] <= end:
                return b
        raise AssertionError(f"flow {e['id']} {e['ph']} at {e['ts']} on {(e['pid'], e['tid'])} binds to no slice")

    bound = {}
    for fid, fl in flows.items():
        assert set(fl) == {"s", "f"}, f"flow {fid}: {set(fl)}"
        assert fl["s"]["ts"] <= fl["f"]["ts"], f"flow {fid} goes back in time"
        bound[fid] = (enclosing(fl["s"]), enclosing(fl["f"]), fl["s"]["name"])
    return {"procs": procs, "threads": threads, "slices": slices, "flows": bound, "events": doc["traceEvents"]}


def perfetto_of(path) -> dict:
    with TraceReader(str(path)) as r:
        data = to_perfetto(r.events(), title="t")
    return json.loads(data)


def test_structure_and_content(tmp_path):
    path = write_trace(tmp_path / "mis.cstrace", misattribution_script)
    doc = perfetto_of(path)
    v = validate(doc)
    assert v["procs"][2] == "instance 1 app" and v["procs"][3] == "instance 2 lib"
    # a track per task, one task slice each, named by its request label
    task_slices = {tr: [s for s in ss if s[2]["cat"] == "task"] for tr, ss in v["slices"].items()}
    assert sorted(tr[1] - TASK_TID0 for tr, ss in task_slices.items() if ss) == [1, 2, 3, 4]
    assert all(len(ss) <= 1 for ss in task_slices.values())
    assert v["threads"][(2, TASK_TID0 + 1)].startswith('"GET /a" root export task 1')
    assert v["threads"][(3, TASK_TID0 + 3)].startswith("task 3 fetch")
    # task 4 waited on backpressure before it ran: a backpressure slice on its track
    assert any(s[2]["name"] == "backpressure" for s in v["slices"][(2, TASK_TID0 + 4)])
    # the import: an instant on task 3's track with its verdict and evidence
    (imp,) = [e for e in v["events"] if e["ph"] == "i" and e["cat"].startswith("import") and "call" in e["args"]
              and e["name"] != "import.return"]
    assert (imp["pid"], imp["tid"]) == (3, TASK_TID0 + 3)
    assert imp["args"]["verdict"] == "misattributed" and imp["args"]["attributed_to"] == 1
    assert imp["args"]["caused_by"] == [2]
    ev = imp["args"]["findings"][0]["evidence"]
    want = {"by": "taint", "token": "tok-2", "planted_in": 2, "planted_at": 9, "root": 2}
    assert any(want.items() <= e.items() for e in ev), ev
    # flows: subtask 1 -> 3, true origin 2 -> the misattributed import
    names = {name: (s["tid"] - TASK_TID0, f["tid"] - TASK_TID0) for s, f, name in v["flows"].values()}
    assert names["subtask 1 -> 3"] == (1, 3)
    assert names["true origin 2 -> misattributed call 10"] == (2, 3)
    # backpressure and waitable events as instants
    kinds = {e["name"] for e in v["events"] if e["ph"] == "i"}
    assert {"backpressure.set", "waitable-set.wait", "import.return", "task.return"} <= kinds
    # same trace, same bytes
    with TraceReader(str(path)) as r:
        assert to_perfetto(r.events(), title="t") == to_perfetto(list(TraceReader(str(path)).events()), title="t")


def test_unfinished_tasks_are_closed(tmp_path):
    def script(rec):
        rec.instance_new(1, "app", None)
        rec.task_new(1, 1, "handle", None, 1, "GET /", False)
        rec.task_start(1)
        rec.task_new(2, 1, "handle", None, 2, "GET /2", False)
        rec.call_queued(2)
        rec.import_call(0, 1, "x", [1], None, [], [], None)

    v = validate(perfetto_of(write_trace(tmp_path / "u.cstrace", script, close=False)))
    assert any(s[2]["name"] == "backpressure" for s in v["slices"][(2, TASK_TID0 + 2)])
    ends = [e for e in v["events"] if e["ph"] == "E" and e.get("args", {}).get("unfinished")]
    assert len(ends) == 2


@pytest.mark.parametrize("script", [injection, many_requests, ten_thousand])
def test_structure_bigger(tmp_path, script):
    path = write_trace(tmp_path / "t.cstrace", script)
    v = validate(perfetto_of(path))
    mis = sum(1 for s, f, name in v["flows"].values() if name.startswith("true origin"))
    with TraceReader(str(path)) as r:
        from callscope.model import check_all

        want = sum(1 for f in check_all(r.events()) if f.lint == "misattributed")
    assert mis == want
    if script is injection:  # trace strings stay strings: JSON quoting, nothing else
        assert any(INJECT[0] in name for name in v["threads"].values())


@pytest.mark.parametrize("spill_at", [1, 3, 4096])
def test_timeline_spilled_to_a_file_is_the_same_bytes(tmp_path, monkeypatch, spill_at):
    """The timeline's events go to a temporary file past _Out.SPILL_AT:
    the document is byte for byte the one held in memory."""
    from callscope.export import perfetto as P
    path = write_trace(tmp_path / "t.cstrace", many_requests)

    def doc():
        with TraceReader(str(path)) as r:
            return b"".join(P.perfetto_chunks(lambda: r.events(), title="t"))
    monkeypatch.setattr(P._Out, "SPILL_AT", 1 << 30)
    held = doc()
    monkeypatch.setattr(P._Out, "SPILL_AT", spill_at)
    assert doc() == held
    validate(json.loads(held))


def test_cli(tmp_path):
    path = write_trace(tmp_path / "mis.cstrace", misattribution_script)
    out = tmp_path / "t.json"
    p = subprocess.run([sys.executable, "-m", "callscope", "export", path, "-o", str(out)],
                       capture_output=True, timeout=60)  # .json: perfetto
    assert p.returncode == 0, p.stderr
    validate(json.loads(out.read_text()))
    p = subprocess.run([sys.executable, "-m", "callscope", "export", path, "--format", "perfetto", "--at", "30"],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    v = validate(json.loads(p.stdout))
    assert all(e.get("args", {}).get("event", 0) <= 30 for e in v["events"])


def _fanout():
    sys.path.insert(0, str(Path(__file__).parent))
    from test_examples import example

    return example("fanout")


def test_fanout_50_requests(tmp_path):
    """A real wasi:http guest (componentize-py), 50 requests at concurrency 4:
    the timeline passes the structural checks and has a true-origin flow for
    every misattributed import; the PNG of '--lint misattributed --max-nodes
    60' names every one."""
    wasm = tmp_path / "fanout.wasm"
    wasm.write_bytes(_fanout())
    trace = tmp_path / "fan.trace"
    p = subprocess.run([sys.executable, "-m", "callscope", "check", str(wasm), "--repeat", "50", "--concurrency", "4",
                        "-o", str(trace)], capture_output=True, timeout=600)
    assert p.returncode == 1, p.stderr  # misattributed imports found
    v = validate(perfetto_of(trace))
    with TraceReader(str(trace)) as r:
        from callscope.model import check_all

        mis = [f for f in check_all(r.events()) if f.lint == "misattributed"]
    assert mis
    flows = {name for s, f, name in v["flows"].values()}
    for f in mis:
        assert f"true origin {f.details['origin']} -> misattributed call {f.details['call']}" in flows
    from callscope.export import Selection

    data = export_view(str(trace), Selection(lints=("misattributed",), max_nodes=60), str(tmp_path / "m.png"))
    assert data.startswith(b"\x89PNG")
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert w <= 2000 and h <= 1600, (w, h)  # a screen, not 541x32767
    dot = export_view(str(trace), Selection(lints=("misattributed",), max_nodes=60), None, "dot").decode()
    for f in mis:  # every misattributed import named: its name and its call
        name = f.details["import"].rpartition("#")[2]
        assert (f"{f.details['import']}  (call {f.details['call']}, event #{f.n})" in dot
                or f"{name} (call {f.details['call']})" in dot), f.details

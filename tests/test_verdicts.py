"""Verdicts you can trust (issue 12): the oracle's matching, the evidence
ladder, encoded and ambiguous tokens, coverage, and the check/summary JSON
(docs/verdicts.md)."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from callscope.cli import main
from callscope.model.findings import Misattributed, check_all, format_coverage, verdicts
from callscope.model.tokens import encoded_forms, expand_tokens, id_width, request_id
from callscope.oracle import match
from callscope.runtime.observe import TaintIndex


def _ev(n, kind, *fields):
    return (n, kind, n * 10, fields)


# -- tokens ------------------------------------------------------------------


def test_request_ids_are_fixed_width_and_never_prefixes():
    w = id_width(12_000)
    ids = [request_id(i, w) for i in range(1, 12_001)]
    assert ids[0] == "req-00001" and len(set(map(len, ids))) == 1
    assert request_id(7, id_width(8)) == "req-0007"


WRAPS = [
    lambda t: "https://proxy.test/?u=" + quote(t, safe=""),
    lambda t: "https://proxy.test/?u=" + quote(t, safe="").lower(),
    lambda t: json.dumps({"url": t}).replace("/", "\\/"),
    lambda t: "x-trace: " + base64.b64encode(t.encode()).decode(),
    lambda t: base64.b64encode(b"prefix:" + t.encode() + b":suffix").decode(),
    lambda t: base64.b64encode(b"pre:" + t.encode() + b":suffix").decode(),
    lambda t: base64.urlsafe_b64encode(b"p:" + t.encode() + b"?~~~").decode(),
]


@pytest.mark.parametrize("wrap", WRAPS)
def test_encoded_tokens_are_found(wrap):
    token = "https://upstream.test/req-0003?q=a b"
    idx = TaintIndex()
    for form in expand_tokens([token]):
        idx.add(form, 3)
    other = "https://upstream.test/req-0004?q=a b"
    for form in expand_tokens([other]):
        idx.add(form, 4)
    found = idx.find([wrap(token)])
    assert found and all(idx.roots[f] == 3 for f in found), found


def test_encoded_forms_differ_from_the_token():
    forms = encoded_forms("req-0001")
    assert forms and all(f != "req-0001" and len(f) >= 6 for f, _ in forms)
    assert {e for _, e in forms} == {"base64"}  # nothing to percent-encode or escape


# -- the evidence ladder -------------------------------------------------------


def _two_roots():
    return [
        _ev(0, "task.new", 1, 1, "handle", None, 1, "req-0001", False),
        _ev(1, "taint.plant", 1, "req-0001"),
        _ev(2, "task.new", 2, 1, "handle", None, 2, "req-0002", False),
        _ev(3, "taint.plant", 2, "req-0002"),
    ]


def test_ambiguous_token_gives_no_verdict():
    evs = _two_roots() + [
        _ev(4, "taint.plant", 1, "shared-arg"),
        _ev(5, "taint.plant", 2, "shared-arg"),
        _ev(6, "import.call", 1, 1, "fetch", [2], ["shared-arg"], ["shared-arg"], [], None),
    ]
    vs, cov = verdicts(evs)
    assert [v.verdict for v in vs] == ["not-judged"] and vs[0].why == "ambiguous"
    assert cov["not_judged_why"]["ambiguous"] == 1 and cov["judged"] == 0
    assert "nothing could be judged" in format_coverage(cov)


def test_oracle_decides_and_disagreeing_taint_is_a_note():
    evs = _two_roots() + [
        # on task 2 carrying req-0001's data (a shared cache): the oracle says
        # the serial run made it under req-0002 -> consistent, taint a note
        _ev(4, "import.call", 1, 1, "fetch", [2], ["x"], ["req-0001"], [], None),
        # on task 1, the oracle says req-0002 made it: misattributed
        _ev(5, "import.call", 2, 1, "fetch", [1], ["y"], [], [], None),
        # the oracle matched nothing: taint decides
        _ev(6, "import.call", 3, 1, "fetch", [1], ["z"], ["req-0002"], [], None),
        _ev(7, "import.call", 4, 1, "clock", [1], [], [], [], None),
        _ev(8, "oracle.verdict", 1, "consistent", [2], 1),
        _ev(9, "oracle.verdict", 2, "misattributed", [2], 1),
        _ev(10, "oracle.verdict", 3, "unmatched", [], 0),
        _ev(11, "oracle.verdict", 4, "unmatched", [], 0),
        _ev(12, "oracle.end", "ran", 3, 2, 2),
    ]
    lint = Misattributed()
    findings = check_all(evs, [lint])
    by_call = {v.call: v for v in lint.verdicts}
    assert (by_call[1].verdict, by_call[1].by) == ("consistent", "oracle")
    assert by_call[1].notes and "req-0001" in by_call[1].notes[0]
    assert (by_call[2].verdict, by_call[2].by, by_call[2].origins) == ("misattributed", "oracle", [2])
    assert (by_call[3].verdict, by_call[3].by) == ("misattributed", "taint")
    assert (by_call[4].verdict, by_call[4].why) == ("not-judged", "no-evidence")
    assert [f.details["call"] for f in findings] == [2, 3]
    cov = lint.coverage()
    assert cov["oracle"] == "ran" and cov["by"] == {"oracle": 2, "taint": 1, "lineage": 0}
    assert format_coverage(cov).startswith("imports 4: judged 3 (oracle 2, taint 1), not judged 1")


# -- the matching ----------------------------------------------------------------


def test_matching_prefers_own_root_and_counts_repetitions():
    serial = [("A", "k1"), ("A", "k1"), ("B", "k1"), ("B", "k2"), ("C", "k3"), ("D", "k3")]
    concurrent = [
        (1, "B", "k1"), (2, "B", "k1"), (3, "B", "k1"),  # one B's, two A's
        (4, "A", "k2"),  # only B made it: misattributed
        (5, "A", "k9"),  # nothing made it: unmatched
        (6, "A", "k3"),  # one call for C and D: shared
    ]
    res = match(concurrent, serial)
    v = res.verdicts
    assert sorted(x[0] for c, x in v.items() if c in (1, 2, 3)) == ["consistent", "misattributed", "misattributed"]
    assert all(v[c][1] == ["A"] for c in (1, 2, 3) if v[c][0] == "misattributed")
    assert v[4][:2] == ("misattributed", ["B"])
    assert v[5][0] == "unmatched"
    assert v[6][0] == "misattributed" and sorted(v[6][1]) == ["C", "D"]
    assert res.matched == 5 and res.unmatched == 1


# -- end to end on the built-in demo ------------------------------------------------


def test_check_json_on_the_demo(tmp_path, capsys):
    rc = main(["check", "-o", str(tmp_path / "t.trace"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    cov = out["coverage"]
    assert cov["oracle"] == "ran" and cov["imports"] == 8 and cov["judged"] == 8 and cov["by"]["oracle"] == 8
    mis = [f for f in out["findings"] if f["lint"] == "misattributed"]
    assert len(mis) == 3
    for f in mis:
        assert {"lint", "n", "call", "stack_root", "origins", "evidence", "by"} <= set(f)
        assert f["by"] == "oracle" and f["origins"] != [f["stack_root"]]
    assert out["run"]["fault"] is None and out["run"]["pending"] == []
    # the verdicts are in the trace: summary shows them without re-running
    assert main(["summary", str(tmp_path / "t.trace"), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["coverage"]["by"]["oracle"] == 8
    assert [f["call"] for f in again["findings"] if f["lint"] == "misattributed"] == [f["call"] for f in mis]


def test_backpressure_demo_is_consistent_by_the_oracle(tmp_path, capsys):
    assert main(["check", "--demo", "backpressure", "-o", str(tmp_path / "t.trace")]) == 0
    assert "imports 8: judged 8 (oracle 8), not judged 0" in capsys.readouterr().out


def test_min_judged(tmp_path, capsys):
    # arguments too short to plant and no oracle: nothing can be judged
    args = ["check", "--demo", "backpressure", "--no-oracle", "-o", str(tmp_path / "t.trace"),
            "--invoke", 'handle({i}, "ab")']
    assert main(args) == 0
    assert "nothing could be judged" in capsys.readouterr().out
    assert main(args + ["--min-judged", "0.5"]) == 1
    assert "below --min-judged" in capsys.readouterr().out
    assert main(args + ["--min-judged", "2"]) == 2


def test_check_exits_1_when_a_misattribution_precedes_a_trap(tmp_path, capsys):
    mod = tmp_path / "imports.py"
    mod.write_text(
        "from callscope.runtime.errors import Trap\n"
        "n = [0]\n"
        "def fetch(call, args):\n"
        "    n[0] += 1\n"
        "    if n[0] == 8:\n"
        "        raise Trap('upstream exploded')\n"
        "    return call.resolve_later(2_000_000 + (sum(args[0].encode()) % 7) * 700_000, ['body'])\n")
    for extra in ([], ["--no-oracle"]):
        rc = main(["check", "-o", str(tmp_path / "t.trace"), "--import-module", str(mod), "--json"] + extra)
        out = json.loads(capsys.readouterr().out)
        assert out["run"]["fault"]["kind"] == "trap"
        assert [f for f in out["findings"] if f["lint"] == "misattributed"]
        assert rc == 1


def test_an_encoded_form_found_is_its_token_s_evidence():
    from callscope.model.tokens import encoded_forms
    form = [f for f, e in encoded_forms("https://a.test/req-0002") if e == "percent"][0]
    evs = _two_roots() + [
        _ev(4, "taint.plant", 2, "https://a.test/req-0002"),
        _ev(5, "import.call", 1, 1, "fetch", [1], ["x"], [form], [], None),
    ]
    vs, cov = verdicts(evs)
    v = vs[0]
    assert (v.verdict, v.by, v.origins) == ("misattributed", "taint", [2])
    e = v.evidence[0]
    assert e["token"] == "https://a.test/req-0002" and e["encoding"] == "percent" and e["found"] == form


def test_planted_forms_are_searched_but_not_recorded(tmp_path):
    from callscope.trace.reader import TraceReader
    assert main(["run", "-o", str(tmp_path / "t.trace"), "--repeat", "2"]) == 0
    r = TraceReader(str(tmp_path / "t.trace"))
    plants = [ev[3][1] for ev in r.events() if ev[1] == "taint.plant"]
    r.close()
    assert plants == ["https://upstream.test/req-1", "https://upstream.test/req-2"]


def test_replay_and_export_use_the_recorded_oracle(tmp_path, capsys):
    from callscope.export.graph import build_graph
    from callscope.replay.source import ReplaySource
    from callscope.trace.reader import TraceReader
    trace = tmp_path / "t.trace"
    assert main(["check", "-o", str(trace)]) == 1
    capsys.readouterr()
    src = ReplaySource(str(trace))
    try:
        src.index()
        assert src.coverage["by"]["oracle"] == 8
        assert len(src.misattributed) == 3
        assert all(f.details["by"] == "oracle" for f in src.misattributed.values())
    finally:
        src.close()
    with TraceReader(str(trace)) as r:
        g = build_graph(r.events())
    assert sum(1 for imp in g.imports if g.misattributed(imp)) == 3


def _after_return(tmp_path):
    import wasmtime
    from pathlib import Path
    wasm = tmp_path / "after_return.wasm"
    wasm.write_bytes(wasmtime.wat2wasm((Path(__file__).parent / "guests" / "after_return.wat").read_text()))
    return str(wasm)


def test_work_after_the_last_root_returned_runs_and_unmatched_is_counted(tmp_path, capsys):
    wasm = _after_return(tmp_path)
    rc = main(["check", wasm, "--invoke", "run({i})", "--repeat", "2", "--concurrency", "2",
               "--import", "log=delay:0ms", "-o", str(tmp_path / "t.trace"), "--json"])
    out = json.loads(capsys.readouterr().out)
    cov = out["coverage"]
    # both logs ran (the last one after every root had returned), nothing pending
    assert cov["imports"] == 2 and out["run"]["pending"] == []
    # both logged 2: the serial run logged 1 (req-0001) and 2 (req-0002); one
    # log(2) is req-0002's own, the other matches nothing: not judged, counted
    assert cov["by"]["oracle"] == 1 and cov["not_judged"] == 1 and cov["not_judged_why"]["no-evidence"] == 1
    assert rc == 0


def test_serial_run_waits_for_each_root_to_exit(tmp_path, capsys):
    wasm = _after_return(tmp_path)
    rc = main(["check", wasm, "--invoke", "run({i})", "--repeat", "3", "--concurrency", "1",
               "--import", "log=delay:0ms", "-o", str(tmp_path / "t.trace"), "--json"])
    out = json.loads(capsys.readouterr().out)
    # at --concurrency 1 the next call is admitted once the previous returned,
    # so every callback logs 3. The serial run admits a root only once the
    # previous one has exited: it logs 1, 2, 3. One log(3) is req-0003's own;
    # the other two are surplus copies of a value the serial run made once:
    # the matching does not guess (a race on a shared cache looks the same)
    cov = out["coverage"]
    assert cov["oracle_counts"] == {"serial_imports": 3, "matched": 1, "unmatched": 2}
    assert cov["by"]["oracle"] == 1 and cov["not_judged"] == 2
    assert rc == 0


def test_clock_log_holds_each_root_s_readings_equal_between_the_runs():
    """docs/verdicts.md: a root's k-th reading of a clock in the serial run
    is the recorded run's k-th; past them the store's time, never earlier
    than that root's last reading; no labelled root reads the store."""
    from callscope.wasi.core import ClockLog
    log = ClockLog()
    assert [log.read("A", "monotonic", t) for t in (10, 30)] == [10, 30]
    assert log.read("B", "monotonic", 20) == 20
    assert log.read("A", "wall", 40) == 40
    log.replay()
    # the serial run reads other instants: A first, B later
    assert log.read("A", "monotonic", 1) == 10
    assert log.read("A", "wall", 2) == 40
    assert log.read("A", "monotonic", 3) == 30
    assert log.read("A", "monotonic", 5) == 30  # past the recorded: monotonic
    assert log.read("A", "monotonic", 35) == 35
    assert log.read("B", "monotonic", 99) == 20
    assert log.read(None, "monotonic", 7) == 7


def test_taint_of_several_roots_is_a_shared_misattribution():
    """A call carrying several roots' tokens (a batch made on A's task for A
    and B) is misattributed, shared, the stack root among its origins."""
    evs = [
        (0, "task.new", 0, [1, 0, "handle", None, 1, "req-0001"]),
        (1, "task.new", 0, [2, 0, "handle", None, 2, "req-0002"]),
        (2, "taint.plant", 0, [1, "req-0001"]),
        (3, "taint.plant", 0, [2, "req-0002"]),
        (4, "import.call", 1, [7, 0, "app#post-batch", [1], None, ["req-0001", "req-0002"], []]),
        (5, "import.call", 1, [8, 0, "app#fetch", [1], None, ["req-0001"], []]),
    ]
    lint = Misattributed()
    found = lint.check(evs)
    assert [f.details["call"] for f in found] == [7]
    assert found[0].details["shared"] and sorted(found[0].details["origins"]) == [1, 2]
    assert "shared by 2 requests" in found[0].message
    assert {v.call: v.verdict for v in lint.verdicts} == {7: "misattributed", 8: "consistent"}


@pytest.mark.parametrize("wrap", WRAPS)
def test_encoded_tokens_are_found_with_forms_made_when_first_searched(wrap):
    # what the drivers plant (plant_tokens): the forms wait in pending until
    # a search that is not a token as it is, then are all indexed first
    from callscope.model.tokens import plant_tokens
    token, other = "https://upstream.test/req-0003?q=a b", "https://upstream.test/req-0004?q=a b"
    idx = TaintIndex()
    for tokens, root in ((plant_tokens([token]), 3), (plant_tokens([other]), 4)):
        assert tokens.forms and list(tokens) == [token if root == 3 else other]
        for t in tokens:
            idx.add(t, root)
        idx.pending.append((tuple(tokens), root))
    assert idx.find([token]) == [token] and idx.pending == []  # (find indexes the pending forms first)
    found = idx.find([wrap(token)])
    assert found and all(idx.roots[f] == 3 for f in found), found
    assert set(idx.roots) == set(expand_tokens([token])) | set(expand_tokens([other]))


def test_verdict_columns_give_back_the_verdicts_appended():
    """Misattributed.verdicts keeps columns; reading gives ImportVerdicts
    equal to the ones appended, by index, slice, iteration and ByEvent."""
    from callscope.model.findings import ByEvent, ImportVerdict, _VerdictColumns
    vs = [ImportVerdict(3, 10, 1, "a#f", 0, (5, 1), 1, "consistent", "taint", [1], [{"by": "taint"}], ()),
          ImportVerdict(7, 20, 2, None, 0, (), None, "not-judged", "none", (), (), (), "no-stack-root"),
          ImportVerdict(9, 2 ** 70, "x", "b", 1, (2,), 2, "misattributed", "oracle", [4, 5],
                        [{"by": "oracle", "roots": [4, 5]}], ["note"]),
          ImportVerdict(12, 30, 4, "c", 1, (3,), 3, "not-judged", "none", (), (), (), "ambiguous")]
    cols = _VerdictColumns()
    for v in vs:
        cols.append(v)
    assert len(cols) == 4 and list(cols) == vs and cols[-1] == vs[-1] and cols[1:3] == vs[1:3]
    with pytest.raises(IndexError):
        cols[4]
    by = ByEvent(cols)
    assert [by.get(n) for n in (3, 7, 9, 12)] == vs and by.get(8) is None and by.get(13) is None

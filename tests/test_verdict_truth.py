"""The scorer of tests/test_verdict_score.py (tests/verdict_scoring.py) on
hand-made events: what a call's truth is, how it is scored, and the truth
files of examples/ are well formed. Fast: no guest is built."""

from __future__ import annotations

import json
import re

import pytest

import verdict_scoring as vs

FETCH = "callscope:guests/backend#fetch"
REPORT = "callscope:guests/backend#report"
SEND = "wasi:http/client@0.3.0#send"
RULES = {"calls": {FETCH: {"arg": 0, "for": "for=([0-9.]+);"}, REPORT: {"arg": 0, "int": True},
                   SEND: {"path_of": 0, "for": "^/for/([0-9]+);"}}}


def _roots(*labels):
    """task.new events of root tasks 1.. labelled as given."""
    return [(i, "task.new", 0, (i, 1, "handle", None, i, label, False)) for i, label in enumerate(labels, 1)]


def _call(n, call, name, stack, args):
    return (n, "import.call", 0, (call, 1, name, stack, args, [], [], None))


def _flag(*calls):
    return vs.Verdicts({c: {"lint": "misattributed", "call": c} for c in calls}, None, None, 1, None, "test")


def test_truth_of_each_rule_and_padded_labels():
    ev = _roots("req-0001", "req-0002 GET /", "req-3")
    ev += [
        _call(10, 1, FETCH, [1], ["https://q.test/?for=1;&id=x"]),  # own
        _call(11, 2, FETCH, [1], ["https://q.test/job?for=2;"]),  # 2's, on 1
        _call(12, 3, REPORT, [2], [3, 99]),  # 3's, on 2
        _call(13, 4, "wasi:http/types@0.3.0#[method]request.set-path-with-query", [3], [7, {"some": "/for/1;/audit"}]),
        _call(14, 5, SEND, [3], [7]),  # 1's, on 3
        _call(15, 6, "callscope:guests/backend#post-batch", [1], ["x"]),  # not scored
        _call(16, 7, FETCH, [3], ["https://b.test/?for=3.1;"]),  # shared by 3 and 1, on 3
    ]
    calls = {c.call: c for c in vs.truth_calls(ev, RULES)}
    assert sorted(calls) == [1, 2, 3, 5, 7]
    assert [calls[k].misattributed for k in (1, 2, 3, 5, 7)] == [False, True, True, True, True]
    assert calls[7].numbers == (3, 1) and calls[7].serves == frozenset({1, 3})
    assert calls[5].serves == frozenset({1}) and calls[5].stack_number == 3


def test_a_call_without_its_truth_is_an_error_not_a_guess():
    ev = _roots("req-1") + [_call(5, 1, FETCH, [1], ["https://q.test/?id=x…"])]
    with pytest.raises(vs.TruthError, match="call 1 .*does not match"):
        vs.truth_calls(ev, RULES)
    ev = _roots("req-1") + [_call(5, 1, REPORT, [1], ["3"])]
    with pytest.raises(vs.TruthError, match="integer"):
        vs.truth_calls(ev, RULES)
    ev = _roots("req-1") + [_call(5, 1, FETCH, [1], ["https://q.test/?for=4;"])]  # no request 4
    with pytest.raises(vs.TruthError, match="call 1"):
        vs.truth_calls(ev, RULES)


def test_precision_recall_and_counts():
    ev = _roots("req-1", "req-2")
    ev += [
        _call(10, 1, FETCH, [1], ["?for=1;"]),
        _call(11, 2, FETCH, [1], ["?for=2;"]),  # misattributed, flagged: tp
        _call(12, 3, FETCH, [2], ["?for=1;"]),  # misattributed, missed: fn
        _call(13, 4, FETCH, [2], ["?for=2;"]),  # consistent, flagged: fp
        _call(14, 9, "other", [2], []),  # flagged, outside the truth
    ]
    calls = vs.truth_calls(ev, RULES)
    v = _flag(2, 4, 9)
    v.per_call = {1: ("consistent", "oracle"), 2: ("misattributed", "oracle"), 3: ("not-judged", "none"),
                  4: ("misattributed", "taint")}
    s = vs.score("g", 2, calls, v)
    assert (s.scored, s.truly, s.flagged, s.tp, s.fp, s.fn, s.outside) == (4, 2, 2, 1, 1, 1, 1)
    assert s.precision == 0.5 and s.recall == 0.5
    assert s.not_judged == 1 and s.judged_by == {"oracle": 2, "taint": 1}
    assert [c.call for c in s.missed] == [3] and [c.call for c, _ in s.false_alarms] == [4]
    text = "\n".join(vs.explain(s))
    assert "missed: call 3" in text and "not-judged by none" in text and "false alarm: call 4" in text
    empty = vs.score("g", 2, [], _flag())
    assert empty.precision is None and empty.recall is None


@pytest.mark.parametrize("guest", vs.truth_guests())
def test_truth_files_are_well_formed(guest):
    t = vs.load_truth(guest)
    assert set(t) >= {"workload", "calls", "misattributes", "traps"}
    build = vs.load_build()
    assert guest in build.EXAMPLES, f"{guest} has a truth but examples/build.py cannot build it"
    src = build.EXAMPLES[guest].source.read_text()
    for name, rule in t["calls"].items():
        assert ("arg" in rule) != ("path_of" in rule), name
        if "for" in rule:
            re.compile(rule["for"])
    wl = t["workload"]
    if wl.get("import_module"):
        assert (vs.EXAMPLES / wl["import_module"]).is_file()
    argv = vs.workload_argv(t, 4)
    assert argv[argv.index("--concurrency") + 1] == "4"
    assert "for" in src  # the guest writes its truth marker
    json.dumps(t)


def test_js_build_without_npm_says_why(tmp_path, monkeypatch):
    build = vs.load_build()
    monkeypatch.delenv("CALLSCOPE_JCO", raising=False)
    monkeypatch.setenv("CALLSCOPE_NPM_CACHE", str(tmp_path / "npm"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm here
    with pytest.raises(build.BuildError, match="npm is not on PATH"):
        build.build("js-promise")
    monkeypatch.setenv("CALLSCOPE_JCO", str(tmp_path / "no-such-jco"))
    assert build.jco() is None
    with pytest.raises(build.BuildError, match="CALLSCOPE_JCO=.*no such file"):
        build.build("js-promise")


def _ret(n, call, result):
    return (n, "import.return", 0, (call, result))


def test_request_chain_scores_the_calls_that_build_and_read_an_outgoing_request():
    T = "wasi:http/types@0.3.0#"
    truth = {"calls": {SEND: RULES["calls"][SEND]}, "request_chain": {"for": "^/for/([0-9]+);"}}
    ev = _roots("req-0001", "req-0002")
    ev += [
        _call(10, 1, T + "[static]fields.from-list", [1], [[{"0": "content-type", "1": "x"}]]), _ret(11, 1, [{"ok": 4}]),
        _call(12, 2, T + "[static]request.new", [1], [4, {"none": None}, "<future #1>", {"none": None}]),
        _ret(13, 2, [[5, "<future #0>"]]),
        _call(14, 3, T + "[method]request.set-method", [1], [5, {"post": None}]),
        _call(15, 4, T + "[method]request.set-path-with-query", [1], [5, {"some": "/for/2;/audit"}]),
        _call(16, 5, SEND, [1], [5]), _ret(17, 5, [{"ok": 6}]),
        _call(18, 6, T + "[method]response.get-status-code", [1], [6]),
        _call(19, 7, "[resource-drop]wasi:http/types@0.3#response", [2], [6]),  # dropped on 2's task
        _call(20, 8, T + "[method]response.get-status-code", [1], [6]),  # after the drop: not the chain's
        _call(21, 9, T + "[method]request.get-headers", [1], [1]),  # the incoming request: not scored
    ]
    calls = {c.call: c for c in vs.truth_calls(ev, truth)}
    assert sorted(calls) == [1, 2, 3, 4, 5, 6, 7]
    assert all(calls[k].numbers == (2,) for k in calls)
    assert [k for k in sorted(calls) if calls[k].misattributed] == [1, 2, 3, 4, 5, 6]  # made on 1's task
    assert not calls[7].misattributed

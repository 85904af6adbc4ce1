"""The taint window (docs/verdicts.md): the recorder retires the tokens of
roots that exited more than --taint-window roots ago, so its index stays
bounded over a long recording, and says so in the trace (taint.retire)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.model.tokens import BASE64_ONLY, Planted, encoded_forms, plant_tokens
from callscope.runtime.observe import TaintIndex

try:
    from callscope.trace import _sink as _c
except ImportError:  # (no C compiler at install)
    _c = None


def _plant(idx: TaintIndex, tokens, root: int) -> None:
    """What RecordingObserver._plant does to the index (Core.plant in C)."""
    for tok in tokens:
        idx.add(tok, root)
    if TaintIndex.queues_forms(tokens):
        idx.pending.append((tuple(tokens), root))


def _fresh(live: dict) -> TaintIndex:
    """An index of only the roots not retired, their forms indexed."""
    idx = TaintIndex()
    for root, tokens in live.items():
        _plant(idx, tokens, root)
    idx.expand()
    return idx


def test_retire_takes_out_a_roots_tokens_and_forms_and_keeps_shared_ones():
    a = plant_tokens(["https://up.test/req-0001?q=a b", "shared-token"])
    b = plant_tokens(["https://up.test/req-0002?q=a b", "shared-token"])
    idx = TaintIndex()
    _plant(idx, a, 1)
    _plant(idx, b, 2)
    assert idx.find(["x https%3A%2F%2Fup.test%2Freq-0001%3Fq%3Da%20b"])  # (forms indexed now)
    idx.retire(a, 1)
    assert idx.find(["https://up.test/req-0001?q=a b"]) == []
    assert idx.find(["x https%3A%2F%2Fup.test%2Freq-0001%3Fq%3Da%20b"]) == []
    assert idx.find(["shared-token"]) == ["shared-token"]  # (root 2 planted it too)
    assert idx.find(["x https%3A%2F%2Fup.test%2Freq-0002%3Fq%3Da%20b"])
    idx.retire(b, 2)
    assert idx.roots == {} and idx.groups == {} and idx.more == {} and idx.pending == []


def test_retire_before_the_forms_were_indexed_drops_them_unindexed():
    a, b = plant_tokens(["req-0001-token"]), plant_tokens(["req-0002-token"])
    idx = TaintIndex()
    _plant(idx, a, 1)
    _plant(idx, b, 2)
    idx.retire(a, 1)
    assert [t for t, _ in idx.pending] == [tuple(b)]
    assert idx.find(["<" + encoded_forms("req-0002-token")[0][0] + ">"])
    assert not idx.find(["<" + encoded_forms("req-0001-token")[0][0] + ">"])
    idx.retire(b, 2)
    assert idx.roots == {} and idx.groups == {} and idx.more == {}


@settings(max_examples=150, deadline=None)
@given(roots=st.lists(st.lists(st.sampled_from(["req-1", "req-2", "abc", "ab", "a/b c", "é%x", "req-1/x"]),
                               min_size=1, max_size=4), min_size=1, max_size=6),
       forms=st.booleans(), order=st.permutations(range(6)), probes=st.lists(st.integers(0, 10 ** 6), max_size=5))
def test_after_any_retirements_the_index_is_that_of_the_roots_left(roots, forms, order, probes):
    planted = {i: (plant_tokens(t) if forms else Planted.make(t, [])) for i, t in enumerate(roots)}
    idx = TaintIndex()
    for i, toks in planted.items():
        _plant(idx, toks, i)
    live = dict(planted)
    every = [f for t in planted.values() for tok in t for f in [tok] + [g for g, _ in encoded_forms(tok)]]
    strings = [f"<{every[p % len(every)]}>" for p in probes] + [every[0]]
    for k in (i for i in order if i in planted):
        if k == order[len(order) // 2]:
            idx.find(list(strings))  # (the forms indexed at some point, or not)
        idx.retire(live.pop(k), k)
        fresh = _fresh(live)
        assert idx.find(list(strings)) == fresh.find(list(strings))
        assert set(idx.roots) == set(fresh.roots)
        assert {p: {n: set(s) for n, s in g.items()} for p, g in idx.groups.items()} == \
            {p: {n: set(s) for n, s in g.items()} for p, g in fresh.groups.items()}
    assert idx.roots == {} and idx.groups == {} and idx.more == {} and idx.pending == []


def _record(tmp_path, window: int, sink_cls=None, monkeypatch=None, seen=None):
    import callscope.run as run_mod
    from callscope.run import RunOptions, run
    from callscope.trace.reader import TraceReader
    if sink_cls is not None:
        import callscope.trace.recorder as recorder
        monkeypatch.setattr(recorder, "Sink", sink_cls)
        monkeypatch.setitem(recorder.Recorder.__init__.__kwdefaults__, "flush_interval_ns", 10 ** 12)
    out = tmp_path / f"w{window}-{getattr(sink_cls, '__name__', '')}.trace"
    if seen is not None:  # (the observer, to look at its index after the run)
        cls = run_mod.RecordingObserver
        monkeypatch.setattr(run_mod, "RecordingObserver", lambda *a: seen.append(cls(*a)) or seen[-1])
    with open(os.devnull, "w") as devnull:
        r = run(RunOptions(demo="event-loop", record=True, output=str(out), argv=["test"], repeat=30,
                           concurrency=4, taint_window=window), out=devnull)
    assert r.fault is None, r.fault_message
    with TraceReader(str(out)) as tr:
        return list(tr.events()), str(out)


def test_a_long_run_retires_all_but_the_window_and_judges_as_without_it(tmp_path):
    from callscope.model.summary import summarize_trace
    from callscope.trace.reader import TraceReader

    def summarize(p):
        with TraceReader(p) as tr:
            return summarize_trace(tr)
    events, path = _record(tmp_path, 3)
    roots = {e.get("task") for e in events if e.kind == "taint.plant"}
    retired = [e.get("task") for e in events if e.kind == "taint.retire"]
    exits = [e.get("task") for e in events if e.kind == "task.exit" and e.get("task") in roots]
    assert len(roots) > 20 and len(retired) == len(exits) - 3
    assert retired == exits[:len(retired)]  # (oldest exited first)
    _, unbounded = _record(tmp_path, 0)
    with_window, without = summarize(path), summarize(unbounded)
    assert with_window.coverage["limits"]["taint_retired"] == len(retired)
    assert without.coverage["limits"]["taint_retired"] == 0
    # (the demo's misattributions are among the requests in flight: none retired)
    assert [f.message for f in with_window.findings] == [f.message for f in without.findings]
    assert with_window.coverage["verdicts"] == without.coverage["verdicts"]


def test_the_index_stays_bounded_and_c_and_python_record_the_same(tmp_path, monkeypatch):
    from callscope.trace.sink import CSink, PySink
    if CSink is None:
        pytest.skip("the C extension callscope.trace._sink is not built (no C compiler at install)")
    got, seen = {}, []
    for cls in (CSink, PySink):
        got[cls] = _record(tmp_path, 2, cls, monkeypatch, seen)[0]
        idx = seen[-1]._tokens
        # (the demo plants one token a root: at most the window's and those
        # of the 4 in flight are left; at the end none is in flight)
        assert 0 < len(idx.roots) <= 2 and not idx.more and len(idx.pending) <= 2
    assert got[CSink] == got[PySink]
    assert sum(e.kind == "taint.retire" for e in got[CSink]) > 20


class _Root:
    """What planting and a root's exit read of a task."""
    __slots__ = ("id", "tokens")

    def __init__(self, tid, tokens):
        self.id = tid
        self.tokens = tokens


@pytest.mark.skipif(_c is None, reason="the C extension callscope.trace._sink is not built")
@settings(max_examples=80, deadline=None)
@given(roots=st.lists(st.lists(st.sampled_from(["req-1", "req-2", "abc", "ab", "a/b c", "é%x", "req-1/x", ""]),
                               min_size=1, max_size=4), min_size=1, max_size=7),
       expand_at=st.sets(st.integers(0, 6)), window=st.integers(1, 3), data=st.data())
def test_root_exit_in_c_does_what_the_python_one_does(roots, expand_at, window, data):
    """Core.root_exit (the C core's _root_exit: the window's oldest root
    retired from the index) against RecordingObserver._root_exit: the same
    index (roots, groups, more, pending), the same roots left in the window
    and the same events, whether a root's forms were indexed or not."""
    import tempfile

    from callscope.runtime.observe import RecordingObserver
    from callscope.trace import Recorder, TraceReader
    from callscope.trace.sink import CSink, PySink
    order = data.draw(st.permutations(range(len(roots))))
    got = []
    for cls in (CSink, PySink):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "t.cstrace")
            rec = Recorder(path, sink=cls, clock=lambda: 0, argv=["test"])
            obs = RecordingObserver(rec, taint_window=window)
            c = obs._core is not None
            assert c == (cls is CSink)
            tasks = [_Root(i + 1, plant_tokens(t)) for i, t in enumerate(roots)]
            for i, t in enumerate(tasks):
                (obs.plant if c else obs._plant)(t)
                if i in expand_at:
                    obs._tokens.expand()
            for i in order:
                if tasks[i].tokens:  # (the task.exit emitter calls it when task.tokens is true)
                    (obs.root_exit if c else obs._root_exit)(tasks[i])
            idx = obs._tokens
            state = (dict(idx.roots), {p: {n: set(s) for n, s in g.items()} for p, g in idx.groups.items()},
                     dict(idx.more), [(tuple(t), r) for t, r in idx.pending], list(obs._exited))
            rec.close()
            with TraceReader(path) as tr:
                got.append((state, [(e.kind, tuple(e.fields)) for e in tr.events()]))
    assert got[0] == got[1]


def _planted_state(cls, tokens_list, window=0, between=None):
    """plant() of each root's tokens with the sink ``cls`` (CSink: Core.plant
    in C; PySink: RecordingObserver._plant): the index and the events."""
    import tempfile

    from callscope.runtime.observe import RecordingObserver
    from callscope.trace import Recorder, TraceReader
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.cstrace")
        rec = Recorder(path, sink=cls, clock=lambda: 0, argv=["test"])
        obs = RecordingObserver(rec, taint_window=window)
        if between is not None:  # (after the observer was made)
            between()
        for i, toks in enumerate(tokens_list):
            (obs.plant if obs._core is not None else obs._plant)(_Root(i + 1, toks))
        idx = obs._tokens
        state = (dict(idx.roots), {p: {n: set(s) for n, s in g.items()} for p, g in idx.groups.items()},
                 dict(idx.more), [(tuple(t), r) for t, r in idx.pending])
        rec.close()
        with TraceReader(path) as tr:
            return state, [(e.kind, tuple(e.fields)) for e in tr.events()]


@pytest.mark.skipif(_c is None, reason="the C extension is not built")
def test_plant_reads_plant_tokens_class_as_its_attributes_say(monkeypatch):
    """Core.plant reads the tokens plant_tokens makes off their class
    (set_planted): the same index and events as the Python _plant, which
    reads the attributes; an instance's own `forms`, or the class changed
    after, takes the attribute path again. Planted.make's tokens, tuples and
    lists too."""
    from callscope.model import tokens as tk
    from callscope.trace.sink import CSink, PySink

    def cases():
        own = plant_tokens(["https://up.test/req-0003", "other-token"])
        own.forms = False  # (an instance's own attribute: not read off the class)
        return [plant_tokens(["https://up.test/req-0001", "x"]), plant_tokens(["req-0002-token", "x"]), own,
                Planted.make(["req-0004-token"], ["cmVxLTAwMDQtdG9rZW4"]), ("req-0005-token",),
                ["req-0006-token", "req-0005-token"], plant_tokens([])]
    assert _planted_state(CSink, cases()) == _planted_state(PySink, cases())
    with monkeypatch.context() as m:  # (a new version of the class, after set_planted)
        got = _planted_state(CSink, cases(), between=lambda: m.setattr(tk._PlantedLazily, "forms", False))
    with monkeypatch.context() as m:
        assert got == _planted_state(PySink, cases(), between=lambda: m.setattr(tk._PlantedLazily, "forms", False))
    assert got[0][3] == []  # (no forms queued: the class said so)
    monkeypatch.setattr(tk._PlantedLazily, "forms", False)  # (set_planted refuses it: the attributes read)
    assert _planted_state(CSink, cases()) == _planted_state(PySink, cases())


@pytest.mark.skipif(_c is None, reason="the C extension is not built")
def test_set_planted_refuses_a_class_it_cannot_read_off():
    from callscope.runtime.observe import RecordingObserver
    from callscope.trace import Recorder
    from callscope.trace.sink import CSink

    class NotLen(tuple):
        forms = True
        plain = property(lambda self: 1)

    class Iterates(tuple):
        forms = True
        plain = property(len)

        def __iter__(self):
            return iter(())

    class NoForms(tuple):
        plain = property(len)

    rec = Recorder(os.devnull, sink=CSink, clock=lambda: 0, argv=["test"])
    obs = RecordingObserver(rec)
    for cls in (NotLen, Iterates, NoForms, list, int):
        with pytest.raises(ValueError):
            obs.set_planted(cls)
    rec.close()


@settings(max_examples=120, deadline=None)
@given(roots=st.lists(st.lists(st.sampled_from(["req-0001", "req-2", "abc", "ab", "a/b c", "é%x", "req-1/x", "",
                                                "https://up.test/p?q=1"]),
                               min_size=0, max_size=4), min_size=1, max_size=7),
       expand_at=st.sets(st.integers(0, 6)))
def test_forms_expanded_in_c_index_what_the_python_expand_does(roots, expand_at):
    """Core.expand_forms (what the C core's search runs first: the pending
    roots' encoded forms indexed, TaintIndex.expand's steps) against
    TaintIndex.expand: the same roots, groups, more and pending, at any
    point of the planting."""
    import tempfile

    from callscope.runtime.observe import RecordingObserver
    from callscope.trace import Recorder
    from callscope.trace.sink import CSink, PySink
    if CSink is None:
        pytest.skip("the C extension is not built")
    got = []
    for cls in (CSink, PySink):
        with tempfile.TemporaryDirectory() as d:
            rec = Recorder(os.path.join(d, "t.cstrace"), sink=cls, clock=lambda: 0, argv=["test"])
            obs = RecordingObserver(rec, taint_window=0)
            c = obs._core is not None
            states = []
            for i, t in enumerate(roots):
                toks = plant_tokens(t) if i % 3 else Planted.make(t, [])  # (some with no lazy forms)
                (obs.plant if c else obs._plant)(_Root(i + 1, toks))
                if i in expand_at or i == len(roots) - 1:
                    (obs.expand_forms if c else obs._tokens.expand)()
                idx = obs._tokens
                states.append((dict(idx.roots), {p: {n: set(s) for n, s in g.items()} for p, g in idx.groups.items()},
                               dict(idx.more), [(tuple(t), r) for t, r in idx.pending]))
            rec.close()
            got.append(states)
    assert got[0] == got[1]


@pytest.mark.skipif(_c is None, reason="the C extension is not built")
@settings(max_examples=300, deadline=None)
@given(token=st.text(alphabet=st.sampled_from(sorted(BASE64_ONLY)),
                     min_size=1, max_size=40))
def test_the_cores_forms_of_a_safe_token_are_encoded_forms(token):
    """A token of BASE64_ONLY characters (a request id): encoded_forms gives
    it base64 forms only, and the C core's own (ascii_forms, what its expand
    indexes with no call of encoded_forms) are those, in the same order."""
    forms = encoded_forms(token)
    assert all(enc == "base64" for _, enc in forms)
    assert [f for f, _ in _c.ascii_forms(token)] == [f for f, _ in forms]

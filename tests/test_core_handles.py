"""import.call of a callee whose parameters hold own/borrow handles, recorded
by the C core (trace/_sink.c, core_handles: the handles found by the
callee's handle spec, their lineage roots looked up in the store's
resource_roots, an egress's taint views walked and searched) against the
Python path (RecordingObserver._py_import_call_id): the same trace bytes,
string table included (the tokens interned in the same order), with and
without resource roots, egress and not, views with tokens found and not,
handles nested in lists, options, records, tuples, results and variants."""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.component import types as T
from callscope.model.tokens import plant_tokens
from callscope.runtime.observe import RecordingObserver, _handle_spec, _handles
from callscope.trace import Recorder, TraceReader
from callscope.trace import format as F
from callscope.trace.sink import CSink, Core, PySink

needs_c = pytest.mark.skipif(CSink is None or Core is None,
                             reason="callscope.trace._sink is not built (no C compiler at install)")

EGRESS = "wasi:http/client@0.3.0#send"
OTHER = "wasi:http/types@0.3.0#[method]request.set-path"


class _Dtor:
    """A host resource's destructor marker with a taint view (what
    callscope.wasi.resources._HostDtor gives: views[rep], None when absent)."""

    def __init__(self, views):
        self.views = views
        self.calls = 0

    def taint_view(self, rep):
        self.calls += 1
        return self.views.get(rep)


class _NoView:
    """A destructor with no taint_view (a guest resource's)."""


class _Store:
    def __init__(self, roots):
        self.resource_roots = roots


class _Inst:
    def __init__(self, iid, store):
        self.id = iid
        self.store = store


class _Task:
    """What import_call reads of a task (root tasks here: caller None)."""

    def __init__(self, tid, inst, tokens=(), caller=None):
        self.id = tid
        self.inst = inst
        self.tokens = tokens
        self.caller = caller
        self.root = self

    def async_call_stack(self):
        t, out = self, []
        while t is not None:
            out.append(t)
            t = t.caller
        return out


class _Callee:
    def __init__(self, name, ft):
        self.name = name
        self.ft = ft


def _chunks(path) -> bytes:
    """The trace's chunk frames (between its header and footer frames, which
    hold times of the wall clock)."""
    data = Path(path).read_bytes()
    n = len(F.MAGIC)
    header_len = struct.unpack_from(F.FRAME_HEADER, data, n)[1]
    footer_at = struct.unpack_from(F.TRAILER, data, len(data) - F.TRAILER_SIZE)[0]
    return data[n + F.FRAME_HEADER_SIZE + header_len:footer_at]


class _Counting(RecordingObserver):
    """Counts the import calls its Python method records."""

    py_calls = 0

    def _py_import_call_id(self, *a):
        _Counting.py_calls += 1
        return super()._py_import_call_id(*a)


def _run(path, how, plant, calls, roots):
    """Record plant (lists of tokens, one root each) and then calls
    ((callee, args, result), each made and returned by task 1 of instance 7)
    with the sink and path `how` says: "c" (the C core), "py-method" (the C
    sink, the observer's import_call its Python method) or "py-sink". The
    chunk bytes, the events and how many calls the Python method recorded."""
    sink = PySink if how == "py-sink" else CSink
    rec = Recorder(str(path), sink=sink, clock=lambda: 0, argv=["test"], chunk_events=1 << 20,
                   flush_interval_ns=10 ** 12)
    obs = _Counting(rec)
    _Counting.py_calls = 0
    c = obs._core is not None
    assert c == (sink is CSink)
    if how == "py-method":
        obs.import_call = obs._py_import_call
    store = _Store(roots)
    inst = _Inst(7, store)
    for i, toks in enumerate(plant):
        (obs.plant if c else obs._plant)(_Task(100 + i, inst, plant_tokens(toks)))
    task = _Task(1, inst, caller=_Task(2, inst))
    for callee, args, result in calls:
        call_id = obs.import_call(task, callee, args)
        obs.import_return(call_id, result)
    rec.close()
    with TraceReader(str(path)) as rd:
        events = [(e.kind, tuple(e.fields)) for e in rd.events()]
    return _chunks(path), events, _Counting.py_calls


def _same_on_every_path(plant, calls, roots_of=dict, in_c=True):
    """The three paths' traces (each run with a fresh resource_roots from
    roots_of()): the same bytes; the C core's events. in_c: the C core
    recorded every call itself (else: none of them)."""
    got = {}
    with tempfile.TemporaryDirectory() as d:
        for how in ("c", "py-method", "py-sink"):
            got[how] = _run(os.path.join(d, how + ".cstrace"), how, plant, calls, roots_of())
    assert got["c"][1] == got["py-sink"][1]
    assert got["c"][0] == got["py-method"][0]
    assert got["c"][0] == got["py-sink"][0]
    assert got["py-method"][2] == len(calls)
    assert got["c"][2] == (0 if in_c else len(calls))
    return got["c"][1]


def _ft(*params):
    return T.FuncType(tuple((f"p{i}", t) for i, t in enumerate(params)), (T.U32Type(),))


REQ_VIEWS = {
    1: ("/a?id=req-one", "up.test", [("x-trace", b"req-two"), ("accept", b"*/*")]),
    2: ("/b", "up.test", [("x-trace", b"nothing here")]),
    3: ("/c/req-two/req-one", "req-three.test", []),
    4: None,
}


@needs_c
@pytest.mark.parametrize("roots", [False, True])
@pytest.mark.parametrize("name", [EGRESS, OTHER])
@pytest.mark.parametrize("planted", [[], [["req-one"], ["req-two"], ["req-three"]]])
def test_handle_calls_record_the_same_bytes_in_c_and_python(roots, name, planted):
    rt = T.ResourceType(None, _Dtor(REQ_VIEWS), name="request")
    other = T.ResourceType(None, None, name="guest-thing")  # (no dtor: no view)
    noview = T.ResourceType(None, _NoView(), name="fields")
    rec_t = T.RecordType((T.FieldType("a", T.StringType()), T.FieldType("req", T.OwnType(rt)),
                          T.FieldType("more", T.ListType(T.OptionType(T.BorrowType(rt))))))
    tup_t = T.TupleType((T.U32Type(), T.OwnType(noview), T.OwnType(other)))
    res_t = T.ResultType(T.OwnType(rt), T.StringType())
    var_t = T.VariantType((T.CaseType("none", None), T.CaseType("one", T.OwnType(rt)),
                           T.CaseType("many", T.ListType(T.OwnType(rt)))))
    calls = [
        (_Callee(name, _ft(T.OwnType(rt))), [1], [0]),
        (_Callee(name, _ft(T.OwnType(rt))), [2], [0]),
        (_Callee(name, _ft(T.OwnType(rt))), [4], [0]),  # (its view: None)
        (_Callee(name, _ft(T.OwnType(rt))), [99], [0]),  # (not in the table)
        (_Callee(name, _ft(T.StringType(), T.OwnType(rt))), ["see req-two here", 3], [1]),
        (_Callee(name, _ft(T.StringType(), T.OwnType(rt))), ["req-three", 1], [1]),
        (_Callee(name, _ft(rec_t)), [{"a": "req-one", "req": 3, "more": [{"some": 1}, {"none": None}, {"some": 2}]}],
         [2]),
        (_Callee(name, _ft(rec_t)), [{"a": "x", "more": []}], [2]),  # (a field missing: .get gives None)
        (_Callee(name, _ft(tup_t)), [{"0": 5, "1": 1, "2": 2}], [3]),
        (_Callee(name, _ft(T.OptionType(T.OwnType(rt)))), [{"some": 3}], [3]),
        (_Callee(name, _ft(T.OptionType(T.OwnType(rt)))), [None], [3]),
        (_Callee(name, _ft(res_t)), [{"ok": 1}], [4]),
        (_Callee(name, _ft(res_t)), [{"error": "req-one"}], [4]),
        (_Callee(name, _ft(var_t)), [{"many": [1, 2, 3]}], [5]),
        (_Callee(name, _ft(var_t)), [{"one": 2}], [5]),
        (_Callee(name, _ft(var_t)), [{"none": None}], [5]),
        (_Callee(name, _ft(T.ListType(T.OwnType(rt)), T.U32Type())), [(1, 3), 9], [6]),
        (_Callee(name, _ft(T.OwnType(rt), T.OwnType(rt))), [1], [0]),  # (fewer args than parameters)
    ]
    task_root = _Task(50, None)
    other_root = _Task(51, None)

    def roots_of():
        return {(rt, 1): task_root, (rt, 3): other_root, (noview, 1): task_root, (other, 2): other_root,
                (rt, 2): None} if roots else {}

    events = _same_on_every_path(planted, calls, roots_of)
    got = [f for k, f in events if k == "import.call"]
    assert len(got) == len(calls)
    if roots:
        assert any(f[6] for f in got)  # (lineage recorded)
    if planted and name == EGRESS:
        assert any("req-two" in f[5] for f in got)  # (a view's token)


@needs_c
def test_a_value_of_another_shape_takes_the_python_path():
    """A value whose shape is not its spec's (a dict where a list is) is
    recorded by the Python method: the same bytes as the Python sink's."""
    rt = T.ResourceType(None, _Dtor(REQ_VIEWS), name="request")
    calls = [(_Callee(EGRESS, _ft(T.ListType(T.OwnType(rt)))), [{1: "a", 3: "b"}], [0]),
             (_Callee(EGRESS, _ft(T.OptionType(T.OwnType(rt)))), [[("some", 1)]], [0])]
    _same_on_every_path([["req-one"]], calls, lambda: {(rt, 1): _Task(9, None)}, in_c=False)


@needs_c
def test_the_view_of_a_handle_is_asked_once_a_call():
    dtor = _Dtor(REQ_VIEWS)
    rt = T.ResourceType(None, dtor, name="request")
    with tempfile.TemporaryDirectory() as d:
        _run(os.path.join(d, "t.cstrace"), "c", [["req-one"]],
             [(_Callee(EGRESS, _ft(T.ListType(T.OwnType(rt)))), [[1, 2]], [0])], {})
    assert dtor.calls == 2


# -- handle specs: the handles _handles finds, in its order -------------------

_RT = [T.ResourceType(None, _Dtor(REQ_VIEWS), name=f"r{i}") for i in range(2)]


def _types(depth=0):
    leaf = st.sampled_from([T.OwnType(_RT[0]), T.BorrowType(_RT[1]), T.StringType(), T.U32Type()])
    return st.recursive(leaf, lambda sub: st.one_of(
        sub.map(T.ListType),
        sub.map(T.OptionType),
        st.lists(sub, min_size=1, max_size=3).map(
            lambda ts: T.RecordType(tuple(T.FieldType(f"f{i}", t) for i, t in enumerate(ts)))),
        st.lists(sub, min_size=1, max_size=3).map(lambda ts: T.TupleType(tuple(ts))),
        st.tuples(st.one_of(st.none(), sub), st.one_of(st.none(), sub)).map(lambda p: T.ResultType(*p)),
        st.lists(st.one_of(st.none(), sub), min_size=1, max_size=3).map(
            lambda ts: T.VariantType(tuple(T.CaseType(f"c{i}", t) for i, t in enumerate(ts))))),
        max_leaves=10)


def _values(t):
    """A strategy of values of type t, as lifting makes them."""
    c = t.__class__
    if c is T.OwnType or c is T.BorrowType:
        return st.integers(1, 5)
    if c is T.StringType:
        return st.sampled_from(["", "req-one", "x req-two y", "plain"])
    if c is T.U32Type:
        return st.integers(0, 9)
    if c is T.ListType:
        return st.lists(_values(t.t), max_size=3)
    if c is T.OptionType:
        return st.one_of(st.just({"none": None}), _values(t.t).map(lambda v: {"some": v}))
    if c is T.RecordType:
        return st.fixed_dictionaries({f.label: _values(f.t) for f in t.fields})
    if c is T.TupleType:
        return st.fixed_dictionaries({str(i): _values(et) for i, et in enumerate(t.ts)})
    if c is T.ResultType:
        return st.one_of(*[(_values(et) if et is not None else st.none()).map(lambda v, k=k: {k: v})
                           for k, et in (("ok", t.ok), ("error", t.error))])
    cases = [(_values(case.t) if case.t is not None else st.none()).map(lambda v, k=case.label: {k: v})
             for case in t.cases]
    return st.one_of(*cases)


@needs_c
@settings(max_examples=60, deadline=None)
@given(data=st.data(), ts=st.lists(_types(), min_size=1, max_size=3), egress=st.booleans(),
       roots=st.sets(st.tuples(st.integers(0, 1), st.integers(1, 5))),
       planted=st.lists(st.sampled_from([["req-one"], ["req-two"], ["up.test"], ["*/*"]]), max_size=3))
def test_any_handle_carrying_call_records_the_same_in_c_and_python(data, ts, egress, roots, planted):
    args = [data.draw(_values(t)) for t in ts]
    # the spec finds what _handles finds
    for t, v in zip(ts, args):
        want: list = []
        _handles(v, t, want)
        if _handle_spec(t) is None:
            assert want == []
    callee = _Callee(EGRESS if egress else OTHER, _ft(*ts))
    root_tasks = {k: _Task(60 + k, None) for k in range(2)}
    _same_on_every_path(planted, [(callee, args, [0]), (callee, args, [1])],
                        lambda: {(_RT[i], rep): root_tasks[i] for i, rep in roots})

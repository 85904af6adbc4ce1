"""The model layer over synthetic event sequences: state at event N, findings."""

from __future__ import annotations

import io

import pytest

from callscope.model import (
    ImportAfterRootReturned,
    ImportWithoutRoot,
    LongBackpressure,
    Misattributed,
    State,
    Timeline,
    check_all,
    format_finding,
    format_summary,
    summarize_trace,
    findings_summary,
)
from callscope.trace import Recorder, TraceReader, make_event


class FakeClock:
    def __init__(self, t: int = 1_000):
        self.t = t

    def __call__(self) -> int:
        return self.t

    def advance(self, ns: int) -> None:
        self.t += ns


def record(script, **kw):
    """Run ``script(rec, clock)`` against a Recorder writing to memory; the
    events read back."""
    clock = FakeClock()
    buf = io.BytesIO()
    rec = Recorder(buf, clock=clock, flush_clock=clock, guest=b"\0asm", seed=7, **kw)
    script(rec, clock)
    rec.close()
    return TraceReader(buf.getvalue())


def two_requests(rec, clock, *, import_from=1, stack=None, taint=None, lineage=(), lineage_handles=None,
                 return_first=False, name="wasi:http/outgoing-handler.handle"):
    """Two concurrent root requests into instance 1 (tasks 1 "GET /a" and 2
    "GET /b"), one import made while ``stack`` is current."""
    rec.instance_new(0, "root", None)
    rec.instance_new(1, "app", 0)
    for task, label in ((1, "GET /a"), (2, "GET /b")):
        rec.task_new(task, 1, "handle", None, task, label, False)
        rec.taint_plant(task, f"tok-{task}")
        rec.task_start(task)
        rec.thread_new(task, task)
        clock.advance(100)
    rec.handle_new("stream", 1, 7, 2)  # a stream request B created
    if return_first:
        rec.task_return(1, 200)
        clock.advance(500)
    rec.import_call(10, 1, name, stack if stack is not None else [import_from],
                    {"url": "https://x/"}, taint or [], list(lineage), lineage_handles)
    clock.advance(1000)
    rec.import_return(10, 0)
    for task in (1, 2):
        if not (return_first and task == 1):
            rec.task_return(task, 200)
        rec.task_resolved(task)
        rec.task_exit(task)


def test_well_behaved_run_has_no_findings():
    r = record(lambda rec, c: two_requests(rec, c, stack=[1], taint=["tok-1"]))
    assert check_all(r) == []
    assert findings_summary([]) == "no findings"


def test_misattributed_by_taint():
    # the import carries request B's token while request A's task is current
    r = record(lambda rec, c: two_requests(rec, c, stack=[1], taint=["tok-2"]))
    fs = Misattributed().check(r)
    assert len(fs) == 1
    f = fs[0]
    assert f.lint == "misattributed"
    assert f.details["stack_root"] == 1 and f.details["stack_root_label"] == "GET /a"
    assert f.details["origin"] == 2 and f.details["origin_label"] == "GET /b"
    assert f.details["evidence"][0]["by"] == "taint"
    assert f.details["evidence"][0]["token"] == "tok-2"
    line = format_finding(f)
    assert "GET /a" in line and "GET /b" in line and "tok-2" in line
    assert line.startswith("warning[misattributed] #")
    assert Misattributed().summary(fs) == "1 import attributed to the wrong root task"


def test_misattributed_by_lineage():
    r = record(lambda rec, c: two_requests(rec, c, stack=[1], lineage=[2], lineage_handles=[7]))
    fs = check_all(r)
    assert [f.lint for f in fs] == ["misattributed"]
    ev = fs[0].details["evidence"][0]
    assert ev["by"] == "lineage" and ev["handle"] == 7 and ev["handle_kind"] == "stream"
    assert "stream 7" in fs[0].message


def test_nested_stack_resolves_to_root():
    # task 3 (called by root 1, in another instance) makes the import; the
    # stack is [3, 1]; evidence says root 1: fine
    def script(rec, c):
        rec.instance_new(1, "app", None)
        rec.instance_new(2, "lib", 1)
        rec.task_new(1, 1, "handle", None, 1, "GET /a", False)
        rec.taint_plant(1, "tok-1")
        rec.task_new(3, 2, "fetch", 1, 1, None, False)
        rec.import_call(1, 2, "fetch", [3, 1], None, ["tok-1"], [])
        rec.import_call(2, 2, "fetch", [3, 1], None, [], [3])  # lineage names the subtask: root is 1
    assert check_all(record(script)) == []


def test_consistent_evidence_is_not_misattributed():
    r = record(lambda rec, c: two_requests(rec, c, stack=[2], taint=["tok-2"], lineage=[2]))
    assert check_all(r) == []


def test_import_after_root_returned():
    r = record(lambda rec, c: two_requests(rec, c, stack=[1], taint=["tok-1"], return_first=True))
    fs = check_all(r)
    assert [f.lint for f in fs] == ["import-after-root-returned"]
    d = fs[0].details
    assert d["root"] == 1 and d["root_label"] == "GET /a" and d["how"] == "returned"
    assert d["after_ns"] == 500
    assert "500ns after" in fs[0].message
    assert ImportAfterRootReturned().summary(fs) == "1 import made after its root task returned"


def test_a_resource_dropped_after_its_root_returned_is_not_a_finding():
    # componentize-py drops the incoming request after answering it, on every request
    r = record(lambda rec, c: two_requests(rec, c, stack=[1], taint=["tok-1"], return_first=True,
                                           name="[resource-drop]wasi:http/types@0.3#request"))
    assert check_all(r) == []


def test_import_without_root():
    r = record(lambda rec, c: two_requests(rec, c, stack=[], taint=["tok-2"]))
    fs = check_all(r)
    assert [f.lint for f in fs] == ["import-without-root"]
    assert fs[0].details["origins"] == [2]
    assert "empty" in fs[0].message and "GET /b" in fs[0].message


def test_import_whose_stack_ends_at_a_callee_is_without_root():
    def script(rec, c):
        rec.task_new(1, 1, "handle", None, 1, "GET /a", False)
        rec.task_new(3, 2, "fetch", 1, 1, None, False)
        rec.import_call(1, 2, "fetch", [3], None, [], [])  # truncated stack
        rec.import_call(2, 2, "fetch", [99], None, [], [])  # unknown task
    fs = ImportWithoutRoot().check(record(script))
    assert len(fs) == 2
    assert "called" in fs[0].message and "unknown task 99" in fs[1].message


def test_long_backpressure():
    def script(rec, c):
        rec.instance_new(1, "app", None)
        rec.backpressure(1, 1, "inc")
        for task in (1, 2, 3):
            rec.task_new(task, 1, "handle", None, task, f"req{task}", False)
            rec.call_queued(task)
        c.advance(5_000_000)
        rec.call_admitted(1)  # 5 ms: fine
        c.advance(20_000_000)
        rec.backpressure(1, 0, "dec")
        rec.call_admitted(2)  # 25 ms: too long
        c.advance(30_000_000)
        rec.note("end")  # task 3 still queued after 55 ms
    r = record(script)
    fs = LongBackpressure(threshold_ns=10_000_000).check(r)
    assert [(f.details["task"], f.details["waited_ns"], f.details["admitted_at"] is None) for f in fs] == [
        (2, 25_000_000, False),
        (3, 55_000_000, True),
    ]
    assert "25.0ms" in fs[0].message and "never admitted" in fs[1].message
    assert LongBackpressure(threshold_ns=100_000_000).check(r) == []


def test_lints_work_on_plain_tuples():
    evs = [
        make_event(0, "task.new", 0, (1, 0, "f", None, 1, "A", False)),
        make_event(1, "task.new", 0, (2, 0, "f", None, 2, "B", False)),
        make_event(2, "taint.plant", 0, (2, "t2")),
        (3, "import.call", 5, (1, 0, "imp", (1,), None, ("t2",), (), None)),
    ]
    fs = check_all(evs)
    assert [f.lint for f in fs] == ["misattributed"] and fs[0].n == 3


def test_summary_counts_and_text():
    r = record(lambda rec, c: two_requests(rec, c, stack=[1], taint=["tok-2"]))
    s = summarize_trace(r)
    assert (s.instances, s.tasks, s.root_tasks, s.imports, s.traps) == (2, 2, 2, 1, 0)
    assert s.events == r.event_count and s.findings_by_lint == {"misattributed": 1}
    text = format_summary(s)
    assert "tasks: 2 (2 root)" in text and "1 import attributed to the wrong root task" in text
    assert s.truncated is None


# ----------------------------------------------------------------- state


def state_script(rec, c):
    rec.instance_new(0, "root", None)
    rec.instance_new(1, "app", 0)
    rec.task_new(1, 1, "handle", None, 1, "GET /a", False)  # 2
    rec.task_start(1)
    rec.thread_new(1, 1)
    rec.task_new(2, 1, "handle", None, 2, "GET /b", False)  # 5
    rec.backpressure(1, 1, "inc")
    rec.call_queued(2)
    rec.task_new(3, 0, "helper", 1, 1, None, False)  # 8: task 1 calls into instance 0
    rec.subtask_state(3, 4, "started")
    rec.waitable_set_new(1, 1)
    rec.waitable_join(1, 4, 1)
    rec.waitable_set_wait(1, 1)  # 12
    rec.task_return(3, None)
    rec.subtask_state(3, 4, 2)
    rec.event_delivered(1, 1, 4, 2)  # 15
    rec.task_exit(3)
    rec.backpressure(1, 0, "dec")
    rec.call_admitted(2)
    rec.import_call(5, 1, "imp", [1], None, [], [])  # 19
    rec.import_return(5, None)


def test_state_at_event_n():
    r = record(state_script)
    tl = Timeline(r, every=3)
    s = tl.state_at(12)
    assert set(s.instances) == {0, 1} and s.instances[1].backpressure == 1
    assert set(s.tasks) == {1, 2, 3}
    assert s.tasks[1].state == "started" and s.tasks[2].state == "queued"
    assert s.tasks[3].caller == 1 and s.tasks[3].root == 1 and s.tasks[3].subtask_state == "started"
    assert s.tasks[1].children == [3]
    assert s.waitable_sets[(1, 1)].members == {4} and s.waitable_sets[(1, 1)].waiting == set()
    tree = s.call_tree()
    assert sorted(n.task.id for n in tree) == [1, 2]
    assert [c.task.id for c in next(n for n in tree if n.task.id == 1).children] == [3]
    assert [n.task.id for n in s.call_tree(inst=0)] == [3]
    assert "task 3 helper" in s.render_tree()

    s = tl.state_at(13)  # wait applied
    assert s.waitable_sets[(1, 1)].waiting == {1}
    s = tl.state_at(16)
    assert s.tasks[3].subtask_state == "returned" and s.waitable_sets[(1, 1)].waiting == set()
    s = tl.state_at(20)
    assert 3 not in s.tasks and s.tasks_exited == 1 and s.tasks[1].children == []
    assert s.instances[1].backpressure == 0 and s.queued == {} and s.tasks[2].state == "new"
    assert set(s.imports) == {5} and s.imports[5].stack_root == 1
    assert tl.state_at(21).imports == {}


def test_timeline_matches_linear_replay():
    r = record(state_script)
    events = list(r)
    for every in (1, 2, 5, 100):
        tl = Timeline(r, every=every)
        for n in (7, 20, 3, 0, 21, 14, 14):
            linear = State().apply_all(events[:n])
            got = tl.state_at(n)
            assert got.n == linear.n == n
            assert {k: (t.state, t.children, t.subtask_state) for k, t in got.tasks.items()} == {
                k: (t.state, t.children, t.subtask_state) for k, t in linear.tasks.items()
            }
            assert got.waitable_sets == linear.waitable_sets
    # a list works as well as a reader
    assert Timeline(events, every=4).state_at(9).tasks.keys() == {1, 2, 3}


def test_snapshot_is_isolated():
    r = record(state_script)
    tl = Timeline(r, every=4)
    a = tl.state_at(12)
    # a state shares its objects with the snapshots until it changes them
    # (copy-on-write): what applying events changes is its own copy
    a.apply((12, "task.new", 0, (99, 0, "g", 1, 1, None, False)))
    a.apply((13, "task.return", 0, (1, None)))
    assert a.tasks[1].children == [3, 99] and a.tasks[1].state == "returned"
    b = tl.state_at(12)
    assert b.tasks[1].children == [3] and b.tasks[1].state == "started" and 99 not in b.tasks
    # and the state it was copied from goes on without touching the copy
    b.apply((12, "task.exit", 0, (3,)))
    assert a.tasks[1].children == [3, 99] and tl.state_at(12).tasks[1].children == [3]


def test_trap_and_deadlock_in_state():
    def script(rec, c):
        rec.task_new(1, 0, "f", None, 1, None, True)
        rec.trap(1, "unreachable")
        rec.deadlock("all tasks blocked")
    r = record(script)
    s = Timeline(r).state_at(3)
    assert s.traps == [(1, 1, "unreachable")] and s.deadlocks == [(2, "all tasks blocked")]
    assert summarize_trace(r).traps == 1

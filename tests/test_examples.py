"""Real componentize-py guests (examples/) on callscope's runtime, with WASI
served from Python (callscope.wasi); and the host-resource API on a small
hand-written component.

The example builds need componentize-py (the `test` extra) and the WIT
packages in ../shared; those tests skip with the reason when either is
missing. Builds are cached by source hash (examples/build.py), compiled core
modules by wasmtime under ~/.cache/callscope/modules.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import pytest
import wasmtime

from callscope.component.linker import LinkError
from callscope.host import Host
from callscope.runtime.errors import Trap
from callscope.wasi import Wasi
from callscope.wasi.http import Exchange, HttpServer, find_handler, http_state

ROOT = Path(__file__).resolve().parents[1]


def _load_build():
    spec = importlib.util.spec_from_file_location("callscope_examples_build", ROOT / "examples" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


build = _load_build()


def example(name: str) -> bytes:
    if build.componentize_py() is None:
        pytest.skip("componentize-py is not installed (pip install -e '.[test]')")
    if build.EXAMPLES[name].wit != ("wit",) and not (build.shared_dir() / "wit" / "deps").is_dir():
        pytest.skip(f"the WASI WIT packages are not at {build.shared_dir() / 'wit' / 'deps'} "
                    "(../shared is not beside this checkout)")
    return build.build(name).read_bytes()


@pytest.fixture
def host():
    h = Host()
    yield h
    h.close()


# ---------------------------------------------------------------------------
# hello: custom world, async export awaiting an async import


def _hello(host, **kw):
    out, err = io.BytesIO(), io.BytesIO()
    w = Wasi(host.store, stdout=out, stderr=err, **kw)
    return w, out, err


def test_hello_runs_and_returns(host):
    data = example("hello")
    w, out, err = _hello(host)
    greeted = []

    def greet(call, name):
        greeted.append((str(name), call.task is not None))
        return call.resolve_later(1_000_000, [f"hello {name}"])

    w.provide("callscope:hello/host", {"greet": greet})
    inst = host.instantiate(data, {}, resolver=w.resolver)
    assert host.call(inst.func("run"), ["bob", 3]) == ["hello bob0, hello bob1, hello bob2"]
    assert greeted == [("bob0", True), ("bob1", True), ("bob2", True)]
    assert host.store.now_ns == 3_000_000  # three sequential 1 ms greets, simulated
    assert out.getvalue() == b"run('bob', 3)\n"
    assert err.getvalue() == b"greeted 3\n"
    # the libc's WASI 0.2 imports were all served
    assert any(n.startswith("wasi:io/streams@0.2") for n in w.resolved)
    assert any(n.startswith("wasi:sockets/tcp@0.2") for n in w.resolved)


def test_missing_import_names_it(host):
    data = example("hello")
    w, _, _ = _hello(host)
    with pytest.raises(LinkError, match=r"callscope:hello/host"):
        host.instantiate(data, {}, resolver=w.resolver)


def test_allow_unknown_traps_when_called(host):
    data = example("hello")
    w, _, _ = _hello(host, allow_unknown=True)
    inst = host.instantiate(data, {}, resolver=w.resolver)
    with pytest.raises(Trap, match=r"callscope:hello/host#greet"):
        host.call(inst.func("run"), ["bob", 1])


# ---------------------------------------------------------------------------
# wasi:http/service@0.3.0


@pytest.mark.slow
def test_service_answers_get(host):
    data = example("service")
    out = io.BytesIO()
    w = Wasi(host.store, stdout=out, stderr=out)
    inst = host.instantiate(data, {}, resolver=w.resolver)
    srv = HttpServer(w, find_handler(inst.exports))
    ex = srv.get("/", [("x-request-id", b"r-1")])
    assert ex.error is None
    assert ex.status == 200
    assert ex.response_body == b"hello from callscope\n"
    assert ("content-type", b"text/plain") in ex.response_headers
    echo, missing = srv.serve([Exchange("a", "GET", "/echo/x", [("x-request-id", b"r-2")]),
                               Exchange("b", "POST", "/nope", [], b"payload")], concurrency=2)
    assert (echo.status, echo.response_body) == (200, b"path=/echo/x id=r-2\n")
    assert (missing.status, missing.response_body) == (404, b"not found\n")
    assert http_state(w).upstream.calls == []  # a well-behaved service makes no outgoing calls


@pytest.mark.slow
def test_service_uses_wasi_p3_clock_and_stdout(host):
    data = example("service")
    out = io.BytesIO()
    w = Wasi(host.store, stdout=out, stderr=io.BytesIO())
    inst = host.instantiate(data, {}, resolver=w.resolver)
    srv = HttpServer(w, find_handler(inst.exports))
    t0 = host.store.now_ns
    sleep = srv.get("/sleep")
    assert (sleep.status, sleep.response_body) == (200, b"slept\n")
    assert host.store.now_ns - t0 == 5_000_000  # wait-for ran on the simulated clock
    log = srv.get("/log", [("x-request-id", b"r-9")])
    assert (log.status, log.response_body) == (200, b"logged\n")
    assert out.getvalue() == b"log line for r-9\n"  # stream<u8> from the guest, via wasi:cli/stdout@0.3.0


@pytest.mark.slow
def test_fanout_20_requests_at_concurrency_4(host):
    data = example("fanout")
    out = io.BytesIO()
    w = Wasi(host.store, stdout=out, stderr=out)
    inst = host.instantiate(data, {}, resolver=w.resolver)
    srv = HttpServer(w, find_handler(inst.exports))
    exs = [Exchange(f"r{i}", "GET", f"/item/{i}", [("x-request-id", f"rid-{i}".encode())]) for i in range(20)]
    srv.serve(exs, concurrency=4)  # raises on a trap or a deadlock
    for i, ex in enumerate(exs):
        assert ex.done and ex.error is None and ex.status == 200, ex
        assert ex.response_body == (f"upstream GET /part/0/item/{i} id=rid-{i}\n"
                                    f"upstream GET /part/1/item/{i} id=rid-{i}\n").encode()
    calls = http_state(w).upstream.calls
    fetches = [c for c in calls if c.method == "GET"]
    audits = [c for c in calls if c.method == "POST"]
    assert len(fetches) == 40 and len(audits) == 20
    # fetches are made on the task of the request they serve...
    for c in fetches:
        assert dict(c.headers)["x-request-id"].decode() == "rid-" + c.root_label[1:]
    # ...audit posts are sent by whichever request fills the batch: misattributed
    wrong = [c for c in audits if dict(c.headers)["x-request-id"].decode() != "rid-" + c.root_label[1:]]
    assert wrong, "expected the batched audit flush to send other requests' entries"
    assert sorted(c.body for c in audits) == sorted(f"served /item/{i} for rid-{i}".encode() for i in range(20))


def test_fanout_bp_is_documented_as_unavailable():
    with pytest.raises(build.BuildError, match="backpressure"):
        build.build("fanout-bp")


# ---------------------------------------------------------------------------
# host resources on a hand-written component (no componentize-py needed)

RESOURCE_GUEST = r"""
(component
  (import "test:res/api" (instance $api
    (export "thing" (type $t (sub resource)))
    (export "[constructor]thing" (func (param "n" u32) (result (own $t))))
    (export "[method]thing.value" (func (param "self" (borrow $t)) (result u32)))
  ))
  (alias export $api "thing" (type $thing))
  (alias export $api "[constructor]thing" (func $ctor))
  (alias export $api "[method]thing.value" (func $value))
  (core func $ctor_l (canon lower (func $ctor)))
  (core func $value_l (canon lower (func $value)))
  (core func $drop (canon resource.drop $thing))
  (core module $m
    (import "" "ctor" (func $ctor (param i32) (result i32)))
    (import "" "value" (func $value (param i32) (result i32)))
    (import "" "drop" (func $drop (param i32)))
    (func (export "run") (param i32) (result i32)
      (local $h i32) (local $v i32)
      (local.set $h (call $ctor (local.get 0)))
      (local.set $v (call $value (local.get $h)))
      (call $drop (local.get $h))
      (local.get $v)))
  (core instance $i (instantiate $m (with "" (instance
    (export "ctor" (func $ctor_l)) (export "value" (func $value_l)) (export "drop" (func $drop))))))
  (func (export "run") (param "n" u32) (result u32) (canon lift (core func $i "run")))
)
"""


def test_host_resource_new_borrow_and_destructor(host):
    w = Wasi(host.store, stdout=io.BytesIO(), stderr=io.BytesIO())
    dropped = []
    w.provide("test:res/api", {
        "[constructor]thing": lambda call, n: w.resource("test:res/api", "thing").new({"n": n}),
        "[method]thing.value": lambda call, rep: w.resource("test:res/api", "thing").get(rep)["n"] * 2,
    }, resources={"thing": dropped.append})
    inst = host.instantiate(wasmtime.wat2wasm(RESOURCE_GUEST), {}, resolver=w.resolver)
    assert host.call(inst.func("run"), [21]) == [42]
    assert dropped == [{"n": 21}]
    res = w.resource("test:res/api", "thing")
    assert res.objects == {} and res.dropped == 1
    assert res.rt.impl is None  # a host-defined resource type


def test_unknown_instance_import_fails_with_its_name(host):
    w = Wasi(host.store)
    with pytest.raises(LinkError, match=r"test:res/api"):
        host.instantiate(wasmtime.wat2wasm(RESOURCE_GUEST), {}, resolver=w.resolver)


def test_unknown_function_of_known_interface_fails_with_its_name(host):
    w = Wasi(host.store)
    w.provide("test:res/api", {"[constructor]thing": lambda call, n: 0})
    with pytest.raises(LinkError, match=r"\[method\]thing\.value.*test:res/api"):
        host.instantiate(wasmtime.wat2wasm(RESOURCE_GUEST), {}, resolver=w.resolver)


# ---------------------------------------------------------------------------
# recording: the C paths (trace/_sink.c: the sink, its emitters, the observer's
# Core) give the same trace as the Python ones (trace/sink.py's PySink, with
# which RecordingObserver records everything in Python)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["service", "fanout"])
def test_recording_same_in_c_and_python(name, tmp_path, monkeypatch):
    import os

    import callscope.trace.recorder as recorder
    from callscope.run import RunOptions, run
    from callscope.trace.reader import TraceReader
    from callscope.trace.sink import CSink, PySink

    if CSink is None:
        pytest.skip("the C extension callscope.trace._sink is not built (no C compiler at install)")
    example(name)  # (skips when it cannot be built)
    wasm = str(build.build(name))
    # no flush by real time: both runs cut their chunks at the same events
    monkeypatch.setitem(recorder.Recorder.__init__.__kwdefaults__, "flush_interval_ns", 10 ** 12)
    got = {}
    for cls in (CSink, PySink):
        monkeypatch.setattr(recorder, "Sink", cls)
        out = tmp_path / f"{name}-{cls.__name__}.trace"
        with open(os.devnull, "w") as devnull:
            r = run(RunOptions(guest=wasm, record=True, output=str(out), argv=["test"], repeat=12, concurrency=4),
                    out=devnull)
        assert r.fault is None, r.fault_message
        with TraceReader(str(out)) as tr:
            got[cls] = (list(tr.events()), tr.strings)
    events, _ = got[CSink]
    assert len(events) > 200
    calls = [e for e in events if e.kind == "import.call"]
    assert calls and any(e.get("taint") for e in calls)  # (the requests' ids are found again)
    assert got[PySink] == got[CSink]

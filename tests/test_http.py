"""wasi:http guests under `callscope run`/`check`: synthetic requests,
the simulated and a real (loopback) upstream, taint over bytes, the
CDN-Loop lint, the compile progress display.

Tests that build the componentize-py examples are marked slow and skip with
the reason when componentize-py or ../shared is missing."""

from __future__ import annotations

import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from callscope.cli import main
from callscope.model.findings import CdnLoopMisrouted, check_all, default_lints
from callscope.run import BadInput, RunOptions, parse_request, plan_requests, precompile, run
from callscope.runtime.observe import TaintIndex, _walk

from test_examples import build, example


# ---------------------------------------------------------------------------
# units (no guest)


def test_parse_request():
    r = parse_request("post /a/b?x=1 X-Thing:v1 accept:text/plain body=hello there")
    assert (r.method, r.path, r.headers, r.body) == ("POST", "/a/b?x=1", [("x-thing", b"v1"), ("accept", b"text/plain")],
                                                     b"hello there")
    for bad in ("GET", "GET nopath", "GET / novalue", "G3T /"):
        with pytest.raises(BadInput):
            parse_request(bad)


def test_plan_requests_ids_labels_tokens():
    exs = plan_requests(["GET /a", "GET /item/x x-request-id:mine-7"], 2)
    assert [e.label for e in exs] == ["req-0001 GET /a", "req-0002 GET /item/x", "req-0003 GET /a",
                                      "req-0004 GET /item/x"]
    h = dict(exs[0].headers)
    assert h["x-request-id"] == b"req-0001" and h["x-callscope-request-id"] == b"req-0001"
    assert h["cdn-loop"] == b"callscope-req-0001"
    # each token, marked to be searched for in its encoded forms too (percent,
    # JSON, base64: callscope.model.tokens; made when the recorder first needs them)
    from callscope.model.tokens import expand_tokens
    assert exs[1].tokens == ("req-0002", "mine-7") and exs[1].tokens.forms  # repeated paths are not planted
    assert "cmVxLTAwMDI" in expand_tokens(exs[1].tokens) and "/item/x" not in expand_tokens(exs[1].tokens)
    one = plan_requests(["GET /unique/path", "GET /other"], 1)
    assert one[0].tokens == ("req-0001", "/unique/path") and "%2Funique%2Fpath" in expand_tokens(one[0].tokens)


def test_taint_found_in_bytes_and_byte_lists():
    strings, shared = [], []
    _walk([("x-request-id", list(b"req-12")), ("other", b"abc req-3 def"), [1, 2, 300]], strings, shared)
    idx = TaintIndex()
    for i in range(1, 20):
        idx.add(f"req-{i}", i)
    assert sorted(idx.find(strings)) == ["req-12", "req-3"]
    assert "req-12" in strings and "abc req-3 def" in strings


def _ev(n, kind, *fields):
    return (n, kind, 0, fields)


def test_cdn_loop_misrouted_lint():
    events = [
        _ev(0, "task.new", 1, 1, "handle", None, 1, "req-1 GET /", False),
        _ev(1, "taint.plant", 1, "req-1"),
        _ev(2, "task.new", 2, 1, "handle", None, 2, "req-2 GET /", False),
        _ev(3, "taint.plant", 2, "req-2"),
        # on task 2's stack, but carrying req-1's id: the copy went wrong
        _ev(4, "import.call", 7, 1, "wasi:http/client@0.3.0#send", [2], [13], ["req-1"], [], None),
        _ev(5, "note", "cdn-loop: copied 'callscope-req-2' of root task 2 onto import call 7"),
        # right: on task 1's stack, carrying req-1's id
        _ev(6, "import.call", 8, 1, "wasi:http/client@0.3.0#send", [1], [14], ["req-1"], [], None),
        _ev(7, "note", "cdn-loop: copied 'callscope-req-1' of root task 1 onto import call 8"),
    ]
    found = CdnLoopMisrouted().check(events)
    assert len(found) == 1
    f = found[0]
    assert f.lint == "cdn-loop-misrouted" and f.n == 5
    assert f.details["copied_from_label"] == "req-2 GET /" and f.details["origin_label"] == "req-1 GET /"
    assert "callscope-req-2" in CdnLoopMisrouted().format(f)
    assert CdnLoopMisrouted().summary(found) == "1 cdn-loop header copied onto another request's outgoing request"
    assert any(isinstance(l, CdnLoopMisrouted) for l in default_lints())
    assert [x.lint for x in check_all(events)].count("cdn-loop-misrouted") == 1


def test_request_options_need_a_guest(capsys):
    assert main(["run", "--request", "GET /"]) == 2
    assert "wasi:http GUEST.wasm" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# real guests


def _wasm(name, tmp_path):
    data = example(name)
    p = tmp_path / f"{name}.wasm"
    p.write_bytes(data)
    return str(p)


def _check(guest, tmp_path, *extra):
    out = tmp_path / "t.trace"
    import contextlib
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["check", guest, "-o", str(out), *extra])
    return rc, buf.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("concurrency,expect", [(4, 1), (2, 1), (1, 0)])
def test_fanout_misattributes_only_under_reuse(tmp_path, concurrency, expect):
    guest = _wasm("fanout", tmp_path)
    rc, text = _check(guest, tmp_path, "--repeat", "20", "--concurrency", str(concurrency))
    assert rc == expect, text
    assert "20/20 calls returned" in text and "responses: 20 x 200" in text
    if expect:
        assert "misattributed outgoing requests:" in text
        assert "wasi:http/client@0.3.0#send: sent for req-" in text
        assert "cdn-loop headers copied onto another request's outgoing request" in text or \
            "cdn-loop header copied" in text
    else:
        assert "attributed to the wrong root task" not in text
        assert "cdn-loop" not in text


def test_fanout_backpressure_variant_is_not_expressible():
    pytest.skip("fanout with backpressure (the issue's 'none with backpressure') cannot be built: "
                "componentize-py 0.25.1 exposes no backpressure.inc/dec (examples/fanout-bp/README.md); "
                "the host-side equivalent, concurrency 1, is tested above")


@pytest.mark.slow
def test_done_when_fanout_20_at_4_names_misattributed_sends(tmp_path):
    guest = _wasm("fanout", tmp_path)
    rc, text = _check(guest, tmp_path, "--repeat", "20", "--concurrency", "4")
    assert rc == 1, text
    assert "guest trap" not in text
    sends = [ln for ln in text.splitlines() if "#send: sent for" in ln]
    assert sends and all("attributed to req-" in ln for ln in sends)
    for ln in sends:  # sent for one request, attributed to another
        sent_for = ln.split("sent for ")[1].split(",")[0]
        attributed = ln.split("attributed to ")[1]
        assert sent_for != attributed


@pytest.mark.slow
def test_service_requests_and_statuses(tmp_path):
    guest = _wasm("service", tmp_path)
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("# a comment\nGET /\nGET /echo/x\n\nPOST /nope body=hi\n")
    rc, text = _check(guest, tmp_path, "--requests", str(reqs), "--request", "GET /sleep", "--concurrency", "2")
    assert rc == 0, text
    assert "responses: 3 x 200" in text and "responses: 1 x 404" in text
    rc, text = _check(guest, tmp_path)  # default: 8 x GET / at concurrency 4
    assert rc == 0 and "8/8 calls returned at concurrency 4" in text and "responses: 8 x 200" in text


@pytest.mark.slow
def test_simulated_upstream_options(tmp_path):
    guest = _wasm("fanout", tmp_path)
    opts = RunOptions(guest=guest, output=str(tmp_path / "u.trace"), requests=["GET /x"], repeat=2, concurrency=1,
                      upstream_delay_ns=7_000_000, upstream_body="fixed\n", record=True)
    r = run(opts, out=io.StringIO())
    assert r.fault is None
    assert [ex.response_body for ex in r.exchanges] == [b"fixed\nfixed\n"] * 2
    assert r.sim_time_ns >= 2 * 2 * 7_000_000  # two sequential fetches per request, one request at a time


class _Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []

    def log_message(self, *a):
        pass

    def _any(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        self.seen.append((self.command, self.path, self.headers.get("x-request-id"), self.headers.get("cdn-loop"), body))
        out = f"real {self.command} {self.path} id={self.headers.get('x-request-id')}\n".encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = _any


@pytest.fixture
def origin():
    _Origin.seen = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", _Origin.seen
    srv.shutdown()
    srv.server_close()


@pytest.mark.slow
def test_real_upstream_on_loopback(tmp_path, origin):
    url, seen = origin
    guest = _wasm("fanout", tmp_path)
    opts = RunOptions(guest=guest, output=str(tmp_path / "real.trace"), requests=["GET /r"], repeat=4,
                      concurrency=2, upstream=url, timeout=60)
    r = run(opts, out=io.StringIO())
    assert r.fault is None, r.fault_message
    assert all(ex.status == 200 for ex in r.exchanges)
    assert r.exchanges[0].response_body == b"real GET /part/0/r id=req-0001\nreal GET /part/1/r id=req-0001\n"
    gets = [s for s in seen if s[0] == "GET"]
    posts = [s for s in seen if s[0] == "POST"]
    assert len(gets) == 8 and len(posts) == 4
    assert sorted(p[4] for p in posts) == sorted(f"served /r for req-{i:04d}".encode() for i in range(1, 5))
    # the host copied a cdn-loop header onto every outgoing request (by the stack)
    assert all(s[3] and s[3].startswith("callscope-req-") for s in seen)


@pytest.mark.slow
def test_real_upstream_refused_is_an_error_code(tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    guest = _wasm("fanout", tmp_path)
    r = run(RunOptions(guest=guest, output=str(tmp_path / "x.trace"), requests=["GET /"],
                       upstream=f"http://127.0.0.1:{port}", timeout=60), out=io.StringIO())
    # client.send answers error-code.connection-refused; the guest's handle passes it on
    assert r.fault is None and r.calls_done == 1
    assert r.exchanges[0].error == {"connection-refused": None}


@pytest.mark.slow
def test_progress_display_and_second_start_from_cache(tmp_path, monkeypatch):
    from callscope.host import Host
    data = example("fanout")
    monkeypatch.setenv("CALLSCOPE_MODULE_CACHE", str(tmp_path / "modules"))
    from callscope.component import binary
    from callscope.run import _core_modules, core_modules_mb
    mods = _core_modules(binary.decode(data), [])
    # the size comes from this build (componentize-py builds are not
    # byte-identical: 21 MB one time, 22 MB another)
    size = core_modules_mb(mods)
    assert re.fullmatch(r"\d+ MB", size) and 10 <= int(size.split()[0]) <= 40
    err = io.StringIO()
    h = Host()
    try:
        assert precompile(h, data, err, tty=True) > 0
    finally:
        h.close()
    text = err.getvalue()
    n = len(mods)
    assert f"\rcallscope: compiling {n} core modules ({size})… 3/{n}" in text
    assert re.search(rf"\r[^\r]* {n}/{n} in \d+\.\d s \(cached for next time\)\n$", text)
    # the second start compiles nothing: every large module is deserialized
    # from the cache (counted, not timed: timings belong in bench/)
    import wasmtime
    compiled = []
    real_module = wasmtime.Module

    class CountingModule(real_module):
        def __init__(self, engine, wasm, *a, **k):
            if len(wasm) >= 64 * 1024:
                compiled.append(len(wasm))
            super().__init__(engine, wasm, *a, **k)

    err2 = io.StringIO()
    h = Host()
    try:
        assert precompile(h, data, err2, tty=True) == 0 and err2.getvalue() == ""
        monkeypatch.setattr(wasmtime, "Module", CountingModule)
        from callscope.wasi import Wasi
        w = Wasi(h.store, stdout=io.BytesIO(), stderr=io.BytesIO())
        h.instantiate(data, {}, resolver=w.resolver)
    finally:
        h.close()
    assert compiled == []

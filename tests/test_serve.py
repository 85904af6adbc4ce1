"""`callscope serve`: real HTTP on loopback into the service example, in a
subprocess; SIGINT ends it with status 0 and a complete trace."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from test_examples import example


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.slow
def test_serve_records_until_sigint(tmp_path):
    guest = tmp_path / "service.wasm"
    guest.write_bytes(example("service"))
    trace = tmp_path / "serve.trace"
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "callscope", "serve", str(guest), "--port", str(port),
                             "-o", str(trace)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(base + "/", timeout=30) as r:
            assert (r.status, r.read()) == (200, b"hello from callscope\n")
        with urllib.request.urlopen(base + "/echo/x", timeout=30) as r:
            assert r.read() == b"path=/echo/x id=req-000002\n"  # the host's request id, as x-request-id
        req = urllib.request.Request(base + "/echo/y", headers={"x-request-id": "client-7"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.read() == b"path=/echo/y id=client-7\n"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + "/missing", timeout=30)
        assert e.value.code == 404
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "served 4/4 requests" in out
    s = subprocess.run([sys.executable, "-m", "callscope", "summary", str(trace)], capture_output=True, text=True,
                       timeout=60)
    assert s.returncode == 0, s.stderr
    assert "truncated" not in (s.stdout + s.stderr).lower()
    assert "tasks: 4 (4 root)" in s.stdout
    from callscope.trace.reader import TraceReader
    r = TraceReader(str(trace))
    try:
        assert not r.truncated and r.footer is not None
        labels = [ev.get("label") for ev in r.events() if ev[1] == "task.new"]
    finally:
        r.close()
    assert labels == ["req-000001 GET /", "req-000002 GET /echo/x", "req-000003 GET /echo/y",
                      "req-000004 GET /missing"]


@pytest.mark.slow
def test_serve_interrupted_before_serving_closes_the_trace(tmp_path, monkeypatch, capsys):
    """A SIGINT while the HTTP server starts (after instantiation, before
    "serving ... on" is printed): the run ends as an interrupted serve does
    (status 0, served 0/0), the trace is closed with its footer, and no
    .partial file is left behind (it was: the signal raised
    KeyboardInterrupt there, past the set-up's cleanup)."""
    import callscope.serve as S
    from callscope.cli import main
    from callscope.trace.reader import TraceReader

    guest = tmp_path / "service.wasm"
    guest.write_bytes(example("service"))
    trace = tmp_path / "serve.trace"
    real = S.H11Server

    class Interrupted(real):
        def start(self):
            signal.raise_signal(signal.SIGINT)  # (Ctrl-C, just before serving)
            return super().start()

    monkeypatch.setattr(S, "H11Server", Interrupted)
    status = main(["serve", str(guest), "--port", str(_free_port()), "-o", str(trace)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "served 0/0 requests" in out
    assert not (tmp_path / "serve.trace.partial").exists()
    r = TraceReader(str(trace))
    try:
        assert not r.truncated and r.footer is not None
        kinds = [ev[1] for ev in r.events()]
    finally:
        r.close()
    assert "instance.new" in kinds and "task.new" not in kinds


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, ConnectionError, OSError):
        return None  # (refused: the server has stopped accepting)


@pytest.mark.slow
def test_serve_max_events_stops_serving_with_a_complete_trace(tmp_path):
    """At --max-events the recording stops with its note, the server stops
    accepting (later requests get 503 or are refused), exit 3, and the trace
    is complete and readable."""
    guest = tmp_path / "service.wasm"
    guest.write_bytes(example("service"))
    trace = tmp_path / "serve.trace"
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "callscope", "serve", str(guest), "--port", str(port),
                             "-o", str(trace), "--max-events", "200"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        statuses = []
        for _ in range(400):  # (each request records some dozens of events)
            statuses.append(_get(f"http://127.0.0.1:{port}/echo/x"))
            if statuses[-1] != 200:
                break
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3, (out, err)
    assert "Traceback" not in err
    assert "guest limit: the trace reached --max-events 200" in out
    assert statuses[0] == 200 and statuses[-1] in (503, None), statuses
    assert set(statuses) <= {200, 503, None}
    from callscope.trace.reader import TraceReader
    with TraceReader(str(trace)) as r:
        assert not r.truncated and r.footer is not None
        notes = [ev.get("text") for ev in r.events() if ev.kind == "note"]
        assert r.event_count <= 200 + 16384  # (checked per chunk)
    assert any(n.startswith("limit: recording stopped: the trace reached --max-events 200") for n in notes), notes
    s = subprocess.run([sys.executable, "-m", "callscope", "summary", str(trace)], capture_output=True, text=True,
                       timeout=60)
    assert s.returncode == 0 and "truncated" not in (s.stdout + s.stderr).lower(), s.stderr


@pytest.mark.parametrize("argv", [["--max-memory", "12Q"], ["--max-trace-size", "-1"], ["--max-events", "x"]])
def test_serve_bad_limits_are_usage_errors(tmp_path, argv):
    r = subprocess.run([sys.executable, "-m", "callscope", "serve", "g.wasm", "--port", "0", *argv],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and argv[0] in r.stderr, r.stderr

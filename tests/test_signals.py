"""Signals (issue 13): SIGINT/SIGTERM stop a guest even while it spins in
wasm, the trace is closed with its footer, exit 130/143; the 100 ms flush
rule holds while wasm runs (a flush timer), so SIGKILL loses at most that."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import wasmtime

from callscope.trace import TraceReader

HERE = Path(__file__).resolve().parent


@pytest.fixture()
def faults(tmp_path):
    wasm = tmp_path / "faults.wasm"
    wasm.write_bytes(wasmtime.wat2wasm((HERE / "guests" / "faults.wat").read_text()))
    return wasm


def spin(faults, out):
    return subprocess.Popen([sys.executable, "-m", "callscope", "run", str(faults), "--invoke", "spin()",
                             "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_events(path: Path, timeout: float = 60.0) -> int:
    """Until the (partial) trace at ``path`` holds the spinning call's
    task.new: the flush timer wrote it while the guest spins."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            try:
                with TraceReader(path) as r:
                    if any(ev.kind == "task.start" for ev in r.events()):
                        return r.event_count
            except Exception:
                pass
        time.sleep(0.1)
    return 0


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_a_guest_spinning_in_wasm(faults, tmp_path, sig, code):
    out = tmp_path / "t.trace"
    proc = spin(faults, out)
    try:
        assert wait_for_events(Path(str(out) + ".partial")) > 0, "nothing flushed while the guest spins"
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, (stdout, stderr)
    assert "Traceback" not in stderr
    with TraceReader(out) as r:  # renamed into place, complete
        assert not r.truncated and r.footer is not None
        notes = [ev.get("text") for ev in r.events() if ev.kind == "note"]
    assert any(n.startswith("interrupted: stopped by " + sig.name) for n in notes), notes


def test_sigkill_while_spinning_keeps_what_came_before(faults, tmp_path):
    out = tmp_path / "t.trace"
    proc = spin(faults, out)
    try:
        n = wait_for_events(Path(str(out) + ".partial"))
    finally:
        proc.kill()
        proc.wait()
    assert n > 0
    with TraceReader(str(out) + ".partial") as r:
        assert r.truncated and any(ev.kind == "task.new" for ev in r.events())


def test_ctrl_c_while_the_parser_is_built_is_one_line(monkeypatch, capsys):
    """A Ctrl-C while `callscope` imports its subcommands' modules (building
    the parser, the first ~0.1 s of every command) ends with the one-line
    "interrupted" and status 130, not a traceback."""
    import callscope.cli as cli

    def interrupted(add):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_resolve", interrupted)
    try:
        status = cli.main(["summary", "x.trace"])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped callscope.cli.main (a traceback for the user)")
    assert status == 130
    assert capsys.readouterr().err == "callscope: interrupted\n"

"""callscope run / check end to end: the demo's findings, exit statuses,
faults reported with the trace kept, bad input, determinism, SIGKILL."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import wasmtime

from callscope.cli import main
from callscope.model.summary import summarize_trace
from callscope.trace.reader import TraceReader

HERE = Path(__file__).resolve().parent


def _summary(path):
    r = TraceReader(str(path))
    try:
        return summarize_trace(r)
    finally:
        r.close()


def _events(path):
    r = TraceReader(str(path))
    try:
        return [(e[1], e[3]) for e in r.events()]
    finally:
        r.close()


@pytest.fixture()
def faults(tmp_path):
    wasm = tmp_path / "faults.wasm"
    wasm.write_bytes(wasmtime.wat2wasm((HERE / "guests" / "faults.wat").read_text()))
    return wasm


def test_run_without_arguments_runs_the_demo(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "misattributed" in out
    trace = tmp_path / "demo-event-loop.trace"
    assert trace.exists() and str(trace.name) in out
    s = _summary(trace)
    assert s.findings_by_lint["misattributed"] >= 1
    assert s.root_tasks == 8 and s.imports == 8


def test_check_exit_status_per_demo(tmp_path, capsys):
    assert main(["check", "-o", str(tmp_path / "a.trace")]) == 1
    assert main(["check", "--demo", "backpressure", "-o", str(tmp_path / "b.trace")]) == 0
    assert main(["check", "--demo", "well-behaved", "-o", str(tmp_path / "c.trace")]) == 0
    # at concurrency 1 the event-loop guest has no other request to confuse
    assert main(["check", "--concurrency", "1", "-o", str(tmp_path / "d.trace")]) == 0
    assert _summary(tmp_path / "b.trace").findings_by_lint["misattributed"] == 0


def test_misattribution_names_both_requests(tmp_path, capsys):
    main(["run", "-o", str(tmp_path / "t.trace"), "--repeat", "2", "--concurrency", "2"])
    s = _summary(tmp_path / "t.trace")
    mis = [f for f in s.findings if f.lint == "misattributed"]
    assert mis
    text = capsys.readouterr().out
    assert '"req-0001"' in text and '"req-0002"' in text


def test_same_seed_same_trace(tmp_path, capsys):
    for name in ("a", "b"):
        assert main(["run", "--seed", "3", "--schedule", "random", "-o", str(tmp_path / f"{name}.trace")]) == 0
    assert _events(tmp_path / "a.trace") == _events(tmp_path / "b.trace")


def test_import_spec_overrides_the_upstream(tmp_path, capsys):
    assert main(["run", "--demo", "well-behaved", "--repeat", "2", "-o", str(tmp_path / "t.trace"),
                 "--import", 'callscope-demo:app/upstream#fetch=delay:3ms,result:"fixed"']) == 0
    rets = [f for k, f in _events(tmp_path / "t.trace") if k == "import.return"]
    assert rets and all("fixed" in str(f) for f in rets)


def test_trap_is_a_guest_fault_and_the_trace_stays(faults, tmp_path, capsys):
    trace = tmp_path / "t.trace"
    assert main(["run", str(faults), "--invoke", "trap()", "-o", str(trace)]) == 3
    out = capsys.readouterr().out
    assert "guest trap: wasm trap: wasm `unreachable` instruction executed" in out
    assert _summary(trace).traps == 1
    traps = [f for k, f in _events(trace) if k == "trap"]
    tasks = [f for k, f in _events(trace) if k == "task.new"]
    assert traps[0][0] == tasks[0][0]  # the trap names the task it happened in


def test_deadlock_is_reported(faults, tmp_path, capsys):
    trace = tmp_path / "t.trace"
    assert main(["check", str(faults), "--invoke", "stuck()", "-o", str(trace)]) == 3
    assert "guest deadlock" in capsys.readouterr().out
    assert _summary(trace).deadlocks == 1


def test_guest_stuck_in_wasm_times_out(faults, tmp_path, capsys):
    trace = tmp_path / "t.trace"
    assert main(["run", str(faults), "--invoke", "spin()", "--timeout", "0.5", "-o", str(trace)]) == 3
    assert "guest timeout" in capsys.readouterr().out
    assert _summary(trace).events > 0


def test_sync_export_with_wave_arguments(faults, tmp_path, capsys):
    trace = tmp_path / "t.trace"
    assert main(["run", str(faults), "--invoke", "add(2, 40)", "--repeat", "3", "-o", str(trace)]) == 0
    rets = [f for k, f in _events(trace) if k == "task.return"]
    assert len(rets) == 3 and all("42" in str(f) for f in rets)


@pytest.mark.parametrize("argv,needle", [
    (["run", "/nonexistent/guest.wasm"], "no such file"),
    (["run", "--demo", "nope"], "unknown demo"),
    (["run", "--invoke", "nope()"], "exports no function `nope`"),
    (["run", "--invoke", "handle(1)"], "expected ','"),
    (["run", "--concurrency", "0"], "at least 1"),
    (["run", "--import", "x=1"], "expected delay"),
    (["run", "--import", "no:such/iface#f=delay:1ms"], "has no such import"),
])
def test_bad_input_is_one_line_exit_2(argv, needle, tmp_path, capsys):
    assert main(argv + ["-o", str(tmp_path / "t.trace")]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "t.trace").exists()


def test_not_a_component(tmp_path, capsys):
    core = tmp_path / "core.wasm"
    core.write_bytes(wasmtime.wat2wasm("(module)"))
    assert main(["run", str(core), "-o", str(tmp_path / "t.trace")]) == 2
    assert "not a component" in capsys.readouterr().err


def test_sigkill_half_way_leaves_a_readable_trace(tmp_path):
    trace = tmp_path / "big.trace"
    proc = subprocess.Popen([sys.executable, "-m", "callscope", "run", "--repeat", "100000", "-o", str(trace)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if trace.exists() and trace.stat().st_size > 200_000:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the run wrote no trace within 60 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    r = TraceReader(str(trace))
    try:
        assert r.truncated
        n = sum(1 for _ in r.events())
    finally:
        r.close()
    assert n > 1000
    out = subprocess.run([sys.executable, "-m", "callscope", "summary", str(trace)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "events:" in out.stdout


def test_import_module_resolving_from_a_real_thread(tmp_path, capsys):
    """An async host import written in Python may complete later from
    another thread (real I/O); the event loop waits for it."""
    mod = tmp_path / "imports.py"
    mod.write_text(
        "import threading, time\n"
        "def fetch(call, args):\n"
        "    pending = call.resolve_elsewhere()\n"
        "    def work():\n"
        "        time.sleep(0.01)\n"
        "        call.resolve_threadsafe(['real body of ' + args[0]])\n"
        "    threading.Thread(target=work).start()\n"
        "    return pending\n")
    trace = tmp_path / "t.trace"
    assert main(["run", "--demo", "well-behaved", "--repeat", "3", "--concurrency", "2",
                 "--import-module", str(mod), "-o", str(trace)]) == 0
    rets = [f for k, f in _events(trace) if k == "task.return"]
    assert len(rets) == 3 and all("real body of" in str(f) for f in rets)


def test_trace_is_written_while_the_loop_waits_for_real_io(tmp_path, capsys):
    """When the event loop goes idle waiting for real I/O, what the recorder
    holds is on disk: a kill then loses nothing recorded before the wait."""
    trace = tmp_path / "t.trace"
    seen = tmp_path / "seen.txt"
    mod = tmp_path / "imports.py"
    mod.write_text(
        "import threading, time\n"
        "from callscope.trace.reader import TraceReader\n"
        "def fetch(call, args):\n"
        "    pending = call.resolve_elsewhere()\n"
        "    def work():\n"
        "        time.sleep(0.05)  # (the loop is waiting for us by now)\n"
        f"        with TraceReader({str(trace)!r}) as r:\n"
        "            n = sum(1 for e in r if e.kind == 'import.call')\n"
        f"        with open({str(seen)!r}, 'a') as out:\n"
        "            out.write(str(n) + '\\n')\n"
        "        call.resolve_threadsafe(['body'])\n"
        "    threading.Thread(target=work).start()\n"
        "    return pending\n")
    assert main(["run", "--demo", "well-behaved", "--repeat", "2", "--concurrency", "1",
                 "--import-module", str(mod), "-o", str(trace)]) == 0
    # each fetch found its own import.call already in the file
    assert seen.read_text().split() == ["1", "2"]


def test_calls_held_back_by_backpressure_are_admitted_in_order(tmp_path, capsys):
    """A call arriving while others wait for backpressure queues behind them:
    none barges in when backpressure happens to be off at that moment."""
    trace = tmp_path / "t.trace"
    assert main(["check", "--demo", "backpressure", "--repeat", "12", "--concurrency", "4",
                 "-o", str(trace)]) == 0
    admitted = [f[0] for k, f in _events(trace) if k == "call.admitted"]
    assert len(admitted) == 11 and admitted == sorted(admitted)


def test_calls_that_returned_before_a_trap_are_counted(faults, tmp_path, capsys):
    trace = tmp_path / "t.trace"
    argv = ["run", str(faults), "--invoke", "add(1, 2)", "--invoke", "add(3, 4)", "--invoke", "trap()",
            "-o", str(trace)]
    assert main(argv) == 3
    assert "2/3 calls returned" in capsys.readouterr().out


def test_a_finished_run_leaves_nothing_alive(monkeypatch):
    """After a run, its store, instances, observer and recorder can be
    collected: neither the fiber registry of host functions nor the ABI's
    per-type caches (keyed by types, whose resources hold their destructors)
    keep them for the life of the process."""
    import gc
    import os
    import weakref

    import callscope.trace.recorder as recorder
    from callscope.run import RunOptions, run

    made = []
    orig = recorder.Recorder.__init__

    def init(self, *args, **kwargs):
        orig(self, *args, **kwargs)
        made.append(weakref.ref(self))
    monkeypatch.setattr(recorder.Recorder, "__init__", init)
    with open(os.devnull, "w") as devnull:
        r = run(RunOptions(demo="event-loop", record=True, output=os.devnull, argv=["test"], repeat=4,
                           concurrency=2), out=devnull)
    assert r.fault is None and len(made) == 1
    gc.collect()
    assert made[0]() is None

"""No file the user had is lost (issue 13): outputs are written beside the
file they replace and renamed into place on success (callscope/outfile.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from callscope.cli import main
from callscope.outfile import OutputError, check_output, partial_path, write_replacing
from callscope.trace import TraceReader

OLD = b"the user's precious file\n"


def test_bad_input_after_the_trace_was_opened_keeps_the_old_file(tmp_path, capsys):
    out = tmp_path / "t.trace"
    out.write_bytes(OLD)
    junk = tmp_path / "notwasm.wasm"
    junk.write_bytes(b"\x00asm\x01\x00\x00\x00garbage")
    assert main(["run", str(junk), "-o", str(out)]) == 2
    assert main(["run", "--invoke", "handle(1)", "-o", str(out)]) == 2  # a malformed WAVE argument
    assert main(["run", "--invoke", "nope()", "-o", str(out)]) == 2
    capsys.readouterr()
    assert out.read_bytes() == OLD
    assert not Path(partial_path(out)).exists()


def test_success_replaces_the_file_a_hard_link_keeps_the_old(tmp_path, capsys):
    out = tmp_path / "t.trace"
    out.write_bytes(OLD)
    os.chmod(out, 0o640)
    link = tmp_path / "old.trace"
    os.link(out, link)
    assert main(["run", "--demo", "well-behaved", "-o", str(out)]) == 0
    capsys.readouterr()
    assert link.read_bytes() == OLD
    with TraceReader(out) as r:
        assert r.event_count > 0 and not r.truncated
    assert (out.stat().st_mode & 0o777) == 0o640
    assert not Path(partial_path(out)).exists()


def test_output_naming_the_guest_is_refused(tmp_path, capsys):
    from callscope.demo import demo_component

    guest = tmp_path / "g.wasm"
    guest.write_bytes(demo_component("well-behaved"))
    before = guest.read_bytes()
    assert main(["run", str(guest), "-o", str(guest)]) == 2
    err = capsys.readouterr().err
    assert "refusing" in err and len(err.strip().splitlines()) == 1
    assert guest.read_bytes() == before
    alias = tmp_path / "alias.wasm"
    alias.symlink_to(guest)
    assert main(["run", str(guest), "-o", str(alias)]) == 2
    assert guest.read_bytes() == before


def test_an_empty_placeholder_is_replaced_its_mode_kept(tmp_path, capsys):
    # (mktemp's file: removed before the rename puts the trace there; a
    # symlink to one keeps the link)
    out = tmp_path / "t.trace"
    out.write_bytes(b"")
    os.chmod(out, 0o600)
    link = tmp_path / "link.trace"
    link.symlink_to(out)
    for path in (out, link):
        out.write_bytes(b"")
        assert main(["run", "--demo", "well-behaved", "-o", str(path)]) == 0
        capsys.readouterr()
        with TraceReader(out) as r:
            assert r.event_count > 0 and not r.truncated
        assert (out.stat().st_mode & 0o777) == 0o600
        assert link.is_symlink() and not Path(partial_path(out)).exists()


def test_symlinked_output_replaces_its_target_and_keeps_the_link(tmp_path, capsys):
    target = tmp_path / "real.trace"
    target.write_bytes(OLD)
    link = tmp_path / "link.trace"
    link.symlink_to(target)
    assert main(["run", "--demo", "well-behaved", "-o", str(link)]) == 0
    capsys.readouterr()
    assert link.is_symlink() and os.readlink(link) == str(target)
    with TraceReader(target) as r:
        assert r.event_count > 0
    # a dangling link: the trace is created where it points
    dangling = tmp_path / "dangling.trace"
    dangling.symlink_to(tmp_path / "new.trace")
    assert main(["run", "--demo", "well-behaved", "-o", str(dangling)]) == 0
    capsys.readouterr()
    assert dangling.is_symlink() and (tmp_path / "new.trace").exists()


def test_read_only_output_and_left_partials_are_kept(tmp_path, capsys):
    out = tmp_path / "ro.trace"
    out.write_bytes(OLD)
    os.chmod(out, 0o444)
    if os.access(out, os.W_OK):
        pytest.skip("running as a user who may write read-only files")
    assert main(["run", "--demo", "well-behaved", "-o", str(out)]) == 2
    assert out.read_bytes() == OLD


def test_a_killed_runs_partial_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "t.trace"
    part = Path(partial_path(out))
    part.write_bytes(b"a killed run's trace")
    assert main(["run", "--demo", "well-behaved", "-o", str(out)]) == 2
    assert "t.trace.partial exists" in capsys.readouterr().err
    assert part.read_bytes() == b"a killed run's trace" and not out.exists()


def test_write_replacing(tmp_path):
    p = tmp_path / "x.dot"
    p.write_bytes(OLD)
    write_replacing(p, b"new")
    assert p.read_bytes() == b"new"
    with pytest.raises(OutputError, match="is the input"):
        write_replacing(p, b"newer", [p])
    with pytest.raises(OutputError, match="is a directory"):
        check_output(tmp_path)


def test_export_refuses_its_trace_and_keeps_out_on_failure(tmp_path, capsys):
    trace = tmp_path / "t.trace"
    assert main(["run", "--demo", "well-behaved", "-o", str(trace)]) == 0
    before = trace.read_bytes()
    assert main(["export", str(trace), "-o", str(trace)]) == 2
    assert trace.read_bytes() == before
    out = tmp_path / "g.dot"
    out.write_bytes(OLD)
    bad = tmp_path / "bad.trace"
    bad.write_bytes(before[:-40] + b"\x00" * 40)  # no footer; then a damaged chunk
    data = bytearray(before)
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    capsys.readouterr()
    code = main(["export", str(bad), "-o", str(out)])
    if code != 0:
        assert out.read_bytes() == OLD
    assert main(["export", str(trace), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"digraph")


def test_serve_with_its_port_taken_does_not_touch_the_trace(tmp_path):
    from callscope.demo import demo_component

    guest = tmp_path / "g.wasm"
    guest.write_bytes(demo_component("well-behaved"))
    out = tmp_path / "t.trace"
    out.write_bytes(OLD)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        r = subprocess.run([sys.executable, "-m", "callscope", "serve", str(guest), "--port", str(port),
                            "-o", str(out)], capture_output=True, text=True, timeout=60)
    finally:
        s.close()
    assert r.returncode == 2 and "cannot listen" in r.stderr and "Traceback" not in r.stderr
    assert out.read_bytes() == OLD and not Path(partial_path(out)).exists()


def test_summary_json_written_a_finding_at_a_time_is_json_dumps_of_the_whole(tmp_path):
    """write_summary_json gives json.dumps(summary_json(...)) exactly, with
    and without findings, a truncated trace and a run record, and a path
    that holds JSON's own punctuation."""
    import io
    import json as _json
    import types

    from callscope.model.findings import Finding
    from callscope.trace.commands import summary_json, write_summary_json
    f1 = Finding("misattributed", "warning", 3, 10, 'm "1"', {"call": 1, "evidence": [{"by": "taint"}]})
    f2 = Finding("backpressure", "warning", 7, 20, "m\u00e9", {})
    for findings in ([], [f1], [f1, f2]):
        for truncated in (None, "2 chunks"):
            for run in (None, {"fault": None, "pending": []}):
                s = types.SimpleNamespace(coverage={"imports": 2, "by": {"taint": 1}}, findings=findings,
                                          truncated=truncated)
                buf = io.StringIO()
                write_summary_json(buf, s, 'x"findings": [].trace', run)
                assert buf.getvalue() == _json.dumps(summary_json(s, 'x"findings": [].trace', run),
                                                     ensure_ascii=True) + "\n"

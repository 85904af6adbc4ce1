"""What a newcomer meets first (issue 11): `callscope demo --write`, component
text as a guest, the same defaults for every driver and stated in --help,
the compile progress line, `callscope wast` skipping what the spec marks not
yet implemented (and --strict), `examples/build.py --path`."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

import pytest

from callscope.cli import build_parser, main
from callscope.demo import demo_component, demo_wat

PY = sys.executable
ROOT = Path(__file__).resolve().parents[1]


def callscope(*args, cwd=None):
    return subprocess.run([PY, "-m", "callscope", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def one_line_error(r, fragment):
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("callscope: error: "), r.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in r.stderr


# --------------------------------------------------------------------------
# callscope demo


def test_demo_writes_binary_and_text(tmp_path, capsys):
    wasm, wat = tmp_path / "guest.wasm", tmp_path / "demo.wat"
    assert main(["demo", "--write", str(wasm)]) == 0
    assert wasm.read_bytes() == demo_component("event-loop")
    assert main(["demo", "--mode", "backpressure", "--write", str(wat)]) == 0
    assert wat.read_text() == demo_wat("backpressure")
    assert main(["demo", "--write", str(wasm)]) == 0  # the same bytes again: fine
    assert main(["demo", "--mode", "well-behaved"]) == 0
    assert capsys.readouterr().out == demo_wat("well-behaved")


def test_demo_never_replaces_other_contents(tmp_path):
    mine = tmp_path / "guest.wasm"
    mine.write_bytes(b"my own work")
    one_line_error(callscope("demo", "--write", str(mine)), "exists with other contents; give --force")
    assert mine.read_bytes() == b"my own work"
    assert callscope("demo", "--write", str(mine), "--force").returncode == 0
    assert mine.read_bytes() == demo_component("event-loop")
    one_line_error(callscope("demo", "--write", str(tmp_path)), "is a directory")


# --------------------------------------------------------------------------
# component text as a guest


def test_run_and_check_accept_component_text(tmp_path, capsys):
    wat = tmp_path / "demo.wat"
    wat.write_text(demo_wat("event-loop"))
    wast = tmp_path / "demo.wast"  # a .wast holding one component, as wasmtime takes it
    wast.write_text(demo_wat("well-behaved"))
    call = 'handle({i}, "https://a.test/req-{i}")'
    assert main(["check", str(wat), "--invoke", call, "--repeat", "4", "-o", str(tmp_path / "a.trace")]) == 1
    assert main(["check", str(wast), "--invoke", call, "--repeat", "4", "-o", str(tmp_path / "b.trace")]) == 0
    out = capsys.readouterr().out
    assert "4/4 calls returned at concurrency 4" in out


@pytest.mark.parametrize("text,fragment", [
    ("(component\n  (core module $m)\n  (bogus)\n)\n",
     "bad.wat: not a component: the text does not parse: expected valid component field at line 3, column 4"),
    ("(component (core func $f (canon thread.yield cancellable)))",
     "bad.wat: not a component: the text does not parse: "),
    ("hello, not wasm\n", "bad.wat: not a component: neither a binary (\\0asm) nor component text"),
])
@pytest.mark.parametrize("cmd", ["run", "check"])
def test_bad_component_text_is_one_line_exit_2(tmp_path, text, fragment, cmd):
    bad = tmp_path / "bad.wat"
    bad.write_text(text)
    one_line_error(callscope(cmd, str(bad), "-o", str(tmp_path / "x.trace")), fragment)
    assert not (tmp_path / "x.trace").exists()


def test_serve_bad_component_text_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.wat"
    bad.write_bytes(b"\xff\xfe(component")
    one_line_error(callscope("serve", str(bad), "--port", "0", "-o", str(tmp_path / "x.trace")),
                   "bad.wat: not a component: neither a binary (\\0asm) nor UTF-8 text")
    assert not (tmp_path / "x.trace").exists()


def test_serve_takes_component_text_as_far_as_its_handler(tmp_path):
    wat = tmp_path / "demo.wat"  # component text, read and instantiated; no wasi:http handler
    wat.write_text(demo_wat("event-loop"))
    one_line_error(callscope("serve", str(wat), "--port", "0", "-o", str(tmp_path / "x.trace")),
                   "demo.wat: the guest exports no wasi:http/handler@0.3 interface")


# --------------------------------------------------------------------------
# the same defaults for every driver, stated in --help


def test_invoke_keeps_the_default_concurrency_and_runs_its_list_once(tmp_path, capsys):
    # the demo with the user's --invoke: the list once (no hidden x8), at concurrency 4
    assert main(["run", "--invoke", 'handle({i}, "https://a.test/req-{i}")', "--invoke",
                 'handle({i}, "https://b.test/req-{i}")', "-o", str(tmp_path / "t.trace")]) == 0
    assert "2/2 calls returned at concurrency 4" in capsys.readouterr().out
    assert main(["run", "--repeat", "3", "-o", str(tmp_path / "t.trace")]) == 0  # 3 x the demo's call
    assert "3/3 calls returned at concurrency 4" in capsys.readouterr().out
    assert main(["run", "-o", str(tmp_path / "t.trace")]) == 0  # the default list: 8 x
    assert "8/8 calls returned at concurrency 4" in capsys.readouterr().out


@pytest.mark.slow
def test_one_request_keeps_the_default_concurrency(tmp_path, capsys):
    from test_examples import example
    guest = tmp_path / "service.wasm"
    guest.write_bytes(example("service"))
    trace = str(tmp_path / "s.trace")
    assert main(["run", str(guest), "--request", "GET /sleep", "-o", trace]) == 0
    assert "1/1 calls returned at concurrency 4" in capsys.readouterr().out
    assert main(["run", str(guest), "--request", "GET /sleep", "--repeat", "3", "-o", trace]) == 0
    out = capsys.readouterr().out  # --repeat: the request list 3 times, as for --invoke
    assert "3/3 calls returned at concurrency 4" in out and "responses: 3 x 200" in out


def _options(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from ((f"{name} {opt}", a) for opt, a in _options(sub))
        elif action.option_strings and not isinstance(action, (argparse._HelpAction,
                                                               argparse._VersionAction)):
            yield "/".join(action.option_strings), action


def test_every_option_help_states_its_default():
    missing = [name for name, a in _options(build_parser())
               if "default" not in (a.help or "") and not isinstance(a, argparse._StoreTrueAction)]
    assert not missing, f"options whose --help does not state the default: {missing}"
    flags = [name for name, a in _options(build_parser()) if isinstance(a, argparse._StoreTrueAction)]
    # a flag's default is "off"; saying what happens without it is still asked of the new ones
    for name in ("wast --strict", "demo --force", "run --allow-unknown-imports"):
        a = dict(_options(build_parser()))[name]
        assert "default" in a.help, name
    assert flags


# --------------------------------------------------------------------------
# the compile progress line


@pytest.fixture
def fresh_module_cache(tmp_path, monkeypatch):
    from callscope.component import linker
    monkeypatch.setenv("CALLSCOPE_MODULE_CACHE", str(tmp_path / "modules"))
    monkeypatch.setattr(linker, "_CACHE_MIN_BYTES", 16)  # the demo's modules count as large
    return tmp_path / "modules"


@pytest.mark.parametrize("tty", [True, False])
def test_progress_line_on_a_tty_and_one_line_otherwise(fresh_module_cache, tty):
    from callscope.host import Host
    from callscope.run import precompile

    class Err(io.StringIO):
        def isatty(self):
            return tty

    err = Err()
    h = Host()
    try:
        n = precompile(h, demo_component("well-behaved"), err)
    finally:
        h.close()
    text = err.getvalue()
    assert n > 0
    assert text.endswith("(cached for next time)\n") and text.count("\n") == 1
    if tty:
        assert text.startswith("\rcallscope: compiling ") and text.count("\r") > 1
    else:
        assert "\r" not in text
        assert text.startswith("callscope: compiling ") and "for the first run of this guest… done in " in text


def test_run_says_it_is_compiling_when_stderr_is_not_a_terminal(fresh_module_cache, tmp_path):
    (tmp_path / "g.wasm").write_bytes(demo_component("well-behaved"))
    env = {"CALLSCOPE_MODULE_CACHE": str(fresh_module_cache), "PATH": "/usr/bin:/bin"}
    # (the subprocess's cache threshold is the real one: the demo's modules are small)
    r = subprocess.run([PY, "-c", "import sys; from callscope.component import linker; "
                        "linker._CACHE_MIN_BYTES = 16; from callscope.cli import main; "
                        "sys.exit(main(sys.argv[1:]))", "run", "g.wasm", "--invoke",
                        'handle({i}, "https://a.test/req-{i}")'], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("callscope: compiling "), r.stderr
    r = subprocess.run(r.args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == ""  # cached now: nothing to say


# --------------------------------------------------------------------------
# callscope wast: what the spec marks not yet implemented, and --strict


FAILING = '(component (core module $m (func (export "f") (result i32) i32.const 2))\n' \
          '  (core instance $i (instantiate $m))\n' \
          '  (func (export "f") (result u32) (canon lift (core func $i "f"))))\n' \
          '(assert_return (invoke "f") (u32.const 1))\n'
PASSING = '(assert_invalid (component (type (enum))) "enum")\n'


def _tree(tmp_path):
    test = tmp_path / "spec" / "test"
    (test / "async").mkdir(parents=True)
    (test / "nyi.txt").write_text("# See README.md\n./async/ahead.wast\n")
    (test / "async" / "ahead.wast").write_text(FAILING)
    (test / "async" / "ok.wast").write_text(PASSING)
    (test / "async" / "newer-syntax.wast").write_text(
        "(component (core func $f (canon thread.switch-to)))\n" + PASSING)
    return test


def test_wast_skips_what_nyi_lists_and_what_the_parser_cannot_read(tmp_path):
    test = _tree(tmp_path)
    files = sorted(str(p) for p in (test / "async").glob("*.wast"))
    r = callscope("wast", *files)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"{test / 'async' / 'ahead.wast'}: SKIPPED: listed in {test / 'nyi.txt'} " \
                       "(the spec's list of tests not yet implemented)"
    assert lines[1].startswith(f"{test / 'async' / 'newer-syntax.wast'}: SKIPPED: wasmtime's text parser "
                               "cannot read a component: line 1: ")
    assert lines[2:] == ["1 passed, 0 failed, 2 files skipped"]
    # relative to the test directory, as the spec's own README runs them
    r = callscope("wast", "async/ahead.wast", "async/ok.wast", cwd=test)
    assert r.returncode == 0
    assert r.stdout.splitlines() == [
        "async/ahead.wast: SKIPPED: listed in nyi.txt (the spec's list of tests not yet implemented)",
        "1 passed, 0 failed, 1 file skipped"]


def test_wast_strict_runs_them_and_counts_their_failures(tmp_path):
    test = _tree(tmp_path)
    files = sorted(str(p) for p in (test / "async").glob("*.wast"))
    r = callscope("wast", "--strict", *files)
    assert r.returncode == 1
    assert "SKIPPED" not in r.stdout
    assert "ahead.wast:4: assert_return: expected (u32.const 1), got (u32.const 2)" in r.stdout
    assert "newer-syntax.wast:1: component: component does not compile" in r.stdout
    assert r.stdout.splitlines()[-1] == "2 passed, 2 failed"


def test_wast_a_file_not_listed_still_fails(tmp_path):
    test = _tree(tmp_path)
    other = test / "async" / "ahead-too.wast"  # a name nyi.txt does not list exactly
    other.write_text(FAILING)
    r = callscope("wast", str(other))
    assert r.returncode == 1 and r.stdout.splitlines()[-1] == "0 passed, 1 failed"


# --------------------------------------------------------------------------
# examples/build.py --path: only the path, for $(...)


def test_build_path_prints_only_paths(tmp_path, monkeypatch):
    from test_examples import build, example
    example("hello")  # skips without componentize-py; builds (or finds) it
    r = subprocess.run([PY, str(ROOT / "examples" / "build.py"), "--path", "hello"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{build.output_path('hello')}\n"
    r = subprocess.run([PY, str(ROOT / "examples" / "build.py"), "--path", "nope"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stdout == "" and "no example named `nope`" in r.stderr

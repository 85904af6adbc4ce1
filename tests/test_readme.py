"""README.md, followed as a newcomer would: a `git clone` of this repository
at HEAD into a temp dir, the README's set-up command, then every command of
its "Using it" section exactly as written (parsed from README.md's code
blocks, not copied here), each in a fresh `bash -c` from the clone's root
with a bare environment (HOME and PATH=/usr/bin:/bin, plus the user's pip,
proxy and callscope cache settings). The test stops at, and names, the first
command that does not work.

What "works" means, read from the command's comment:

- ``exit status N``: the command ends with status N; ``prints N`` after
  ``; echo $?``: its last output line is N. Any other command must exit 0.
- No command may print a traceback, nor ``callscope: error:`` unless its
  comment says exit status 2.
- ``until Ctrl-C`` (``serve``): the command runs until it prints the URL it
  listens on, one HTTP request is made to it and must be answered, then it
  gets SIGINT (Ctrl-C) and must exit with its stated status (0).
- ``q quits`` (``replay``, a terminal UI): the command runs on a
  pseudo-terminal (120x40, TERM=xterm-256color); once it has drawn its
  screen, ``q`` is typed, and it must exit 0 within 60 s.

The README's test command (`.venv/bin/python -m pytest`) is not run here: it
is the suite this test is part of. Only committed work is tested (the clone
is of HEAD). The wasi:http examples and `callscope wast` need ../shared
beside the clone: the temp dir gets a `shared` symlink to this checkout's
../shared, and the test skips when there is none. Builds are reused through
the examples cache (~/.cache/callscope/examples, CALLSCOPE_EXAMPLES_CACHE)
and pip's wheel cache, so the test costs the set-up command (~30 s) and the
commands themselves (~40 s).
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from conftest import shared_dir

ROOT = Path(__file__).resolve().parents[1]

SETUP_TIMEOUT_S = 900
COMMAND_TIMEOUT_S = 600
PASS_ENV = ("CALLSCOPE_EXAMPLES_CACHE", "CALLSCOPE_MODULE_CACHE", "http_proxy", "https_proxy",
            "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY")


# --------------------------------------------------------------------------
# Reading README.md


@dataclass
class Command:
    text: str  # as bash gets it (continuation lines joined as the README has them)
    line: int  # in README.md
    comment: str = ""

    def expected_status(self) -> int:
        m = re.search(r"\bexit status (\d+)\b", self.comment)
        return int(m.group(1)) if m else 0

    def printed_status(self) -> Optional[int]:
        m = re.search(r"\bprints (\d+)\b", self.comment)
        return int(m.group(1)) if m and re.search(r";\s*echo \$\?\s*$", self.code) else None

    @property
    def code(self) -> str:
        """The command without its comment."""
        return self.text[:len(self.text) - len(self.comment_raw)].rstrip()

    @property
    def comment_raw(self) -> str:
        i = comment_start(self.text)
        return "" if i is None else self.text[i:]

    def __str__(self) -> str:
        return f"README.md line {self.line}: {self.text}"


def comment_start(line: str) -> Optional[int]:
    """Where bash's comment starts in ``line`` (a ``#`` beginning a word,
    outside quotes), or None."""
    quote = None
    i = 0
    while i < len(line):
        c = line[i]
        if quote == "'":
            if c == "'":
                quote = None
        elif quote == '"':
            if c == "\\":
                i += 1
            elif c == '"':
                quote = None
        elif c == "\\":
            i += 1
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t\n;&|("):
            return i
        i += 1
    return None


def sections(text: str) -> dict:
    """``{"## heading": [(first line number, block text), ...]}``: the sh
    code blocks of each section."""
    out: dict = {}
    heading = ""
    block: Optional[list] = None
    start = 0
    for n, line in enumerate(text.splitlines(), 1):
        if block is not None:
            if line.strip() == "```":
                out.setdefault(heading, []).append((start, block))
                block = None
            else:
                block.append(line)
        elif line.startswith("## "):
            heading = line[3:].strip()
        elif line.strip() in ("```sh", "```bash", "```console", "```shell"):
            block, start = [], n + 1
    return out


def commands(start: int, lines: list) -> list:
    """The commands of one code block: continuation lines (ending in a
    backslash) joined, blank and comment-only lines left out."""
    out = []
    pending: list = []
    first = start
    for n, line in enumerate(lines, start):
        if not pending:
            first = n
            if not line.strip() or line.lstrip().startswith("#"):
                continue
        pending.append(line)
        if line.rstrip().endswith("\\"):
            continue
        text = "\n".join(pending)
        pending = []
        i = comment_start(text.splitlines()[-1])
        comment = text.splitlines()[-1][i + 1:].strip() if i is not None else ""
        out.append(Command(text, first, comment))
    assert not pending, f"README.md line {first}: a continuation line ends the block"
    return out


def readme_commands(text: str):
    secs = sections(text)
    setup = [s for s in secs if s.lower().startswith("set up")]
    assert setup, "README.md has no '## Set up ...' section"
    (start, block), *_ = secs[setup[0]]
    setup_cmds = commands(start, block)
    using = secs.get("Using it")
    assert using, "README.md has no '## Using it' section with a sh code block"
    use_cmds = [c for start, block in using for c in commands(start, block)]
    return setup_cmds, use_cmds


def test_readme_parsing():
    """The parser finds the README's commands and reads their comments."""
    setup, use = readme_commands((ROOT / "README.md").read_text())
    assert len(setup) == 1 and "pip install" in setup[0].text
    assert len(use) >= 10
    assert all(c.text.startswith((".venv/bin/", "cp ", "curl ")) for c in use), \
        [c.text for c in use if not c.text.startswith((".venv/bin/", "cp ", "curl "))]
    assert any(c.expected_status() == 1 for c in use)
    assert any(c.printed_status() == 1 for c in use) and any(c.printed_status() == 0 for c in use)
    assert any("until Ctrl-C" in c.comment for c in use)
    assert any("q quits" in c.comment for c in use)
    cmd = commands(1, ["a 'x#y' \"#z\" b#c  # the comment: exit status 3"])[0]
    assert cmd.comment == "the comment: exit status 3" and cmd.expected_status() == 3
    assert cmd.code == "a 'x#y' \"#z\" b#c"
    cmd = commands(1, ["x --a \\", "   --b  # prints 1", "", "y; echo $?  # prints 1"])
    assert [c.text for c in cmd] == ["x --a \\\n   --b  # prints 1", "y; echo $?  # prints 1"]
    assert cmd[0].printed_status() is None and cmd[1].printed_status() == 1
    assert cmd[1].line == 4


# --------------------------------------------------------------------------
# Running them in a fresh clone


def _env() -> dict:
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    for k, v in os.environ.items():
        if k in PASS_ENV or k.startswith("PIP_"):
            env[k] = v
    return env


def _tail(text: str, n: int = 15) -> str:
    lines = text.splitlines()
    return "\n".join(lines[-n:])


def _failed(cmd: Command, why: str, out: str = "", err: str = "") -> None:
    pytest.fail(f"the README command does not work as written:\n  {cmd}\n{why}\n"
                f"--- stdout (tail)\n{_tail(out)}\n--- stderr (tail)\n{_tail(err)}", pytrace=False)


def _judge(cmd: Command, status: int, out: str, err: str) -> None:
    want = cmd.expected_status()
    printed = cmd.printed_status()
    if "Traceback (most recent call last)" in out + err:
        _failed(cmd, "it printed a traceback", out, err)
    if "callscope: error:" in err and want != 2:
        _failed(cmd, "it reported an error", out, err)
    if printed is not None:
        last = out.strip().splitlines()[-1:] or [""]
        if last[0].strip() != str(printed) or status != 0:
            _failed(cmd, f"its comment says it prints {printed}; it printed {last[0]!r} "
                         f"(the line's status {status})", out, err)
    elif status != want:
        _failed(cmd, f"exit status {status}, its comment says {want}", out, err)


def _run_plain(cmd: Command, clone: Path, timeout: float) -> None:
    try:
        r = subprocess.run(["bash", "-c", cmd.text], cwd=clone, env=_env(), capture_output=True,
                           text=True, timeout=timeout, start_new_session=True)
    except subprocess.TimeoutExpired as e:
        _failed(cmd, f"it did not finish in {timeout:.0f} s",
                (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout or "",
                (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or "")
    _judge(cmd, r.returncode, r.stdout, r.stderr)


def _run_until_ctrl_c(cmd: Command, clone: Path) -> None:
    """A server: wait for the URL it prints, make one request, then Ctrl-C."""
    p = subprocess.Popen(["bash", "-c", cmd.text], cwd=clone, env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        url = None
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        seen = []
        while url is None and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break  # it ended before listening
            seen.append(line)
            m = re.search(r"http://127\.0\.0\.1:\d+/", line)
            if m:
                url = m.group(0)
        if url is None:
            p.kill()
            out, err = p.communicate(timeout=60)
            _failed(cmd, "it never said where it listens", "".join(seen) + out, err)
        try:
            with urllib.request.urlopen(url, timeout=120) as resp:
                resp.read()
        except urllib.error.HTTPError:
            pass  # answered, with a status of the guest's choosing
        except OSError as e:
            p.kill()
            out, err = p.communicate(timeout=60)
            _failed(cmd, f"a request to {url} was not answered: {e}", "".join(seen) + out, err)
        os.killpg(p.pid, signal.SIGINT)
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate(timeout=60)
            _failed(cmd, "it did not stop on Ctrl-C (SIGINT)", "".join(seen) + out, err)
        _judge(cmd, p.returncode, "".join(seen) + out, err)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _run_on_a_terminal(cmd: Command, clone: Path) -> None:
    """An interactive UI on a pseudo-terminal: let it draw, type q."""
    import fcntl
    import struct
    import termios
    env = dict(_env(), TERM="xterm-256color", COLUMNS="120", LINES="40")
    pid, fd = pty.fork()
    if pid == 0:  # the child: a fresh bash on the terminal
        try:
            os.chdir(clone)
            os.execve("/bin/bash", ["bash", "-c", cmd.text], env)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    out = bytearray()
    status = None
    sent_at = None
    last_output = time.monotonic()
    deadline = time.monotonic() + COMMAND_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                out += chunk
                last_output = time.monotonic()
            # drawn: a screenful written, then a quiet half second
            if sent_at is None and len(out) > 1000 and time.monotonic() - last_output > 0.5:
                os.write(fd, b"q")
                sent_at = time.monotonic()
            if sent_at is not None and time.monotonic() - sent_at > 60:
                break
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(st)
                break
        if status is None:
            for _ in range(50):  # its terminal closed: it is exiting
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = os.waitstatus_to_exitcode(st)
                    break
                time.sleep(0.1)
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode(errors="replace")
    if sent_at is None:
        _failed(cmd, "it never drew a screen to type q into", text)
    if status is None:
        _failed(cmd, "it did not quit on q within 60 s", text)
    _judge(cmd, status, "", text)


@pytest.mark.slow
def test_readme_commands_work_in_a_fresh_clone(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    shared = shared_dir()
    if not shared.is_dir():
        pytest.skip(f"../shared is not beside this checkout ({shared}): the README's wasi:http "
                    "examples and `callscope wast` need it")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    (tmp_path / "shared").symlink_to(shared.resolve())
    clone = tmp_path / "callscope"
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(clone)], check=True,
                   capture_output=True)
    subprocess.run(["git", "checkout", "--quiet", "--detach", head], cwd=clone, check=True,
                   capture_output=True)
    setup, use = readme_commands((clone / "README.md").read_text())
    for cmd in setup:
        _run_plain(cmd, clone, SETUP_TIMEOUT_S)
    for cmd in use:
        if "until Ctrl-C" in cmd.comment:
            _run_until_ctrl_c(cmd, clone)
        elif "q quits" in cmd.comment:
            _run_on_a_terminal(cmd, clone)
        else:
            _run_plain(cmd, clone, COMMAND_TIMEOUT_S)


def test_how_commands_are_judged(tmp_path):
    """The runners above pass what works and fail naming what does not."""
    def judge(line, runner=_run_plain):
        (cmd,) = commands(7, [line])
        if runner is _run_plain:
            return runner(cmd, tmp_path, 60)
        return runner(cmd, tmp_path)

    judge("exit 3  # exit status 3: the guest trapped")
    judge("(exit 1); echo $?  # prints 1")
    judge("python3 -u -m http.server 0 --bind 127.0.0.1  # serves until Ctrl-C", _run_until_ctrl_c)
    judge("head -c 3000 /dev/zero | tr '\\0' x; read -n1 k; test \"$k\" = q  # q quits", _run_on_a_terminal)
    for line, why in [("true  # exit status 1", "exit status 0, its comment says 1"),
                      ("(exit 0); echo $?  # prints 1", "it prints 1; it printed '0'"),
                      ("echo 'callscope: error: x' >&2", "it reported an error"),
                      ("python3 -c 'raise SystemExit(0)' && python3 -c 'import nope'",
                       "it printed a traceback")]:
        with pytest.raises(pytest.fail.Exception) as ei:
            judge(line)
        assert f"README.md line 7: {line}" in str(ei.value) and why in str(ei.value)

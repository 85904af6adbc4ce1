"""``callscope run --tui`` / ``serve --tui``: run the recording in a child
``callscope`` process and the replay app on its trace as it grows.

The app still reads only the trace (the file the child writes); this process
never imports the runtime or wasmtime. When the app quits while the child
still runs, the child is stopped with SIGINT/SIGTERM (``serve`` closes its
trace on either; ``run`` keeps the complete chunks). The child's summary is
printed after the app closes, and its exit status is returned.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Optional


def _strip_tui(argv: list[str]) -> list[str]:
    return [a for a in argv if a != "--tui"]


def default_trace(args) -> str:
    """Where ``callscope run``/``serve`` write the trace of ``args``."""
    if getattr(args, "output", None):
        return args.output
    guest = getattr(args, "guest", None)
    if guest is None:
        return f"demo-{getattr(args, 'demo', 'event-loop')}.trace"
    return f"{os.path.splitext(os.path.basename(guest))[0]}.trace"


def run_tui(args, argv: Optional[list[str]] = None, screenshot_dir: Optional[str] = None) -> int:
    """Record with ``argv`` (default: this process's arguments without
    ``--tui``) in a child process and follow its trace in the app."""
    argv = _strip_tui(list(sys.argv[1:] if argv is None else argv))
    trace = default_trace(args)
    if not getattr(args, "output", None):
        argv += ["-o", trace]
    try:
        before = os.stat(trace)
        before_id: Optional[tuple] = (before.st_ino, before.st_mtime_ns)
    except OSError:
        before_id = None
    log = tempfile.TemporaryFile(mode="w+b")
    err = tempfile.TemporaryFile(mode="w+b")
    proc = subprocess.Popen([sys.executable, "-m", "callscope", *argv], stdout=log, stderr=err,
                            stdin=subprocess.DEVNULL)
    try:
        # wait for the child's new trace: a new file (the recorder replaces an old one) with a header
        source = None
        while source is None:
            try:
                st = os.stat(trace)
                if before_id is None or (st.st_ino, st.st_mtime_ns) != before_id:
                    from .source import ReplaySource
                    from ..trace.reader import TraceError

                    try:
                        source = ReplaySource(trace)
                        break
                    except TraceError:
                        pass
            except OSError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        if source is None:  # the child ended before writing a trace: bad input, say why
            proc.wait()
            _replay_log(log, err)
            return proc.returncode
        from .app import ReplayApp

        def output() -> str:
            return os.pread(log.fileno(), 1 << 16, 0).decode("utf-8", "replace")

        app = ReplayApp(source, follow=True, screenshot_dir=screenshot_dir, writer=proc, writer_output=output)
        try:
            app.run()
        finally:
            source.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.wait()
        _replay_log(log, err)
        return proc.returncode if proc.returncode >= 0 else 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        err.close()


def _replay_log(log, err) -> None:
    for f, out in ((log, sys.stdout), (err, sys.stderr)):
        f.seek(0)
        data = f.read()
        if data:
            out.flush()
            out.buffer.write(data)
            out.flush()

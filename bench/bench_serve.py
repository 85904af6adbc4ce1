"""`callscope serve` under load: throughput and the server's memory.

    python bench/bench_serve.py [--requests 10000] [--concurrency 32] [--guest service]

Starts ``python -m callscope serve GUEST --port 0`` (recording, as serve
always does, into a temporary trace), sends ``--requests`` GET requests from
``--concurrency`` client threads, each on its own keep-alive connection, and
samples the server process's resident memory (``VmRSS`` in /proc) after each
tenth of the requests. Memory is "flat" when the last sample is within 10% of
the one at the first tenth (the run's start-up, instantiation and first
requests, excluded: that is what a long recording must not grow past).

bench/run.py's ``serve`` row calls ``measure``; this file also runs alone.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)


def rss_kib(pid: int) -> int:
    """The process's resident memory (VmRSS, KiB); 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def trace_size(d: str, prefix: str) -> int:
    """The size so far of the trace ``prefix`` in ``d`` (its ``.partial``
    file while serve records)."""
    for name in os.listdir(d):
        if name.startswith(prefix):
            try:
                return os.path.getsize(os.path.join(d, name))
            except OSError:
                pass
    return 0


def run_clients(target, count: int, *args) -> float:
    """``count`` threads running ``target(*args)``; the seconds until all end."""
    t0 = time.perf_counter()
    threads = [threading.Thread(target=target, args=args) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def get_client(port: int, upto: int, lock: threading.Lock, sent: list, answered) -> None:
    """One client thread's loop: a keep-alive connection sending ``GET
    /echo/K`` while ``sent[0]`` (taken under ``lock``) is below ``upto``;
    ``answered(status, error)`` after each (status "error" and the
    exception's repr when it failed; the connection is then made again)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while True:
        with lock:
            if sent[0] >= upto:
                break
            sent[0] += 1
            k = sent[0]
        try:
            conn.request("GET", f"/echo/{k}")
            r = conn.getresponse()
            r.read()
            answered(r.status, None)
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            answered("error", repr(e))
    conn.close()


def measure(guest: str, requests: int, concurrency: int, log=None) -> dict:
    """Serve ``requests`` requests from ``concurrency`` clients; returns
    elapsed seconds, requests/s, the RSS samples (KiB) and status counts."""
    tmpdir = tempfile.mkdtemp(prefix="callscope-serve-bench-")
    trace = os.path.join(tmpdir, "serve.cstrace")
    proc = subprocess.Popen([sys.executable, "-m", "callscope", "serve", guest, "--port", "0", "-o", trace],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=_ROOT)
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if m is None:
            raise RuntimeError(f"serve did not start: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}")
        port = int(m.group(1))
        lock = threading.Lock()
        sent = [0]
        statuses: dict = {}
        errors: list = []
        step = max(1, requests // 10)
        samples: list = []

        def answered(st, err) -> None:
            with lock:
                if err is not None:
                    errors.append(err)
                statuses[st] = statuses.get(st, 0) + 1
                done = sum(statuses.values())
                if done % step == 0:
                    samples.append((done, rss_kib(proc.pid)))
                    if log:
                        log(f"  serve: {done:,}/{requests:,} requests, RSS {samples[-1][1] / 1024:.1f} MiB")

        rss0 = rss_kib(proc.pid)
        elapsed = run_clients(get_client, concurrency, port, requests, lock, sent, answered)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        trace_bytes = os.path.getsize(trace) if os.path.exists(trace) else 0
        for f in os.listdir(tmpdir):
            os.unlink(os.path.join(tmpdir, f))
        os.rmdir(tmpdir)
    samples.sort()
    first = samples[0][1] if samples else 0
    last = samples[-1][1] if samples else 0
    return {"elapsed": elapsed, "rps": requests / elapsed, "samples": samples, "rss_idle": rss0,
            "rss_first": first, "rss_last": last, "rss_max": max((s for _, s in samples), default=0),
            "flat": bool(samples) and last <= first * 1.10, "statuses": statuses, "errors": errors[:3],
            "trace_bytes": trace_bytes}


def guest_wasm(name: str) -> str:
    sys.path.insert(0, os.path.join(_ROOT, "examples"))
    import build  # examples/build.py
    if build.componentize_py() is None:
        raise RuntimeError("componentize-py is not installed")
    return str(build.build(name))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--guest", default="service", help="an examples/ guest (default: service)")
    a = ap.parse_args(argv)
    r = measure(guest_wasm(a.guest), a.requests, a.concurrency,
                log=lambda s: print(s, file=sys.stderr, flush=True))
    print(f"{a.requests:,} requests at concurrency {a.concurrency}: {r['elapsed']:.1f} s, {r['rps']:,.0f} requests/s; "
          f"statuses {r['statuses']}; RSS {r['rss_first'] / 1024:.1f} MiB at the first tenth, "
          f"{r['rss_last'] / 1024:.1f} MiB at the end (max {r['rss_max'] / 1024:.1f}): "
          f"{'flat' if r['flat'] else 'GROWS'}; trace {r['trace_bytes']:,} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())

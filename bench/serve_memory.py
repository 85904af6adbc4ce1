"""serve under load (issue 13): RSS of the serve process over N requests
(default 10,000) from CONCURRENCY clients (default 32) on keep-alive
connections (each reconnects every 100 requests), sampled every N/10, with
the trace file's size at each sample.

    .venv/bin/python bench/serve_memory.py [N] [EXAMPLE] [CONCURRENCY]

EXAMPLE is a wasi:http example of examples/build.py (default service), or a
path to a component exporting wasi:http/handler@0.3.
Memory flat under load: the last samples should not keep growing faster
than a small constant times the trace file (the B/request of both are printed).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "examples"))
sys.path.insert(0, HERE)
from bench_serve import rss_kib, run_clients, trace_size  # noqa: E402


def trace_bytes(d: str) -> int:
    """The trace's size so far (the partial file while serving)."""
    return trace_size(d, "t.trace")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    name = sys.argv[2] if len(sys.argv) > 2 else "service"
    conc = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    import build

    guest = name if os.path.exists(name) else build.build(name)
    with tempfile.TemporaryDirectory() as d:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        proc = subprocess.Popen([sys.executable, "-m", "callscope", "serve", str(guest), "--port", str(port),
                                 "-o", os.path.join(d, "t.trace")], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        proc.stdout.readline()
        lock = threading.Lock()
        sent = [0]
        done = [0]
        samples = []  # (requests answered, RSS KiB, trace bytes)
        step = max(1, n // 10)

        def client() -> None:
            conn = None
            buf = b""
            mine = 0
            while True:
                with lock:
                    if sent[0] >= n:
                        break
                    sent[0] += 1
                if conn is None or mine % 100 == 0:  # a new connection now and then
                    if conn is not None:
                        conn.close()
                    conn = socket.create_connection(("127.0.0.1", port))
                    conn.settimeout(30)
                    buf = b""
                mine += 1
                conn.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
                while True:
                    head, sep, rest = buf.partition(b"\r\n\r\n")
                    if sep:
                        cl = [int(l.split(b":")[1]) for l in head.split(b"\r\n")
                              if l.lower().startswith(b"content-length")]
                        need = cl[0] if cl else 0
                        if len(rest) >= need:
                            buf = rest[need:]
                            break
                    data = conn.recv(65536)
                    if not data:
                        raise RuntimeError("serve closed the connection")
                    buf += data
                with lock:
                    done[0] += 1
                    if done[0] % step == 0:
                        samples.append((done[0], rss_kib(proc.pid), trace_bytes(d)))
            if conn is not None:
                conn.close()

        dt = run_clients(client, conc)
        proc.send_signal(2)
        out = proc.communicate(timeout=120)[0]
        final = trace_bytes(d)
    print(f"{n} requests at concurrency {conc} in {dt:.1f}s ({n / dt:.0f}/s); serve RSS (MiB) after each tenth:")
    print("  " + "  ".join(f"{k}:{v / 1024:.1f}" for k, v, _ in samples))
    (_, first, f0), (_, last, f1) = samples[len(samples) // 2 - 1], samples[-1]
    half = n - samples[len(samples) // 2 - 1][0]
    print(f"  growth over the second half: {(last - first) / 1024:.1f} MiB "
          f"({(last - first) * 1024 / max(1, half):.0f} bytes/request); the trace grew "
          f"{(f1 - f0) / max(1, half):.0f} bytes/request ({final:,} bytes at the end, footer included)")
    print("  " + out.strip().splitlines()[-1])


if __name__ == "__main__":
    main()

"""serve under load (issue 13): RSS of the serve process over N requests
(default 10,000) on keep-alive connections, sampled every N/10.

    .venv/bin/python bench/serve_memory.py [N] [EXAMPLE]

EXAMPLE is a wasi:http example of examples/build.py (default service), or a
path to a component exporting wasi:http/handler@0.3.
Memory flat under load: the last samples should not keep growing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "examples"))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    name = sys.argv[2] if len(sys.argv) > 2 else "service"
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
        conn = socket.create_connection(("127.0.0.1", port))
        conn.settimeout(30)
        buf = b""
        t0 = time.perf_counter()
        samples = []
        for i in range(n):
            if i and i % 100 == 0:  # a new connection now and then
                conn.close()
                conn = socket.create_connection(("127.0.0.1", port))
                conn.settimeout(30)
                buf = b""
            conn.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            while True:
                head, sep, rest = buf.partition(b"\r\n\r\n")
                if sep:
                    cl = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")]
                    need = cl[0] if cl else 0
                    if len(rest) >= need:
                        buf = rest[need:]
                        break
                buf += conn.recv(65536)
            if (i + 1) % max(1, n // 10) == 0:
                samples.append((i + 1, rss_kib(proc.pid)))
        conn.close()
        dt = time.perf_counter() - t0
        proc.send_signal(2)
        out = proc.communicate(timeout=120)[0]
    print(f"{n} requests in {dt:.1f}s ({n / dt:.0f}/s); serve RSS (MiB) after each tenth:")
    print("  " + "  ".join(f"{k}:{v / 1024:.1f}" for k, v in samples))
    first, last = samples[len(samples) // 2][1], samples[-1][1]
    print(f"  growth over the second half: {(last - first) / 1024:.1f} MiB "
          f"({(last - first) * 1024 / max(1, n // 2):.0f} bytes/request)")
    print("  " + out.strip().splitlines()[-1])


if __name__ == "__main__":
    main()

"""``callscope serve guest.wasm --port P``: real HTTP on loopback into a
wasi:http guest, recording until Ctrl-C (SIGINT) or SIGTERM.

The guest runs on the main thread, in the store's event loop; a stdlib
``ThreadingHTTPServer`` on 127.0.0.1 accepts connections on worker threads
and hands each request to the loop with ``store.post``. Each incoming request
becomes a root ``handle`` task labelled ``req-000001 METHOD /path`` whose id is
planted as a taint token (sent to the guest as ``x-callscope-request-id``, and
as ``x-request-id`` unless the client gave one). The worker thread waits for
the guest's response (body read to its end) and writes it back. On a signal
the loop stops, unanswered requests get 503, and the trace is closed with
its footer, so ``callscope summary`` reads it whole.

Time in the trace is the store's simulated clock (the simulated upstream's
latencies); it does not follow the wall clock.
"""

from __future__ import annotations

import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from callscope.model.tokens import request_id
from callscope.run_cli import EXIT_FAULT, EXIT_OK

# request ids of a server that runs until stopped: req-000001 ... (a fixed
# width, so no id is a prefix of another, up to a million requests)
SERVE_ID_WIDTH = 6

RESPONSE_TIMEOUT_S = 60.0


def add_serve(sub) -> None:
    p = sub.add_parser("serve", help="serve real HTTP on loopback to a wasi:http guest, recording a trace",
                       description="Listen on 127.0.0.1:PORT; each incoming request is a root call of the "
                                   "guest's wasi:http/handler#handle on one instance (concurrent reuse). "
                                   "Records until Ctrl-C or SIGTERM; the trace is complete on exit.")
    p.add_argument("guest", metavar="GUEST.wasm", help="a component exporting wasi:http/handler@0.3")
    p.add_argument("--tui", action="store_true",
                   help="watch the recording in the replay app (the server runs in a child process; quitting stops it)")
    p.add_argument("--port", type=int, required=True, metavar="P", help="TCP port on 127.0.0.1 (0: any free one; required, no default)")
    p.add_argument("-o", "--output", metavar="TRACE", help="where to write the trace (default: GUEST.trace in the "
                   "current directory, with GUEST's suffix dropped)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="scheduler seed (default 0)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="NAME=SPEC",
                   help="host import without Python (as for run); repeatable (default: none)")
    p.add_argument("--import-module", metavar="FILE.py", help="a Python module implementing imports (default: none)")
    p.add_argument("--allow-unknown-imports", action="store_true",
                   help="instantiate even when an import is not provided; calling it traps")
    p.add_argument("--upstream", metavar="URL", help="send client.send requests to this real HTTP server "
                                                  "(default: a simulated upstream)")
    p.add_argument("--upstream-delay", metavar="DURATION", help="the simulated upstream's latency (default 1-5 ms by path)")
    p.add_argument("--upstream-status", type=int, metavar="CODE", help="the simulated upstream's status (default 200)")
    p.add_argument("--upstream-body", metavar="TEXT", help="the simulated upstream's body (default: 'upstream METHOD PATH id=X-REQUEST-ID')")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    if getattr(args, "tui", False):
        from callscope.replay.live import run_tui
        return run_tui(args)
    from callscope.cli import CliError
    from callscope.run import BadInput
    try:
        return _serve(args)
    except BadInput as e:
        raise CliError(str(e)) from None


class _Incoming:
    """One request waiting on a worker thread for the guest's answer."""
    __slots__ = ("spec", "done", "exchange")

    def __init__(self, spec):
        self.spec = spec
        self.done = threading.Event()
        self.exchange = None


def _serve(args) -> int:
    from callscope.component.binary import DecodeError
    from callscope.component.linker import LinkError
    from callscope.host import Host
    from callscope.run import (BadInput, ImportProvider, RequestSpec, RunOptions, _configure_upstream,
                               combined_resolver, http_handler, one_line, parse_duration_ns,
                               parse_import_spec, precompile, read_guest, request_exchange)
    from callscope.runtime.errors import Trap
    from callscope.runtime.observe import RecordingObserver
    from callscope.trace.recorder import Recorder
    from callscope.wasi import Wasi
    from callscope.wasi.http import HttpServer

    p = Path(args.guest)
    if not 0 <= args.port <= 65535:
        raise BadInput(f"--port {args.port}: not a TCP port")
    opts = RunOptions(guest=args.guest, imports=[parse_import_spec(s) for s in args.imports],
                      import_module=args.import_module, allow_unknown_imports=args.allow_unknown_imports,
                      upstream=args.upstream, upstream_status=args.upstream_status,
                      upstream_body=args.upstream_body,
                      upstream_delay_ns=parse_duration_ns(args.upstream_delay) if args.upstream_delay else None)
    guest_bytes = read_guest(args.guest)  # a binary, or component text (.wat)
    host = Host(seed=args.seed)
    store = host.store
    trace_path = args.output or f"{p.stem}.trace"
    try:
        recorder = Recorder(trace_path, guest=guest_bytes, guest_name=p.name, seed=args.seed,
                            argv=["callscope"] + sys.argv[1:], clock=store, clock_attr="now_ns")
    except OSError as e:
        raise BadInput(f"{trace_path}: cannot write the trace: {e.strerror or e}") from None
    store.observer = RecordingObserver(recorder)
    ok = False
    try:
        wasi = Wasi(store, allow_unknown=opts.allow_unknown_imports, args=[p.name])
        _configure_upstream(wasi, opts)
        provider = ImportProvider(opts, store)
        precompile(host, guest_bytes)
        try:
            exports = host.instantiate(guest_bytes, {}, name=p.name, resolver=combined_resolver(provider, wasi))
        except DecodeError as e:
            raise BadInput(f"{p.name}: not a component: {e}") from None
        except LinkError as e:
            raise BadInput(f"{p.name}: cannot instantiate: {e}") from None
        handle = http_handler(exports.exports)
        if handle is None:
            raise BadInput(f"{p.name}: the guest exports no wasi:http/handler@0.3 interface")
        ok = True
    finally:
        if not ok:
            recorder.close()
            Path(trace_path).unlink(missing_ok=True)
            host.close()

    server = HttpServer(wasi, handle)
    waiting: list = []  # _Incoming not answered yet (touched on the loop thread only)
    count = [0]
    answered = [0]

    def start(inc: _Incoming):  # on the loop thread
        count[0] += 1
        ex = request_exchange(inc.spec, request_id(count[0], SERVE_ID_WIDTH), unique_path=False, synthetic=False)
        inc.exchange = ex

        def on_done(ex, inc=inc):
            answered[0] += 1
            if inc in waiting:
                waiting.remove(inc)
            inc.done.set()

        ex.on_done = on_done
        waiting.append(inc)
        server.start(ex)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # quiet: the summary says what happened
            pass

        def _any(self):
            n = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(n) if n > 0 else b""
            headers = [(k.lower(), v.encode("latin-1")) for k, v in self.headers.items()
                       if k.lower() not in ("content-length", "connection", "transfer-encoding")]
            inc = _Incoming(RequestSpec(self.command, self.path, headers, body))
            store.post(lambda: start(inc), external_done=False)
            if not inc.done.wait(RESPONSE_TIMEOUT_S) or inc.exchange is None or not inc.exchange.done:
                return self._reply(503, [], b"callscope: no answer from the guest\n")
            ex = inc.exchange
            if ex.error is not None or ex.status is None:
                return self._reply(500, [], f"callscope: the guest answered with an error: {ex.error}\n".encode())
            self._reply(ex.status, ex.response_headers, ex.response_body)

        def _reply(self, status, headers, body: bytes):
            try:
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v.decode("latin-1"))
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client went away

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _any

    try:
        httpd = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    except OSError as e:
        recorder.close()
        host.close()
        raise BadInput(f"cannot listen on 127.0.0.1:{args.port}: {e.strerror or e}") from None
    httpd.daemon_threads = True
    port = httpd.server_address[1]
    t = threading.Thread(target=httpd.serve_forever, name="callscope-http", daemon=True)
    t.start()

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
        store.post(lambda: None, external_done=False)  # wake the loop

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    print(f"callscope: serving {p.name} on http://127.0.0.1:{port}/ (Ctrl-C to stop), trace {trace_path}",
          flush=True)
    status = EXIT_OK
    fault = None
    store.begin_external()  # requests arrive from other threads: wait for them
    try:
        while not stop.is_set():
            store.tick()
    except Trap as e:
        fault = one_line(e.message)
        store.observer.trap(None, fault)
        status = EXIT_FAULT
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        httpd.shutdown()
        httpd.server_close()
        for inc in list(waiting):
            inc.done.set()  # answered 503 by their threads
        recorder.close()
        host.close()
    print(f"callscope: served {answered[0]}/{count[0]} requests; trace {trace_path}", flush=True)
    if fault:
        print(f"  guest trap: {fault}", flush=True)
    return status

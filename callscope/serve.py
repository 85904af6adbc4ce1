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

from .argtypes import add_taint_window, EVENTS, HTTP_STATUS, MEMORY_SIZE, PORT, SEED, TRACE_SIZE

import signal
import sys
import threading
import time

from callscope.httpserver import H11Server
from pathlib import Path

from callscope.model.tokens import request_id
from callscope.run_cli import DEFAULT_MAX_MEMORY, DEFAULT_MAX_TRACE, EXIT_FAULT, EXIT_OK

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
    p.add_argument("--port", type=PORT, required=True, metavar="P", help="TCP port on 127.0.0.1 (0: any free one; required, no default)")
    p.add_argument("-o", "--output", metavar="TRACE", help="where to write the trace (default: GUEST.trace in the "
                   "current directory, with GUEST's suffix dropped)")
    p.add_argument("--seed", type=SEED, default=0, metavar="S", help="scheduler seed (default 0)")
    p.add_argument("--max-memory", type=MEMORY_SIZE, default=DEFAULT_MAX_MEMORY, metavar="SIZE",
                   help="largest the guest's linear memory may grow, e.g. 512M (default 1G; 0: no limit); "
                        "past it memory.grow fails")
    p.add_argument("--max-events", type=EVENTS, default=0, metavar="N",
                   help="stop serving once the trace holds N events: the server stops accepting, "
                        "unanswered requests get 503, exit 3 (default 0: no limit)")
    p.add_argument("--max-trace-size", type=TRACE_SIZE, default=DEFAULT_MAX_TRACE, metavar="SIZE",
                   help="stop serving once the trace file is this big, e.g. 100M, as for --max-events "
                        "(default 1G; 0: no limit)")
    add_taint_window(p)
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="NAME=SPEC",
                   help="host import without Python (as for run); repeatable (default: none)")
    p.add_argument("--import-module", metavar="FILE.py", help="a Python module implementing imports (default: none)")
    p.add_argument("--allow-unknown-imports", action="store_true",
                   help="instantiate even when an import is not provided; calling it traps")
    p.add_argument("--upstream", metavar="URL", help="send client.send requests to this real HTTP server "
                                                  "(default: a simulated upstream)")
    p.add_argument("--upstream-delay", metavar="DURATION", help="the simulated upstream's latency (default 1-5 ms by path)")
    p.add_argument("--upstream-status", type=HTTP_STATUS, metavar="CODE", help="the simulated upstream's status (default 200)")
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


def _valid_header(k, v) -> bool:
    """A guest's response header h11 can send (a name of token characters,
    a value without CR/LF/NUL); others are left out."""
    try:
        k = k.encode("latin-1") if isinstance(k, str) else bytes(k)
        v = v.encode("latin-1") if isinstance(v, str) else bytes(v)
    except (UnicodeEncodeError, TypeError, ValueError):
        return False
    return bool(k) and all(33 <= c < 127 and c not in b'()<>@,;:\\"/[]?={}' for c in k) \
        and not any(c in (0, 10, 13) for c in v)


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
    trace_path = args.output or f"{p.stem}.trace"
    from callscope.trace.recorder import OutputError, check_output
    try:  # (never the guest; an existing trace is replaced only when serving ends)
        check_output(trace_path, [args.guest])
    except OutputError as e:
        raise BadInput(str(e)) from None
    # the port first: when it is taken, nothing else has happened (no trace file touched)
    import socket
    try:
        listener = socket.create_server(("127.0.0.1", args.port))
    except OSError as e:
        raise BadInput(f"cannot listen on 127.0.0.1:{args.port}: {e.strerror or e}") from None
    host = Host(seed=args.seed)
    store = host.store
    if args.max_memory:  # (wasmtime's store limiter: memory.grow past it fails)
        host.wasm_store.set_limits(memory_size=args.max_memory)
    try:
        recorder = Recorder(trace_path, guest=guest_bytes, guest_name=p.name, seed=args.seed,
                            argv=["callscope"] + sys.argv[1:], clock=store, clock_attr="now_ns", partial=True)
    except OSError as e:
        listener.close()
        host.close()
        raise BadInput(f"{trace_path}: cannot write the trace: {e.strerror or e}") from None
    store.observer = RecordingObserver(recorder, args.taint_window)
    ok = False
    try:
        wasi = Wasi(store, allow_unknown=opts.allow_unknown_imports, args=[p.name])
        _configure_upstream(wasi, opts)
        provider = ImportProvider(opts, store)
        try:
            component = host.decode(guest_bytes)  # once: the precompile and the instance read it
            precompile(host, component)
            exports = host.instantiate(component, {}, name=p.name, resolver=combined_resolver(provider, wasi))
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
            recorder.discard()
            listener.close()
            host.close()

    # SIGINT/SIGTERM stop serving, also while the guest spins in wasm (the
    # engine's epoch is bumped from the signal's wakeup fd: run.py's _Signals);
    # from here on, before serving has begun too: the trace is then closed
    # with what it holds, never left as a .partial file
    from callscope.run import _Signals
    signals = _Signals(host.engine, host.wasm_store, store)
    waiting: list = []  # _Incoming not answered yet (touched on the loop thread only)
    count = [0]
    answered = [0]
    stopped = threading.Event()  # serving has ended (a signal, a trap, a limit): new requests get 503
    httpd = None
    status = EXIT_OK
    fault = None
    limit = [None]  # the message of the --max-events/--max-trace-size limit reached
    try:
        server = HttpServer(wasi, handle)

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
            if count[0] % 64 == 0:
                forget_finished()
            server.start(ex)

        def forget_finished():  # on the loop thread
            """Exchanges answered whose root task has exited are dropped (the
            server kept every one: memory grew ~4.6 KB a request)."""
            keep = []
            for ex in server.live:
                if ex.done and not (ex.task is not None and ex.task.threads):
                    server.state.exchanges.pop(ex.label, None)
                else:
                    keep.append(ex)
            server.live = keep

        def answer(method: str, target: str, headers: list, body: bytes) -> tuple:  # on a connection's thread
            headers = [(k, v) for k, v in headers if k not in ("content-length", "connection", "transfer-encoding")]
            inc = _Incoming(RequestSpec(method, target, headers, body))
            if stopped.is_set():
                return 503, [], b"callscope: the server is stopping\n"
            store.post(lambda: start(inc), external_done=False)
            deadline = time.monotonic() + RESPONSE_TIMEOUT_S
            while not inc.done.wait(0.1):  # (also woken when serving ends: a request posted too late is never started)
                if stopped.is_set() or time.monotonic() > deadline:
                    break
            if inc.exchange is None or not inc.exchange.done:
                return 503, [], b"callscope: no answer from the guest\n"
            ex = inc.exchange
            if ex.error is not None or ex.status is None:
                return 500, [], f"callscope: the guest answered with an error: {ex.error}\n".encode()
            return ex.status, [(k, v) for k, v in ex.response_headers if _valid_header(k, v)], ex.response_body

        httpd = H11Server(listener, answer)  # (callscope/httpserver.py: h11; bound since the start)
        port = httpd.port
        httpd.start()

        def on_limit(msg: str) -> None:  # (from the loop, or the flush timer's thread)
            # the recorder has written its note and drops what follows; stop the
            # guest (also while it spins in wasm) and wake the loop, as a signal does
            if limit[0] is None:
                limit[0] = msg
                stopped.set()
            host.engine.increment_epoch()
            store.post(lambda: None, external_done=False)

        if args.max_events or args.max_trace_size:
            host.wasm_store.set_epoch_deadline(1)  # (one epoch bump traps the guest; _Signals sets it too)
            recorder.set_limits(args.max_events, args.max_trace_size, on_limit=on_limit)
        recorder.start_flush_timer()  # (the 100 ms rule while wasm runs)
        print(f"callscope: serving {p.name} on http://127.0.0.1:{port}/ (Ctrl-C to stop), trace {trace_path}",
              flush=True)
        store.begin_external()  # requests arrive from other threads: wait for them
        try:
            while not signals.signum and limit[0] is None:
                store.tick()
        except Trap as e:
            if signals.signum:  # (interrupted in wasm: the way serving stops)
                store.observer.note(f"interrupted: stopped by {signals.name}")
            elif limit[0] is not None:  # (the recorder's note says which limit)
                pass
            else:
                fault = one_line(e.message)
                store.observer.trap(None, fault)
                status = EXIT_FAULT
    finally:
        stopped.set()
        signals.close()
        if httpd is not None:
            httpd.shutdown()
        else:  # (interrupted, or failed, before serving began)
            listener.close()
        for inc in list(waiting):
            inc.done.set()  # answered 503 by their threads
        recorder.close()
        host.close()
    print(f"callscope: served {answered[0]}/{count[0]} requests; trace {trace_path}", flush=True)
    if fault:
        print(f"  guest trap: {fault}", flush=True)
    if limit[0] is not None and not signals.signum:
        print(f"  guest limit: {limit[0]}; recording stopped, the server stopped accepting", flush=True)
        status = EXIT_FAULT
    return status

"""wasi:http@0.3.0: types (fields, request, response, request-options),
client.send to a simulated upstream, and ``HttpServer``, which drives a
guest's ``wasi:http/handler@0.3.0#handle`` with incoming requests.

Bodies are ``stream<u8>``, trailers ``future<result<option<trailers>,
error-code>>``, as the 0.3 WIT says. Host objects live in the host resource
tables (``Wasi.resource``); requests and responses hold the shared stream and
future objects the guest handed over, or ones the host writes.

The simulated upstream (``Upstream``) answers every outgoing request after a
deterministic delay that depends on its path (so answers overtake one
another), with a body naming the request; each call is logged with the task
that made it (``call.task``) and its root, the data attribution checks need.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from callscope.component import types as T
from callscope.runtime.errors import Trap

from .core import Interface
from .hoststreams import StreamReader, StreamWriter, discard_future, future_with, read_future

TYPES = "wasi:http/types@0.3"
P3 = "@0.3"

_NONE = {"none": None}
_OK = {"ok": None}


def _some(v):
    return _NONE if v is None else {"some": v}


def _opt(v):
    return v["some"] if "some" in v else None


# ---------------------------------------------------------------------------
# host objects


class Fields:
    __slots__ = ("entries", "immutable")

    def __init__(self, entries=(), immutable: bool = False):
        self.entries: list = [(str(n), bytes(v)) for n, v in entries]
        self.immutable = immutable

    def get(self, name: str) -> list:
        n = name.lower()
        return [v for k, v in self.entries if k.lower() == n]

    def copy(self, immutable: bool = False) -> "Fields":
        return Fields(self.entries, immutable)

    def __repr__(self):
        return f"Fields({self.entries!r})"


@dataclass
class RequestOptions:
    connect_timeout: Optional[int] = None
    first_byte_timeout: Optional[int] = None
    between_bytes_timeout: Optional[int] = None
    immutable: bool = False


@dataclass
class Message:
    """What requests and responses share: headers and a body."""
    headers: Fields
    contents: Any = None  # SharedStreamImpl or None
    trailers: Any = None  # SharedFutureImpl or None
    body_taken: bool = False


@dataclass
class Request(Message):
    method: dict = field(default_factory=lambda: {"get": None})
    scheme: Optional[dict] = None
    authority: Optional[str] = None
    path_with_query: Optional[str] = None
    options: Optional[RequestOptions] = None


@dataclass
class Response(Message):
    status: int = 200


def method_name(m: dict) -> str:
    (label, payload), = m.items()
    return payload if label == "other" else label.upper()


def method_value(name: str) -> dict:
    label = name.lower()
    if label in ("get", "head", "post", "put", "delete", "connect", "options", "trace", "patch"):
        return {label: None}
    return {"other": name}


# ---------------------------------------------------------------------------
# shared state: types learnt from the guest's import, upstream, log


@dataclass
class UpstreamCall:
    """One client.send: what was asked and from which task."""
    seq: int
    method: str
    authority: Optional[str]
    path: Optional[str]
    headers: list
    body: bytes
    task: Any  # the calling Task
    root_label: Any  # its root task's label (the incoming request it runs for)
    sent_ns: int
    status: Optional[int] = None
    answered_ns: Optional[int] = None
    cdn_loop_from: Any = None  # label of the incoming request whose cdn-loop the host copied on
    error: Any = None  # the error-code sent back instead of a response


class Upstream:
    """The simulated origin ``client.send`` reaches.

    ``respond(req, body) -> (status, headers, body)`` and
    ``delay_ns(req) -> int`` may be replaced; the defaults answer 200 with
    ``"upstream METHOD PATH id=X-REQUEST-ID\\n"`` after 1 to 5 ms (from a
    hash of the path: deterministic, and not in request order)."""

    url: Optional[str] = None  # set for a real upstream (RealUpstream)

    def __init__(self, respond: Optional[Callable] = None, delay_ns: Optional[Callable] = None,
                 status: Optional[int] = None, body: Optional[bytes] = None, delay: Optional[int] = None):
        """``status``/``body``/``delay`` (ns) fix what the default answer
        says and when (``--upstream-status``, ``--upstream-body``,
        ``--upstream-delay``)."""
        self.respond = respond or self.default_respond
        self.delay_ns = delay_ns or (self.default_delay_ns if delay is None else (lambda req: delay))
        self.fixed_status = status
        self.fixed_body = body
        self.calls: list[UpstreamCall] = []

    @staticmethod
    def default_delay_ns(req: Request) -> int:
        key = f"{method_name(req.method)} {req.path_with_query}".encode()
        return (1 + zlib.crc32(key) % 5) * 1_000_000

    def default_respond(self, req: Request, body: bytes):
        rid = b",".join(req.headers.get("x-request-id")).decode(errors="replace")
        text = f"upstream {method_name(req.method)} {req.path_with_query or '/'} id={rid}\n".encode()
        if self.fixed_body is not None:
            text = self.fixed_body
        status = self.fixed_status if self.fixed_status is not None else 200
        return status, [("content-type", b"text/plain"), ("x-request-id", rid.encode())], text


class RealUpstream(Upstream):
    """``client.send`` to a real HTTP server at ``url`` (``--upstream URL``):
    the request's method, path and headers go to that server (its scheme and
    authority replace the request's), from a worker thread; the answer comes
    back to the event loop through ``store.post``. Time spent waiting is
    real, not simulated."""

    def __init__(self, url: str, timeout: float = 30.0):
        super().__init__()
        from urllib.parse import urlsplit
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self.scheme = u.scheme
        self.host = u.hostname
        self.port = u.port
        self.prefix = u.path.rstrip("/")
        self.timeout = timeout

    def fetch(self, method: str, path: str, headers: list, body: bytes):
        """Blocking: (status, headers, body). Raises OSError when unreachable."""
        import http.client
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=self.timeout)
        try:
            hdrs: dict = {}
            for k, v in headers:
                if k.lower() in ("host", "content-length", "connection", "transfer-encoding"):
                    continue
                v = v.decode("latin-1")
                hdrs[k] = f"{hdrs[k]}, {v}" if k in hdrs else v
            conn.request(method, self.prefix + (path or "/"), body=body or None, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            return r.status, [(k.lower(), v.encode("latin-1")) for k, v in r.getheaders()
                              if k.lower() not in ("transfer-encoding", "connection")], data
        finally:
            conn.close()


class HttpState:
    """Per-Wasi HTTP state: the types the guest's import declared (needed to
    make futures and streams of the right type), the upstream."""

    def __init__(self, wasi):
        self.wasi = wasi
        self.upstream = Upstream()
        # root label -> the incoming Exchange it serves (cdn-loop copies)
        self.exchanges: dict = {}
        self.body_t = T.U8Type()
        self.trailers_t = None  # future<result<option<trailers>, error-code>> element
        self.done_t = None  # future<result<_, error-code>> element

    def learn(self, func_types: dict) -> None:
        ft = func_types.get("[static]response.consume-body") or func_types.get("[static]request.consume-body")
        if ft is not None:
            stream_t, trailers_f = ft.result[0].ts
            self.body_t = stream_t.t
            self.trailers_t = trailers_f.t
            self.done_t = ft.params[1][1].t
        ft = func_types.get("[static]response.new") or func_types.get("[static]request.new")
        if ft is not None and self.done_t is None:
            self.done_t = ft.result[0].ts[1].t

    def no_trailers(self):
        if self.trailers_t is None:
            raise Trap("wasi:http: trailers type unknown (the guest imports no consume-body)")
        return future_with(self.trailers_t, {"ok": _NONE})

    def done_future(self):
        return future_with(self.done_t, _OK)


def http_state(wasi) -> HttpState:
    st = getattr(wasi, "_http", None)
    if st is None:
        st = wasi._http = HttpState(wasi)
    return st


# ---------------------------------------------------------------------------
# wasi:http/types


_HEADER_IMMUTABLE = {"error": {"immutable": None}}
_INVALID = {"error": {"invalid-syntax": None}}
_TOKEN = set(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _valid_name(name: str) -> bool:
    return bool(name) and all(ord(c) < 128 and ord(c) in _TOKEN for c in name)


class HttpTypes(Interface):
    name = TYPES
    resources = {"fields": None, "request": "_drop_message", "response": "_drop_message",
                 "request-options": None}

    def _drop_message(self, m: Message) -> None:
        # the guest dropped a request/response without taking its body
        if not m.body_taken:
            if m.contents is not None and not m.contents.dropped:
                m.contents.drop()
            discard_future(m.trailers)

    def funcs(self):
        st = http_state(self.wasi)
        st.learn(self.func_types)
        fields = self.res("fields")
        requests = self.res("request")
        responses = self.res("response")
        options = self.res("request-options")
        # what the recording observer searches for taint when a handle is
        # passed to an import (client.send's own<request>, say)
        fields.view = lambda f: f.entries
        requests.view = lambda r: (r.path_with_query, r.authority, r.headers.entries)
        responses.view = lambda r: r.headers.entries
        # what the oracle compares them by (callscope.oracle): what they hold
        fields.canon = lambda f: list(f.entries)
        requests.canon = lambda r: (r.method, r.scheme, r.authority, r.path_with_query, list(r.headers.entries),
                                    r.contents)
        responses.canon = lambda r: (r.status, list(r.headers.entries), r.contents)

        # -- fields
        def f_new(call):
            return fields.new(Fields())

        def f_from_list(call, entries):
            out = Fields()
            for e in entries:
                n, v = (e["0"], e["1"]) if isinstance(e, dict) else e
                if not _valid_name(n):
                    return _INVALID
                out.entries.append((str(n), bytes(v)))
            return {"ok": fields.new(out)}

        def f_get(call, rep, name):
            return fields.get(rep).get(name)

        def f_has(call, rep, name):
            return bool(fields.get(rep).get(name))

        def f_set(call, rep, name, values):
            f = fields.get(rep)
            if f.immutable:
                return _HEADER_IMMUTABLE
            if not _valid_name(name):
                return _INVALID
            n = name.lower()
            f.entries = [(k, v) for k, v in f.entries if k.lower() != n] + [(str(name), bytes(v)) for v in values]
            return _OK

        def f_delete(call, rep, name):
            f = fields.get(rep)
            if f.immutable:
                return _HEADER_IMMUTABLE
            n = name.lower()
            f.entries = [(k, v) for k, v in f.entries if k.lower() != n]
            return _OK

        def f_get_and_delete(call, rep, name):
            f = fields.get(rep)
            if f.immutable:
                return _HEADER_IMMUTABLE
            vs = f.get(name)
            f_delete(call, rep, name)
            return {"ok": vs}

        def f_append(call, rep, name, value):
            f = fields.get(rep)
            if f.immutable:
                return _HEADER_IMMUTABLE
            if not _valid_name(name):
                return _INVALID
            f.entries.append((str(name), bytes(value)))
            return _OK

        def f_copy_all(call, rep):
            return [(k, v) for k, v in fields.get(rep).entries]

        def f_clone(call, rep):
            return fields.new(fields.get(rep).copy())

        # -- request / response
        def _body(contents, trailers):
            return (None if contents is None or "none" in contents else contents["some"]), trailers

        def r_new(call, headers, contents, trailers, opts):
            h = fields.take(headers)
            h.immutable = True
            body, tr = _body(contents, trailers)
            o = None if "none" in opts else options.take(opts["some"])
            if o is not None:
                o.immutable = True
            req = Request(h, body, tr, options=o)
            return (requests.new(req), st.done_future())

        def resp_new(call, headers, contents, trailers):
            h = fields.take(headers)
            h.immutable = True
            body, tr = _body(contents, trailers)
            return (responses.new(Response(h, body, tr)), st.done_future())

        def consume_body(table):
            def consume(call, rep, res):
                m = table.take(rep)
                discard_future(res)
                if m.body_taken:
                    raise Trap("wasi:http: body already consumed")
                m.body_taken = True
                body = m.contents if m.contents is not None else StreamWriter(self.wasi.store, st.body_t,
                                                                            close=True).shared
                trailers = m.trailers if m.trailers is not None else st.no_trailers()
                return (body, trailers)
            return consume

        def getter(table, attr, wrap=lambda v: v):
            return lambda call, rep: wrap(getattr(table.get(rep), attr))

        def setter(table, attr, unwrap=lambda v: v):
            def set_(call, rep, v):
                setattr(table.get(rep), attr, unwrap(v))
                return _OK
            return set_

        def headers_of(table):
            return lambda call, rep: fields.new(table.get(rep).headers.copy(immutable=True))

        def get_options(call, rep):
            o = requests.get(rep).options
            return _NONE if o is None else {"some": options.new(o)}

        def set_status(call, rep, code):
            if not 100 <= code <= 999:
                return {"error": None}
            responses.get(rep).status = code
            return _OK

        # -- request-options
        def o_get(attr):
            return lambda call, rep: _some(getattr(options.get(rep), attr))

        def o_set(attr):
            def set_(call, rep, v):
                o = options.get(rep)
                if o.immutable:
                    return {"error": {"immutable": None}}
                setattr(o, attr, _opt(v))
                return _OK
            return set_

        def o_clone(call, rep):
            o = options.get(rep)
            return options.new(RequestOptions(o.connect_timeout, o.first_byte_timeout, o.between_bytes_timeout))

        return {
            "[constructor]fields": f_new,
            "[static]fields.from-list": f_from_list,
            "[method]fields.get": f_get,
            "[method]fields.has": f_has,
            "[method]fields.set": f_set,
            "[method]fields.delete": f_delete,
            "[method]fields.get-and-delete": f_get_and_delete,
            "[method]fields.append": f_append,
            "[method]fields.copy-all": f_copy_all,
            "[method]fields.clone": f_clone,
            "[static]request.new": r_new,
            "[method]request.get-method": getter(requests, "method"),
            "[method]request.set-method": setter(requests, "method"),
            "[method]request.get-path-with-query": getter(requests, "path_with_query", _some),
            "[method]request.set-path-with-query": setter(requests, "path_with_query", _opt),
            "[method]request.get-scheme": getter(requests, "scheme", _some),
            "[method]request.set-scheme": setter(requests, "scheme", _opt),
            "[method]request.get-authority": getter(requests, "authority", _some),
            "[method]request.set-authority": setter(requests, "authority", _opt),
            "[method]request.get-options": get_options,
            "[method]request.get-headers": headers_of(requests),
            "[static]request.consume-body": consume_body(requests),
            "[static]response.new": resp_new,
            "[method]response.get-status-code": getter(responses, "status"),
            "[method]response.set-status-code": set_status,
            "[method]response.get-headers": headers_of(responses),
            "[static]response.consume-body": consume_body(responses),
            "[constructor]request-options": lambda call: options.new(RequestOptions()),
            "[method]request-options.get-connect-timeout": o_get("connect_timeout"),
            "[method]request-options.set-connect-timeout": o_set("connect_timeout"),
            "[method]request-options.get-first-byte-timeout": o_get("first_byte_timeout"),
            "[method]request-options.set-first-byte-timeout": o_set("first_byte_timeout"),
            "[method]request-options.get-between-bytes-timeout": o_get("between_bytes_timeout"),
            "[method]request-options.set-between-bytes-timeout": o_set("between_bytes_timeout"),
            "[method]request-options.clone": o_clone,
        }


# ---------------------------------------------------------------------------
# wasi:http/client


class HttpClient(Interface):
    name = "wasi:http/client" + P3

    def funcs(self):
        w = self.wasi
        st = http_state(w)
        requests = w.resource(TYPES, "request")
        responses = w.resource(TYPES, "response")

        def send(call, rep):
            req: Request = requests.take(rep)
            up = st.upstream
            task = call.task
            root = getattr(task, "root", None)
            rec = UpstreamCall(len(up.calls), method_name(req.method), req.authority, req.path_with_query,
                               list(req.headers.entries), b"", task, getattr(root, "label", None),
                               w.store.now_ns)
            up.calls.append(rec)
            self._copy_cdn_loop(rec, root)
            req.body_taken = True
            discard_future(req.trailers)

            def respond(status, headers, rbody):
                if call.done:
                    return
                rec.status, rec.answered_ns = status, w.store.now_ns
                resp = Response(Fields(headers, immutable=True),
                                StreamWriter(w.store, st.body_t, rbody, close=True).shared,
                                st.no_trailers(), status=status)
                call.resolve([{"ok": responses.new(resp)}])

            def fail(code: dict):
                if call.done:
                    return
                rec.error, rec.answered_ns = code, w.store.now_ns
                call.resolve([{"error": code}])

            def answer(body: bytes):
                rec.body = body
                if up.url is not None:
                    fetch_real(body)
                    return
                status, headers, rbody = up.respond(req, body)
                w.store.call_later(up.delay_ns(req), lambda: respond(status, headers, rbody))

            def fetch_real(body: bytes):
                import threading
                w.store.begin_external()  # the loop waits for the answer

                def worker():
                    try:
                        got = up.fetch(rec.method, rec.path, rec.headers, body)
                    except OSError as e:
                        code = _io_error_code(e)
                        w.store.post(lambda: fail(code))
                        return
                    except Exception as e:  # http.client's own errors
                        code = {"internal-error": {"some": f"{type(e).__name__}: {e}"}}
                        w.store.post(lambda: fail(code))
                        return
                    w.store.post(lambda: respond(*got))

                threading.Thread(target=worker, name="callscope-upstream", daemon=True).start()

            if req.contents is not None:
                chunks: list = []
                StreamReader(w.store, req.contents, chunks.append, lambda: answer(b"".join(chunks)))
            else:
                answer(b"")
            return call.pending()

        return {"send": send}

    def _copy_cdn_loop(self, rec: UpstreamCall, root) -> None:
        """The CDN-Loop case (RFC 8586, NOTES §5): like a host that walks the
        async call stack, copy the ``cdn-loop`` header of the incoming
        request the stack's root serves onto this outgoing request, and say
        so in the trace (``note``: ``cdn-loop: copied VALUE of root task R
        onto import call C``) for the ``cdn-loop-misrouted`` lint to judge."""
        ex = http_state(self.wasi).exchanges.get(getattr(root, "label", None))
        if ex is None:
            return
        values = [v for k, v in ex.headers if k.lower() == "cdn-loop"]
        if not values:
            return
        rec.headers.extend(("cdn-loop", v) for v in values)
        rec.cdn_loop_from = ex.label
        obs = self.wasi.store.observer
        if obs is not None:
            value = b", ".join(values).decode("latin-1")
            obs.note(f"cdn-loop: copied {value!r} of root task {root.id} onto import call "
                     f"{getattr(obs, 'last_call_id', 0)}")


def _io_error_code(e: OSError) -> dict:
    import errno
    import socket
    if isinstance(e, ConnectionRefusedError):
        return {"connection-refused": None}
    if isinstance(e, socket.gaierror):
        return {"destination-not-found": None}
    if isinstance(e, (socket.timeout, TimeoutError)):
        return {"connection-timeout": None}
    if e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return {"destination-unavailable": None}
    return {"internal-error": {"some": f"{type(e).__name__}: {e}"}}


INTERFACES = [HttpTypes, HttpClient]


# ---------------------------------------------------------------------------
# serving requests to a guest's handler


@dataclass
class Exchange:
    """One incoming request served to the guest, and what it answered."""
    label: str
    method: str
    path: str
    headers: list
    body: bytes = b""
    status: Optional[int] = None
    response_headers: list = field(default_factory=list)
    response_body: bytes = b""
    error: Any = None  # the error-code variant if the handler returned one
    returned_ns: Optional[int] = None
    done_ns: Optional[int] = None
    done: bool = False
    # taint tokens planted in this request's root task (default: its
    # x-request-id values)
    tokens: Optional[tuple] = None
    on_done: Optional[Callable] = None  # called with the exchange when done
    task: Any = None  # the root task serving it (once started)


def find_handler(exports: dict):
    """The ``handle`` function of an instance's ``wasi:http/handler@0.3.x`` export."""
    for name, (sort, v) in exports.items():
        if name.startswith("wasi:http/handler@0.3") and isinstance(v, dict) and "handle" in v:
            return v["handle"][1]
    raise KeyError("the guest exports no wasi:http/handler@0.3 interface")


class HttpServer:
    """Serves requests to ``handle`` (a FuncInst), up to ``concurrency`` at a
    time on the one instance (concurrent reuse, as wasi:http/service allows).
    An exchange is done when its response body has been read to the end."""

    def __init__(self, wasi, handle):
        self.wasi = wasi
        self.store = wasi.store
        self.handle = handle
        self.state = http_state(wasi)
        self.live: list = []  # exchanges whose handle call is unfinished

    def incoming(self, method: str = "GET", path: str = "/", headers=(), body: bytes = b"",
                 authority: str = "localhost", scheme: str = "http") -> Request:
        st = self.state
        contents = StreamWriter(self.store, st.body_t, body, close=True).shared if body else None
        trailers = st.no_trailers() if body else None
        return Request(Fields(headers, immutable=True), contents, trailers, method=method_value(method),
                       scheme={scheme.upper() if scheme in ("http", "https") else "other":
                               None if scheme in ("http", "https") else scheme},
                       authority=authority, path_with_query=path)

    def start(self, ex: Exchange) -> None:
        """Invoke ``handle`` for ``ex`` (a new root task labelled
        ``ex.label``); ``ex`` is filled in as the guest answers, and
        ``ex.on_done(ex)`` called when its response body has been read."""
        store = self.store
        requests = self.wasi.resource(TYPES, "request")
        responses = self.wasi.resource(TYPES, "response")

        def finish(ex: Exchange):
            ex.done = True
            ex.done_ns = store.now_ns
            self.in_flight -= 1
            if ex.on_done is not None:
                ex.on_done(ex)

        req = self.incoming(ex.method, ex.path, ex.headers, ex.body)
        rep = requests.new(req)

        def on_start():
            from callscope.runtime.thread import STACK
            ex.task = STACK[-1].task if STACK else None  # the root task (to see when it exits)
            return [rep]

        def on_resolve(r):
            ex.returned_ns = store.now_ns
            if r is None:
                ex.error = "cancelled"
                finish(ex)
                return
            res = r[0]
            if "error" in res:
                ex.error = res["error"]
                finish(ex)
                return
            resp: Response = responses.take(res["ok"])
            ex.status = resp.status
            ex.response_headers = list(resp.headers.entries)
            resp.body_taken = True
            discard_future(resp.trailers)
            if resp.contents is None:
                finish(ex)
                return
            chunks: list = []

            def end():
                ex.response_body = b"".join(chunks)
                finish(ex)

            StreamReader(store, resp.contents, chunks.append, end)

        tokens = ex.tokens
        if tokens is None:
            tokens = tuple(v.decode(errors="replace") for k, v in ex.headers if k.lower() == "x-request-id")
        self.state.exchanges[ex.label] = ex
        store.next_root = (ex.label, tokens if isinstance(tokens, tuple) else tuple(tokens))
        self.in_flight += 1
        self.live.append(ex)
        store.invoke(self.handle, on_start, on_resolve)

    in_flight = 0  # exchanges started and not done

    def unfinished(self) -> int:
        """Handle calls unfinished: the response not fully read yet, or the
        root task still running (work it spawned after responding). This is
        what ``concurrency`` bounds: at 1 the guest never sees a second
        ``handle`` while an earlier one is unfinished (no concurrent reuse)."""
        self.live = [ex for ex in self.live if not ex.done or (ex.task is not None and ex.task.threads)]
        return len(self.live)

    def serve(self, exchanges: list, concurrency: int = 1, drain: bool = True,
              check: Optional[Callable[[], None]] = None) -> list:
        """Serve ``exchanges`` (filled in place and returned). With ``drain``,
        keep running after the last response until nothing is left to do
        (work the guest spawned after responding, its outgoing calls).
        ``check()`` runs after each step (e.g. to raise on a timeout)."""
        store = self.store
        pending = list(reversed(exchanges))
        while pending or self.in_flight:
            while pending and self.unfinished() < concurrency:
                self.start(pending.pop())
            if not store.tick():
                if not self.in_flight and not pending:
                    break  # answered; what is left cannot run (drained below)
                if store.observer is not None:
                    store.observer.deadlock("deadlock detected: event loop cannot make further progress")
                raise Trap("deadlock detected: event loop cannot make further progress "
                           f"({self.in_flight} request(s) unfinished)")
            if check is not None:
                check()
        if drain:
            while store.tick():
                if check is not None:
                    check()
        return exchanges

    def get(self, path: str = "/", headers=(), label: str = "req") -> Exchange:
        return self.serve([Exchange(label, "GET", path, list(headers))])[0]

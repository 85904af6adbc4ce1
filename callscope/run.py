"""``callscope run`` and ``callscope check``: instantiate a guest on the
recording host, drive its exports (several root calls in flight on one
instance when asked), record every transition, then summarize the trace.

Faults are reported, not raised: a trap, a deadlock or a timeout ends the
run with the trace written so far closed properly, and ``RunResult.fault``
saying what happened.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from callscope.component import ast as A
from callscope.component import types as T
from callscope.component.binary import DecodeError
from callscope.component.linker import InstanceTypeR, LinkError
from callscope.runtime.canon import FuncInst
from callscope.runtime.errors import Trap, one_line
from callscope.runtime.hostfunc import HostCall, HostFunction
from callscope.model.tokens import DEFAULT_TAINT_WINDOW
from callscope.runtime.observe import RecordingObserver
from callscope import wave


class BadInput(Exception):
    """The user's input is wrong (exit status 2)."""


@dataclasses.dataclass
class ImportSpec:
    """What ``--import NAME=delay:5ms,result:VALUE`` says of one import."""
    name: str
    delay_ns: Optional[int] = None
    result: Optional[str] = None  # WAVE text, parsed against the import's type


@dataclasses.dataclass
class RunOptions:
    guest: Optional[str] = None  # path; None = the built-in demo
    demo: str = "event-loop"
    output: Optional[str] = None
    invokes: list = dataclasses.field(default_factory=list)
    concurrency: Optional[int] = None  # None: DEFAULT_CONCURRENCY (4), every driver
    repeat: Optional[int] = None  # None: 1; DEFAULT_REPEAT (8) for a default call list
    seed: int = 0
    policy: str = "fifo"
    timeout: Optional[float] = None
    imports: list = dataclasses.field(default_factory=list)  # ImportSpec
    import_module: Optional[str] = None
    allow_unknown_imports: bool = False
    default_delay_ns: int = 1_000_000
    record: bool = True
    argv: Optional[list] = None
    # wasi:http guests: synthetic requests ('GET /path name:value ...'),
    # where client.send goes
    requests: list = dataclasses.field(default_factory=list)
    upstream: Optional[str] = None  # a real server's URL; None: the simulated upstream
    upstream_delay_ns: Optional[int] = None
    upstream_status: Optional[int] = None
    upstream_body: Optional[str] = None
    # limits (0: none): a linear memory's size, the trace's events and bytes
    max_memory: int = 1 << 30
    max_events: int = 0
    max_trace_size: int = 1 << 30
    taint_window: int = DEFAULT_TAINT_WINDOW  # exited roots whose tokens are still searched for (0: all)
    oracle: bool = False  # also run serially and judge every import by value (callscope.oracle)


@dataclasses.dataclass
class RunResult:
    trace_path: Optional[str]
    calls_started: int = 0
    calls_done: int = 0
    results: list = dataclasses.field(default_factory=list)  # (label, value)
    fault: Optional[str] = None  # "trap" | "deadlock" | "timeout"
    fault_message: str = ""
    elapsed_s: float = 0.0
    instantiate_s: float = 0.0  # of which: decoding, linking, instantiating
    sim_time_ns: int = 0
    exchanges: list = dataclasses.field(default_factory=list)  # wasi:http: callscope.wasi.http.Exchange
    signum: int = 0  # fault "interrupted": the signal (SIGINT, SIGTERM)
    # tasks still unfinished when the run ended (every task is driven until it
    # exits, the timeout, or nothing can run): (task id, root id, root label)
    pending: list = dataclasses.field(default_factory=list)
    oracle: Any = None  # callscope.oracle.OracleResult when the oracle ran


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s)?\s*$")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, None: 1_000_000}


def parse_duration_ns(text: str) -> int:
    m = _DURATION.match(text)
    if not m:
        raise BadInput(f"not a duration: {text!r} (write e.g. 5ms, 200us, 1s)")
    ns = float(m.group(1)) * _UNITS[m.group(2)]
    if not ns <= MAX_DURATION_NS:  # (also inf)
        raise BadInput(f"duration {text.strip()!r} is too long (at most {MAX_DURATION_NS // 10**9 // 86400} days)")
    return int(ns)


MAX_DURATION_NS = 30 * 86400 * 10**9


def parse_import_spec(text: str) -> ImportSpec:
    """``'ns:pkg/iface#fetch=delay:5ms,result:"ok"'``"""
    name, eq, rest = text.partition("=")
    name = name.strip()
    if not eq or not name:
        raise BadInput(f"--import {text!r}: expected NAME=delay:DURATION,result:VALUE")
    spec = ImportSpec(name)
    i = 0
    rest = rest.strip()
    while i < len(rest):
        m = re.match(r"\s*(delay|result)\s*:", rest[i:])
        if not m:
            raise BadInput(f"--import {text!r}: expected delay:... or result:... at {rest[i:]!r}")
        key = m.group(1)
        i += m.end()
        # the value runs to the next top-level comma
        depth, j, q = 0, i, None
        while j < len(rest):
            c = rest[j]
            if q:
                if c == "\\":
                    j += 1
                elif c == q:
                    q = None
            elif c in "\"'":
                q = c
            elif c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
            elif c == "," and depth == 0:
                break
            j += 1
        value = rest[i:j].strip()
        if key == "delay":
            spec.delay_ns = parse_duration_ns(value)
        else:
            spec.result = value
        i = j + 1
    return spec


# ---------------------------------------------------------------------------
# default values and host imports


def default_value(t):
    tt = type(t)
    if tt is T.BoolType:
        return False
    if tt in (T.F32Type, T.F64Type):
        return 0.0
    if tt is T.CharType:
        return "\x00"
    if tt is T.StringType:
        return ""
    if isinstance(t, T.PrimValType):
        return 0
    if tt is T.ListType:
        return [default_value(t.t) for _ in range(t.l or 0)]
    if tt is T.RecordType:
        return {f.label: default_value(f.t) for f in t.fields}
    if tt is T.TupleType:
        return {str(i): default_value(x) for i, x in enumerate(t.ts)}
    if tt is T.VariantType:
        c = t.cases[0]
        return {c.label: None if c.t is None else default_value(c.t)}
    if tt is T.EnumType:
        return {t.labels[0]: None}
    if tt is T.OptionType:
        return {"none": None}
    if tt is T.ResultType:
        return {"ok": None if t.ok is None else default_value(t.ok)}
    if tt is T.FlagsType:
        return {label: False for label in t.labels}
    raise BadInput(f"cannot make a default value of type {tt.__name__}; give --import ...=result:VALUE")


class ImportProvider:
    """Resolves a guest's imports: from ``--import`` specs, a Python module,
    callscope's built-in providers (the demo's upstream), or, with
    ``allow_unknown``, functions that trap when called."""

    def __init__(self, opts: RunOptions, store):
        self.opts = opts
        self.store = store
        self.specs = {s.name: s for s in opts.imports}
        self.used_specs: set = set()
        self.module = None
        if opts.import_module:
            self.module = _load_module(opts.import_module)

    def resolve(self, name: str, sort, t):
        if sort is A.Sort.INSTANCE and isinstance(t, InstanceTypeR):
            out = {}
            for fname, (fsort, ft) in t.exports.items():
                if fsort is A.Sort.FUNC:
                    out[fname] = (fsort, self.func(f"{name}#{fname}", ft))
                elif fsort is A.Sort.TYPE:
                    out[fname] = (fsort, ft)
                else:
                    raise LinkError(f"import `{name}`: cannot provide `{fname}` ({fsort})")
            return out
        if sort is A.Sort.FUNC and isinstance(t, T.FuncType):
            return self.func(name, t)
        raise LinkError(f"callscope does not provide import `{name}` ({sort})")

    def claims(self, name: str, sort, t) -> bool:
        """Whether the user (``--import``, ``--import-module``) or a built-in
        names ``name`` or one of its functions by its full name; such an
        import is this provider's even where WASI would serve it."""
        names = [name]
        if sort is A.Sort.INSTANCE and isinstance(t, InstanceTypeR):
            names = [f"{name}#{f}" for f, (fs, _) in t.exports.items() if fs is A.Sort.FUNC]
        table = getattr(self.module, "IMPORTS", {}) if self.module is not None else {}
        return any(n in self.specs or n in table or n in BUILTIN_IMPORTS for n in names)

    def func(self, name: str, ft: T.FuncType) -> FuncInst:
        impl = self._impl(name, ft)
        return HostFunction(name, ft, impl).func_inst(self.store)

    def _impl(self, name: str, ft: T.FuncType):
        short = name.rpartition("#")[2]
        if self.module is not None:
            fn = getattr(self.module, "IMPORTS", {}).get(name) or getattr(self.module, "IMPORTS", {}).get(short)
            if fn is None:
                fn = getattr(self.module, _py_name(short), None)
            if fn is not None:
                return fn
        spec = self.specs.get(name) or self.specs.get(short)
        if spec is not None:
            self.used_specs.add(spec.name)
            return _spec_impl(spec, ft, self.opts.default_delay_ns)
        builtin = BUILTIN_IMPORTS.get(name)
        if builtin is not None:
            return builtin
        if self.opts.allow_unknown_imports:
            def unknown(call, args, name=name):
                raise Trap(f"import `{name}` is not provided by callscope (run with --import to give it)")
            return unknown
        raise LinkError(f"callscope does not provide import `{name}`; give it with "
                        f"--import '{name}=delay:1ms,result:...' or --allow-unknown-imports")


def combined_resolver(provider: ImportProvider, wasi):
    """``--import``/``--import-module``/built-ins first, then WASI (every
    interface ``callscope.wasi`` serves), then the provider again (short
    names of the user's specs, ``--allow-unknown-imports``, its error)."""
    def resolve(name: str, sort, t):
        if wasi is not None and not provider.claims(name, sort, t) and wasi.interface(name) is not None:
            return wasi.resolver(name, sort, t)
        return provider.resolve(name, sort, t)
    return resolve


def _py_name(s: str) -> str:
    return re.sub(r"[^0-9a-zA-Z_]", "_", s)


def _load_module(path: str):
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"{path}: no such import module")
    spec = importlib.util.spec_from_file_location(f"callscope_imports_{p.stem}", p)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except Exception as e:
        raise BadInput(f"{path}: cannot load import module: {type(e).__name__}: {e}") from None
    return mod


def _spec_impl(spec: ImportSpec, ft: T.FuncType, default_delay: int):
    if spec.result is not None:
        if not ft.result:
            raise BadInput(f"--import {spec.name}: the function returns nothing; drop result:")
        try:
            value = [wave.parse_value(spec.result, ft.result[0])]
        except wave.WaveError as e:
            raise BadInput(f"--import {spec.name}: result: {e}") from None
    else:
        value = [default_value(ft.result[0])] if ft.result else []
    delay = spec.delay_ns if spec.delay_ns is not None else (default_delay if ft.async_ else 0)

    def impl(call: HostCall, args):
        if delay:
            return call.resolve_later(delay, value)
        return value

    return impl


def _demo_fetch(call: HostCall, args):
    """The demo's simulated upstream: answers after a delay that depends on
    the URL (deterministic), so responses overtake one another."""
    url = args[0]
    delay = 2_000_000 + (sum(url.encode()) % 7) * 700_000
    return call.resolve_later(delay, [f"body of {url}"])


BUILTIN_IMPORTS = {
    "callscope-demo:app/upstream#fetch": _demo_fetch,
}


# ---------------------------------------------------------------------------
# finding exports and invocations


def find_funcs(exports: dict) -> dict:
    """All exported functions by their full name (``iface#func`` for one
    inside an exported instance) and, where unambiguous, their short name."""
    full: dict = {}
    for name, (sort, v) in exports.items():
        if sort is A.Sort.FUNC and isinstance(v, FuncInst):
            full[name] = v
        elif sort is A.Sort.INSTANCE and isinstance(v, dict):
            for fname, (fsort, fv) in v.items():
                if fsort is A.Sort.FUNC and isinstance(fv, FuncInst):
                    full[f"{name}#{fname}"] = fv
    out = dict(full)
    shorts: dict = {}
    for name in full:
        shorts.setdefault(name.rpartition("#")[2], []).append(name)
    for short, names in shorts.items():
        if len(names) == 1 and short not in out:
            out[short] = full[names[0]]
    return out


@dataclasses.dataclass
class Invocation:
    label: str
    func: FuncInst
    args: list
    tokens: list


def _strings_in(value, out: list) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _strings_in(v, out)
    elif isinstance(value, list):
        for v in value:
            _strings_in(v, out)


def plan_invocations(funcs: dict, calls: list, repeat: int, forms: bool = True) -> list:
    """Expand ``--invoke`` texts (``{i}`` is replaced by the call's number)
    ``repeat`` times. ``{i}`` is zero-padded to the width of the last
    call's number, and each call is labelled ``req-0001``...: fixed width, so
    no call's number or id is a prefix of another's (taint)."""
    from callscope.model.tokens import id_width, plant_tokens, request_id
    out = []
    n = 0
    total = repeat * len(calls)
    width = id_width(total)
    for r in range(repeat):
        for text in calls:
            n += 1
            text_i = text.replace("{i}", str(n))
            try:
                name, argtext = wave.split_call(text_i)
            except wave.WaveError as e:
                raise BadInput(f"--invoke {text!r}: {e}") from None
            f = funcs.get(name)
            if f is None:
                known = ", ".join(sorted(k for k in funcs if "#" not in k)) or "none"
                raise BadInput(f"--invoke {text!r}: the guest exports no function `{name}` (exports: {known})")
            try:
                args = wave.parse_args(argtext, f.ft)
            except wave.WaveError as e:
                raise BadInput(f"--invoke {text!r}: {e}") from None
            tokens: list = []
            _strings_in(args, tokens)
            tokens = [t for t in tokens if len(t) >= 4]
            out.append(Invocation(request_id(n, width), f, args, plant_tokens(tokens) if forms else tokens))
    return out


DEMO_INVOKE = 'handle({i}, "https://upstream.test/req-{i}")'

# The same defaults for every driver (--invoke calls, wasi:http requests, the
# demo): root calls kept in flight, and how many times a call list runs when
# the user gave none (the demo's DEMO_INVOKE, wasi:http's DEFAULT_HTTP_REQUESTS).
# A list the user gave runs once unless --repeat says otherwise.
DEFAULT_CONCURRENCY = 4
DEFAULT_REPEAT = 8


# ---------------------------------------------------------------------------
# wasi:http guests: synthetic requests to wasi:http/handler#handle

DEFAULT_HTTP_REQUESTS = ["GET /"]
_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}


def http_handler(exports: dict):
    """The guest's ``wasi:http/handler@0.3`` ``handle`` function, or None."""
    from callscope.wasi.http import find_handler
    try:
        return find_handler(exports)
    except KeyError:
        return None


@dataclasses.dataclass
class RequestSpec:
    method: str
    path: str
    headers: list  # (name, bytes)
    body: bytes = b""


def parse_request(text: str) -> RequestSpec:
    """``'GET /path name:value ...'``; ``body=TEXT`` (last) gives a body.
    A header value cannot hold spaces (use %20 style values)."""
    body = b""
    head, sep, rest = text.partition(" body=")
    if sep:
        body = rest.encode()
    words = head.split()
    if len(words) < 2:
        raise BadInput(f"--request {text!r}: expected 'METHOD /path [name:value ...]'")
    method, path = words[0], words[1]
    if method.upper() in _METHODS:
        method = method.upper()
    elif not method.isalpha():
        raise BadInput(f"--request {text!r}: {method!r} is not an HTTP method")
    if not path.startswith("/"):
        raise BadInput(f"--request {text!r}: the path must start with '/'")
    headers = []
    for w in words[2:]:
        name, colon, value = w.partition(":")
        if not colon or not name:
            raise BadInput(f"--request {text!r}: expected a header name:value, got {w!r}")
        headers.append((name.lower(), value.encode()))
    return RequestSpec(method, path, headers, body)


def read_requests_file(path: str) -> list:
    """One request a line (as ``--request`` takes it); blank lines and lines
    starting with ``#`` are skipped."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise BadInput(f"{path}: cannot read the requests file: {e.strerror or e}") from None
    out = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not out:
        raise BadInput(f"{path}: no requests in the file")
    return out


def request_exchange(spec: RequestSpec, rid: str, unique_path: bool = True, synthetic: bool = True,
                     forms: bool = True):
    """The ``Exchange`` for one synthetic or incoming request with id
    ``rid``: its root label (``req-3 GET /path``) and taint tokens (the id,
    which it carries as ``x-callscope-request-id`` and, unless the request
    has its own, ``x-request-id`` and (``synthetic`` ones) ``cdn-loop``; the
    path when no other request has it)."""
    from callscope.wasi.http import Exchange
    headers = list(spec.headers)
    names = {k for k, _ in headers}
    tokens = [rid]
    if "x-request-id" not in names:
        headers.append(("x-request-id", rid.encode()))
    else:
        tokens += [v.decode("latin-1") for k, v in headers if k == "x-request-id" and len(v) >= 4]
    headers.append(("x-callscope-request-id", rid.encode()))
    if synthetic and "cdn-loop" not in names:
        headers.append(("cdn-loop", f"callscope-{rid}".encode()))
    if unique_path and len(spec.path) >= 4:
        tokens.append(spec.path)
    from callscope.model.tokens import plant_tokens
    return Exchange(f"{rid} {spec.method} {spec.path}", spec.method, spec.path, headers, spec.body,
                    tokens=plant_tokens(tokens) if forms else tuple(dict.fromkeys(tokens)))


def plan_requests(texts: list, repeat: int, forms: bool = True) -> list:
    """The synthetic requests; ``forms``: plant each token's encoded forms
    too (only a recording observer searches for them)."""
    specs = [parse_request(t) for t in texts]
    paths: dict = {}
    for sp in specs:
        paths[sp.path] = paths.get(sp.path, 0) + 1
    from callscope.model.tokens import id_width, request_id
    width = id_width(repeat * len(specs))  # fixed: no request id is a prefix of another
    out = []
    for r in range(repeat):
        for sp in specs:
            out.append(request_exchange(sp, request_id(len(out) + 1, width), repeat == 1 and paths[sp.path] == 1,
                                        forms=forms))
    return out


def _configure_upstream(wasi, opts: RunOptions) -> None:
    from callscope.wasi.http import RealUpstream, Upstream, http_state
    st = http_state(wasi)
    if opts.upstream:
        if opts.upstream_delay_ns is not None or opts.upstream_status is not None or opts.upstream_body is not None:
            raise BadInput("--upstream-delay/--upstream-status/--upstream-body are for the simulated "
                           "upstream; drop them with --upstream URL")
        try:
            st.upstream = RealUpstream(opts.upstream)
        except ValueError as e:
            raise BadInput(f"--upstream: {e}") from None
    else:
        if opts.upstream_status is not None and not 100 <= opts.upstream_status <= 999:
            raise BadInput(f"--upstream-status {opts.upstream_status}: not an HTTP status")
        st.upstream = Upstream(status=opts.upstream_status, delay=opts.upstream_delay_ns,
                               body=None if opts.upstream_body is None else opts.upstream_body.encode())


def _drive_http(wasi, handle, exchanges: list, concurrency: int, result: "RunResult",
                watchdog: "_Watchdog") -> None:
    """Serve ``exchanges`` to ``handle``, up to ``concurrency`` at once on the
    one instance, then run what the guest spawned until nothing is left."""
    from callscope.wasi.http import HttpServer
    server = HttpServer(wasi, handle)
    result.exchanges = exchanges

    def check():
        watchdog.check()

    orig_start = server.start

    def start(ex):
        result.calls_started += 1
        orig_start(ex)

    server.start = start
    try:
        server.serve(exchanges, concurrency=concurrency, check=check)
    finally:
        result.results = [(ex.label, ex.status if ex.error is None else {"error": ex.error})
                          for ex in exchanges if ex.done]
        result.calls_done = len(result.results)


def response_counts(exchanges: list) -> list:
    """``[(what, count)]``: each distinct status (or error) of the answered
    exchanges, most frequent first."""
    counts: dict = {}
    for ex in exchanges:
        if not ex.done and ex.status is None:
            what = "unanswered"
        elif ex.error is not None:
            err = ex.error
            if isinstance(err, dict):
                (k, v), = err.items()
                err = k if v in (None, {"none": None}) else f"{k}({v})"
            what = f"error {err}"
        else:
            what = str(ex.status)
        counts[what] = counts.get(what, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


# ---------------------------------------------------------------------------
# reading a guest: a component binary, or component text as wasmtime takes it


def read_guest(path: str) -> bytes:
    """The component binary in ``path``. A file that is not a binary
    (``\0asm``) is read as component text (``.wat``; a ``.wast`` holding one
    component) and compiled with wasmtime's wat2wasm, as ``wasmtime run``
    does. Raises :class:`BadInput` with one line naming the problem."""
    p = Path(path)
    if not p.exists():
        raise BadInput(f"{path}: no such file")
    if p.is_dir():
        raise BadInput(f"{path}: is a directory, not a component")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise BadInput(f"{path}: cannot read: {e.strerror or e}") from None
    if data[:4] == b"\0asm":
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{p.name}: not a component: neither a binary (\\0asm) nor UTF-8 text") from None
    if not text.lstrip().startswith(("(", ";;")):
        raise BadInput(f"{p.name}: not a component: neither a binary (\\0asm) nor component text")
    import wasmtime
    try:
        return bytes(wasmtime.wat2wasm(text))
    except Exception as e:  # wasmtime.WasmtimeError: the parser's message, several lines
        raise BadInput(f"{p.name}: not a component: the text does not parse: {_wat_error(e)}") from None


def _wat_error(e: BaseException) -> str:
    """wat2wasm's message in one line: the message and where it is
    (``--> <anon>:3:4`` becomes ``at line 3, column 4``), control
    characters escaped (the text is the user's)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    msg = lines[0]
    m = next((re.search(r":(\d+):(\d+)$", ln) for ln in lines if ln.startswith("-->")), None)
    if m:
        msg += f" at line {m.group(1)}, column {m.group(2)}"
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in msg)


# ---------------------------------------------------------------------------
# compiling a large guest: progress on a terminal, one line otherwise


def _core_modules(component, out: list) -> list:
    for d in component.definitions:
        if isinstance(d, A.CoreModuleDef):
            out.append(d.data)
        elif isinstance(d, A.ComponentDef):
            _core_modules(d.component, out)
    return out


def precompile(host, guest, err=None, tty: Optional[bool] = None) -> int:
    """Compile the guest's core modules before instantiation when some are
    not in the module disk cache yet (the first run of a guest: ~13 s for a
    21 MB componentize-py guest, 1 s once cached), saying so on ``err``
    (stderr). On a terminal (``tty``; default: whether ``err`` is one) a
    progress line ``compiling 14 core modules (21 MB)… 3/14`` is rewritten
    in place; otherwise one line is written, its start before the compile
    and its end (the time taken) after. ``guest``: the component's bytes or
    what ``Host.decode`` made of them. Returns how many modules were
    compiled afresh. Decoding errors are left to ``instantiate``."""
    import hashlib
    from callscope.component import binary
    from callscope.component.linker import _CACHE_MIN_BYTES, _cache_path
    if err is None:
        err = sys.stderr
    if tty is None:
        try:
            tty = err.isatty()
        except (AttributeError, ValueError):
            tty = False
    try:
        component = guest if isinstance(guest, A.Component) else binary.decode(guest)
    except DecodeError:
        return 0
    mods = _core_modules(component, [])

    def cached(data) -> bool:
        if len(data) < _CACHE_MIN_BYTES:
            return True  # small: compiled in no time
        p = _cache_path(hashlib.sha256(data).digest())
        return p is not None and os.path.exists(p)

    todo = [m for m in mods if not cached(m)]
    if not todo:
        return 0
    what = f"callscope: compiling {len(mods)} core modules ({core_modules_mb(mods)})"
    head = f"{what}…"
    t0 = time.perf_counter()
    if not tty:
        err.write(f"{what} for the first run of this guest…")
        err.flush()
    for i, data in enumerate(mods, 1):
        if tty:
            err.write(f"\r{head} {i - 1}/{len(mods)}")
            err.flush()
        try:
            host.linker.compile(bytes(data))
        except LinkError:
            break  # instantiate reports it
    took = f"in {time.perf_counter() - t0:.1f} s (cached for next time)"
    err.write(f"\r{head} {len(mods)}/{len(mods)} {took}\n" if tty else f" done {took}\n")
    err.flush()
    return len(todo)


def core_modules_mb(mods: list) -> str:
    """The core modules' total size as the progress line shows it."""
    return f"{sum(len(m) for m in mods) / 1e6:.0f} MB"


# ---------------------------------------------------------------------------
# the run


class _Watchdog:
    """Bumps the engine's epoch so a guest stuck in wasm is interrupted once
    the run's wall-clock timeout has passed."""

    def __init__(self, engine, wasm_store, timeout: Optional[float]):
        self.engine = engine
        self.timeout = timeout
        self.expired = False
        self._stop = threading.Event()
        self._thread = None
        if timeout is not None:
            wasm_store.set_epoch_deadline(1)
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        else:
            wasm_store.set_epoch_deadline(1 << 62)

    def _run(self):
        if not self._stop.wait(self.timeout):
            self.expired = True
            self.engine.increment_epoch()

    def stop(self):
        self._stop.set()

    limit_hit: Optional[str] = None
    signals: Any = None  # the run's _Signals (run() sets it)

    def check(self) -> None:
        """Raise the Trap that stops the run: the timeout passed, a signal
        came, or a limit was reached."""
        if self.expired:
            raise Trap("timeout")
        if self.limit_hit or (self.signals is not None and self.signals.signum):
            raise Trap("stopped")

    def limit(self, message: str) -> None:
        """A limit was reached (the trace's size): stop the guest as for a timeout."""
        if self.limit_hit is None:
            self.limit_hit = message
            self.engine.increment_epoch()


class _Signals:
    """SIGINT and SIGTERM stop the run, even while the guest spins in wasm:
    the signal's byte arrives on a wakeup fd (written by the interpreter's C
    handler, so also while the main thread is inside wasmtime), and a thread
    reading it bumps the engine's epoch (the guest traps at its next epoch
    check) and wakes the event loop. The run then ends as a fault
    "interrupted", the trace closed with its footer; exit 128 + signal."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self, engine, wasm_store, store):
        self.signum = 0
        self._engine = engine
        self._store = store
        self._old: dict = {}
        self._thread = None
        if threading.current_thread() is not threading.main_thread():
            return  # (signals reach the main thread only; e.g. run() from a test's thread)
        import signal as _signal

        wasm_store.set_epoch_deadline(1)  # (the watchdog's deadline too: one epoch bump traps)
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)
        try:
            self._old_fd = _signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        except ValueError:
            os.close(self._r)
            os.close(self._w)
            return
        for name in self.SIGNALS:
            sig = getattr(_signal, name)
            self._old[sig] = _signal.signal(sig, self._on_signal)
        self._thread = threading.Thread(target=self._watch, name="callscope-signals", daemon=True)
        self._thread.start()

    def _on_signal(self, signum, frame):  # (the Python-level handler: runs between bytecodes)
        self._stop(signum)

    def _stop(self, signum: int) -> None:
        if not self.signum:
            self.signum = signum
        self._engine.increment_epoch()
        self._store.post(lambda: None, external_done=False)  # wake a loop waiting for I/O

    def _watch(self):
        while True:
            try:
                b = os.read(self._r, 1)
            except OSError:
                return
            if not b or b == b"\0":
                return
            self._stop(b[0])

    def close(self) -> None:
        if self._thread is None:
            return
        import signal as _signal

        for sig, h in self._old.items():
            _signal.signal(sig, h)
        _signal.set_wakeup_fd(self._old_fd)
        os.write(self._w, b"\0")
        self._thread.join()
        os.close(self._r)
        os.close(self._w)
        self._thread = None

    @property
    def name(self) -> str:
        import signal as _signal

        try:
            return _signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"


def run(opts: RunOptions, out=sys.stdout) -> RunResult:
    from callscope.host import Host

    if opts.concurrency is not None and opts.concurrency < 1:
        raise BadInput("--concurrency must be at least 1")
    if opts.repeat is not None and opts.repeat < 1:
        raise BadInput("--repeat must be at least 1")
    if opts.guest is None:
        from callscope.demo import demo_component, MODES
        if opts.demo not in MODES:
            raise BadInput(f"unknown demo {opts.demo!r} (one of: {', '.join(MODES)})")
        guest_bytes = demo_component(opts.demo)
        guest_name = f"demo-{opts.demo}"
        calls = opts.invokes or [DEMO_INVOKE]
    else:
        guest_bytes = read_guest(opts.guest)
        guest_name = Path(opts.guest).name
        calls = opts.invokes
    default_list = not opts.invokes and not opts.requests
    if opts.concurrency is None:
        opts.concurrency = DEFAULT_CONCURRENCY
    if opts.repeat is None:
        opts.repeat = DEFAULT_REPEAT if default_list else 1
    trace_path = None
    recorder = None
    observer = None
    oracle_keys = None
    clocks = None  # the clock readings the oracle holds equal (callscope.wasi.core.ClockLog)
    host = Host(seed=opts.seed)
    store = host.store
    store.policy = opts.policy
    if opts.max_memory:  # (wasmtime's store limiter: memory.grow past it fails)
        host.wasm_store.set_limits(memory_size=opts.max_memory)
    if opts.record:
        from callscope.trace.recorder import OutputError, Recorder, check_output
        trace_path = opts.output or f"{Path(guest_name).stem}.trace"
        try:  # (never the guest itself; an existing file is replaced only when the run ends)
            check_output(trace_path, [opts.guest])
        except OutputError as e:
            host.close()
            raise BadInput(str(e)) from None
        try:
            recorder = Recorder(trace_path, guest=guest_bytes, guest_name=guest_name, seed=opts.seed,
                                argv=opts.argv, clock=store, clock_attr="now_ns", partial=True)
        except OSError as e:
            host.close()
            raise BadInput(f"{trace_path}: cannot write the trace: {e.strerror or e}") from None
        observer = RecordingObserver(recorder, opts.taint_window)
        store.observer = observer
    result = RunResult(trace_path)
    t0 = time.perf_counter()
    watchdog = _Watchdog(host.engine, host.wasm_store, opts.timeout)
    signals = watchdog.signals = _Signals(host.engine, host.wasm_store, store)
    if recorder is not None:
        recorder.start_flush_timer()  # (the 100 ms rule also while the guest spins in wasm)
        if opts.max_events or opts.max_trace_size:
            recorder.set_limits(opts.max_events, opts.max_trace_size, on_limit=lambda msg: watchdog.limit(msg))
    bad_input = False
    try:
        if opts.oracle and observer is not None:
            from callscope.oracle import ConcurrentKeys, Keyer
            from callscope.wasi.core import ClockLog
            oracle_keys = ConcurrentKeys(observer, Keyer())
            clocks = ClockLog()
        _workload(host, opts, guest_bytes, guest_name, calls, result, watchdog, t0, clocks=clocks)
    except BadInput:
        bad_input = True
        raise
    except Trap as e:
        kind = ("interrupted" if signals.signum else "timeout" if watchdog.expired
                else "limit" if watchdog.limit_hit else ("deadlock" if "deadlock" in e.message else "trap"))
        result.fault = kind
        result.fault_message = ("the run exceeded its timeout of %gs" % opts.timeout) if kind == "timeout" \
            else f"stopped by {signals.name}" if kind == "interrupted" \
            else watchdog.limit_hit if kind == "limit" else one_line(e.message)
        if kind == "interrupted":
            result.signum = signals.signum
        if observer is not None:
            if kind == "trap" and not e.recorded:  # (the trapping thread records its task)
                observer.trap(None, result.fault_message)
            elif kind in ("timeout", "interrupted", "limit"):
                observer.note(f"{kind}: {result.fault_message}")
    finally:
        signals.close()
        watchdog.stop()
        result.pending = pending_tasks(store)
        result.sim_time_ns = store.now_ns
        if oracle_keys is not None and not bad_input:
            result.oracle = _run_oracle(opts, guest_bytes, guest_name, calls, oracle_keys, recorder, clocks)
        if recorder is not None:
            if bad_input:  # nothing ran: no trace, and the file that was there stays as it was
                recorder.discard()
            else:
                recorder.close()
        # (the trace's last chunk and footer are written within the run's time)
        result.elapsed_s = time.perf_counter() - t0
        host.close()
    return result


def _workload(host, opts: RunOptions, guest_bytes: bytes, guest_name: str, calls: list, result: RunResult,
              watchdog: "_Watchdog", t0: float, serial=None, clocks=None) -> None:
    """Instantiate the guest on ``host`` and drive the workload: concurrently
    (``opts.concurrency``), or with ``serial`` (the oracle's observer) one
    root at a time, each run to completion or quiescence first."""
    store = host.store
    from callscope.wasi import Wasi
    provider = ImportProvider(opts, store)
    wasi = Wasi(store, allow_unknown=opts.allow_unknown_imports, args=[guest_name])
    wasi.clocks = clocks
    if opts.guest is not None:
        _configure_upstream(wasi, opts)
    try:
        component = host.decode(guest_bytes)  # once: the precompile and the instance read it
        if opts.guest is not None:
            precompile(host, component)
        exports = host.instantiate(component, {}, name=guest_name,
                                   resolver=combined_resolver(provider, wasi))
    except DecodeError as e:
        raise BadInput(f"{guest_name}: not a component: {e}") from None
    except LinkError as e:
        raise BadInput(f"{guest_name}: cannot instantiate: {e}") from None
    result.instantiate_s = time.perf_counter() - t0
    unused = set(provider.specs) - provider.used_specs
    if unused:
        raise BadInput(f"--import {sorted(unused)[0]}: the guest has no such import")
    handler = http_handler(exports.exports)
    if opts.requests and handler is None:
        raise BadInput(f"{guest_name}: --request needs a guest exporting wasi:http/handler@0.3")
    if handler is not None and (opts.requests or not calls):
        if opts.invokes and opts.requests:
            raise BadInput("give either --invoke or --request, not both")
        texts = opts.requests or DEFAULT_HTTP_REQUESTS
        exchanges = plan_requests(texts, opts.repeat, forms=opts.record and serial is None)
        if serial is not None:
            _serve_serial(wasi, handler, exchanges, serial, result, watchdog)
        else:
            _drive_http(wasi, handler, exchanges, opts.concurrency, result, watchdog)
    else:
        if not calls:
            raise BadInput(f"{guest_name}: nothing to invoke; give --invoke 'func(args)' "
                           f"(exports: {', '.join(sorted(k for k in find_funcs(exports.exports) if '#' not in k))})")
        plan = plan_invocations(find_funcs(exports.exports), calls, opts.repeat,
                                forms=opts.record and serial is None)
        if serial is not None:
            _drive_serial(host, plan, serial, result, watchdog)
        else:
            _drive(host, plan, opts.concurrency, result, watchdog)


def _run_oracle(opts: RunOptions, guest_bytes: bytes, guest_name: str, calls: list, keys, recorder,
                clocks=None):
    """The serial run on a fresh instance, the matching, and its records in
    the trace (``oracle.verdict`` per import, ``oracle.end``)."""
    from callscope.host import Host
    from callscope.oracle import OracleResult, SerialObserver, match
    serial = SerialObserver(keys.keyer)
    host = Host(seed=opts.seed)
    host.store.policy = opts.policy
    host.store.observer = serial
    sres = RunResult(None)
    watchdog = _Watchdog(host.engine, host.wasm_store, opts.timeout)
    status = "ran"
    try:
        _workload(host, opts, guest_bytes, guest_name, calls, sres, watchdog, time.perf_counter(), serial=serial,
                  clocks=clocks.replay() if clocks is not None else None)
    except Trap as e:
        # what ran before the fault still judges the imports it explains
        status = "ran" if serial.calls else f"failed: the serial run: {one_line(e.message)}"
        if serial.calls:
            sres.fault_message = one_line(e.message)
    except Exception as e:  # the oracle must not lose the recorded run's trace
        status = f"failed: {type(e).__name__}: {one_line(str(e))}"
    finally:
        watchdog.stop()
        host.close()
    concurrent = [(c, label, k) for c, label, _root, k in keys.calls]
    res = match(concurrent, serial.calls) if status == "ran" else OracleResult(status=status)
    res.status = status
    if recorder is not None:
        ids = keys.roots
        for call_id, (verdict, labels, n) in sorted(res.verdicts.items()):
            recorder.oracle_verdict(call_id, verdict, [ids[lb] for lb in labels if lb in ids], n)
        recorder.oracle_end(status, res.serial_imports, res.matched, res.unmatched)
    return res


def _drive_serial(host, plan: list, serial, result: RunResult, watchdog: "_Watchdog") -> None:
    """The oracle's serial run of ``--invoke`` calls: one root at a time, the
    next admitted when every task of the previous has exited or nothing can
    run (quiescent)."""
    store = host.store
    done: list = []
    try:
        for inv in plan:
            serial.alive = inv.label
            store.next_root = (inv.label, ())
            result.calls_started += 1
            store.invoke(inv.func, lambda inv=inv: list(inv.args), lambda r, inv=inv: done.append((inv.label, r)))
            _drain(store, watchdog)
    finally:
        result.results = done
        result.calls_done = len(done)


def _serve_serial(wasi, handle, exchanges: list, serial, result: RunResult, watchdog: "_Watchdog") -> None:
    """The oracle's serial run of wasi:http requests: one at a time, the next
    when the previous is answered and its task has exited, or nothing can
    run (quiescent)."""
    from callscope.wasi.http import HttpServer
    server = HttpServer(wasi, handle)
    store = wasi.store
    for ex in exchanges:
        serial.alive = ex.label
        result.calls_started += 1
        server.start(ex)
        limit = store.now_ns + DRAIN_LIMIT_NS
        while server.unfinished() and store.now_ns <= limit:
            if not store.tick():
                break
            watchdog.check()
    _drain(store, watchdog)


# How long (simulated time) work left after the roots is driven before the
# run stops and reports it as pending: a guest with a periodic timer (a
# flusher that never ends) would otherwise run until --timeout, or forever.
DRAIN_LIMIT_NS = 60_000_000_000


def _drain(store, watchdog: "_Watchdog") -> None:
    """Run until nothing can run, the timeout, or DRAIN_LIMIT_NS of simulated
    time have passed (what is left is reported as pending)."""
    limit = store.now_ns + DRAIN_LIMIT_NS
    while store.now_ns <= limit and store.tick():
        watchdog.check()


def pending_tasks(store) -> list:
    """The tasks with a thread still waiting: ``[(task id, root id, root label)]``."""
    out: dict = {}
    for th in list(getattr(store, "waiting", ())):
        task = getattr(th, "task", None)
        if task is None or task.id in out:
            continue
        root = task.root
        out[task.id] = (task.id, root.id, root.label)
    return sorted(out.values())


def _drive(host, plan: list, concurrency: int, result: RunResult, watchdog: _Watchdog) -> None:
    """Keep up to ``concurrency`` root calls in flight on the instance."""
    store = host.store
    pending = list(plan)
    pending.reverse()
    in_flight = [0]
    done: list = []

    def start(inv: Invocation):
        def on_start():
            return list(inv.args)

        def on_resolve(r, inv=inv):
            in_flight[0] -= 1
            done.append((inv.label, r))

        store.next_root = (inv.label, inv.tokens)
        in_flight[0] += 1
        result.calls_started += 1
        store.invoke(inv.func, on_start, on_resolve)

    try:
        while pending or in_flight[0]:
            while pending and in_flight[0] < concurrency:
                start(pending.pop())
            if not in_flight[0]:
                continue
            if not store.tick():
                if store.observer is not None:
                    store.observer.deadlock("deadlock detected: event loop cannot make further progress")
                raise Trap("deadlock detected: event loop cannot make further progress "
                           f"({in_flight[0]} call(s) still waiting)")
            watchdog.check()
        # every root returned: run what they spawned until it has all exited
        # (or nothing can run); a guest's work after its last response counts
        _drain(store, watchdog)
    finally:  # a trap, deadlock or timeout too: count the calls that did return
        result.results = done
        result.calls_done = len(done)

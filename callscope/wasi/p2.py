"""WASI 0.2.x: what componentize-py's libc (and its preview1 adapter) imports.

io (poll, streams, error), cli (environment, exit, stdio, terminal-*),
clocks (monotonic, wall), random (random, insecure, insecure-seed),
filesystem (types, preopens: no preopens, every operation refused) and
sockets (every operation answers access-denied / not-permitted).

Time is the store's simulated clock, and "random" bytes come from a seeded
generator: a run is the same run every time, which record and replay need.
Blocking calls (``pollable.block``, ``poll``) advance simulated time.
"""

from __future__ import annotations

from typing import Optional

from .core import Interface, WasiExit

P2 = "@0.2"
IO_POLL = "wasi:io/poll" + P2
IO_STREAMS = "wasi:io/streams" + P2
IO_ERROR = "wasi:io/error" + P2

_CLOSED = {"error": {"closed": None}}
_NONE = {"none": None}


class Pollable:
    """Ready at ``deadline_ns`` of simulated time (None: always ready)."""

    __slots__ = ("deadline_ns",)

    def __init__(self, deadline_ns: Optional[int] = None):
        self.deadline_ns = deadline_ns

    def ready(self, now: int) -> bool:
        return self.deadline_ns is None or now >= self.deadline_ns


def new_pollable(wasi, deadline_ns: Optional[int] = None) -> int:
    return wasi.resource(IO_POLL, "pollable").new(Pollable(deadline_ns))


class InputStream:
    __slots__ = ("data", "pos", "name")

    def __init__(self, data: bytes, name: str):
        self.data = data
        self.pos = 0
        self.name = name


class OutputStream:
    __slots__ = ("sink", "name", "written")

    def __init__(self, sink, name: str):
        self.sink = sink
        self.name = name
        self.written = 0


class IoError:
    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


# ---------------------------------------------------------------------------
# wasi:io


class IoPoll(Interface):
    name = IO_POLL
    resources = {"pollable": None}

    def funcs(self):
        pol = self.res("pollable")
        store = self.wasi.store

        def ready(call, rep):
            return pol.get(rep).ready(store.now_ns)

        def block(call, rep):
            p = pol.get(rep)
            if p.ready(store.now_ns):
                return None
            return call.resolve_later(p.deadline_ns - store.now_ns, [])

        def poll(call, reps):
            if not reps:
                from callscope.runtime.errors import Trap
                raise Trap("wasi:io/poll.poll: empty list of pollables")
            ps = [pol.get(r) for r in reps]
            now = store.now_ns
            hit = [i for i, p in enumerate(ps) if p.ready(now)]
            if hit:
                return hit
            when = min(p.deadline_ns for p in ps)
            return call.resolve_later(when - now, [[i for i, p in enumerate(ps) if p.ready(when)]])

        return {"[method]pollable.ready": ready, "[method]pollable.block": block, "poll": poll}


class IoError_(Interface):
    name = IO_ERROR
    resources = {"error": None}

    def funcs(self):
        err = self.res("error")
        return {"[method]error.to-debug-string": lambda call, rep: err.get(rep).message}


class IoStreams(Interface):
    name = IO_STREAMS
    resources = {"input-stream": None, "output-stream": "_flush_on_drop"}

    def _flush_on_drop(self, out: OutputStream) -> None:
        f = getattr(out.sink, "flush", None)
        if f is not None:
            f()

    def funcs(self):
        ins = self.res("input-stream")
        outs = self.res("output-stream")
        wasi = self.wasi

        def read(call, rep, n):
            s = ins.get(rep)
            if s.pos >= len(s.data):
                return _CLOSED
            chunk = s.data[s.pos:s.pos + n]
            s.pos += len(chunk)
            return {"ok": chunk}

        def skip(call, rep, n):
            r = read(call, rep, n)
            return r if "error" in r else {"ok": len(r["ok"])}

        def subscribe(call, rep):
            return new_pollable(wasi)

        def check_write(call, rep):
            outs.get(rep)
            return {"ok": 1 << 20}

        def write(call, rep, contents):
            s = outs.get(rep)
            data = bytes(contents)
            s.sink.write(data)
            s.written += len(data)
            return {"ok": None}

        def flush(call, rep):
            s = outs.get(rep)
            f = getattr(s.sink, "flush", None)
            if f is not None:
                f()
            return {"ok": None}

        def write_and_flush(call, rep, contents):
            write(call, rep, contents)
            return flush(call, rep)

        def write_zeroes(call, rep, n):
            return write(call, rep, bytes(n))

        def write_zeroes_and_flush(call, rep, n):
            write(call, rep, bytes(n))
            return flush(call, rep)

        def splice(call, rep, src, n):
            r = read(call, src, n)
            if "error" in r:
                return r
            write(call, rep, r["ok"])
            return {"ok": len(r["ok"])}

        return {
            "[method]input-stream.read": read,
            "[method]input-stream.blocking-read": read,
            "[method]input-stream.skip": skip,
            "[method]input-stream.blocking-skip": skip,
            "[method]input-stream.subscribe": subscribe,
            "[method]output-stream.check-write": check_write,
            "[method]output-stream.write": write,
            "[method]output-stream.blocking-write-and-flush": write_and_flush,
            "[method]output-stream.flush": flush,
            "[method]output-stream.blocking-flush": flush,
            "[method]output-stream.subscribe": subscribe,
            "[method]output-stream.write-zeroes": write_zeroes,
            "[method]output-stream.blocking-write-zeroes-and-flush": write_zeroes_and_flush,
            "[method]output-stream.splice": splice,
            "[method]output-stream.blocking-splice": splice,
        }


# ---------------------------------------------------------------------------
# wasi:cli


class CliEnvironment(Interface):
    name = "wasi:cli/environment" + P2

    def funcs(self):
        w = self.wasi
        return {
            "get-environment": lambda call: [(k, v) for k, v in w.env.items()],
            "get-arguments": lambda call: list(w.args),
            "initial-cwd": lambda call: _NONE,
        }


class CliExit(Interface):
    name = "wasi:cli/exit" + P2

    def funcs(self):
        def exit_(call, status):
            raise WasiExit(0 if "ok" in status else 1)

        def exit_with_code(call, code):
            raise WasiExit(code)

        return {"exit": exit_, "exit-with-code": exit_with_code}


def _stdio(iface_name: str, func: str, make):
    class Stdio(Interface):
        name = iface_name

        def funcs(self):
            return {func: lambda call: make(self.wasi)}

    Stdio.__name__ = f"Cli_{func.replace('-', '_')}"
    return Stdio


def _stdin(w):
    return w.resource(IO_STREAMS, "input-stream").new(InputStream(w.stdin, "stdin"))


def _stdout(w):
    return w.resource(IO_STREAMS, "output-stream").new(OutputStream(w.stdout, "stdout"))


def _stderr(w):
    return w.resource(IO_STREAMS, "output-stream").new(OutputStream(w.stderr, "stderr"))


CliStdin = _stdio("wasi:cli/stdin" + P2, "get-stdin", _stdin)
CliStdout = _stdio("wasi:cli/stdout" + P2, "get-stdout", _stdout)
CliStderr = _stdio("wasi:cli/stderr" + P2, "get-stderr", _stderr)


class CliTerminalInput(Interface):
    name = "wasi:cli/terminal-input" + P2
    resources = {"terminal-input": None}


class CliTerminalOutput(Interface):
    name = "wasi:cli/terminal-output" + P2
    resources = {"terminal-output": None}


CliTerminalStdin = _stdio("wasi:cli/terminal-stdin" + P2, "get-terminal-stdin", lambda w: _NONE)
CliTerminalStdout = _stdio("wasi:cli/terminal-stdout" + P2, "get-terminal-stdout", lambda w: _NONE)
CliTerminalStderr = _stdio("wasi:cli/terminal-stderr" + P2, "get-terminal-stderr", lambda w: _NONE)


# ---------------------------------------------------------------------------
# wasi:clocks, wasi:random


class MonotonicClock(Interface):
    name = "wasi:clocks/monotonic-clock" + P2

    def funcs(self):
        w = self.wasi
        store = w.store
        return {
            "now": lambda call: w.clock_now(call, "monotonic"),
            "resolution": lambda call: 1,
            "subscribe-instant": lambda call, when: new_pollable(w, when),
            "subscribe-duration": lambda call, d: new_pollable(w, store.now_ns + d),
        }


def wall_clock_now(w, call=None) -> dict:
    ns = w.clock_now(call, "wall")
    return {"seconds": w.wall_clock_base_s + ns // 1_000_000_000, "nanoseconds": ns % 1_000_000_000}


class WallClock(Interface):
    name = "wasi:clocks/wall-clock" + P2

    def funcs(self):
        w = self.wasi
        return {
            "now": lambda call: wall_clock_now(w, call),
            "resolution": lambda call: {"seconds": 0, "nanoseconds": 1},
        }


def _random_funcs(w, prefix: str = ""):
    return {
        f"get-{prefix}random-bytes": lambda call, n: w.rng_for(call).randbytes(n),
        f"get-{prefix}random-u64": lambda call: w.rng_for(call).getrandbits(64),
    }


class Random(Interface):
    name = "wasi:random/random" + P2

    def funcs(self):
        return _random_funcs(self.wasi)


class Insecure(Interface):
    name = "wasi:random/insecure" + P2

    def funcs(self):
        return _random_funcs(self.wasi, "insecure-")


class InsecureSeed(Interface):
    name = "wasi:random/insecure-seed" + P2

    def funcs(self):
        w = self.wasi
        return {"insecure-seed": lambda call: (w.rng_for(call).getrandbits(64), w.rng_for(call).getrandbits(64))}


# ---------------------------------------------------------------------------
# wasi:filesystem (no preopens), wasi:sockets (not permitted)


class _Refusing(Interface):
    """Functions returning ``result<_, error-code>`` are refused by the core's
    fallback; the rest (methods on resources the guest can never obtain)
    trap if ever called."""

    refusing = True


class FilesystemTypes(_Refusing):
    name = "wasi:filesystem/types" + P2
    resources = {"descriptor": None, "directory-entry-stream": None}

    def funcs(self):
        return {"filesystem-error-code": lambda call, err: _NONE}


class FilesystemPreopens(Interface):
    name = "wasi:filesystem/preopens" + P2

    def funcs(self):
        return {"get-directories": lambda call: []}


class SocketsNetwork(_Refusing):
    name = "wasi:sockets/network" + P2
    resources = {"network": None}

    def funcs(self):
        return {"network-error-code": lambda call, err: _NONE}


class SocketsInstanceNetwork(Interface):
    name = "wasi:sockets/instance-network" + P2

    def funcs(self):
        net = self.wasi.resource("wasi:sockets/network" + P2, "network")
        return {"instance-network": lambda call: net.new("network")}


class SocketsUdp(_Refusing):
    name = "wasi:sockets/udp" + P2
    resources = {"udp-socket": None, "incoming-datagram-stream": None, "outgoing-datagram-stream": None}


class SocketsUdpCreate(_Refusing):
    name = "wasi:sockets/udp-create-socket" + P2


class SocketsTcp(_Refusing):
    name = "wasi:sockets/tcp" + P2
    resources = {"tcp-socket": None}


class SocketsTcpCreate(_Refusing):
    name = "wasi:sockets/tcp-create-socket" + P2


class SocketsIpNameLookup(_Refusing):
    name = "wasi:sockets/ip-name-lookup" + P2
    resources = {"resolve-address-stream": None}


INTERFACES = [
    IoPoll, IoError_, IoStreams,
    CliEnvironment, CliExit, CliStdin, CliStdout, CliStderr,
    CliTerminalInput, CliTerminalOutput, CliTerminalStdin, CliTerminalStdout, CliTerminalStderr,
    MonotonicClock, WallClock, Random, Insecure, InsecureSeed,
    FilesystemTypes, FilesystemPreopens,
    SocketsNetwork, SocketsInstanceNetwork, SocketsUdp, SocketsUdpCreate, SocketsTcp, SocketsTcpCreate,
    SocketsIpNameLookup,
]

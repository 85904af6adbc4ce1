"""WASI 0.3.x: cli, clocks and random, as a wasi:http/service@0.3.0 guest
imports them. Standard streams are component-model streams; waits are
async functions resolved on the store's simulated clock."""

from __future__ import annotations

from .core import Interface, WasiExit
from .hoststreams import StreamReader, StreamWriter, future_with
from .p2 import _NONE, CliEnvironment, CliExit, wall_clock_now

P3 = "@0.3"


class CliEnvironment3(CliEnvironment):
    name = "wasi:cli/environment" + P3

    def funcs(self):
        f = super().funcs()
        f["get-initial-cwd"] = f.pop("initial-cwd")  # renamed in 0.3
        return f


class CliExit3(CliExit):
    name = "wasi:cli/exit" + P3


class CliTypes3(Interface):
    name = "wasi:cli/types" + P3


def _write_via_stream(iface: Interface, sink_attr: str):
    def write_via_stream(call, shared):
        w = iface.wasi
        ft = iface.func_types["write-via-stream"]
        done_t = ft.result[0].t
        sink = getattr(w, sink_attr)
        result = {"done": None}

        def on_data(data: bytes):
            sink.write(data)

        def on_end():
            f = getattr(sink, "flush", None)
            if f is not None:
                f()

        StreamReader(w.store, shared, on_data, on_end)
        # The write is reported done at once: the sink never fails.
        return future_with(done_t, {"ok": None})

    return write_via_stream


class CliStdout3(Interface):
    name = "wasi:cli/stdout" + P3

    def funcs(self):
        return {"write-via-stream": _write_via_stream(self, "stdout")}


class CliStderr3(Interface):
    name = "wasi:cli/stderr" + P3

    def funcs(self):
        return {"write-via-stream": _write_via_stream(self, "stderr")}


class CliStdin3(Interface):
    name = "wasi:cli/stdin" + P3

    def funcs(self):
        def read_via_stream(call):
            w = self.wasi
            ft = self.func_types["read-via-stream"]
            stream_t, done_t = ft.result[0].ts[0].t, ft.result[0].ts[1].t
            s = StreamWriter(w.store, stream_t, w.stdin, close=True)
            return (s.shared, future_with(done_t, {"ok": None}))

        return {"read-via-stream": read_via_stream}


class CliTerminalInput3(Interface):
    name = "wasi:cli/terminal-input" + P3
    resources = {"terminal-input": None}


class CliTerminalOutput3(Interface):
    name = "wasi:cli/terminal-output" + P3
    resources = {"terminal-output": None}


def _none_getter(iface_name: str, func: str):
    class Getter(Interface):
        name = iface_name

        def funcs(self):
            return {func: lambda call: _NONE}

    Getter.__name__ = f"Cli3_{func.replace('-', '_')}"
    return Getter


class ClocksTypes3(Interface):
    name = "wasi:clocks/types" + P3


class MonotonicClock3(Interface):
    name = "wasi:clocks/monotonic-clock" + P3

    def funcs(self):
        w = self.wasi
        store = w.store

        def wait_until(call, when):
            return call.resolve_later(max(0, when - store.now_ns), [])

        def wait_for(call, d):
            return call.resolve_later(d, [])

        return {
            "now": lambda call: w.clock_now(call, "monotonic"),
            "get-resolution": lambda call: 1,
            "wait-until": wait_until,
            "wait-for": wait_for,
        }


class SystemClock3(Interface):
    name = "wasi:clocks/system-clock" + P3

    def funcs(self):
        w = self.wasi
        return {"now": lambda call: wall_clock_now(w, call), "get-resolution": lambda call: 1}


class Timezone3(Interface):
    name = "wasi:clocks/timezone" + P3

    def funcs(self):
        return {
            "iana-id": lambda call: {"some": "UTC"},
            "utc-offset": lambda call, when: {"some": 0},
            "to-debug-string": lambda call: "UTC",
        }


class Random3(Interface):
    name = "wasi:random/random" + P3

    def funcs(self):
        w = self.wasi
        return {"get-random-bytes": lambda call, n: w.rng_for(call).randbytes(n),
                "get-random-u64": lambda call: w.rng_for(call).getrandbits(64)}


class Insecure3(Interface):
    name = "wasi:random/insecure" + P3

    def funcs(self):
        w = self.wasi
        return {"get-insecure-random-bytes": lambda call, n: w.rng_for(call).randbytes(n),
                "get-insecure-random-u64": lambda call: w.rng_for(call).getrandbits(64)}


class InsecureSeed3(Interface):
    name = "wasi:random/insecure-seed" + P3

    def funcs(self):
        w = self.wasi
        return {"get-insecure-seed": lambda call: (w.rng_for(call).getrandbits(64), w.rng_for(call).getrandbits(64))}


INTERFACES = [
    CliEnvironment3, CliExit3, CliTypes3, CliStdout3, CliStderr3, CliStdin3,
    CliTerminalInput3, CliTerminalOutput3,
    _none_getter("wasi:cli/terminal-stdin" + P3, "get-terminal-stdin"),
    _none_getter("wasi:cli/terminal-stdout" + P3, "get-terminal-stdout"),
    _none_getter("wasi:cli/terminal-stderr" + P3, "get-terminal-stderr"),
    ClocksTypes3, MonotonicClock3, SystemClock3, Timezone3,
    Random3, Insecure3, InsecureSeed3,
]

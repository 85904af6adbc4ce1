"""The built-in demo guest (callscope/demo): its world, and in each mode
whether an import (the upstream fetch) is attributed, by its async call
stack, to the request that caused it."""

from __future__ import annotations

import pytest

from callscope.component.ast import Sort
from callscope.component.types import FuncType, StringType, U32Type
from callscope.demo import EXPORT_NAME, IMPORT_NAME, MODES, demo_component, demo_wat
from callscope.host import Host
from callscope.runtime.hostfunc import HostFunction, host_instance

FETCH_FT = FuncType((("url", StringType()),), (StringType(),), True)
DELAY_NS = 5_000_000


def url_of(i: int) -> str:
    return f"https://upstream.example/items/{i}"


class Demo:
    """One instance of the demo guest in ``mode`` with a host ``fetch`` that
    resolves after 5 ms (simulated) and records (url, root task label)."""

    def __init__(self, mode: str, pad: int = 0, sync: bool = False, policy: str = "fifo"):
        self.host = Host(seed=0)
        self.store = self.host.store
        self.store.policy = policy
        self.calls: list[tuple[str, str]] = []
        self.pad = pad

        def fetch(call, args):
            self.calls.append((args[0], call.task.root.label))
            body = ["body of " + args[0] + "." * self.pad]
            if sync:
                return body
            return call.resolve_later(DELAY_NS, body)

        imports = {IMPORT_NAME: (Sort.INSTANCE,
                                 host_instance(self.store, {"fetch": HostFunction("fetch", FETCH_FT, fetch)}))}
        self.exports = self.host.instantiate(demo_component(mode), imports)
        sort, funcs = self.exports.exports[EXPORT_NAME]
        assert sort == Sort.INSTANCE
        self.handle = funcs["handle"][1]
        self.results: dict[int, list] = {}

    def close(self):
        self.host.close()

    def start(self, i: int) -> None:
        url = url_of(i)
        self.store.next_root = (f"req-{i}", [url])
        self.store.invoke(self.handle, lambda a=[i, url]: a,
                          lambda r, i=i: self.results.__setitem__(i, r))

    def run_concurrently(self, n: int, concurrency: int) -> None:
        """``n`` requests, keeping up to ``concurrency`` in flight."""
        started = 0
        while len(self.results) < n:
            while started < n and started - len(self.results) < concurrency:
                self.start(started)
                started += 1
            done = len(self.results)
            if started > done:  # (a fetch that resolves at once may finish a request in `start`)
                self.store.run_until(lambda: len(self.results) > done)

    def run_sequentially(self, n: int) -> None:
        for i in range(n):
            self.store.next_root = (f"req-{i}", [url_of(i)])
            self.results[i] = self.host.call(self.handle, [i, url_of(i)])

    def misattributed(self) -> list[tuple[str, str]]:
        """Fetches whose root export task is not the request the URL is for."""
        return [(url, label) for url, label in self.calls if url != url_of(int(label.split("-")[1]))]

    def check_responses(self, n: int) -> None:
        assert sorted(self.results) == list(range(n))
        for i in range(n):
            assert self.results[i] == ["body of " + url_of(i) + "." * self.pad], i
        assert sorted(url for url, _ in self.calls) == sorted(url_of(i) for i in range(n))

    def memory_pages(self) -> int:
        mems = list(self.host.linker._memories.values())
        assert len(mems) == 1
        return len(mems[0]) // 65536


@pytest.fixture
def demo():
    made = []

    def make(mode: str, **kw) -> Demo:
        d = Demo(mode, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def test_modes_and_text():
    assert MODES == ("event-loop", "backpressure", "well-behaved", "set-task")
    for m in MODES:
        assert "@MODE@" not in demo_wat(m)
        assert demo_component(m) is demo_component(m)  # cached
        assert demo_component(m)[:4] == b"\0asm"
    with pytest.raises(ValueError):
        demo_component("nope")


@pytest.mark.parametrize("mode", MODES)
def test_world(demo, mode):
    d = demo(mode)
    assert list(d.exports.exports) == [EXPORT_NAME]
    ft = d.handle.ft
    assert ft.async_
    assert [n for n, _ in ft.params] == ["id", "url"]
    assert isinstance(ft.params[0][1], U32Type) and isinstance(ft.params[1][1], StringType)
    assert len(ft.result) == 1 and isinstance(ft.result[0], StringType)


@pytest.mark.parametrize("mode", MODES)
def test_sequential_never_misattributes(demo, mode):
    d = demo(mode)
    d.run_sequentially(5)
    d.check_responses(5)
    assert d.misattributed() == []


@pytest.mark.parametrize("concurrency", [2, 4, 8])
def test_event_loop_misattributes_under_concurrency(demo, concurrency):
    d = demo("event-loop")
    d.run_concurrently(concurrency, concurrency)
    d.check_responses(concurrency)
    wrong = d.misattributed()
    assert wrong, d.calls
    # the shared loop issued several requests' fetches from one task's callback
    assert len({label for _, label in d.calls}) < concurrency
    # all requests ran side by side: one upstream delay in all
    assert d.store.now_ns == DELAY_NS


def test_backpressure_serializes(demo):
    d = demo("backpressure")
    d.run_concurrently(4, 4)
    d.check_responses(4)
    assert d.misattributed() == []
    # one request at a time: four upstream delays back to back
    assert d.store.now_ns == 4 * DELAY_NS


def test_well_behaved_concurrent(demo):
    d = demo("well-behaved")
    d.run_concurrently(8, 8)
    d.check_responses(8)
    assert d.misattributed() == []
    assert d.store.now_ns == DELAY_NS


@pytest.mark.parametrize("mode", MODES)
def test_fetch_resolved_at_once(demo, mode):
    """A fetch that returns at once (RETURNED from the async lower, no subtask)."""
    d = demo(mode, sync=True)
    d.run_concurrently(6, 3)
    d.check_responses(6)
    if mode != "event-loop":
        assert d.misattributed() == []


@pytest.mark.parametrize("mode", MODES)
def test_many_requests_reuse_slots_and_memory(demo, mode):
    # ~1.5 KB responses: leaked buffers would need several more pages
    d = demo(mode, pad=1500)
    d.run_concurrently(200, 8)
    d.check_responses(200)
    assert d.memory_pages() <= 2
    if mode == "event-loop":
        assert d.misattributed()
    else:
        assert d.misattributed() == []


@pytest.mark.parametrize("mode", ["event-loop", "well-behaved", "set-task"])
def test_more_requests_in_flight_than_table_slots(demo, mode):
    """The guest's request table has 256 slots; when it is full the guest
    holds back further requests with backpressure instead of trapping."""
    d = demo(mode)
    d.run_concurrently(400, 300)
    d.check_responses(400)


@pytest.mark.parametrize("mode", MODES)
def test_random_scheduling(demo, mode):
    """Responses stay right whatever order ready threads run in."""
    d = demo(mode, policy="random")
    d.run_concurrently(50, 6)
    d.check_responses(50)
    if mode == "event-loop":
        assert d.misattributed()
    else:
        assert d.misattributed() == []

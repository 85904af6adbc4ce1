"""Component instances and the store (CanonicalABI.md "Component Instances",
"Embedding API"): the event loop that picks which waiting thread runs next.

The scheduler's choices come from ``Store.rng``, seeded: the same guest,
inputs and seed give the same interleaving. Where the spec picks at random
among several ready threads, so do we, from that seed.
"""

from __future__ import annotations

import heapq
import random
from typing import Callable, Optional

from .errors import Trap, trap_if
from .handles import Table

DEADLOCK = "wasm trap: deadlock detected: event loop cannot make further progress"


class ComponentInstance:
    __slots__ = ("store", "parent", "handles", "threads", "may_enter", "may_leave", "backpressure",
                 "num_waiting_to_enter", "exclusive_thread", "id", "name", "poisoned", "_lineage", "_entering",
                 "__weakref__")

    def __init__(self, store: "Store", parent: Optional["ComponentInstance"] = None, name: str = ""):
        self.store = store
        self.parent = parent
        self.handles = Table()
        self.threads = Table()
        self.may_enter = True
        self.may_leave = True
        self.backpressure = 0
        self.num_waiting_to_enter = 0
        self.exclusive_thread = None
        self.id = store.new_id("instance")
        self.name = name
        self.poisoned = False
        self._lineage = None
        self._entering: dict = {}
        if store.observer is not None:
            store.observer.instance_new(self)

    def __repr__(self):
        return f"<ComponentInstance {self.id} {self.name}>"

    def may_enter_from(self, caller) -> bool:
        for inst in self.entering_set(caller):
            if not inst.may_enter:
                return False
        return True

    def enter_from(self, caller) -> None:
        for inst in self.entering_set(caller):
            inst.may_enter = False

    def leave_to(self, caller) -> None:
        for inst in self.entering_set(caller):
            inst.may_enter = True

    def entering_set(self, caller) -> tuple:
        """The instances a call from ``caller`` enters (computed once per
        caller: the parent chain of an instance never changes)."""
        cache = self._entering
        r = cache.get(caller)
        if r is None:
            mine = self.self_and_ancestors()
            r = tuple(mine - caller.self_and_ancestors()) if caller is not None else tuple(mine)
            cache[caller] = r
        return r

    def self_and_ancestors(self) -> frozenset:
        s = self._lineage
        if s is None:
            chain = [self]
            a = self.parent
            while a is not None:
                chain.append(a)
                a = a.parent
            s = self._lineage = frozenset(chain)
        return s


class Store:
    """All instances of one run, their waiting threads, simulated time and the
    observer (the recorder, when recording)."""

    # now_ns a slot: the trace's C sink reads the time there, at its offset,
    # at every event (Recorder(clock=store, clock_attr="now_ns")), and so
    # never asks for the store's __dict__, which in CPython 3.11 would send
    # every later load of a store attribute (store.observer, ...) down the
    # generic path (~150 instructions each)
    # (and the attributes the event loop and the C glue read at every turn,
    # slots too: _fiber.c reads a slot at its offset, a __dict__ entry by a
    # dict lookup)
    __slots__ = ("now_ns", "wasm_store", "waiting", "nesting_depth", "policy", "observer", "__dict__",
                 "__weakref__")

    def __init__(self, wasm_store, seed: int = 0, observer=None, policy: str = "fifo"):
        self.wasm_store = wasm_store
        self.waiting: list = []
        self.nesting_depth = 0
        self.rng = random.Random(seed)
        self.seed = seed
        if policy not in ("fifo", "random"):
            raise ValueError(f"unknown scheduling policy {policy!r}")
        self.policy = policy
        # (label, taint tokens) for the next root export task the host starts
        self.next_root = None
        # ids of tasks, threads, instances... numbered per store, so the same
        # run gives the same trace in any process
        self._ids: dict = {}
        # (resource type, rep) -> the root task it was created under
        # (kept only while recording: lineage evidence for attribution)
        self.resource_roots: dict = {}
        self.observer = observer
        self.now_ns = 0  # simulated time
        self._timers: list = []
        self._timer_seq = 0
        import queue
        self._posted = queue.SimpleQueue()
        self._external = 0

    def new_id(self, kind: str) -> int:
        n = self._ids.get(kind, 0) + 1
        self._ids[kind] = n
        return n

    # -- host timers (simulated time) ------------------------------------
    def call_later(self, delay_ns: int, fn: Callable[[], None]) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (self.now_ns + max(0, int(delay_ns)), self._timer_seq, fn))

    def has_timers(self) -> bool:
        return bool(self._timers)

    # -- real-world events ------------------------------------------------------
    def begin_external(self) -> None:
        """A host operation is under way outside the store (a real network
        request, say): until ``post`` delivers its outcome the event loop waits
        for it instead of reporting a deadlock."""
        self._external += 1

    def post(self, fn: Callable[[], None], external_done: bool = True) -> None:
        """Run ``fn`` on the event loop's thread at its next turn. Safe to call
        from any thread (e.g. an I/O worker resolving a host call)."""
        self._posted.put((fn, external_done))

    def _run_posted(self, block: bool) -> bool:
        import queue
        try:
            fn, done = self._posted.get(block=block, timeout=0.05 if block else None)
        except queue.Empty:
            return False
        if done:
            self._external -= 1
        fn()
        return True

    def fire_next_timer(self) -> bool:
        if not self._timers:
            return False
        when, _, fn = heapq.heappop(self._timers)
        if when > self.now_ns:
            self.now_ns = when
        fn()
        # fire everything due at the same instant
        while self._timers and self._timers[0][0] <= self.now_ns:
            _, _, fn = heapq.heappop(self._timers)
            fn()
        return True

    # -- Embedding API -----------------------------------------------------
    def invoke(self, f, on_start, on_resolve):
        self.nesting_depth += 1
        try:
            return f(on_start, on_resolve, None)
        finally:
            self.nesting_depth -= 1

    def choose(self, candidates: list):
        """Pick the thread to run among several ready ones. ``fifo`` (the
        default) takes the one waiting longest, as wasmtime does; ``random``
        draws from the seeded rng, to shake out order dependence in a guest.
        Either way the same seed gives the same run."""
        if len(candidates) == 1 or self.policy == "fifo":
            return candidates[0]
        return self.rng.choice(candidates)

    def tick(self) -> bool:
        """Resume one ready thread (see ``choose``); fire the next host timer
        when none is ready. False when nothing can make progress."""
        for thread in self.waiting:
            f = thread.ready_func  # (thread.ready() inline)
            if f is not None and not thread.is_running and f():
                break
        else:
            thread = None
        if thread is not None and self.policy != "fifo":
            thread = self.choose([t for t in self.waiting if t.ready()])
        if thread is not None:
            inst = thread.task.inst
            self.nesting_depth += 1
            try:
                entering = inst.entering_set(None)  # (enter_from, leave_to)
                for i in entering:
                    i.may_enter = False
                thread.resume()
                for i in entering:
                    i.may_enter = True
            finally:
                self.nesting_depth -= 1
            return True
        return self._tick_outside()

    def _tick_outside(self) -> bool:
        """``tick`` with no thread ready: a posted outcome, else the next host
        timer, else a wait for the outside world if it owes us one."""
        if not self._posted.empty() and self._run_posted(False):
            return True
        if self.fire_next_timer():
            return True
        # nothing ready and no timer: wait for the outside world, if it owes us
        if self._external > 0 and self.observer is not None:
            idle = getattr(self.observer, "idle", None)
            if idle is not None:
                idle()  # (a recorder writes out what it holds: nothing waits in memory)
        while self._external > 0:
            if self._run_posted(True):
                return True
        return False

    def run_until(self, done: Callable[[], bool]) -> None:
        """Run the event loop until ``done()``; trap on deadlock."""
        while not done():
            if not self.tick():
                if self.observer is not None:
                    self.observer.deadlock(DEADLOCK)
                raise Trap(DEADLOCK)


# Store.tick as the event loop runs it: the method above (the definition), or
# the same in C (``_fiber``'s, set up by thread.py) when it is built; tests put
# ``_tick_py`` back to compare the two.
_tick_py = Store.tick

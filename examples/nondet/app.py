"""nondet: background calls whose values come from the clock and random.

Each request reads the monotonic clock (``wasi:clocks/monotonic-clock@0.3.0#now``)
and draws 4 random bytes (``os.urandom``: wasi:random), both on its own
task, fetches its page, and queues a background fetch whose URL carries
the time and the random bytes but not the request's id, on a queue shared
by every request; the pending flusher sends every queued fetch from its own
request's task (misattributed for the others). Nothing in those URLs is a
planted token, so only a serial re-run that gives every request the same
clock readings and random bytes can match them (docs/verdicts.md: the clock
and wasi:random are held equal per root).

Truth: every backend call's URL says whom it is for as ``for=N;``.
"""

import os

from componentize_py_async_support import spawn

import wit_world
from wit_world.imports import backend, monotonic_clock

_queue: list = []
_flush_pending = False


async def _flush() -> None:
    global _flush_pending
    await monotonic_clock.wait_for(1_000_000)
    while _queue:
        await backend.fetch(_queue.pop(0))
    _flush_pending = False


class WitWorld(wit_world.WitWorld):
    async def handle(self, id: str, n: int) -> str:
        global _flush_pending
        t = monotonic_clock.now()
        r = os.urandom(4).hex()
        body = await backend.fetch(f"https://n.test/?for={n};&id={id}")
        _queue.append(f"https://n.test/bg?for={n};&t={t}&r={r}")
        if not _flush_pending:
            _flush_pending = True
            spawn(_flush())
        return body

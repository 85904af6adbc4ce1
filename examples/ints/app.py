"""ints: integer-only background calls from a shared metrics buffer.

Each request fetches its own page (the URL carries its id), then buffers a
metric (its number and the page's length) in a buffer shared by every
request, and spawns a flusher unless one is pending. The flusher waits 1 ms
and reports every buffered metric with ``backend.report(key, value)``: the
metrics of requests that answered meanwhile are reported on the flusher's
request's task (misattributed). The report calls carry nothing but two
integers: no string, no handle.

Truth: ``report``'s first argument (``key``) is the number N of the request
the metric is for (root ``req-N``); ``fetch`` URLs carry ``for=N;``.
"""

from componentize_py_async_support import spawn

import wit_world
from wit_world.imports import backend, monotonic_clock

_metrics: list = []
_flush_pending = False


async def _flush() -> None:
    global _flush_pending
    await monotonic_clock.wait_for(1_000_000)
    while _metrics:
        key, value = _metrics.pop(0)
        await backend.report(key, value)
    _flush_pending = False


class WitWorld(wit_world.WitWorld):
    async def handle(self, id: str, n: int) -> str:
        global _flush_pending
        body = await backend.fetch(f"https://i.test/?for={n};&id={id}")
        _metrics.append((n, len(body)))
        if not _flush_pending:
            _flush_pending = True
            spawn(_flush())
        return body

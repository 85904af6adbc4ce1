"""batch: one backend call made for several requests (DataLoader-style).

Each request fetches its own page, then adds its id to a pending batch
shared by every request; the first request to find no dispatcher pending
spawns one, which waits 1 ms and sends the whole batch as ONE
``post-batch`` call on its own request's task. That call serves every
request in the batch but the host attributes it to one: misattributed
whenever the batch holds another request's entry ("shared by N requests,
attributed to one"). Served one at a time, each batch holds one entry.

Truth: the batch URL lists the requests it serves, ``for=1.2.5;``; a call
is truly misattributed when that set is not exactly its stack root's
request. The entries hold the ids verbatim.
"""

from componentize_py_async_support import spawn

import wit_world
from wit_world.imports import backend, monotonic_clock

_pending: list = []
_dispatch_pending = False


async def _dispatch() -> None:
    global _dispatch_pending
    await monotonic_clock.wait_for(1_000_000)
    batch = _pending[:]
    del _pending[:]
    _dispatch_pending = False
    ns = ".".join(str(n) for n, _ in batch)
    await backend.post_batch(f"https://b.test/?for={ns};", [id for _, id in batch])


class WitWorld(wit_world.WitWorld):
    async def handle(self, id: str, n: int) -> str:
        global _dispatch_pending
        body = await backend.fetch(f"https://b.test/?for={n};&id={id}")
        _pending.append((n, id))
        if not _dispatch_pending:
            _dispatch_pending = True
            spawn(_dispatch())
        return body

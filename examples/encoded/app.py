"""encoded: background calls whose only request data is encoded.

Each request fetches its own page, then queues two notifications on a
queue shared by every request: a webhook fetch whose URL carries the
request's id percent-encoded (``urllib.parse.quote(id, safe="")``: ``rq3/ü``
becomes ``rq3%2F%C3%BC``), and a one-entry ``post-batch`` whose entry is the
id JSON-escaped (``json.dumps``: ``{"id": "rq3/\\u00fc"}``). The id appears
nowhere verbatim. A flusher spawned by whichever request finds none pending
waits 1 ms and sends every queued notification from its own request's task
(misattributed for the others).

Truth: every backend call's URL says whom it is for as ``for=N;``.
"""

import json
from urllib.parse import quote

from componentize_py_async_support import spawn

import wit_world
from wit_world.imports import backend, monotonic_clock

_outbox: list = []
_flush_pending = False


async def _flush() -> None:
    global _flush_pending
    await monotonic_clock.wait_for(1_000_000)
    while _outbox:
        n, id = _outbox.pop(0)
        await backend.fetch(f"https://e.test/h?for={n};&u={quote(id, safe='')}")
        await backend.post_batch(f"https://e.test/j?for={n};", [json.dumps({"id": id})])
    _flush_pending = False


class WitWorld(wit_world.WitWorld):
    async def handle(self, id: str, n: int) -> str:
        global _flush_pending
        body = await backend.fetch(f"https://e.test/?for={n};&id={id}")
        _outbox.append((n, id))
        if not _flush_pending:
            _flush_pending = True
            spawn(_flush())
        return body

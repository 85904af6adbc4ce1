"""clean: every call on its own request's task; NOT misattributed.

Each request fetches its page, reports a metric and posts a one-entry
batch, each for itself and on its own task, then answers; work it spawns
after answering (a second report) still runs on its own task, which stays
alive until that work ends (componentize-py gives every export call its own
task and context, NOTES §7). No state is shared between requests.

Truth: ``for=N;`` in every URL; ``report``'s key is N.
"""

from componentize_py_async_support import spawn

import wit_world
from wit_world.imports import backend, monotonic_clock


async def _after(n: int, size: int) -> None:
    await monotonic_clock.wait_for(500_000)
    await backend.report(n, size)


class WitWorld(wit_world.WitWorld):
    async def handle(self, id: str, n: int) -> str:
        body = await backend.fetch(f"https://c.test/?for={n};&id={id}")
        await backend.report(n, len(body))
        await backend.post_batch(f"https://c.test/log?for={n};", [id])
        spawn(_after(n, len(body)))
        return body

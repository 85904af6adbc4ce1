"""queue: a global job queue flushed by whichever request's worker runs.

Each request fetches its own page (on its own task), then queues a
background job (another fetch, for itself) on a queue shared by every
request of the instance, and spawns a worker unless one is already
running. The one worker waits 1.5 ms (monotonic-clock wait-for) and runs
every queued job, also the jobs that later requests queued meanwhile: those
fetches are made on the worker's request's task although other requests
caused them (misattributed). Served one request at a time, every worker
finds only its own job.

Truth: every backend call's URL says whom it is for as ``for=N;`` (N the
request's number, root ``req-N``). The request's id is in the URL verbatim,
so taint can see the jobs' true requests.
"""

from componentize_py_async_support import spawn

import wit_world
from wit_world.imports import backend, monotonic_clock

_jobs: list = []
_worker_running = False


async def _worker() -> None:
    global _worker_running
    await monotonic_clock.wait_for(1_500_000)
    while _jobs:
        url = _jobs.pop(0)
        await backend.fetch(url)
    _worker_running = False


class WitWorld(wit_world.WitWorld):
    async def handle(self, id: str, n: int) -> str:
        global _worker_running
        body = await backend.fetch(f"https://q.test/?for={n};&id={id}")
        _jobs.append(f"https://q.test/job?for={n};&id={id}")
        if not _worker_running:
            _worker_running = True
            spawn(_worker())
        return body

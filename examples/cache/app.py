"""cache: a page cache shared by all requests; NOT misattributed.

Requests come in pairs sharing a document: request N reads document
(N + 1) // 2. The odd request of a pair fetches it (the URL carries its
own id) and stores the page in a cache shared by every request; the even
one waits 3 ms first, so it finds the page cached. Every request then
follows the page's link (``https://cdn.test/a?ref=/doc/K/ID`` where ID is
the id of whoever fetched the page) on its own task. The even request's
link fetch therefore carries the odd request's id, and taint says it came
from that request; but the even request caused it, made it on its own task,
and the host's attribution is right: provenance is not cause. Nothing in
this guest is misattributed.

Truth: every backend call's URL says whom it is for as ``for=N;``.
"""

import wit_world
from wit_world.imports import backend, monotonic_clock

_pages: dict = {}


class WitWorld(wit_world.WitWorld):
    async def handle(self, id: str, n: int) -> str:
        doc = (n + 1) // 2
        if n % 2 == 0:
            await monotonic_clock.wait_for(3_000_000)
        page = _pages.get(doc)
        if page is None:
            page = await backend.fetch(f"https://d.test/doc/{doc}/{id}?for={n};")
            _pages[doc] = page
        link = page.split(" ", 1)[1]
        return await backend.fetch(link.replace("?", f"?for={n};&", 1))

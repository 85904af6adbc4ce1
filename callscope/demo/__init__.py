"""callscope's built-in demo guest: one component in three modes.

World (``demo.wat``)::

    import callscope-demo:app/upstream { fetch: async func(url: string) -> string }
    export callscope-demo:app/handler  { handle: async func(id: u32, url: string) -> string }

``handle`` (a callback-style async lift) answers each request with the body
that ``fetch`` returned for its URL. The modes differ only in where the fetch
is issued:

``event-loop``
    one event loop for all requests (as JS, Python asyncio or Go guests
    have): ``handle`` queues the request and yields; the callback of any task
    issues the fetch of every queued request. Under concurrency request B's
    fetch runs on task A, so it is misattributed.
``backpressure``
    the same code, plus ``backpressure.inc``/``backpressure.dec`` around each
    request: the instance takes one request at a time, nothing is
    misattributed.
``well-behaved``
    each ``handle`` issues its own fetch on its own task.
``set-task``
    the event loop again, run by one explicit thread that calls
    ``thread.set-task`` (the spec's ``task-switch`` branch) to join the task
    of the request it works for before each fetch: nothing is misattributed.
    wat2wasm does not know the built-in: assembled by
    ``callscope.wast.assemble`` (see docs/runtime.md).
"""

from __future__ import annotations

import re
from importlib import resources

MODES = ("event-loop", "backpressure", "well-behaved", "set-task")

IMPORT_NAME = "callscope-demo:app/upstream"
EXPORT_NAME = "callscope-demo:app/handler"

_CACHE: dict = {}


def demo_wat(mode: str) -> str:
    """The component text for ``mode``."""
    if mode not in MODES:
        raise ValueError(f"unknown demo mode {mode!r} (choose from {', '.join(MODES)})")
    text = resources.files(__name__).joinpath("demo.wat").read_text(encoding="utf-8")
    if mode != "set-task":
        # the set-task mode's own lines, from `;; @IF-SET-TASK` to `;; @END`
        text = re.sub(r"[ \t]*;; @IF-SET-TASK\n.*?;; @END\n", "", text, flags=re.S)
    return text.replace("@MODE@", str(MODES.index(mode)))


def demo_component(mode: str) -> bytes:
    """The compiled component (binary) for ``mode``; compiled once per mode."""
    b = _CACHE.get(mode)
    if b is None:
        from callscope.wast.assemble import assemble

        b = _CACHE[mode] = assemble(demo_wat(mode))
    return b

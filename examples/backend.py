"""The simulated backend the guests of examples/ call (``callscope:guests/backend``
and the JS guests' ``callscope:jsguests/backend``), for ``--import-module``:

    callscope check GUEST.wasm --invoke 'handle("rq{i}/ü", {i})' --repeat 12 \\
        --concurrency 4 --import-module examples/backend.py

Every answer depends only on the call's arguments (delays are simulated and
derived from the URL), so a run is repeatable and a serial re-run of the
same workload gets the same replies.

* ``fetch(url)`` answers after 0.5 to 2.1 ms with ``"link https://cdn.test/a?ref=PATH"``,
  PATH being the fetched URL's path (what examples/cache follows);
* ``report(key, value)`` answers after 0.3 ms;
* ``post-batch(url, entries)`` answers after 0.8 ms with the number of entries.

The JS guests' imports are sync (componentize-qjs builds no async custom
import, NOTES §7): they answer at once.
"""

from __future__ import annotations

import zlib
from urllib.parse import urlsplit


def _delay(url: str) -> int:
    return 500_000 + (zlib.crc32(url.encode()) % 5) * 400_000


def page(url: str) -> str:
    return f"link https://cdn.test/a?ref={urlsplit(url).path}"


def fetch(call, args):
    url = args[0]
    return call.resolve_later(_delay(url), [page(url)])


def report(call, args):
    return call.resolve_later(300_000, [])


def post_batch(call, args):
    return call.resolve_later(800_000, [len(args[1])])


def fetch_sync(call, args):
    return [page(args[0])]


def report_sync(call, args):
    return []


IMPORTS = {
    "callscope:guests/backend#fetch": fetch,
    "callscope:guests/backend#report": report,
    "callscope:guests/backend#post-batch": post_batch,
    "callscope:jsguests/backend#fetch": fetch_sync,
    "callscope:jsguests/backend#report": report_sync,
}

"""The host's ends of component-model streams and futures.

A ``stream<T>``/``future<T>`` value crosses the boundary as the runtime's
shared object (``SharedStreamImpl``/``SharedFutureImpl``): a host function
that receives one holds the readable end the guest gave away; one that
returns one gives the guest the readable end of an object the host writes.
The host's side of a copy is a ``HostBuffer``; the ``inst`` of a host copy is
None. Follow-up copies are scheduled on the store's timer queue at delay 0
(they run once no guest thread is ready), never from inside a callback.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from callscope.component import types as T
from callscope.runtime.waitables import CopyResult, HostBuffer, SharedFutureImpl, SharedStreamImpl

CHUNK = 64 * 1024


class StreamWriter:
    """Writes host bytes (or values) into a new stream the guest reads.

    ``shared`` is the value to hand the guest. ``write`` queues data;
    ``close`` drops the writable end once everything queued was taken (the
    guest's next read then sees DROPPED). ``on_dropped`` is called if the
    guest drops its end first."""

    def __init__(self, store, t=T.U8Type(), data: Optional[bytes] = None, close: bool = False,
                 on_dropped: Optional[Callable[[], None]] = None):
        self.store = store
        self.t = t
        self.shared = SharedStreamImpl(t)
        self._queue: list = []
        self._busy = False
        self._closing = False
        self.reader_dropped = False
        self.written = 0
        self.on_dropped = on_dropped
        if data:
            self.write(data)
        if close:
            self.close()

    def write(self, data) -> None:
        if self.reader_dropped or self._closing:
            return
        if len(data):
            self._queue.append(list(data))
        self._pump()

    def close(self) -> None:
        self._closing = True
        self._pump()

    def _pump(self) -> None:
        if self._busy or self.reader_dropped:
            return
        if not self._queue:
            if self._closing and not self.shared.dropped:
                self.shared.drop()
            return
        values = self._queue.pop(0)
        buf = HostBuffer(self.t, values)
        self._busy = True

        def on_copy(reclaim):
            if buf.remain() == 0:
                reclaim()
                self._done(buf)

        def on_copy_done(result):
            if result == CopyResult.DROPPED:
                self.reader_dropped = True
                self._queue.clear()
                self._busy = False
                if self.on_dropped is not None:
                    self.on_dropped()
                return
            self._done(buf)

        self.shared.write(None, buf, on_copy, on_copy_done)

    def _done(self, buf) -> None:
        if not self._busy:
            return
        self._busy = False
        self.written += buf.progress
        rest = buf.values[buf.progress:]
        if rest:
            self._queue.insert(0, rest)
        self.store.call_later(0, self._pump)


class StreamReader:
    """Reads a stream the guest writes, to its end.

    ``on_data(values)`` gets each chunk (bytes for ``stream<u8>``),
    ``on_end()`` is called once the guest dropped its writable end."""

    def __init__(self, store, shared: SharedStreamImpl, on_data: Callable[[Any], None],
                 on_end: Optional[Callable[[], None]] = None, chunk: int = CHUNK):
        self.store = store
        self.shared = shared
        self.on_data = on_data
        self.on_end = on_end
        self.chunk = chunk
        self.ended = False
        self.received = 0
        self._is_bytes = isinstance(shared.t, T.U8Type)
        self._read()

    def _deliver(self, buf) -> None:
        if buf.values:
            vs = buf.values
            buf.values = []
            self.received += len(vs)
            self.on_data(bytes(vs) if self._is_bytes else vs)

    def _read(self) -> None:
        if self.ended:
            return
        buf = HostBuffer(self.shared.t, length=self.chunk)
        state = {"open": True}

        def on_copy(reclaim):
            if not state["open"]:
                return
            state["open"] = False
            reclaim()
            self._deliver(buf)
            self.store.call_later(0, self._read)

        def on_copy_done(result):
            if not state["open"]:
                return
            state["open"] = False
            self._deliver(buf)
            if result == CopyResult.DROPPED:
                self.ended = True
                if self.on_end is not None:
                    self.on_end()
            else:
                self.store.call_later(0, self._read)

        self.shared.read(None, buf, on_copy, on_copy_done)

    def cancel(self) -> None:
        """Stop reading and drop the readable end."""
        self.ended = True
        if not self.shared.dropped:
            self.shared.drop()


def read_all(store, shared: SharedStreamImpl, on_done: Callable[[bytes], None]) -> StreamReader:
    chunks: list = []
    return StreamReader(store, shared, chunks.append, lambda: on_done(b"".join(chunks)))


class FutureWriter:
    """A new future the guest reads; ``write(value)`` delivers its value."""

    def __init__(self, t):
        self.t = t
        self.shared = SharedFutureImpl(t)
        self.written = False
        self.result: Optional[CopyResult] = None

    def write(self, value) -> None:
        if self.written:
            return
        self.written = True

        def on_copy_done(result):
            self.result = result

        self.shared.write(None, HostBuffer(self.t, [value]), on_copy_done)


def future_with(t, value) -> SharedFutureImpl:
    w = FutureWriter(t)
    w.write(value)
    return w.shared


def read_future(shared: SharedFutureImpl, on_value: Callable[[Any], None],
                on_dropped: Optional[Callable[[], None]] = None) -> None:
    """Read the value of a future the guest writes."""
    buf = HostBuffer(shared.t, length=1)

    def on_copy_done(result):
        if result == CopyResult.COMPLETED and buf.values:
            on_value(buf.values[0])
        elif on_dropped is not None:
            on_dropped()

    shared.read(None, buf, on_copy_done)


def discard_future(shared: Optional[SharedFutureImpl]) -> None:
    """The host will never read this future: drop its readable end."""
    if shared is not None and not shared.dropped:
        shared.drop()

"""The callscope trace: format constants, writer (:class:`Recorder`), reader
(:class:`TraceReader`). docs/trace-format.md is the contract."""

from .reader import Event, TraceError, TraceReader, make_event, open_trace, read_events
from .recorder import NullRecorder, Recorder, guest_info
from .summarize import summarize

__all__ = [
    "Event",
    "NullRecorder",
    "Recorder",
    "TraceError",
    "TraceReader",
    "guest_info",
    "make_event",
    "open_trace",
    "read_events",
    "summarize",
]

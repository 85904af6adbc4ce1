"""``callscope replay TRACE``: a Textual app that steps through a recorded
trace: scrubber, live async call tree per instance, event list, findings,
details. Data in :mod:`.source`, widgets in :mod:`.widgets`, the app in
:mod:`.app`, styles in ``replay.tcss``."""

from .source import ReplaySource

__all__ = ["ReplaySource", "ReplayApp"]


def __getattr__(name):
    if name == "ReplayApp":
        from .app import ReplayApp

        return ReplayApp
    raise AttributeError(name)

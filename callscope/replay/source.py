"""The data side of replay: a trace opened for seeking, its findings, and the
state at event N. No widgets here (toolong keeps data apart from views, and
tokio-console goes source -> state -> view).

"At event N" means *after* event N ran: the cursor sits on an event and the
call tree shows what that event left behind (so at an ``import.call`` the
import is in flight).

Threads: the app's thread reads events through :attr:`ReplaySource.reader`;
:meth:`ReplaySource.index` (run in a worker thread) reads through its own
reader; the :class:`~callscope.model.Timeline` has a third reader and is only
used under :attr:`ReplaySource.lock`.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional

from ..model import Finding, State, Timeline, check_all, format_finding
from ..model.findings import Misattributed, default_lints
from ..trace.reader import Event, TraceError, TraceReader

__all__ = ["ReplaySource", "TaskInfo", "TraceError", "format_time", "format_value"]


@dataclass(slots=True)
class TaskInfo:
    """What ``task.new`` said about a task (kept after the task exits)."""

    id: int
    inst: int
    func: Optional[str]
    caller: Optional[int]
    root: int
    label: Optional[str]
    created: int  # event number


def format_time(ns: Optional[int]) -> str:
    if ns is None:
        return "?"
    neg = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{neg}{ns}ns"
    if ns < 1_000_000:
        return f"{neg}{ns / 1e3:.3f}µs"
    if ns < 1_000_000_000:
        return f"{neg}{ns / 1e6:.3f}ms"
    return f"{neg}{ns / 1e9:.3f}s"


def format_value(v: Any, limit: int = 80) -> str:
    s = repr(v) if not isinstance(v, str) else repr(v)
    return s if len(s) <= limit else s[: limit - 1] + "…"


class ReplaySource:
    """A trace opened for replay. ``source``: a path or the trace's bytes.

    Raises :class:`TraceError` (one line) when the trace cannot be read.
    """

    def __init__(self, source: Any, every: int = 8192):
        self._source = source
        self.reader = TraceReader(source)
        self.path = self.reader.path
        self.every = every
        self.lock = threading.Lock()
        self.timeline = Timeline(TraceReader(source), every=every)
        self.findings: list[Finding] = []
        self.coverage: Optional[dict] = None  # docs/verdicts.md's counts, once indexed
        self._finding_ns: list[int] = []
        self.findings_at: dict[int, list[Finding]] = {}  # event n -> findings about it
        self.misattributed: dict[int, Finding] = {}  # import.call event n -> finding
        self.tasks: dict[int, TaskInfo] = {}  # every task seen by index()
        self.indexed = False
        self._cur: Optional[State] = None  # state after some event, moved forward in place

    # ------------------------------------------------------------- basics

    @property
    def total(self) -> int:
        return self.reader.event_count

    @property
    def truncated(self) -> Optional[str]:
        return self.reader.truncation if self.reader.truncated else None

    @property
    def start_time(self) -> int:
        return self.reader.start_time or 0

    def events(self, start: int, stop: int) -> Iterator[Event]:
        return self.reader.events(start, stop)

    def event(self, n: int) -> Optional[Event]:
        try:
            return self.reader.event(n)
        except (IndexError, TraceError):
            return None

    def close(self) -> None:
        self.reader.close()
        self.timeline._events.close()

    # ------------------------------------------------------------- index

    def index(self, progress: Optional[Callable[[int, int], None]] = None,
              cancelled: Callable[[], bool] = lambda: False) -> list[Finding]:
        """One pass for the findings and the task table, then the timeline's
        snapshots. ``progress(done, total)`` is called now and then with
        ``done`` counting both passes (``total`` = 2 x events)."""
        total = self.total
        tasks = self.tasks
        step = 16384

        with TraceReader(self._source) as r:
            def feed() -> Iterable[Event]:
                for ev in r.events():
                    if ev[1] == "task.new":
                        f = ev[3]
                        tasks[f[0]] = TaskInfo(f[0], f[1], f[2], f[3], f[4], f[5], ev[0])
                    if not ev[0] % step:
                        if cancelled():
                            return
                        if progress:
                            progress(ev[0], 2 * total)
                    yield ev

            lints = default_lints()
            findings = check_all(feed(), lints)
        self.coverage = next((lint.coverage() for lint in lints if isinstance(lint, Misattributed)), None)
        self.findings = findings
        self._finding_ns = [f.n for f in findings]
        for f in findings:
            self.findings_at.setdefault(f.n, []).append(f)
            if f.lint == "misattributed":
                self.misattributed[f.n] = f
        # snapshots, a slice at a time so the app's seeks wait little
        big = self.every * max(1, 65536 // self.every)
        k = big
        while k <= total:
            if cancelled():
                return findings
            with self.lock:
                self.timeline.state_at(k)
            if progress:
                progress(total + k, 2 * total)
            k += big
        self.indexed = True
        if progress:
            progress(2 * total, 2 * total)
        return findings

    # ------------------------------------------------------------ findings

    def next_finding(self, n: int) -> Optional[Finding]:
        i = bisect.bisect_right(self._finding_ns, n)
        return self.findings[i] if i < len(self.findings) else None

    def prev_finding(self, n: int) -> Optional[Finding]:
        i = bisect.bisect_left(self._finding_ns, n) - 1
        return self.findings[i] if i >= 0 else None

    @staticmethod
    def format_finding(f: Finding) -> str:
        return format_finding(f)

    # --------------------------------------------------------------- state

    def state_after(self, n: int) -> State:
        """The state after event ``n`` ran (before event 0 for n < 0). The
        returned object is shared: read it, do not change it."""
        target = max(0, min(n + 1, self.total))
        cur = self._cur
        if cur is not None and cur.n <= target <= cur.n + self.every:
            for ev in self.reader.events(cur.n, target):
                cur.apply(ev)
            return cur
        with self.lock:
            self._cur = self.timeline.state_at(target)
        return self._cur

    # ------------------------------------------------------------ describe

    def task_info(self, task_id: Optional[int], state: Optional[State] = None) -> Optional[TaskInfo]:
        if task_id is None:
            return None
        t = self.tasks.get(task_id)
        if t is None and state is not None:
            lt = state.tasks.get(task_id)
            if lt is not None:
                t = TaskInfo(lt.id, lt.inst, lt.func, lt.caller, lt.root, lt.label, lt.created)
        return t

    def describe_task(self, task_id: Optional[int], state: Optional[State] = None) -> str:
        if task_id is None:
            return "no task"
        t = self.task_info(task_id, state)
        if t is None:
            return f"task {task_id} (unknown)"
        label = f' "{t.label}"' if t.label else ""
        return f"task {task_id} {t.func}{label}"

    def task_stack(self, task_id: int, state: Optional[State] = None) -> list[int]:
        """The async call stack of ``task_id`` by its callers: current task
        first, root export task last."""
        out = []
        seen = set()
        t: Optional[int] = task_id
        while t is not None and t not in seen:
            seen.add(t)
            out.append(t)
            info = self.task_info(t, state)
            t = info.caller if info is not None else None
        return out

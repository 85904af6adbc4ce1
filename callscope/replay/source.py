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
import os
import re
import threading
from array import array
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Callable, Iterable, Iterator, Optional

from ..model import Finding, State, Timeline, check_all, default_lints, format_finding
from ..model.findings import ByEvent
from ..trace.reader import Event, TraceError, TraceReader, _tuple_new

try:  # issue 13's escaping, when it is there
    from ..escape import escape_controls as _escape
except ImportError:  # pragma: no cover - the same idea, for C0/C1 controls and DEL
    import re as _re

    _CTRL = _re.compile(r"[\x00-\x1f\x7f-\x9f]")

    def _escape(s: Any) -> str:
        return _CTRL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(s))


def plain(s: Any) -> str:
    """A string for the terminal: control characters shown escaped."""
    return _escape(str(s))


def open_reader(source: Any) -> TraceReader:
    """A reader whose strings come with their control characters escaped
    when the reader can do it (``escape=True``): nothing from a trace drives
    the terminal."""
    try:
        return TraceReader(source, escape=True)
    except TypeError:  # a reader without escaping
        return TraceReader(source)


# kinds whose first field is a task id
_TASK_FIELD_KINDS = frozenset({"task.new", "task.start", "task.return", "task.cancel", "task.exit", "task.resolved",
                               "subtask.state", "subtask.cancel", "subtask.drop", "call.queued", "call.admitted",
                               "taint.plant"})

__all__ = ["plain", "ReplaySource", "TaskInfo", "TraceError", "format_time", "format_value"]


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
    s = plain(repr(v))
    return s if len(s) <= limit else s[: limit - 1] + "…"


class FindingsAt(Mapping):
    """A read-only map, event n -> the findings about it (a list; with
    ``lint``, the last one of that lint): found by bisection over the
    findings in event order and their event numbers, with no dict of every
    finding kept beside them (issue 13)."""

    __slots__ = ("_findings", "_by", "_lint")

    def __init__(self, findings: list, ns: Any, lint: Optional[str] = None) -> None:
        self._findings, self._by, self._lint = findings, ByEvent(findings, ns), lint

    def _at(self, n: Any) -> list:
        return [f for f in self._by.at(n) if self._lint is None or f.lint == self._lint]

    def get(self, n: Any, default: Any = None) -> Any:
        found = self._at(n)
        if not found:
            return default
        return found if self._lint is None else found[-1]

    def __getitem__(self, n: Any) -> Any:
        got = self.get(n)
        if got is None:
            raise KeyError(n)
        return got

    def __iter__(self) -> Iterator[int]:
        last = None
        for f in self._findings:
            if (self._lint is None or f.lint == self._lint) and f.n != last:
                last = f.n
                yield last

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, n: Any) -> bool:
        return bool(self._at(n))

    def __bool__(self) -> bool:
        return any(f.lint == self._lint for f in self._findings) if self._lint else bool(self._findings)


class ReplaySource:
    """A trace opened for replay. ``source``: a path or the trace's bytes.

    Raises :class:`TraceError` (one line) when the trace cannot be read.
    """

    def __init__(self, source: Any, every: int = 8192):
        self._source = source
        self.reader = open_reader(source)
        self.path = self.reader.path
        self._size = os.path.getsize(self.path) if self.path else None
        self.every = every
        self.lock = threading.Lock()
        self.timeline = Timeline(open_reader(source), every=every)
        self.findings: list[Finding] = []
        self._finding_ns: Any = array("q")
        self.findings_at: Any = FindingsAt([], self._finding_ns)  # event n -> findings about it
        self.misattributed: Any = FindingsAt([], self._finding_ns, "misattributed")  # import.call event n -> finding
        self.tasks: dict[int, TaskInfo] = {}  # every task seen by index()
        self.import_calls: dict[int, int] = {}  # import call id -> event n of its import.call
        self.import_returns: dict[int, int] = {}  # import call id -> event n of its import.return
        self.task_returns: dict[int, int] = {}  # task id -> event n of its task.return / task.cancel
        self.deadlocks: list[int] = []  # event n of each deadlock event
        self.verdict_at: dict = {}  # import.call event n -> its ImportVerdict (model), when indexed
        self.coverage: Optional[dict] = None  # the verdicts' coverage counts
        self.indexed = False  # findings and snapshots
        self.findings_indexed = False
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

    # kinds the index reads besides those the lints want
    _INDEX_KINDS = frozenset({"task.new", "task.return", "task.cancel", "task.exit", "import.call",
                              "import.return", "taint.plant", "handle.new", "deadlock"})

    def _interesting(self, r: TraceReader, lints, cancelled) -> Iterator[Event]:
        """The events of ``r`` the lints and the index read, in order (and
        the last event, which the lints take the trace's end from). A chunk's
        kinds are picked in C (``bytes.translate`` + ``re.finditer``): only
        those events are made, most of a busy trace (thread switches, stream
        copies) is never built. All events when a lint wants every kind."""
        wanted = set(self._INDEX_KINDS)
        for lint in lints:
            if lint.kinds is None:
                yield from r.events()
                return
            wanted |= lint.kinds
        names = r.kind_names
        table = bytes(1 if i < len(names) and names[i] in wanted else 0 for i in range(256))
        one = re.compile(b"\x01")
        last = r.event_count - 1
        for k, c in enumerate(r.chunks):
            if cancelled():
                return
            kinds, times, fields = r.chunk_columns(k)  # (checked; times absolute)
            first = c[1]
            picked = [m.start() for m in one.finditer(kinds.translate(table))]
            if first + len(kinds) - 1 == last and (not picked or picked[-1] != len(kinds) - 1):
                picked.append(len(kinds) - 1)
            for i in picked:
                yield _tuple_new(Event, (first + i, names[kinds[i]], times[i], fields[i]))
            yield None  # a chunk done: progress

    def index(self, progress: Optional[Callable[[int, int], None]] = None,
              cancelled: Callable[[], bool] = lambda: False,
              findings_done: Optional[Callable[[], None]] = None) -> list[Finding]:
        """One pass for the findings and the task table (over only the kinds
        they read), ``findings_done()``, then the timeline's snapshots.
        ``progress(done, total)`` is called now and then with ``done``
        counting both passes (``total`` = 2 x events)."""
        total = self.total
        tasks = self.tasks
        lints = default_lints()

        with open_reader(self._source) as r:
            calls, rets, trets, dls = {}, {}, {}, []
            chunk_ns = [c[1] + c[2] for c in r.chunks]

            def feed() -> Iterable[Event]:
                k = 0
                for ev in self._interesting(r, lints, cancelled):
                    if ev is None:
                        if progress and not k % 4:
                            progress(chunk_ns[k], 2 * total)
                        k += 1
                        continue
                    kind = ev[1]
                    if kind == "import.call":
                        calls[ev[3][0]] = ev[0]
                    elif kind == "import.return":
                        rets[ev[3][0]] = ev[0]
                    elif kind == "task.new":
                        f = ev[3]
                        tasks[f[0]] = TaskInfo(f[0], f[1], f[2], f[3], f[4], f[5], ev[0])
                    elif kind == "task.return" or kind == "task.cancel":
                        trets.setdefault(ev[3][0], ev[0])
                    elif kind == "deadlock":
                        dls.append(ev[0])
                    yield ev

            findings = check_all(feed(), lints)
        if cancelled():
            return findings
        self.import_calls, self.import_returns, self.task_returns, self.deadlocks = calls, rets, trets, dls
        # every import's verdict and the coverage counts, where the model has them
        mis_lint = next((x for x in lints if getattr(x, "name", "") == "misattributed"), None)
        verdicts = getattr(mis_lint, "verdicts", None)
        self.verdict_at = ByEvent(verdicts) if verdicts is not None else {}
        cov = getattr(mis_lint, "coverage", None)
        self.coverage = cov() if callable(cov) else None
        # new tables, not the old ones changed (a re-index while following)
        try:
            ns = array("q", [f.n for f in findings])
        except (TypeError, OverflowError):  # (event numbers are the reader's ints; never, in practice)
            ns = [f.n for f in findings]
        self._finding_ns = ns
        self.findings_at, self.misattributed = FindingsAt(findings, ns), FindingsAt(findings, ns, "misattributed")
        self.findings = findings
        self.findings_indexed = True
        if findings_done:
            findings_done()
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

    def state_now(self, n: int) -> Optional[State]:
        """``state_after(n)`` when it is at hand: at most ``every`` events
        to apply and the timeline not busy (the index holds its lock while it
        takes snapshots). None otherwise: compute it with ``compute_state``
        off the UI thread, then ``adopt`` it."""
        target = max(0, min(n + 1, self.total))
        cur = self._cur
        if cur is not None and cur.n <= target <= cur.n + self.every:
            return self.state_after(n)
        if not self.lock.acquire(blocking=False):
            return None
        try:
            if self.timeline.cost(target) > self.every:
                return None
            self._cur = self.timeline.state_at(target)
        finally:
            self.lock.release()
        return self._cur

    def compute_state(self, n: int, cancelled: Optional[Callable[[], bool]] = None) -> Optional[State]:
        """The state after event ``n``, a fresh object, for a worker thread:
        it reads through the timeline's own reader under its lock (never
        ``self.reader`` or the shared state the UI thread reads). None when
        ``cancelled()`` turned true on the way (a newer jump); the snapshots
        taken until then are kept for the next."""
        target = max(0, min(n + 1, self.total))
        with self.lock:
            return self.timeline.state_at(target, cancelled)

    def adopt(self, state: State) -> None:
        """Take a state ``compute_state`` made as the one ``state_after``
        moves forward from (on the UI thread)."""
        self._cur = state

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
        return plain(f"task {task_id} {t.func}{label}")

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

    # ------------------------------------------------------------ filters

    def scope_events(self, inst: Optional[int] = None, root: Optional[int] = None,
                     kind: Optional[str] = None, cancelled: Callable[[], bool] = lambda: False,
                     stop: Optional[int] = None) -> Optional[array]:
        """The numbers of the events (below ``stop``) that belong to instance
        ``inst``, to the request of root task ``root`` and are of ``kind``
        (each None: any), in order; None when cancelled. An event belongs to
        the task it names (task-scoped kinds, ``taint.plant``), to the stack
        root of an import (``import.call``/``import.return``), to the task of
        the thread it names or, for instance-scoped built-ins, to the task of
        the running thread."""
        out = array("q")
        want_scope = inst is not None or root is not None
        tasks: dict[int, tuple] = {}  # task -> (inst, root)
        threads: dict[int, Optional[int]] = {}  # thread -> task
        calls: dict[int, tuple] = {}  # import call -> (inst, root)
        cur: Optional[int] = None  # running thread's task
        none = (None, None)
        for ev in self.reader.events(0, stop):
            n, k, _, f = ev
            if not n % 65536 and cancelled():
                return None
            if kind is not None and k != kind and not want_scope:
                continue
            where = none
            if k in _TASK_FIELD_KINDS:
                if k == "task.new":
                    tasks[f[0]] = (f[1], f[4])
                where = tasks.get(f[0], none)
            elif k == "import.call":
                st = f[3] or ()
                r = tasks.get(st[-1], (None, st[-1]))[1] if st else None
                where = calls[f[0]] = (f[1], r)
            elif k == "import.return":
                where = calls.pop(f[0], none)
            elif k == "thread.switch":
                cur = threads.get(f[1])
                where = tasks.get(cur, none)
            elif k == "thread.new":
                threads[f[0]] = f[1]
                where = tasks.get(f[1], none)
            elif k in ("waitable-set.wait", "waitable-set.poll", "event.delivered"):
                where = tasks.get(threads.get(f[0]), none)
            elif k == "instance.new":
                where = (f[0], None)
            elif k == "handle.new":
                where = (f[1], f[3])
            elif k == "trap":
                where = tasks.get(f[0] if f[0] is not None else cur, none)
            else:
                t = tasks.get(cur, none)
                if k.startswith(("stream.", "future.")):
                    where = (f[3] if len(f) > 3 and f[3] is not None else t[0], t[1])
                elif k.startswith(("waitable", "backpressure.")):
                    where = (f[0], t[1])
                else:
                    where = t
            if kind is not None and k != kind:
                continue
            if inst is not None and where[0] != inst:
                continue
            if root is not None and where[1] != root:
                continue
            out.append(n)
        return out

    # ------------------------------------------------------------- search

    def event_text(self, ev: Event) -> str:
        """What search looks in: the kind, every field (names, arguments,
        results), and the request label of the event's task or stack root."""
        parts = [ev[1]]
        f = ev[3]
        for v in f:
            if v is not None:
                parts.append(v if isinstance(v, str) else repr(v))
        task = None
        k = ev[1]
        if k in _TASK_FIELD_KINDS:
            task = f[0]
        elif k == "import.call" and f[3]:
            task = f[3][-1]
        if task is not None:
            t = self.tasks.get(task)
            if t is not None:
                r = self.tasks.get(t.root, t)
                if r.label:
                    parts.append(r.label)
                if t.label and t is not r:
                    parts.append(t.label)
        return " ".join(parts).lower()

    def search(self, query: str, start: int, direction: int = 1, within: Optional[array] = None,
               cancelled: Callable[[], bool] = lambda: False) -> Optional[int]:
        """The first event after (``direction`` 1) or before (-1) event
        ``start`` whose :meth:`event_text` holds ``query`` (case-insensitive),
        only among the event numbers in ``within`` when given; None if none."""
        q = query.lower()
        if not q:
            return None
        ok = None
        if within is not None:
            ok = within
        if direction > 0:
            if ok is not None:
                i = bisect.bisect_right(ok, start)
                for j in range(i, len(ok)):
                    if not j % 4096 and cancelled():
                        return None
                    ev = self.event(ok[j])
                    if ev is not None and q in self.event_text(ev):
                        return ev[0]
                return None
            for ev in self.reader.events(start + 1):
                if not ev[0] % 16384 and cancelled():
                    return None
                if q in self.event_text(ev):
                    return ev[0]
            return None
        if ok is not None:
            i = bisect.bisect_left(ok, start) - 1
            for j in range(i, -1, -1):
                if not j % 4096 and cancelled():
                    return None
                ev = self.event(ok[j])
                if ev is not None and q in self.event_text(ev):
                    return ev[0]
            return None
        r = self.reader
        firsts = [c[1] for c in r.chunks]
        k = bisect.bisect_right(firsts, start - 1) - 1
        while k >= 0:
            if cancelled():
                return None
            for ev in reversed(list(r.chunk_events(k))):
                if ev[0] < start and q in self.event_text(ev):
                    return ev[0]
            k -= 1
        return None

    # ------------------------------------------------------------- follow

    def grown(self) -> bool:
        """Re-read a trace that is still being written (``--follow``): True
        when it now has more events (or was closed: a footer appeared)."""
        if self.path is None:
            return False
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return False
        if size == self._size:
            return False
        try:
            r = open_reader(self.path)
        except TraceError:
            return False  # a header not written yet, or a partial frame: next time
        if r.event_count < self.reader.event_count:
            r.close()
            return False
        old, self.reader = self.reader, r
        self._size = size
        old.close()
        with self.lock:
            self.timeline._events.close()
            self.timeline = Timeline(open_reader(self.path), every=self.every)
        self._cur = None
        return True

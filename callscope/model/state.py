"""The runtime's state at event N, rebuilt from trace events.

:class:`State` applies events one at a time (``apply``); ``State.n`` is the
number of events applied, so a state with ``n == N`` is the state *before*
event N ran. :class:`Timeline` keeps a copy every K events so that
``state_at(N)`` applies at most K events after the nearest snapshot.

Events are anything shaped ``(n, kind, time, fields)`` (:class:`~callscope.
trace.reader.Event` or a plain tuple); fields are read by position, in the
order docs/trace-format.md gives. Unknown kinds are ignored.

The state holds what is *live*: tasks that have not exited, waitable sets not
dropped, import calls not returned, queued calls. Finished tasks leave it
(``tasks_exited`` counts them); findings over the whole history live in
:mod:`callscope.model.findings`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional

from ..trace.format import SUBTASK_STATES


@dataclass(slots=True)
class Instance:
    id: int
    name: Optional[str]
    parent: Optional[int]
    backpressure: int = 0  # the counter as of the last backpressure.* event
    owner: Any = field(default=None, repr=False, compare=False)  # the State that may change it (State._own)

    def copy(self) -> "Instance":
        return Instance(self.id, self.name, self.parent, self.backpressure)


@dataclass(slots=True)
class Task:
    id: int
    inst: int
    func: Optional[str]
    caller: Optional[int]  # the calling task, None when the host called (a root)
    root: int  # the root export task this task runs under
    label: Optional[str]
    sync: bool
    # 'new' -> 'queued' (held by backpressure) -> 'started' -> 'returned' |
    # 'cancelled' ; 'resolved' after task.resolved
    state: str = "new"
    created: int = 0  # event number
    created_time: int = 0
    returned: Optional[int] = None  # event number of task.return / task.cancel
    cancel_requested: bool = False
    subtask_state: Optional[str] = None  # as the caller sees it (subtask.state)
    subtask_handle: Optional[int] = None
    children: Any = ()  # live callee task ids (a list from the first; the shared empty tuple before)
    owner: Any = field(default=None, repr=False, compare=False)  # the State that may change it (State._own)

    @property
    def is_root(self) -> bool:
        return self.caller is None

    def copy(self) -> "Task":
        t = Task(
            self.id, self.inst, self.func, self.caller, self.root, self.label, self.sync, self.state,
            self.created, self.created_time, self.returned, self.cancel_requested,
            self.subtask_state, self.subtask_handle, list(self.children) if self.children else (),
        )
        return t


_NOTHING: frozenset = frozenset()


@dataclass(slots=True)
class WaitableSet:
    inst: int
    handle: int
    # (each the shared empty frozenset until a first item: a set of its own
    # costs 216 bytes, and a trace may make many sets; issue 13)
    members: Any = _NOTHING  # waitable handles joined
    waiting: Any = _NOTHING  # threads blocked in wait on it
    owner: Any = field(default=None, repr=False, compare=False)  # the State that may change it (State._own)

    def copy(self) -> "WaitableSet":
        return WaitableSet(self.inst, self.handle, set(self.members) if self.members else _NOTHING,
                           set(self.waiting) if self.waiting else _NOTHING)

    def add(self, attr: str, x: Any) -> None:
        got = getattr(self, attr)
        if got:
            got.add(x)
        else:
            setattr(self, attr, {x})

    def discard(self, attr: str, x: Any) -> None:
        got = getattr(self, attr)
        if x in got:
            got.discard(x)


@dataclass(slots=True)
class ImportCall:
    id: int
    inst: int
    name: Optional[str]
    stack: tuple
    n: int
    time: int

    @property
    def stack_root(self) -> Optional[int]:
        return self.stack[-1] if self.stack else None


_GONE = object()  # a key deleted in a layer above the one that has it


class Layered:
    """A dict for what a trace only ever adds to (taint tokens, handle
    lineage), whose copies share what was written before: ``copy()`` freezes
    the top layer (O(1)) and both go on above it. A snapshot every K events
    then costs what changed since the last one, not the whole history (the
    timeline's snapshots were quadratic in the trace). Chains deeper than
    ``MAX_DEPTH`` are merged into one layer, so a lookup reads at most that
    many dicts."""

    MAX_DEPTH = 16
    __slots__ = ("_top", "_parent")

    def __init__(self, items: Any = None, _parent: Any = None) -> None:
        self._top: dict = dict(items) if items else {}
        self._parent = _parent  # (frozen dict, parent, depth) or None

    def _lookup(self, k: Any) -> Any:
        if k in self._top:
            return self._top[k]
        node = self._parent
        while node is not None:
            d = node[0]
            if k in d:
                return d[k]
            node = node[1]
        return _GONE

    def get(self, k: Any, default: Any = None) -> Any:
        v = self._lookup(k)
        return default if v is _GONE else v

    def __getitem__(self, k: Any) -> Any:
        v = self._lookup(k)
        if v is _GONE:
            raise KeyError(k)
        return v

    def __contains__(self, k: Any) -> bool:
        return self._lookup(k) is not _GONE

    def __setitem__(self, k: Any, v: Any) -> None:
        self._top[k] = v

    def pop(self, k: Any, default: Any = None) -> Any:
        v = self._lookup(k)
        if v is _GONE:
            return default
        if self._parent is None:
            del self._top[k]
        else:
            self._top[k] = _GONE
        return v

    def _flat(self) -> dict:
        chain = []
        node = self._parent
        while node is not None:
            chain.append(node[0])
            node = node[1]
        out: dict = {}
        for d in reversed(chain):
            out.update(d)
        out.update(self._top)
        return {k: v for k, v in out.items() if v is not _GONE}

    def items(self):
        return self._flat().items()

    def keys(self):
        return self._flat().keys()

    def values(self):
        return self._flat().values()

    def __iter__(self):
        return iter(self._flat())

    def __len__(self) -> int:
        return len(self._flat())

    def __eq__(self, other: Any) -> bool:
        return self._flat() == (other._flat() if isinstance(other, Layered) else other)

    def copy(self) -> "Layered":
        if self._top:
            depth = self._parent[2] + 1 if self._parent is not None else 1
            if depth > self.MAX_DEPTH:
                self._parent = (self._flat(), None, 1)
            else:
                self._parent = (self._top, self._parent, depth)
            self._top = {}
        return Layered(None, self._parent)


@dataclass(slots=True)
class CallNode:
    """A node of the live async call tree."""

    task: Task
    children: list  # of CallNode


class State:
    """The live state after ``n`` events. Copies share the task, waitable
    set and instance objects (copy-on-write): a copy costs a dict entry per
    object, not the object, and whichever state changes a shared object
    first changes its own copy of it (:meth:`_own`). The object's ``owner``
    is the token of the one state that may change it in place; a copy gives
    both states new tokens, so after it nothing is owned and each copies on
    its first change (issue 13: replay's snapshots do not duplicate the
    world)."""

    def __init__(self) -> None:
        self._token = object()
        self.n = 0  # events applied
        self.time: Optional[int] = None  # time of the last event applied
        self.instances: dict[int, Instance] = {}
        self.tasks: dict[int, Task] = {}  # live (not exited)
        self.tasks_created = 0
        self.tasks_exited = 0
        self.threads: dict[int, Optional[int]] = {}  # thread -> task
        self.current_thread: Optional[int] = None
        self.waitable_sets: dict[tuple[int, int], WaitableSet] = {}  # (inst, set handle)
        self.joined: dict[tuple[int, int], int] = {}  # (inst, waitable) -> the set it is joined to
        self.waiting: dict[int, tuple[Optional[int], int]] = {}  # thread -> (inst, set) it waits on
        self.imports: dict[int, ImportCall] = {}  # in flight
        self.imports_made = 0
        self.queued: dict[int, int] = {}  # task -> time queued by backpressure
        # append-mostly: copies share their history (see Layered)
        self.handles: Layered = Layered()  # lineage: (inst, handle) -> (kind, root)
        self.taint: Layered = Layered()  # token -> root task
        self.traps: list[tuple[int, Optional[int], str]] = []  # (event n, task, message)
        self.deadlocks: list[tuple[int, str]] = []

    # ---------------------------------------------------------------- copy

    def copy(self) -> "State":
        s = State.__new__(State)
        s._token = object()
        self._token = object()  # (what it owned is shared now)
        s.n, s.time = self.n, self.time
        s.instances = dict(self.instances)
        s.tasks = dict(self.tasks)
        s.tasks_created, s.tasks_exited = self.tasks_created, self.tasks_exited
        s.threads = dict(self.threads)
        s.current_thread = self.current_thread
        s.waitable_sets = dict(self.waitable_sets)
        s.joined = dict(self.joined)
        s.waiting = dict(self.waiting)
        s.imports = dict(self.imports)  # ImportCall is never mutated
        s.imports_made = self.imports_made
        s.queued = dict(self.queued)
        s.handles = self.handles.copy()
        s.taint = self.taint.copy()
        s.traps = list(self.traps)
        s.deadlocks = list(self.deadlocks)
        return s

    def size(self) -> int:
        """About how many entries a copy of this state holds (what a
        Timeline snapshot costs): one per task, waitable set, instance and
        entry of the other maps. The objects are shared until changed, and
        the Layered dicts (handles, taint) share what was written before."""
        return (len(self.instances) + len(self.tasks) + len(self.threads) + len(self.waitable_sets)
                + len(self.joined) + len(self.waiting) + len(self.imports) + len(self.queued)
                + len(self.traps) + len(self.deadlocks))

    # --------------------------------------------------------------- apply

    def apply(self, ev: Any) -> None:
        kind = ev[1]
        h = _HANDLERS.get(kind)
        if h is None:
            if kind.startswith(("stream.", "future.")):
                h = State._copy_op
            else:
                h = None
        if h is not None:
            h(self, ev[0], ev[2], ev[3], kind)
        self.n = ev[0] + 1
        self.time = ev[2]

    def apply_all(self, events: Iterable[Any]) -> "State":
        for ev in events:
            self.apply(ev)
        return self

    def _own(self, d: dict, k: Any) -> Any:
        """``d[k]`` (None when absent) as an object this state may change:
        a copy of it, put in ``d``, when it is shared with another state."""
        o = d.get(k)
        if o is not None and o.owner is not self._token:
            o = o.copy()
            o.owner = self._token
            d[k] = o
        return o

    def _instance_new(self, n, t, f, kind):
        self.instances[f[0]] = Instance(f[0], f[1], f[2], owner=self._token)

    def _task_new(self, n, t, f, kind):
        task = Task(f[0], f[1], f[2], f[3], f[4], f[5], bool(f[6]), created=n, created_time=t, owner=self._token)
        self.tasks[task.id] = task
        self.tasks_created += 1
        caller = self._own(self.tasks, task.caller) if task.caller is not None else None
        if caller is not None:
            if caller.children:
                caller.children.append(task.id)
            else:
                caller.children = [task.id]

    def _task_set(self, n, t, f, kind):
        task = self._own(self.tasks, f[0])
        if task is None:
            return
        if kind == "task.start":
            task.state = "started"
        elif kind == "task.return":
            task.state = "returned"
            task.returned = n
        elif kind == "task.cancel":
            task.state = "cancelled"
            task.returned = n
        elif kind == "task.resolved":
            task.state = "resolved"

    def _task_exit(self, n, t, f, kind):
        task = self.tasks.pop(f[0], None)
        if task is None:
            return
        self.tasks_exited += 1
        parent = self.tasks.get(task.caller) if task.caller is not None else None
        if parent is not None and task.id in parent.children:
            self._own(self.tasks, task.caller).children.remove(task.id)
        self.queued.pop(task.id, None)
        for th, tk in list(self.threads.items()):
            if tk == task.id:
                del self.threads[th]
                self.waiting.pop(th, None)

    def _subtask_state(self, n, t, f, kind):
        task = self._own(self.tasks, f[0])
        if task is None:
            return
        st = f[2]
        task.subtask_state = SUBTASK_STATES[st] if isinstance(st, int) and 0 <= st < len(SUBTASK_STATES) else str(st)
        if f[1] is not None:
            task.subtask_handle = f[1]

    def _subtask_cancel(self, n, t, f, kind):
        task = self._own(self.tasks, f[0])
        if task is not None:
            task.cancel_requested = True

    def _backpressure(self, n, t, f, kind):
        inst = self._own(self.instances, f[0])
        if inst is None:
            inst = self.instances[f[0]] = Instance(f[0], None, None, owner=self._token)
        inst.backpressure = f[1]

    def _call_queued(self, n, t, f, kind):
        self.queued[f[0]] = t
        task = self._own(self.tasks, f[0])
        if task is not None:
            task.state = "queued"

    def _call_admitted(self, n, t, f, kind):
        self.queued.pop(f[0], None)
        task = self.tasks.get(f[0])
        if task is not None and task.state == "queued":
            task = self._own(self.tasks, f[0])
            task.state = "new"

    def _ws_new(self, n, t, f, kind):
        self.waitable_sets[(f[0], f[1])] = WaitableSet(f[0], f[1], owner=self._token)

    def _ws_drop(self, n, t, f, kind):
        self.waitable_sets.pop((f[0], f[1]), None)

    def _w_join(self, n, t, f, kind):
        inst, w, s = f[0], f[1], f[2]
        # (leave the set it was in: found by the joined index, not by
        # walking every set of the instance: O(1) per event)
        old = self.joined.pop((inst, w), None)
        if old is not None:
            ws = self._own(self.waitable_sets, (inst, old))
            if ws is not None:
                ws.discard("members", w)
        if s:
            self.joined[(inst, w)] = s
            ws = self._own(self.waitable_sets, (inst, s))
            if ws is None:
                ws = self.waitable_sets[(inst, s)] = WaitableSet(inst, s, owner=self._token)
            ws.add("members", w)

    def _thread_inst(self, thread: int) -> Optional[int]:
        task = self.tasks.get(self.threads.get(thread))
        return task.inst if task is not None else None

    def _ws_wait(self, n, t, f, kind):
        thread, s = f[0], f[1]
        inst = self._thread_inst(thread)
        self.waiting[thread] = (inst, s)
        ws = self._own(self.waitable_sets, (inst, s))
        if ws is not None:
            ws.add("waiting", thread)

    def _event_delivered(self, n, t, f, kind):
        w = self.waiting.pop(f[0], None)
        if w is not None:
            ws = self._own(self.waitable_sets, w)
            if ws is not None:
                ws.discard("waiting", f[0])

    def _thread_switch(self, n, t, f, kind):
        self.current_thread = f[1]

    def _thread_new(self, n, t, f, kind):
        self.threads[f[0]] = f[1]

    def _thread_set_task(self, n, t, f, kind):
        self.threads[f[0]] = f[2]

    def _import_call(self, n, t, f, kind):
        self.imports[f[0]] = ImportCall(f[0], f[1], f[2], tuple(f[3] or ()), n, t)
        self.imports_made += 1

    def _import_return(self, n, t, f, kind):
        self.imports.pop(f[0], None)

    def _handle_new(self, n, t, f, kind):
        self.handles[(f[1], f[2])] = (f[0], f[3])

    def _taint(self, n, t, f, kind):
        self.taint[f[1]] = f[0]

    def _trap(self, n, t, f, kind):
        self.traps.append((n, f[0], f[1]))

    def _deadlock(self, n, t, f, kind):
        self.deadlocks.append((n, f[0]))

    def _copy_op(self, n, t, f, kind):
        # streams/futures: a 'new' is recorded for lineage only via handle.new;
        # drops forget the handle's lineage
        if kind.endswith((".drop-readable", ".drop-writable")) and len(f) > 3 and f[3] is not None:
            self.handles.pop((f[3], f[0]), None)

    # --------------------------------------------------------------- views

    def live_tasks(self, inst: Optional[int] = None) -> list[Task]:
        return [t for t in self.tasks.values() if inst is None or t.inst == inst]

    def call_tree(self, inst: Optional[int] = None) -> list[CallNode]:
        """The live async call forest: roots are live tasks whose caller is
        not live (or not in ``inst`` when given); children nest by caller."""
        nodes = {t.id: CallNode(t, []) for t in self.live_tasks(inst)}
        roots = []
        for node in nodes.values():
            parent = nodes.get(node.task.caller) if node.task.caller is not None else None
            if parent is None:
                roots.append(node)
            else:
                parent.children.append(node)
        return roots

    def render_tree(self, inst: Optional[int] = None) -> str:
        lines: list[str] = []

        def walk(node: CallNode, depth: int) -> None:
            t = node.task
            label = f" {t.label!r}" if t.label else ""
            lines.append(f"{'  ' * depth}task {t.id} {t.func}{label} [{t.state}] inst {t.inst}")
            for c in node.children:
                walk(c, depth + 1)

        for r in self.call_tree(inst):
            walk(r, 0)
        return "\n".join(lines)


_HANDLERS = {
    "instance.new": State._instance_new,
    "task.new": State._task_new,
    "task.start": State._task_set,
    "task.return": State._task_set,
    "task.cancel": State._task_set,
    "task.resolved": State._task_set,
    "task.exit": State._task_exit,
    "subtask.state": State._subtask_state,
    "subtask.cancel": State._subtask_cancel,
    "backpressure.inc": State._backpressure,
    "backpressure.dec": State._backpressure,
    "backpressure.set": State._backpressure,
    "call.queued": State._call_queued,
    "call.admitted": State._call_admitted,
    "waitable-set.new": State._ws_new,
    "waitable-set.drop": State._ws_drop,
    "waitable.join": State._w_join,
    "waitable-set.wait": State._ws_wait,
    "event.delivered": State._event_delivered,
    "thread.switch": State._thread_switch,
    "thread.new": State._thread_new,
    "thread.set-task": State._thread_set_task,
    "import.call": State._import_call,
    "import.return": State._import_return,
    "handle.new": State._handle_new,
    "taint.plant": State._taint,
    "trap": State._trap,
    "deadlock": State._deadlock,
}


# A snapshot is taken every ``every`` events, or, when the state is big, only
# after SPACING times as many events as the state holds objects: the
# snapshots together hold about 1/SPACING objects per event of the trace,
# and a far jump applies at most that many events more than a copy costs.
SPACING = 4
CANCEL_EVERY = 4096  # events applied between two asks of a ``cancelled`` callback


def _never() -> bool:
    return False


class Timeline:
    """``state_at(n)`` over a trace, with snapshots on the way.

    ``events`` is a :class:`~callscope.trace.reader.TraceReader` (seeks by
    event number) or a list of events.

    A snapshot is taken ``every`` events, or later when the state is big: at
    least ``SPACING`` times as many events after the previous one as the
    state's ``size()`` (its entries; the objects are shared, copy-on-write,
    see :class:`State`). The snapshots together then hold about a quarter as
    many entries as there are events (memory linear in the trace, never
    quadratic: a state that grows with the trace is not copied every
    ``every`` events), and ``state_at`` applies at most ``max(every,
    SPACING * size)`` events after one.
    """

    def __init__(self, events: Any, every: int = 4096):
        self._events = events
        self.every = max(1, every)
        self._snaps: list[State] = [State()]
        self._snap_ns: list[int] = [0]
        self._next = self.every  # where the next snapshot is due
        self._done = 0  # events applied by the snapshot pass so far
        self._work: Optional[State] = None  # the pass's state (not a snapshot)

    def __len__(self) -> int:
        return len(self._events)

    def _iter(self, start: int, stop: int) -> Iterator[Any]:
        ev = self._events
        if hasattr(ev, "events"):
            return ev.events(start, stop)
        return iter(ev[start:stop])

    def _extend(self, n: int, cancelled: Callable[[], bool] = _never) -> bool:
        """Snapshots up to event ``n`` (or the last one due before it).
        False when ``cancelled()`` said so on the way (asked every
        ``CANCEL_EVERY`` events); what was applied until then is kept, so the
        next call goes on from there."""
        if self._done >= n or self._next > n:
            return True
        s = self._work
        if s is None or s.n != self._done:
            s = self._snaps[-1].copy()
        done = True
        try:
            for ev in self._iter(s.n, n):
                s.apply(ev)
                if s.n >= self._next:
                    self._snaps.append(s.copy())
                    self._snap_ns.append(s.n)
                    self._next = s.n + max(self.every, SPACING * s.size())
                if not s.n % CANCEL_EVERY and cancelled():
                    done = False
                    break
        finally:
            self._work = s
            self._done = s.n
        return done

    def cost(self, n: int) -> int:
        """How many events ``state_at(n)`` would apply (extending the
        snapshots included): a caller that must not wait long (the replay
        app's UI thread) computes far states elsewhere."""
        n = max(0, min(n, len(self._events)))
        if n > self._done and self._next <= n:
            return n - self._done
        if self._work is not None and self._work.n == n:
            return 0
        k = bisect.bisect_right(self._snap_ns, n) - 1
        return n - self._snap_ns[k]

    def state_at(self, n: int, cancelled: Optional[Callable[[], bool]] = None) -> Optional[State]:
        """The state before event ``n`` (after events 0..n-1). A fresh copy.
        With ``cancelled``: None as soon as it returns true (asked every
        ``CANCEL_EVERY`` events applied), so a newer request (a far jump
        after a far jump) need not wait for an older one."""
        total = len(self._events)
        n = max(0, min(n, total))
        if not self._extend(n, cancelled or _never):
            return None
        if self._work is not None and self._work.n == n:
            return self._work.copy()
        k = bisect.bisect_right(self._snap_ns, n) - 1
        s = self._snaps[k].copy()
        for ev in self._iter(s.n, n):
            s.apply(ev)
            if cancelled is not None and not s.n % CANCEL_EVERY and cancelled():
                return None
        return s

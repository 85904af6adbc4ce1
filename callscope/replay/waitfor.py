""""Why is it stuck": the wait-for view of a :class:`~callscope.model.State`.

For each blocked thread: what it waits on (a waitable set and its members:
subtasks, stream and future ends; or backpressure; or an import the host has
not answered) and who could wake it. Then the wait-for graph between tasks
(A waits on B when B's return, or B lowering backpressure, is what could wake
A): a cycle in it is a deadlock by cycle; a blocked thread nobody live could
wake is a missing waker. Pure functions over the state; no widgets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from rich.text import Text

from ..model import State
from .source import plain

__all__ = ["Blocked", "WaitFor", "wait_for", "wait_for_text"]


@dataclass
class Blocked:
    task: int
    thread: Optional[int]
    what: str  # what it waits on, in the spec's words
    wakers: list[str] = field(default_factory=list)  # who could wake it ("" none)
    waits_on: list[int] = field(default_factory=list)  # tasks whose progress would wake it


@dataclass
class WaitFor:
    blocked: list[Blocked]
    cycle: list[int]  # task ids, first == waits on second ... last waits on first; [] if none
    missing: list[Blocked]  # blocked with no live waker
    deadlock: Optional[str]  # the recorded deadlock message, when the state has one


def _describe(state: State, tid: Optional[int]) -> str:
    t = state.tasks.get(tid) if tid is not None else None
    if t is None:
        return f"task {tid}"
    lab = f' "{t.label}"' if t.label else ""
    return plain(f"task {t.id} {t.func}{lab}")


def wait_for(state: State) -> WaitFor:
    tasks = state.tasks
    # subtask handle (in its caller's instance) -> callee task
    subtasks: dict[tuple, int] = {}
    for t in tasks.values():
        c = tasks.get(t.caller) if t.caller is not None else None
        if c is not None and t.subtask_handle is not None:
            subtasks[(c.inst, t.subtask_handle)] = t.id
    blocked: list[Blocked] = []
    for th, (inst, s) in sorted(state.waiting.items()):
        tid = state.threads.get(th)
        if tid is None or tid not in tasks:
            continue
        t = tasks[tid]
        ws = state.waitable_sets.get((inst if inst is not None else t.inst, s))
        members = sorted(ws.members) if ws is not None else []
        b = Blocked(tid, th, f"waitable set {s} (instance {t.inst})")
        if not members:
            b.what += ", which is empty"
        for h in members:
            callee = subtasks.get((t.inst, h))
            kind = state.handles.get((t.inst, h))
            if callee is not None:
                ct = tasks[callee]
                b.wakers.append(f"subtask {h}: {_describe(state, callee)} [{ct.state}] returning")
                b.waits_on.append(callee)
            elif kind is not None and kind[0] and kind[0].startswith(("stream", "future")):
                end = kind[0]
                b.wakers.append(f"{end} end {h}: whoever holds its other end reading, writing or dropping it")
            else:
                b.wakers.append(f"waitable {h}: an event on it (no live subtask or stream/future end known)")
        blocked.append(b)
    for tid in sorted(state.queued):
        t = tasks.get(tid)
        if t is None:
            continue
        inst = state.instances.get(t.inst)
        bp = inst.backpressure if inst is not None else 0
        b = Blocked(tid, None, f"backpressure of instance {t.inst}" + (f" (counter {bp})" if bp else
                                                                        " (may not enter: another task is in it)"))
        holders = [o.id for o in tasks.values() if o.inst == t.inst and o.id != tid and o.state in ("started", "returned")]
        for o in holders:
            b.wakers.append(f"{_describe(state, o)} [{tasks[o].state}] lowering backpressure or returning")
            b.waits_on.append(o)
        blocked.append(b)
    waiting_threads = {b.task for b in blocked}
    for imp in sorted(state.imports.values(), key=lambda i: i.n):
        cur = imp.stack[0] if imp.stack else None
        if cur is None or cur in waiting_threads or cur not in tasks:
            continue
        blocked.append(Blocked(cur, None, f"import {imp.name} (call {imp.id}, event #{imp.n})",
                               ["the host answering the import"]))
    # the wait-for graph: a cycle among tasks that all wait
    edges: dict[int, list[int]] = {}
    for b in blocked:
        edges.setdefault(b.task, []).extend(b.waits_on)
    # a subtask's caller also waits on whatever its subtask waits on only via the subtask: edges suffice
    cycle = _find_cycle(edges)
    missing = [b for b in blocked if not b.wakers or (b.waits_on and all(w not in tasks for w in b.waits_on))]
    deadlock = state.deadlocks[-1][1] if state.deadlocks else None
    return WaitFor(blocked, cycle, missing, deadlock)


def _find_cycle(edges: dict[int, list[int]]) -> list[int]:
    color: dict[int, int] = {}
    stack: list[int] = []

    def visit(u: int) -> Optional[list[int]]:
        color[u] = 1
        stack.append(u)
        for v in edges.get(u, ()):
            if v not in edges:
                continue  # v is not blocked: it can still make progress
            if color.get(v) == 1:
                return stack[stack.index(v):]
            if color.get(v) is None:
                r = visit(v)
                if r:
                    return r
        stack.pop()
        color[u] = 2
        return None

    for u in sorted(edges):
        if color.get(u) is None:
            r = visit(u)
            if r:
                return list(r)
    return []


def wait_for_text(state: State, at: Optional[int] = None) -> Text:
    """The wait-for view as text (never markup)."""
    w = wait_for(state)
    out = Text()
    out.append("why is it stuck? ", style="bold underline")
    out.append(f"(wait-for at event #{at:,})\n" if at is not None else "\n", style="bright_black")
    if w.deadlock is not None:
        out.append("DEADLOCK", style="bold white on red")
        out.append(" recorded: ")
        out.append(plain(w.deadlock) + "\n", style="red")
    if w.cycle:
        out.append("cycle: ", style="bold red")
        out.append(" waits on ".join(_describe(state, t) for t in w.cycle + w.cycle[:1]) + "\n", style="red")
    for b in w.missing:
        out.append("missing waker: ", style="bold red")
        out.append(f"{_describe(state, b.task)} waits on {b.what}; nothing live can wake it\n", style="red")
    if w.deadlock is not None and not w.cycle and not w.missing:
        out.append("no cycle among the blocked tasks and each has a possible waker: the waker never ran "
                   "(look at the last events before the deadlock)\n", style="yellow")
    if not w.blocked:
        out.append("\nnothing is blocked at this event\n", style="green")
        return out
    out.append("\n")
    for b in w.blocked:
        out.append("◔ ", style="blue")
        out.append(_describe(state, b.task), style="bold")
        if b.thread is not None:
            out.append(f" thread {b.thread}", style="bright_black")
        out.append(" waits on ")
        out.append(b.what + "\n", style="blue")
        if not b.wakers:
            out.append("    woken by: nobody\n", style="bold red")
        for wk in b.wakers:
            out.append("    woken by: ", style="bright_black")
            out.append(wk + "\n")
    return out

"""The call graph of a trace: root export tasks, subtasks, import calls, the
findings about them; built in one pass over the events (the findings lints
run over the same pass)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional

from ..model import Finding, check_all


@dataclass(slots=True)
class GraphTask:
    id: int
    inst: int
    func: Optional[str]
    caller: Optional[int]  # None: a root export task (the host called it)
    root: int
    label: Optional[str]
    n: int  # event number of task.new
    state: str = "new"  # new | queued | started | returned | cancelled

    @property
    def is_root(self) -> bool:
        return self.caller is None


@dataclass(slots=True)
class GraphImport:
    n: int  # event number of import.call: the node's identity
    call: int
    inst: int
    name: Optional[str]
    stack: tuple  # async call stack: current task first, root export task last
    returned: bool = False
    findings: list = field(default_factory=list)

    @property
    def task(self) -> Optional[int]:
        """The task that made the call (the current task)."""
        return self.stack[0] if self.stack else None


@dataclass
class CallGraph:
    instances: dict[int, Optional[str]] = field(default_factory=dict)  # id -> name
    tasks: dict[int, GraphTask] = field(default_factory=dict)
    imports: list[GraphImport] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    events: int = 0  # events read
    at: Optional[int] = None  # the last event read when cut with --at
    title: Optional[str] = None

    def misattributed(self, imp: GraphImport) -> Optional[Finding]:
        for f in imp.findings:
            if f.lint == "misattributed":
                return f
        return None


_STATE = {"task.start": "started", "task.return": "returned", "task.cancel": "cancelled",
          "call.queued": "queued", "call.admitted": "new"}


def build_graph(
    events: Iterable[Any],
    *,
    at: Optional[int] = None,
    instance: Optional[int] = None,
    only_findings: bool = False,
    title: Optional[str] = None,
) -> CallGraph:
    """The call graph of ``events`` (``(n, kind, time, fields)``), up to and
    including event ``at`` when given; only instance ``instance``'s tasks and
    imports when given; only what the findings involve when
    ``only_findings``."""
    g = CallGraph(at=at, title=title)
    tasks = g.tasks
    imports = g.imports
    by_n: dict[int, GraphImport] = {}

    def feed() -> Iterator[Any]:
        for ev in events:
            n = ev[0]
            if at is not None and n > at:
                return
            kind = ev[1]
            f = ev[3]
            if kind == "task.new":
                tasks[f[0]] = GraphTask(f[0], f[1], f[2], f[3], f[4], f[5], n)
                if f[1] not in g.instances:
                    g.instances[f[1]] = None
            elif kind == "import.call":
                imp = GraphImport(n, f[0], f[1], f[2], tuple(f[3] or ()))
                imports.append(imp)
                by_n[n] = imp
                if f[1] not in g.instances:
                    g.instances[f[1]] = None
            elif kind == "instance.new":
                g.instances[f[0]] = f[1]
            elif kind in _STATE:
                t = tasks.get(f[0])
                if t is not None and not (kind == "call.admitted" and t.state != "queued"):
                    t.state = _STATE[kind]
            g.events += 1
            yield ev

    g.findings = check_all(feed())
    for fd in g.findings:
        imp = by_n.get(fd.n)
        if imp is not None:
            imp.findings.append(fd)
    if instance is not None or only_findings:
        _filter(g, instance, only_findings)
    return g


def _filter(g: CallGraph, instance: Optional[int], only_findings: bool) -> None:
    tasks = g.tasks
    keep_imports = g.imports
    if instance is not None:
        keep_imports = [i for i in keep_imports if i.inst == instance]
    if only_findings:
        keep_imports = [i for i in keep_imports if i.findings]
    keep_tasks: set[int] = set()
    if only_findings:
        def with_callers(tid: Optional[int]) -> None:
            while tid is not None and tid in tasks and tid not in keep_tasks:
                keep_tasks.add(tid)
                tid = tasks[tid].caller

        for imp in keep_imports:
            for tid in imp.stack:
                with_callers(tid)
        for fd in g.findings:
            for key in ("origin", "stack_root", "root", "task"):
                tid = fd.details.get(key)
                if tid is not None and (instance is None or fd.details.get("inst") in (None, instance)):
                    with_callers(tid)
            for tid in fd.details.get("origins", ()):
                with_callers(tid)
        if instance is not None:
            keep_tasks = {t for t in keep_tasks if tasks[t].inst == instance or _is_origin(g, t, keep_imports)}
    else:
        keep_tasks = {t.id for t in tasks.values() if t.inst == instance}
        for imp in keep_imports:  # the true origin of a misattributed import stays visible
            fd = g.misattributed(imp)
            if fd is not None and fd.details.get("origin") in tasks:
                keep_tasks.add(fd.details["origin"])
    g.tasks = {k: v for k, v in tasks.items() if k in keep_tasks}
    g.imports = keep_imports
    used = {t.inst for t in g.tasks.values()} | {i.inst for i in g.imports}
    g.instances = {k: v for k, v in g.instances.items() if k in used}


def _is_origin(g: CallGraph, tid: int, imports: list[GraphImport]) -> bool:
    for imp in imports:
        fd = g.misattributed(imp)
        if fd is not None and tid in fd.details.get("origins", ()):
            return True
    return False

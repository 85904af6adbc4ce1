"""The call graph of a trace: root export tasks, subtasks, import calls, the
findings about them; built in one pass over the events (the findings lints
run over the same pass). Then, optionally, a selection (:class:`Selection`:
lints, a root, an instance, a call and its origin) and folding of repeated
subtrees down to a node budget (:func:`fold`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator, Optional, Sequence

from ..model import Finding, check_all
from ..model.findings import DEFAULT_LINTS, ByEvent, default_lints

LINT_NAMES = tuple(cls.name for cls in DEFAULT_LINTS)


class SelectionError(ValueError):
    """One line: the selection names something the trace does not have."""


def _add(node: Any, attr: str, items: Sequence) -> None:
    """Extend ``node.attr`` by ``items``. A node's ``findings`` and
    ``folded`` start as the shared empty tuple and become a list of their own
    at the first item: a graph of many nodes keeps no empty lists (issue 13)."""
    if not items:
        return
    have = getattr(node, attr)
    if have:
        have.extend(items)
    else:
        setattr(node, attr, list(items))


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
    folded: Sequence = ()  # root tasks folded into this one (same subtree shape); see _add
    findings: Sequence = ()  # findings about the task itself (long-backpressure)

    @property
    def is_root(self) -> bool:
        return self.caller is None

    @property
    def count(self) -> int:
        return 1 + len(self.folded)


@dataclass(slots=True)
class GraphImport:
    n: int  # event number of import.call: the node's identity
    call: int
    inst: int
    name: Optional[str]
    stack: tuple  # async call stack: current task first, root export task last
    returned: bool = False
    findings: Sequence = ()
    folded: Sequence = ()  # other GraphImports folded into this node

    @property
    def task(self) -> Optional[int]:
        """The task that made the call (the current task)."""
        return self.stack[0] if self.stack else None

    @property
    def count(self) -> int:
        return 1 + len(self.folded)

    @property
    def calls(self) -> list[int]:
        return [self.call] + [i.call for i in self.folded]

    @property
    def names(self) -> list[tuple]:
        """(name, count) of this node's calls, most frequent first."""
        c = Counter([self.name] + [i.name for i in self.folded])
        return sorted(c.items(), key=lambda kv: (-kv[1], str(kv[0])))


@dataclass
class CallGraph:
    instances: dict[int, Optional[str]] = field(default_factory=dict)  # id -> name
    tasks: dict[int, GraphTask] = field(default_factory=dict)
    imports: list[GraphImport] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    events: int = 0  # events read
    at: Optional[int] = None  # the last event read when cut with --at
    title: Optional[str] = None
    notes: list[str] = field(default_factory=list)  # what selection/folding did, for the graph's caption
    all_tasks: dict[int, GraphTask] = field(default_factory=dict)  # every task, selected or not

    def misattributed(self, imp: GraphImport) -> Optional[Finding]:
        for f in imp.findings:
            if f.lint == "misattributed":
                return f
        return None

    @property
    def nodes(self) -> int:
        return len(self.tasks) + len(self.imports)

    def describe_task(self, tid: Optional[int]) -> str:
        """``task 2 "GET /b"`` (the label of a root task, when it has one)."""
        if tid is None:
            return "no task"
        t = self.all_tasks.get(tid) or self.tasks.get(tid)
        if t is None:
            return f"task {tid}"
        return f'task {tid} "{t.label}"' if t.label else f"task {tid}"


@dataclass(frozen=True)
class Selection:
    """What part of a trace a view shows. Every field narrows; None / empty
    means no narrowing. ``lints``: only the imports (and tasks) with findings
    of these lints, their async call stacks and true origins; ``root``: one
    root export task, by request label or task id; ``instance``: one component
    instance's tasks and imports (true origins of its misattributed imports
    stay); ``at``: the history up to and including event N; ``around``: one
    import call (by call id), its async call stack and its true origin only;
    ``max_nodes``: fold repeated subtrees until the graph has at most that
    many nodes."""

    lints: tuple = ()
    root: Optional[str] = None
    instance: Optional[int] = None
    at: Optional[int] = None
    around: Optional[int] = None
    max_nodes: Optional[int] = None

    def check(self) -> None:
        for lint in self.lints:
            if lint not in LINT_NAMES:
                raise SelectionError(f"unknown lint {lint!r} (lints: {', '.join(LINT_NAMES)})")
        for name, v, least in (("--at", self.at, 0), ("--max-nodes", self.max_nodes, 1)):
            if v is not None and v < least:
                raise SelectionError(f"{name} must be {least} or more")

    @property
    def narrows(self) -> bool:
        return bool(self.lints) or self.root is not None or self.instance is not None or self.around is not None


_STATE = {"task.start": "started", "task.return": "returned", "task.cancel": "cancelled",
          "call.queued": "queued", "call.admitted": "new"}


def build_graph(
    events: Iterable[Any],
    *,
    at: Optional[int] = None,
    instance: Optional[int] = None,
    only_findings: bool = False,
    title: Optional[str] = None,
    selection: Optional[Selection] = None,
) -> CallGraph:
    """The call graph of ``events`` (``(n, kind, time, fields)``), narrowed by
    ``selection`` (or by the older keywords: ``at``, ``instance``,
    ``only_findings`` = every lint)."""
    sel = selection or Selection()
    if at is not None:
        sel = replace(sel, at=at)
    if instance is not None:
        sel = replace(sel, instance=instance)
    if only_findings and not sel.lints:
        sel = replace(sel, lints=LINT_NAMES)
    sel.check()
    at = sel.at
    g = CallGraph(at=at, title=title)
    tasks = g.tasks
    imports = g.imports

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
                imports.append(GraphImport(n, f[0], f[1], f[2], tuple(f[3] or ())))
                if f[1] not in g.instances:
                    g.instances[f[1]] = None
            elif kind == "import.return":
                pass
            elif kind == "instance.new":
                g.instances[f[0]] = f[1]
            elif kind in _STATE:
                t = tasks.get(f[0])
                if t is not None and not (kind == "call.admitted" and t.state != "queued"):
                    t.state = _STATE[kind]
            g.events += 1
            yield ev

    g.findings = check_all(feed(), default_lints(keep_verdicts=False))
    g.all_tasks = tasks  # (the selection below makes g.tasks a new dict: this one stays whole)

    import_at = ByEvent(imports).get  # (imports are in event order)
    for fd in g.findings:
        imp = import_at(fd.n)
        if imp is None and "call_at" in fd.details:  # cdn-loop-misrouted: about the import before its note
            imp = import_at(fd.details["call_at"])
        if imp is not None:
            _add(imp, "findings", (fd,))
        elif fd.details.get("task") in tasks:
            _add(tasks[fd.details["task"]], "findings", (fd,))
    if sel.narrows:
        _select(g, sel)
    if sel.max_nodes is not None:
        fold(g, sel.max_nodes)
    return g


def origins_of(fd: Finding) -> list:
    d = fd.details
    return list(d.get("origins") or ([d["origin"]] if d.get("origin") is not None else []))


def find_root(g: CallGraph, request: str) -> int:
    """The root export task a ``--root`` names: its request label, else its id."""
    roots = [t for t in g.tasks.values() if t.is_root]
    hits = [t.id for t in roots if t.label == request]
    if hits:
        return hits[0]
    if request.strip().isdigit() and int(request) in g.tasks and g.tasks[int(request)].is_root:
        return int(request)
    hits = [t.id for t in roots if t.label and t.label.startswith(request)]
    if len(hits) == 1:
        return hits[0]
    shown = request if len(request) <= 60 else request[:57] + "..."
    raise SelectionError(f"no root export task labelled {shown!r} (or with that task id)")


def _select(g: CallGraph, sel: Selection) -> None:
    tasks = g.tasks
    imps = g.imports
    task_findings = [t for t in tasks.values() if t.findings]
    root = find_root(g, sel.root) if sel.root is not None else None
    if sel.instance is not None and sel.instance not in g.instances:  # an empty graph that says so
        g.notes.append(f"instance {sel.instance}: no such component instance in this trace"
                       + (f" up to event {sel.at}" if sel.at is not None else ""))
    if sel.around is not None:
        imps = [i for i in imps if i.call == sel.around]
        if not imps:
            raise SelectionError(f"no import call {sel.around} in this trace"
                                 + (f" up to event {sel.at}" if sel.at is not None else ""))
        task_findings = []
    if sel.instance is not None:
        imps = [i for i in imps if i.inst == sel.instance]
        task_findings = [t for t in task_findings if t.inst == sel.instance]
    if sel.lints:
        want = set(sel.lints)
        imps = [i for i in imps if any(f.lint in want for f in i.findings)]
        for i in imps:  # findings of other lints are not drawn
            i.findings = [f for f in i.findings if f.lint in want]
        task_findings = [t for t in task_findings if any(f.lint in want for f in t.findings)]
    if root is not None:
        def about_root(i: GraphImport) -> bool:
            if i.stack and g.all_tasks.get(i.stack[-1]) is not None and g.all_tasks[i.stack[-1]].root == root:
                return True
            return any(root in origins_of(f) for f in i.findings if f.lint == "misattributed")

        imps = [i for i in imps if about_root(i)]
        task_findings = [t for t in task_findings if t.root == root]

    keep: set[int] = set()

    def with_callers(tid: Optional[int]) -> None:
        while tid is not None and tid in tasks and tid not in keep:
            keep.add(tid)
            tid = tasks[tid].caller

    if not sel.lints and sel.around is None:
        # every task of the root / instance, not only those that made imports
        for t in tasks.values():
            if (root is None or t.root == root) and (sel.instance is None or t.inst == sel.instance):
                keep.add(t.id)
    for t in task_findings:
        with_callers(t.id)
    for i in imps:
        for tid in i.stack:
            with_callers(tid)
        for fd in i.findings:
            if fd.lint == "misattributed" or fd.lint == "cdn-loop-misrouted":
                for o in origins_of(fd):
                    with_callers(o)
            for key in ("stack_root", "copied_from"):
                with_callers(fd.details.get(key))
    g.tasks = {k: v for k, v in tasks.items() if k in keep}
    g.imports = imps
    used = {t.inst for t in g.tasks.values()} | {i.inst for i in g.imports}
    g.instances = {k: v for k, v in g.instances.items() if k in used}
    what = []
    if sel.lints:
        what.append("lint " + ", ".join(sel.lints))
    if root is not None:
        what.append(f"root {g.describe_task(root)}")
    if sel.instance is not None:
        what.append(f"instance {sel.instance}")
    if sel.around is not None:
        what.append(f"around call {sel.around}")
    g.notes.append("only " + "; ".join(what))


# -- folding ------------------------------------------------------------------


def _import_key(i: GraphImport) -> tuple:
    return (i.name, tuple(sorted({f.lint for f in i.findings})))


def _fold_imports(g: CallGraph, key) -> None:
    """Imports made by the same task with the same ``key`` become one node."""
    out: list[GraphImport] = []
    first: dict[tuple, GraphImport] = {}
    for i in g.imports:
        k = key(i)
        if k is None:
            out.append(i)
            continue
        k = (i.task, i.inst) + k
        rep = first.get(k)
        if rep is None:
            first[k] = i
            out.append(i)
        else:
            _add(rep, "folded", (i, *i.folded))
            i.folded = ()
            _add(rep, "findings", i.findings)
    g.imports = out


def _mis_key(g: CallGraph, i: GraphImport) -> Optional[tuple]:
    """Misattributed imports group by (attributed to, caused by)."""
    fd = g.misattributed(i)
    if fd is None:
        return None
    return ("misattributed", fd.details.get("stack_root"), tuple(origins_of(fd)))


def _protected_tasks(g: CallGraph) -> set:
    """Tasks a misattributed import names (its stack root, its true origins):
    never folded away, so every red label's X and Y stay in the graph."""
    out: set = set()
    for i in g.imports:
        for fd in i.findings:
            if fd.lint == "misattributed":
                out.add(fd.details.get("stack_root"))
                out.update(origins_of(fd))
    for t in g.tasks.values():
        if t.findings:
            out.add(t.id)
    return out


def _fold_roots(g: CallGraph) -> None:
    """Root export tasks whose subtrees have the same shape (same functions,
    same imports, as folded so far) become one node with a count."""
    children: dict[Optional[int], list[int]] = {}
    for t in g.tasks.values():
        children.setdefault(t.caller, []).append(t.id)
    imps_of: dict[int, list[GraphImport]] = {}
    for i in g.imports:
        imps_of.setdefault(i.task, []).append(i)
    memo: dict[int, tuple] = {}

    def shape(tid: int) -> tuple:
        s = memo.get(tid)
        if s is None:
            t = g.tasks[tid]
            kids = sorted(shape(c) for c in children.get(tid, ()))
            ims = sorted(Counter((i.name, _import_key(i)[1], i.count) for i in imps_of.get(tid, ())).items())
            s = (t.func, t.inst, t.state, tuple(kids), tuple(ims))
            memo[tid] = s
        return s

    protected = _protected_tasks(g)

    def subtree(tid: int) -> list[int]:  # in an order two subtrees of one shape share
        out = [tid]
        for c in sorted(children.get(tid, ()), key=shape):
            out.extend(subtree(c))
        return out

    reps: dict[tuple, tuple] = {}
    drop: set[int] = set()
    for tid in list(children.get(None, ())):
        sub = subtree(tid)
        if protected.intersection(sub):
            continue
        s = shape(tid)
        rep = reps.get(s)
        if rep is None:
            reps[s] = (g.tasks[tid], sub)
            continue
        rep_task, rep_sub = rep
        _add(rep_task, "folded", (g.tasks[tid],))
        drop.update(sub)
        for mine, theirs in zip(sub, rep_sub):  # each import counted in the representative's node
            for i in imps_of.get(mine, ()):
                k = _import_key(i)
                target = next((r for r in imps_of.get(theirs, ()) if _import_key(r) == k), None)
                if target is not None:
                    _add(target, "folded", (i, *i.folded))
                    _add(target, "findings", i.findings)
                    i.folded = ()
    if drop:
        g.tasks = {k: v for k, v in g.tasks.items() if k not in drop}
        g.imports = [i for i in g.imports if i.task not in drop]


def fold(g: CallGraph, max_nodes: int) -> None:
    """Fold until the graph has at most ``max_nodes`` nodes, in steps that
    keep the most: (1) repeated plain imports of a task into one node with a
    count; (2) root subtrees of the same shape into one root with a count
    (never one a misattributed import names); (3) a task's imports of the
    same name and findings; (4) a task's misattributed imports with the same
    X (attributed to) and Y (caused by) into one red node that names each
    (import and call); (5) roots again; (6) the rest of a task's imports into
    one node. A note says what was folded."""
    before = g.nodes
    if before <= max_nodes:
        return
    _fold_imports(g, lambda i: None if i.findings else _import_key(i))
    if g.nodes > max_nodes:
        _fold_roots(g)
    if g.nodes > max_nodes:
        _fold_imports(g, lambda i: None if g.misattributed(i) else _import_key(i))
    if g.nodes > max_nodes:  # the misattributed imports of a task with the same X and Y: one node listing each
        _fold_imports(g, lambda i: _mis_key(g, i))
    if g.nodes > max_nodes:
        _fold_roots(g)
    if g.nodes > max_nodes:  # last: all of a task's imports but the misattributed ones, as one node
        _fold_imports(g, lambda i: None if g.misattributed(i) else ("(other imports)",))
    note = f"folded {before} nodes into {g.nodes} (--max-nodes {max_nodes})"
    if g.nodes > max_nodes:
        note += "; misattributed imports and the tasks they name are never folded away"
    g.notes.append(note)


def node_count(g: CallGraph) -> int:
    return g.nodes


__all__: Sequence[str] = (
    "CallGraph", "GraphImport", "GraphTask", "LINT_NAMES", "Selection", "SelectionError", "build_graph", "fold",
    "find_root", "origins_of",
)

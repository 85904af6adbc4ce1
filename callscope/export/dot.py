"""DOT for a :class:`~.graph.CallGraph`, built with the ``graphviz`` package.

Every string that comes from a trace (names, request labels, evidence) goes
through :func:`text`: control characters dropped, long strings cut, then
``graphviz.escape`` (backslashes literal, never an HTML-like label) inside
the package's own quoting, so a label can never close its string or add an
attribute. Node and cluster names are ours (``t3``, ``i21``,
``cluster_inst_2``), never trace data. No ``URL``/``href`` attribute is ever
set, so the SVG has no links.

Nodes: root export tasks (bold blue boxes, their request label first), other
tasks (rounded grey boxes), import calls (notes). Edges: caller -> callee
(subtask), task -> import (the task current when the import was made). A
misattributed import is red ("attributed to X, caused by Y" and its
evidence), with a dashed red edge to its true origin root; other findings
orange; folded nodes (``xN``) double-bordered. One cluster per component
instance; a legend in every graph.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterator, Optional

import graphviz

from .graph import CallGraph, GraphImport, GraphTask, origins_of

RED = "#d62728"
ORANGE = "#e08a00"
GREY = "#555555"
ROOT_FILL = "#dbe9f6"
TASK_FILL = "#f2f2f2"
FONT = "Helvetica"
MAX_TEXT = 96  # characters of one trace string in a label
MAX_LIST = 6  # folded members named in a label


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


@lru_cache(maxsize=4096)
def clean(s: object, limit: int = MAX_TEXT) -> str:
    """A trace string made printable: line breaks and tabs as spaces, other
    control characters dropped, cut at ``limit`` characters (with "...")."""
    s = str(s)
    if _CONTROL.search(s):
        s = _CONTROL.sub(lambda m: " " if m.group() in "\t\n\r" else "", s)
    if len(s) > limit:
        s = s[: limit - 3] + "..."
    return s


def text(*lines: object, limit: int = MAX_TEXT) -> str:
    """A DOT label (escString) of ``lines``: each cleaned and escaped, joined
    with centered line breaks; never HTML-like."""
    return graphviz.nohtml("\\n".join(graphviz.escape(clean(x, limit)) for x in lines))


def quote(s: object) -> str:
    """A DOT double-quoted string of ``s`` (what a label of it looks like in
    the DOT text)."""
    return graphviz.quoting.quote(text(s)) if str(s) else '""'


def task_id(t: int) -> str:
    return f"t{int(t)}"


def import_id(imp: GraphImport) -> str:
    return f"i{int(imp.n)}"


def _names(items: list, limit: int = MAX_LIST) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _task_node(g: CallGraph, dg, t: GraphTask) -> None:
    if t.is_root:
        head = f'"{clean(t.label)}"' if t.label else "(no request label)"
        lines = [head, f"root export task {t.id}", t.func]
        attrs = dict(shape="box", style="filled,bold", fillcolor=ROOT_FILL)
    else:
        lines = [f"task {t.id}", t.func] + ([f'"{clean(t.label)}"'] if t.label else [])
        attrs = dict(shape="box", style="rounded,filled", fillcolor=TASK_FILL)
    if t.state in ("queued", "cancelled"):
        lines.append(f"[{'waiting on backpressure' if t.state == 'queued' else t.state}]")
    if t.folded:
        others = [f'"{clean(x.label, 24)}"' if x.label else f"task {x.id}" for x in t.folded]
        lines.append(f"x{t.count} requests of this shape; also {_names(others, 4)}")
        attrs["peripheries"] = "2"
    for fd in t.findings:
        lines.append(f"{fd.lint}: {clean(fd.message, 80)}")
        attrs.update(color=ORANGE, fontcolor=ORANGE)
    tip = f"task {t.id} {t.state}" + "".join(f"; {fd.message}" for fd in t.findings)
    dg.node(task_id(t.id), text(*lines), tooltip=text(tip, limit=400), **attrs)


def _evidence(e: dict) -> str:
    by = e.get("by")
    if by == "taint":
        enc = e.get("encoding")
        enc = f" ({clean(enc, 12)})" if enc and enc != "plain" else ""
        return (f"evidence: taint '{clean(e.get('token'), 40)}'{enc} planted in task {e.get('planted_in')} "
                f"(event #{e.get('planted_at')})")
    if by == "oracle":
        roots = ", ".join(str(r) for r in (e.get("roots") or [])[:4])
        return f"evidence: oracle: the serial run made this call under root task {roots}"
    if by == "lineage":
        if "handle" in e:
            kind = e.get("handle_kind") or "handle"
            at = f" (event #{e['created_at']})" if "created_at" in e else ""
            return f"evidence: lineage: {clean(kind, 40)} {e['handle']}{at} created under root task {e.get('root')}"
        return f"evidence: lineage: an argument created under root task {e.get('root')}"
    return f"evidence: {clean(by, 20)}"


def _evidence_kinds(findings: list) -> str:
    c: dict = {}
    for fd in findings:
        for e in fd.details.get("evidence") or ():
            k = str(e.get("by"))
            if k == "taint":
                k = f"taint '{clean(e.get('token'), 24)}'"
            c[k] = c.get(k, 0) + 1
    return "evidence: " + ", ".join(f"{k} x{n}" if n > 1 else k for k, n in c.items()) if c else ""


def _wrap(items: list, width: int = 100) -> list:
    lines, cur = [], ""
    for it in items:
        if cur and len(cur) + 2 + len(it) > width:
            lines.append(cur + ",")
            cur = it
        else:
            cur = f"{cur}, {it}" if cur else it
    if cur:
        lines.append(cur)
    return lines


def _mis_group_lines(g: CallGraph, imp: GraphImport, mis: list) -> list:
    """A folded node of misattributed imports with one X and Y: who, then
    every import (grouped by interface) and its call, then the evidence."""
    d = mis[0].details
    causes = " and ".join(g.describe_task(o) for o in origins_of(mis[0]))
    lines = [f"MISATTRIBUTED x{imp.count}: attributed to {g.describe_task(d.get('stack_root'))}, caused by {causes}"]
    by_iface: dict = {}
    for i in [imp] + imp.folded:
        name = clean(i.name if i.name is not None else "(unnamed import)", 80)
        iface, sep, fn = name.rpartition("#")
        by_iface.setdefault(iface if sep else "", []).append(f"{fn if sep else name} (call {i.call})")
    for iface, items in by_iface.items():
        items = items[:40] + ([f"... {len(items) - 40} more"] if len(items) > 40 else [])
        wrapped = _wrap(items)
        lines.append(f"{iface}#: {wrapped[0]}" if iface else wrapped[0])
        lines.extend("    " + w for w in wrapped[1:])
    ev = _evidence_kinds(mis)
    if ev:
        lines.append(ev)
    return lines


def _import_node(g: CallGraph, dg, imp: GraphImport) -> None:
    name = imp.name if imp.name is not None else "(unnamed import)"
    names = imp.names if imp.count > 1 else []
    if len(names) > 1:
        lines = [f"{imp.count} imports of this task:"]
        lines += [f"{clean(n if n is not None else '(unnamed import)')}  x{k}" for n, k in names[:4]]
        if len(names) > 4:
            lines.append(f"... {len(names) - 4} more names")
    elif imp.count > 1:
        lines = [f"{clean(name)}  x{imp.count}", f"calls {_names([str(c) for c in imp.calls])}"]
    else:
        lines = [f"{clean(name)}  (call {imp.call}, event #{imp.n})"]
    mis = [f for f in imp.findings if f.lint == "misattributed"]
    keys = {(f.details.get("stack_root"), tuple(origins_of(f))) for f in mis}
    if mis and imp.count > 1 and len(keys) == 1 and len(names) != 1:
        lines = _mis_group_lines(g, imp, mis)
        attrs = dict(color=RED, fontcolor=RED, penwidth="2")
        others = sorted({f.lint for f in imp.findings} - {"misattributed"})
        if others:
            lines.append("also: " + ", ".join(others))
    elif mis:
        seen: set = set()
        for fd in mis:
            d = fd.details
            key = (d.get("stack_root"), tuple(origins_of(fd)))
            if key in seen:
                continue
            seen.add(key)
            causes = " and ".join(g.describe_task(o) for o in origins_of(fd))
            lines.append(f"MISATTRIBUTED: attributed to {g.describe_task(d.get('stack_root'))}, caused by {causes}")
            if imp.count == 1 or len(seen) <= 2:
                lines.extend(_evidence(e) for e in (d.get("evidence") or ())[:3])
        attrs = dict(color=RED, fontcolor=RED, penwidth="2")
        others = sorted({f.lint for f in imp.findings} - {"misattributed"})
        if others:
            lines.append("also: " + ", ".join(others))
    elif imp.findings:
        lines.append(", ".join(sorted({f.lint for f in imp.findings})))
        attrs = dict(color=ORANGE, fontcolor=ORANGE)
    else:
        attrs = dict(color=GREY)
    if imp.count > 1:
        attrs["peripheries"] = "2"
    tip = "; ".join(f.message for f in imp.findings[:3]) or f"import {name}"
    dg.node(import_id(imp), text(*lines, limit=240), shape="note", tooltip=text(tip, limit=400), **attrs)


LEGEND = """<<table border="0" cellborder="1" cellspacing="0" cellpadding="4">
<tr><td colspan="2"><b>legend</b></td></tr>
<tr><td bgcolor="{root}"><b>"request"</b></td><td align="left">root export task (the host called it)</td></tr>
<tr><td bgcolor="{task}">task N</td><td align="left">subtask (a task another task called)</td></tr>
<tr><td>import</td><td align="left">import call, made by the task it hangs off</td></tr>
<tr><td><font color="{red}"><b>red</b></font></td><td align="left"><font color="{red}">misattributed import: attributed to X, caused by Y (evidence)</font></td></tr>
<tr><td><font color="{red}">- - -&gt;</font></td><td align="left"><font color="{red}">from a misattributed import to its true origin</font></td></tr>
<tr><td><font color="{orange}">orange</font></td><td align="left"><font color="{orange}">another finding (after root returned, backpressure, ...)</font></td></tr>
<tr><td>xN</td><td align="left">N similar nodes folded into one (double border)</td></tr>
<tr><td>dashed box</td><td align="left">one component instance</td></tr>
</table>>""".format(root=ROOT_FILL, task=TASK_FILL, red=RED, orange=ORANGE)


BATCH = 1024  # nodes or edges made in one scratch graph before their lines are handed on


def dot_lines(g: CallGraph, name: str = "callscope") -> Iterator[str]:
    """The DOT text of ``g``, line by line: the text the ``graphviz``
    package's ``Digraph`` (with one ``subgraph`` per instance) would give,
    made a cluster head and a batch of :data:`BATCH` nodes or edges at a
    time in scratch graphs of the package, so no line is built by hand and
    a graph of many nodes never holds all its lines at once (issue 13)."""
    dg = graphviz.Digraph(name)
    caption = [g.title or "callscope call graph"]
    if g.at is not None:
        caption[0] += f" (events 0..{g.at})"
    caption.extend(g.notes)
    dg.attr("graph", rankdir="LR", fontname=FONT, fontsize="12", labelloc="t", labeljust="l",
            label=graphviz.nohtml("\\n".join(graphviz.escape(clean(x, 240)) for x in caption)), nodesep="0.15", ranksep="0.6")
    dg.attr("node", fontname=FONT, fontsize="10")
    dg.attr("edge", fontname=FONT, fontsize="9", color=GREY)
    dg.node("legend", LEGEND, shape="plaintext", fontsize="9")  # our own HTML-like label: no trace data
    head = list(dg)
    tail = head.pop()  # the closing brace, after the clusters and edges
    yield from head

    tasks = g.tasks
    members: dict[int, list] = {}
    for t in tasks.values():
        members.setdefault(t.inst, []).append(("t", t))
    for imp in g.imports:
        members.setdefault(imp.inst, []).append(("i", imp))
    for inst in sorted(members, key=lambda x: (x is None, x if isinstance(x, int) else 0)):
        nm = g.instances.get(inst)
        c = graphviz.Digraph(name=f"cluster_inst_{int(inst) if isinstance(inst, int) else 'none'}")
        c.attr(label=text(f"instance {inst}" + (f" {clean(nm, 60)}" if nm else "")),
               style="rounded,dashed", color="#8c8c8c", fontcolor="#404040")
        # (a subgraph's lines sit one tab in, as Digraph.subgraph puts them)
        c_head = list(c.__iter__(subgraph=True))
        c_tail = c_head.pop()
        yield from (f"\t{line}" for line in c_head)
        nodes = members.pop(inst)
        for k in range(0, len(nodes), BATCH):
            scratch = graphviz.Digraph()
            for what, x in nodes[k:k + BATCH]:
                if what == "t":
                    _task_node(g, scratch, x)
                else:
                    _import_node(g, scratch, x)
            yield from (f"\t{line}" for line in scratch.body)
        del nodes
        yield f"\t{c_tail}"

    scratch = graphviz.Digraph()
    for t in tasks.values():
        if t.caller is not None and t.caller in tasks:
            scratch.edge(task_id(t.caller), task_id(t.id))
            if len(scratch.body) >= BATCH:
                yield from scratch.body
                scratch.body.clear()
    for imp in g.imports:
        cur: Optional[int] = imp.task
        mis = [f for f in imp.findings if f.lint == "misattributed"]
        if cur is not None and cur in tasks:
            if mis:
                scratch.edge(task_id(cur), import_id(imp), color=RED, penwidth="2")
            else:
                scratch.edge(task_id(cur), import_id(imp))
        drawn: set = set()
        for fd in mis:
            for origin in origins_of(fd):
                if origin in tasks and origin not in drawn:
                    drawn.add(origin)
                    scratch.edge(import_id(imp), task_id(origin), color=RED, fontcolor=RED, style="dashed",
                                 constraint="false", label="true origin")
        if len(scratch.body) >= BATCH:
            yield from scratch.body
            scratch.body.clear()
    # the legend beside the graph (one rank right of its last node), not under it
    last = (import_id(g.imports[-1]) if g.imports else task_id(max(tasks)) if tasks else None)
    if last is not None:
        scratch.edge(last, "legend", style="invis")
    yield from scratch.body
    yield tail


def to_dot(g: CallGraph, name: str = "callscope") -> str:
    """The DOT text of ``g`` (the same graph gives the same text)."""
    return "".join(dot_lines(g, name))

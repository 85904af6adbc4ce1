"""DOT text for a :class:`~.graph.CallGraph`, written directly (no Digraph
objects: 10,000 nodes take a few milliseconds).

Nodes: root export tasks (boxes, labelled with their request label), other
tasks (rounded boxes), import calls (notes, labelled with the import name).
Edges: caller -> callee (subtask), task -> import (the task current when the
import was made). A misattributed import is red, and a dashed red edge goes
from it to its true origin root. One cluster per component instance.
"""

from __future__ import annotations

from typing import Optional

from .graph import CallGraph, GraphImport, GraphTask

RED = "#d62728"
ORANGE = "#e08a00"


def quote(s: object) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, line breaks
    as ``\\n`` (centered lines), other control characters dropped."""
    s = str(s)
    s = s.replace("\\", "\\\\").replace('"', '\\"')
    s = s.replace("\r\n", "\n").replace("\n", "\\n")
    if any(ord(c) < 32 for c in s):
        s = "".join(c for c in s if ord(c) >= 32)
    return f'"{s}"'


def task_id(t: int) -> str:
    return f'"t{t}"'


def import_id(imp: GraphImport) -> str:
    return f'"i{imp.n}"'


def _task_node(t: GraphTask) -> str:
    if t.is_root:
        head = f'"{t.label}"' if t.label else "(no request label)"
        label = f"{head}\nroot export task {t.id}\n{t.func}"
        style = 'shape=box, style="filled,bold", fillcolor="#dbe9f6"'
    else:
        label = f"task {t.id}\n{t.func}"
        if t.label:
            label += f'\n"{t.label}"'
        style = 'shape=box, style="rounded,filled", fillcolor="#f2f2f2"'
    if t.state in ("queued", "cancelled"):
        label += f"\n[{'waiting on backpressure' if t.state == 'queued' else t.state}]"
    return f"{task_id(t.id)} [{style}, label={quote(label)}, tooltip={quote(f'task {t.id} {t.state}')}];"


def _import_node(g: CallGraph, imp: GraphImport) -> str:
    label = f"{imp.name}\ncall {imp.call} · event #{imp.n}"
    mis = g.misattributed(imp)
    if mis is not None:
        d = mis.details
        label += f"\nMISATTRIBUTED: true origin task {d.get('origin')}"
        if d.get("origin_label"):
            label += f' "{d["origin_label"]}"'
        attrs = f'color="{RED}", fontcolor="{RED}", penwidth=2'
    elif imp.findings:
        label += "\n" + ", ".join(f.lint for f in imp.findings)
        attrs = f'color="{ORANGE}", fontcolor="{ORANGE}"'
    else:
        attrs = 'color="#555555"'
    tip = "; ".join(f.message for f in imp.findings) or f"import {imp.name}"
    return f"{import_id(imp)} [shape=note, {attrs}, label={quote(label)}, tooltip={quote(tip)}];"


def to_dot(g: CallGraph, name: str = "callscope") -> str:
    out: list[str] = []
    w = out.append
    w(f"digraph {quote(name)} {{")
    title = g.title or "callscope call graph"
    if g.at is not None:
        title += f" (events 0..{g.at})"
    w(f'  graph [rankdir=LR, fontname="Helvetica", fontsize=12, labelloc=t, label={quote(title)}];')
    w('  node [fontname="Helvetica", fontsize=10];')
    w('  edge [fontname="Helvetica", fontsize=9, color="#555555"];')

    members: dict[int, list[str]] = {i: [] for i in g.instances}
    for t in g.tasks.values():
        members.setdefault(t.inst, []).append(_task_node(t))
    for imp in g.imports:
        members.setdefault(imp.inst, []).append(_import_node(g, imp))
    for inst in sorted(members, key=lambda x: (x is None, x)):
        lines = members[inst]
        if not lines:
            continue
        nm = g.instances.get(inst)
        w(f"  subgraph {quote(f'cluster_inst_{inst}')} {{")
        w(f"    label={quote(f'instance {inst}' + (f' {nm}' if nm else ''))};")
        w('    style="rounded,dashed"; color="#8c8c8c"; fontcolor="#404040";')
        for line in lines:
            w("    " + line)
        w("  }")

    tasks = g.tasks
    for t in tasks.values():
        if t.caller is not None and t.caller in tasks:
            w(f"  {task_id(t.caller)} -> {task_id(t.id)};")
    for imp in g.imports:
        mis = g.misattributed(imp)
        cur: Optional[int] = imp.task
        if cur is not None and cur in tasks:
            if mis is not None:
                w(f'  {task_id(cur)} -> {import_id(imp)} [color="{RED}", penwidth=2];')
            else:
                w(f"  {task_id(cur)} -> {import_id(imp)};")
        if mis is not None:
            for origin in mis.details.get("origins", ()) or (mis.details.get("origin"),):
                if origin in tasks:
                    w(f'  {import_id(imp)} -> {task_id(origin)} [color="{RED}", fontcolor="{RED}", '
                      f'style=dashed, constraint=false, label="true origin"];')
    w("}")
    return "\n".join(out) + "\n"

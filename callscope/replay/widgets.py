"""Replay widgets: the scrubber, the virtualized event list, the live async
call tree, the details panel. They read a :class:`~.source.ReplaySource` and a
:class:`~callscope.model.State`; they never touch the runtime."""

from __future__ import annotations

from typing import Any, Optional

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Tree

from ..model import State
from ..trace.format import EVENT_CODES
from .messages import Seek
from .source import ReplaySource, format_time, format_value, plain

# kind prefix -> colour of the kind column
KIND_STYLES = {
    "instance": "bold cyan",
    "task": "green",
    "subtask": "green",
    "backpressure": "magenta",
    "call": "magenta",
    "waitable-set": "blue",
    "waitable": "blue",
    "event": "blue",
    "thread": "bright_black",
    "import": "yellow",
    "handle": "cyan",
    "taint": "cyan",
    "trap": "bold red",
    "deadlock": "bold red",
    "note": "italic",
    "stream": "bright_blue",
    "future": "bright_blue",
}

STATE_STYLES = {
    "new": "bright_black",
    "queued": "bold magenta",
    "started": "green",
    "returned": "cyan",
    "cancelled": "yellow",
    "resolved": "bright_black",
}

STATE_WORDS = {"queued": "waiting on backpressure"}

# a task's state by glyph, so it reads without colour too
STATE_GLYPHS = {
    "new": "○",
    "queued": "⏸",
    "started": "▶",
    "returned": "✓",
    "cancelled": "✗",
    "resolved": "●",
}

MAX_CHILDREN = 200  # per tree node; the rest are summarized in one line


def kind_style(kind: str) -> str:
    return KIND_STYLES.get(kind.split(".", 1)[0], "")


def event_fields_text(ev: Any, limit: int = 40) -> str:
    d = ev.asdict()
    parts = []
    for k, v in d.items():
        if k in ("n", "kind", "time") or v is None:
            continue
        if k == "code" and ev[1] == "event.delivered" and isinstance(v, int) and 0 <= v < len(EVENT_CODES):
            v = EVENT_CODES[v]
            parts.append(f"{k}={v}")
            continue
        parts.append(f"{k}={v}" if isinstance(v, str) and k in ("name", "func", "kind") else f"{k}={format_value(v, limit)}")
    return plain(" ".join(parts))


# ---------------------------------------------------------------- scrubber


class Scrubber(Widget):
    """``event N of M`` with its time and kind, and a bar with the cursor and
    the findings marked. Click the bar to seek."""

    DEFAULT_CSS = ""

    def __init__(self, source: ReplaySource, **kw) -> None:
        super().__init__(**kw)
        self.source = source
        self.n = 0
        self.kind = ""
        self.time: Optional[int] = None
        self.follow = False  # --follow: a trace without its footer yet is not truncated, it is being written

    def set_cursor(self, n: int, kind: str, time: Optional[int]) -> None:
        self.n, self.kind, self.time = n, kind, time
        self.refresh()

    def _bar_width(self) -> int:
        return max(1, self.content_size.width)

    def render(self) -> Text:
        src = self.source
        total = src.total
        line1 = Text()
        if total == 0:
            line1.append("empty trace: no events", style="bold")
        else:
            line1.append("event ", style="bright_black")
            line1.append(f"#{self.n:,}", style="bold")
            line1.append(f" of {total:,}", style="bright_black")
            line1.append("   t=", style="bright_black")
            rel = (self.time - src.start_time) if self.time is not None else None
            line1.append(f"+{format_time(rel)}", style="bold")
            line1.append("   ")
            line1.append(self.kind, style=kind_style(self.kind) + " bold")
        if src.truncated and self.follow:
            line1.append("   being written", style="italic green")
        elif src.truncated:
            line1.append("   TRUNCATED", style="bold black on yellow")
        if src.findings_indexed:
            k = len(src.findings)
            line1.append(f"   {k} finding{'s' if k != 1 else ''}", style="bold red" if k else "green")
        else:
            line1.append("   indexing…", style="italic bright_black")
        w = self._bar_width()
        bar = ["─"] * w
        styles = ["bright_black"] * w
        if total:
            for f in src.findings:
                x = min(w - 1, f.n * w // total)
                bar[x], styles[x] = "▲", "bold red"
            x = min(w - 1, self.n * w // total)
            bar[x], styles[x] = "●", "bold reverse"
        line2 = Text()
        for ch, st in zip(bar, styles):
            line2.append(ch, style=st)
        return Text("\n").join([line1, line2])

    def on_click(self, event) -> None:
        total = self.source.total
        off = event.get_content_offset(self)
        if total and off is not None and off.y >= 1:
            w = self._bar_width()
            self.post_message(Seek(min(total - 1, max(0, off.x * total // w))))


# -------------------------------------------------------------- event list


class EventList(ScrollView, can_focus=True):
    """The events around the cursor. Virtualized: the virtual height is the
    event count (or the length of :attr:`view`, the event numbers a filter
    keeps), and only the visible rows are read (a block at a time) and
    rendered."""

    COMPONENT_CLASSES = {"eventlist--cursor", "eventlist--finding"}
    BLOCK = 256

    def __init__(self, source: ReplaySource, **kw) -> None:
        super().__init__(**kw)
        self.source = source
        self.cursor = 0
        self.view = None  # None: every event; else a sorted array of event numbers
        self._rows: dict[int, Any] = {}  # block number -> list of events
        self._width_n = len(f"{max(0, source.total - 1):,}")

    @property
    def row_count(self) -> int:
        return self.source.total if self.view is None else len(self.view)

    def on_mount(self) -> None:
        self.virtual_size = Size(0, self.row_count)

    def on_resize(self) -> None:
        self.virtual_size = Size(0, self.row_count)

    def set_view(self, view) -> None:
        self.view = view
        self.virtual_size = Size(0, self.row_count)
        self.refresh()

    def reset_rows(self) -> None:
        """The trace grew (--follow): forget the cached last block."""
        self._rows.clear()
        self._width_n = len(f"{max(0, self.source.total - 1):,}")
        self.virtual_size = Size(0, self.row_count)

    def _n_at(self, row: int) -> Optional[int]:
        if self.view is None:
            return row if 0 <= row < self.source.total else None
        return self.view[row] if 0 <= row < len(self.view) else None

    def _row_of(self, n: int) -> int:
        if self.view is None:
            return n
        import bisect

        return min(max(0, len(self.view) - 1), bisect.bisect_left(self.view, n))

    def _event(self, n: int):
        b = n // self.BLOCK
        rows = self._rows.get(b)
        if rows is None:
            if len(self._rows) > 64:
                self._rows.clear()
            rows = self._rows[b] = list(self.source.events(b * self.BLOCK, (b + 1) * self.BLOCK))
        i = n - b * self.BLOCK
        return rows[i] if i < len(rows) else None

    def set_cursor(self, n: int) -> None:
        self.cursor = n
        row = self._row_of(n)
        h = max(1, self.scrollable_content_region.height)
        top = int(self.scroll_offset.y)
        if row < top or row >= top + h:
            # a jump: put the cursor a third of the way down
            self.scroll_to(y=max(0, row - h // 3), animate=False, immediate=True)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        n = self._n_at(int(self.scroll_offset.y) + y)
        if n is None:
            return Strip.blank(width, self.rich_style)
        ev = self._event(n)
        if ev is None:
            return Strip.blank(width, self.rich_style)
        start = self.source.start_time
        has_finding = n in self.source.findings_at
        narrow = width < 60
        segs = [
            Segment("▲" if has_finding else " ", Style.parse("bold red")),
            Segment(f"{n:>{self._width_n},} ", Style.parse("bright_black")),
        ]
        if not narrow:
            segs.append(Segment(f"{'+' + format_time(ev[2] - start):>12} ", Style.parse("bright_black")))
        segs += [
            Segment(f"{ev[1]:<18} " if not narrow else f"{ev[1]} ", Style.parse(kind_style(ev[1]) or "none")),
            Segment(event_fields_text(ev)),
        ]
        strip = Strip(segs).adjust_cell_length(width)
        if n == self.cursor:
            strip = strip.apply_style(self.get_component_rich_style("eventlist--cursor"))
        elif has_finding:
            strip = strip.apply_style(self.get_component_rich_style("eventlist--finding"))
        return strip.apply_style(self.rich_style)

    def on_click(self, event) -> None:
        off = event.get_content_offset(self)
        if off is None:
            return
        n = self._n_at(int(self.scroll_offset.y) + off.y)
        if n is not None:
            self.post_message(Seek(n))


# --------------------------------------------------------------- call tree


class CallTree(Tree):
    """The live async call tree of each instance at the cursor: root export
    tasks (with their request label), subtasks below their caller, in-flight
    imports under the task that made them (the first entry of their async call
    stack). A task's state reads from its glyph (and its colour); a
    misattributed import is red, its true origin first on its line and its
    evidence on a second line. Narrow (under 70 columns): short names, the
    request label before the rest."""

    def rebuild(self, source: ReplaySource, state: State, inst_filter: Optional[int] = None,
                root_filter: Optional[int] = None) -> None:
        keep = self.cursor_node.data if self.cursor_node is not None else None
        self.clear()
        self._by_data: dict[Any, Any] = {}
        self.narrow = self.size.width and self.size.width < 70
        self.guide_depth = 2 if self.narrow else 4
        root = self.root
        root.expand()
        # which tasks wait on which waitable sets
        waits: dict[int, list] = {}
        for th, (inst, s) in state.waiting.items():
            tk = state.threads.get(th)
            if tk is not None:
                waits.setdefault(tk, []).append(s)
        # in-flight imports by the task that made them
        imports_by_task: dict[Optional[int], list] = {}
        for imp in state.imports.values():
            if root_filter is not None and _root_of(state, source, imp.stack_root) != root_filter:
                continue
            cur = imp.stack[0] if imp.stack else None
            if cur not in state.tasks:
                cur = ("inst", imp.inst)
            imports_by_task.setdefault(cur, []).append(imp)

        insts = sorted(set(state.instances) | {t.inst for t in state.tasks.values()} | {i.inst for i in state.imports.values()})
        if inst_filter is not None:
            insts = [i for i in insts if i == inst_filter]
        # one forest across instances (a subtask sits under its caller even in
        # another instance), its trees grouped by the instance of their root
        forests: dict[int, list] = {}
        for cn in state.call_tree():
            if root_filter is not None and cn.task.root != root_filter:
                continue
            forests.setdefault(cn.task.inst, []).append(cn)
        elsewhere: dict[int, int] = {}  # inst -> live tasks shown under callers in other instances
        for t in state.tasks.values():
            c = state.tasks.get(t.caller) if t.caller is not None else None
            if c is not None and c.inst != t.inst:
                elsewhere[t.inst] = elsewhere.get(t.inst, 0) + 1
        self._inst_names = {i: (state.instances[i].name if i in state.instances else None) for i in insts}
        for inst_id in insts:
            inst = state.instances.get(inst_id)
            forest = forests.get(inst_id, [])
            label = Text()
            label.append(f"instance {inst_id}", style="bold cyan")
            if inst is not None and inst.name:
                label.append(f" {plain(inst.name)}", style="cyan")
            if inst is not None and inst.backpressure:
                label.append(f"  backpressure {inst.backpressure}", style="bold magenta")
            queued = sum(1 for t in state.queued if t in state.tasks and state.tasks[t].inst == inst_id)
            if queued:
                label.append(f"  {queued} call{'s' if queued != 1 else ''} waiting on backpressure", style="magenta")
            if elsewhere.get(inst_id):
                k = elsewhere[inst_id]
                label.append(f"  {k} task{'s' if k != 1 else ''} under callers in other instances", style="bright_black")
            elif not forest and ("inst", inst_id) not in imports_by_task:
                label.append("  idle", style="bright_black")
            node = root.add(label, data=("inst", inst_id), expand=True)
            self._by_data[("inst", inst_id)] = node
            for i, cn in enumerate(forest):
                if i >= MAX_CHILDREN:
                    node.add_leaf(Text(f"… {len(forest) - MAX_CHILDREN} more tasks", style="italic"))
                    break
                self._add_task(node, cn, source, state, waits, imports_by_task, top=True)
            for imp in imports_by_task.get(("inst", inst_id), ()):
                self._add_import(node, imp, source, state, orphan=True)
        if keep is not None and keep in self._by_data:
            self.move_cursor(self._by_data[keep], animate=False)

    def _short(self, name: Optional[str]) -> str:
        return plain(short_name(name) if self.narrow else str(name))

    def _add_task(self, parent, cn, source, state, waits, imports_by_task, top=False) -> None:
        t = cn.task
        st = t.state
        label = Text()
        label.append(STATE_GLYPHS.get(st, "?") + " ", style=STATE_STYLES.get(st, "") or "bold")
        if self.narrow and t.label:
            label.append(f'"{plain(t.label)}" ', style="bold yellow")
        if t.is_root:
            label.append("root " if not self.narrow else "", style="bold")
        label.append(f"task {t.id} ", style="bold" if t.is_root else "")
        label.append(self._short(t.func))
        if t.label and not self.narrow:
            label.append(f' "{plain(t.label)}"', style="bold yellow")
        label.append(f"  [{STATE_WORDS.get(st, st)}]", style=STATE_STYLES.get(st, ""))
        if t.subtask_state and not t.is_root:
            label.append(f" subtask {t.subtask_state}", style="bright_black")
        if t.cancel_requested:
            label.append(" cancel requested", style="yellow")
        for s in waits.get(t.id, ()):
            label.append(f" ◔ waiting on waitable set {s}", style="blue")
        if top and not t.is_root and t.caller is not None:
            label.append(f"  ← called by {source.describe_task(t.caller, state)}", style="bright_black")
        pdata = parent.data
        if not top and pdata and pdata[0] == "task" and pdata[1] in state.tasks and state.tasks[pdata[1]].inst != t.inst:
            nm = self._inst_names.get(t.inst)
            label.append(f"  in instance {t.inst}{' ' + nm if nm else ''}", style="cyan")
        node = parent.add(label, data=("task", t.id), expand=True)
        self._by_data[("task", t.id)] = node
        for imp in imports_by_task.get(t.id, ()):
            self._add_import(node, imp, source, state)
        for i, c in enumerate(cn.children):
            if i >= MAX_CHILDREN:
                node.add_leaf(Text(f"… {len(cn.children) - MAX_CHILDREN} more subtasks", style="italic"))
                break
            self._add_task(node, c, source, state, waits, imports_by_task)

    def _add_import(self, parent, imp, source, state, orphan=False) -> None:
        label = Text()
        mis = source.misattributed.get(imp.n)
        other = [f for f in source.findings_at.get(imp.n, ()) if f.lint != "misattributed"]
        verdict = None
        if mis is not None:
            d = mis.details
            origin = request_ref(source, d.get("origin"), state, short=self.narrow)
            stack_root = request_ref(source, d.get("stack_root"), state, short=self.narrow)
            if self.narrow:
                label.append(f"⚠ origin {origin} ≠ stack {stack_root}", style="bold red")
                label.append(f" · {self._short(imp.name)} #{imp.id}", style="red")
            else:
                label.append(f"⚠ import {plain(imp.name)} (call {imp.id})", style="bold red")
                label.append(f"  true origin {origin} ≠ stack root {stack_root}", style="bold red")
                label.append("  misattributed", style="red")
            verdict = Text("↳ misattributed: ", style="red")
            verdict.append("; ".join(evidence_text(e) for e in d.get("evidence", ())) or "by taint/lineage",
                           style="red")
        else:
            label.append(f"→ import {self._short(imp.name)} (call {imp.id})", style="yellow" if not other else "bold yellow")
            label.append("  in flight", style="bright_black")
        for f in other:
            label.append(f"  ⚠ {f.lint}", style="bold yellow")
        if orphan:
            label.append(
                f"  (task {imp.stack[0]} gone)" if imp.stack else "  (no current task)", style="bright_black"
            )
        if verdict is None:
            node = parent.add_leaf(label, data=("import", imp.id))
        else:
            node = parent.add(label, data=("import", imp.id), expand=True)
            node.add_leaf(verdict, data=("import", imp.id))
        self._by_data[("import", imp.id)] = node

    def select_data(self, data: Any) -> bool:
        node = getattr(self, "_by_data", {}).get(data)
        if node is None:
            return False
        self.move_cursor(node, animate=False)
        return True


def _root_of(state: State, source: ReplaySource, task_id: Optional[int]) -> Optional[int]:
    if task_id is None:
        return None
    info = source.task_info(task_id, state)
    return info.root if info is not None else task_id


def short_name(name: Optional[str]) -> str:
    """``wasi:http/outgoing-handler.handle`` -> ``outgoing-handler.handle``."""
    s = str(name)
    return s.rsplit("/", 1)[-1] if "/" in s else s


def request_ref(source: ReplaySource, task_id: Optional[int], state: Optional[State] = None,
                short: bool = False) -> str:
    """A root task as the user knows it: ``"GET /b" (task 2)`` (``short``:
    ``"GET /b"``), or ``task 2``."""
    if task_id is None:
        return "no task"
    t = source.task_info(task_id, state)
    if t is not None and t.label:
        return f'"{plain(t.label)}"' if short else f'"{plain(t.label)}" (task {task_id})'
    return f"task {task_id}"


def evidence_text(e: dict) -> str:
    if e.get("by") == "taint":
        return f"taint token {e.get('token')!r} planted in task {e.get('planted_in')} (event #{e.get('planted_at')})"
    if e.get("by") == "lineage":
        h = f" {e.get('handle_kind') or 'handle'} {e['handle']}" if "handle" in e else " an argument"
        return f"lineage:{h} created under root task {e.get('root')}"
    return ", ".join(f"{k}={v}" for k, v in e.items())


# ------------------------------------------------------------------ details


def _stack_lines(out: Text, source: ReplaySource, state: State, stack) -> None:
    out.append("async call stack", style="bold underline")
    out.append("  (current task first, root export task last)\n", style="bright_black")
    if not stack:
        out.append("  (empty: no current task)\n", style="yellow")
    for i, tid in enumerate(stack):
        info = source.task_info(tid, state)
        role = ""
        if info is not None and info.caller is None:
            role = "  root export task"
        inst = f" (instance {info.inst})" if info is not None else ""
        out.append(f"  {i}  ", style="bright_black")
        out.append(source.describe_task(tid, state) + inst)
        out.append(role + "\n", style="bold")


def _value_line(out: Text, label: str, v: Any, limit: int = 300) -> None:
    out.append(f"{label} ", style="bold")
    out.append(format_value(v, limit) + "\n")


def task_details(source: ReplaySource, state: State, task_id: int, at: Optional[int] = None) -> Text:
    out = Text()
    t = state.tasks.get(task_id)
    info = source.task_info(task_id, state)
    out.append(source.describe_task(task_id, state) + "\n", style="bold")
    if info is not None:
        out.append(f"instance {info.inst}  ·  created at event #{info.created}\n")
        if info.caller is None:
            out.append("root export task (the host called it)\n")
        else:
            out.append(f"subtask of {source.describe_task(info.caller, state)}; root {source.describe_task(info.root, state)}\n")
    if t is not None:
        out.append(f"state: {STATE_GLYPHS.get(t.state, '?')} {STATE_WORDS.get(t.state, t.state)}",
                   style=STATE_STYLES.get(t.state, ""))
        if t.subtask_state:
            out.append(f"  ·  as its caller sees it: {t.subtask_state}")
        if t.returned is not None:
            out.append(f"  ·  returned/cancelled at event #{t.returned}")
        out.append("\n")
    else:
        out.append("not live at this event (exited or not yet created)\n", style="bright_black")
    # arguments: the trace records a root call's inputs as the taint tokens planted in them
    planted = [tok for tok, root in state.taint.items() if root == task_id]
    out.append("\narguments ", style="bold")
    if planted:
        out.append("(taint tokens planted in them) " + ", ".join(format_value(x, 120) for x in planted[:8])
                   + (" …" if len(planted) > 8 else "") + "\n")
    else:
        out.append("not recorded (the trace has a call's arguments only for imports)\n", style="bright_black")
    rn = source.task_returns.get(task_id)
    rev = source.event(rn) if rn is not None else None
    if rev is not None and rev[1] == "task.return":
        when = "" if at is None or rn <= at else f"  (later, at event #{rn})"
        _value_line(out, "return value", rev[3][1] if len(rev[3]) > 1 else None)
        if when:
            out.append(when.strip() + "\n", style="bright_black")
    elif rev is not None:
        out.append("return value ", style="bold")
        out.append(f"none: cancelled at event #{rn}\n", style="yellow")
    elif source.findings_indexed:
        out.append("return value ", style="bold")
        out.append("none: the task never returned in this trace\n", style="yellow")
    out.append("\n")
    _stack_lines(out, source, state, source.task_stack(task_id, state))
    imps = [i for i in state.imports.values() if i.stack and i.stack[0] == task_id]
    if imps:
        out.append("\nimports in flight\n", style="bold underline")
        for i in imps:
            out.append(f"  call {i.id} {i.name} (event #{i.n})\n")
    return out


def _verdict_lines(out: Text, source: ReplaySource, f) -> None:
    d = f.details
    out.append(f"\n{f.severity}[{f.lint}]", style="bold red" if f.lint == "misattributed" else "bold yellow")
    out.append(f" {f.message}\n")
    for e in d.get("evidence", ()):
        out.append("  evidence: ", style="bold")
        out.append(evidence_text(e) + "\n")
    # what the verdicts issue adds (a verdict, its coverage), shown when a trace has them
    for key in ("verdict", "coverage"):
        if key in d:
            out.append(f"  {key}: ", style="bold")
            out.append(format_value(d[key], 300) + "\n")


def import_details(source: ReplaySource, state: State, call_id: int) -> Text:
    out = Text()
    imp = state.imports.get(call_id)
    cn = imp.n if imp is not None else source.import_calls.get(call_id)
    ev = source.event(cn) if cn is not None else None
    if ev is None or ev[1] != "import.call":
        out.append(f"import call {call_id}: not in flight at this event\n", style="bright_black")
        return out
    name, inst, stack = ev[3][2], ev[3][1], tuple(ev[3][3] or ())
    out.append(f"import {name}", style="bold")
    out.append(f"  (call {call_id}, instance {inst}, made at event #{ev[0]}, "
               f"t=+{format_time(ev[2] - source.start_time)})\n")
    if imp is None:
        out.append("not in flight at this event\n", style="bright_black")
    mis = source.misattributed.get(ev[0])
    if mis is not None:
        d = mis.details
        out.append("MISATTRIBUTED", style="bold white on red")
        out.append(f"  attributed to root {source.describe_task(d.get('stack_root'), state)}\n", style="red")
        out.append(f"              true origin: root {source.describe_task(d.get('origin'), state)}\n", style="bold red")
    _value_line(out, "\nargs  ", ev.get("args"))
    rn = source.import_returns.get(call_id)
    rev = source.event(rn) if rn is not None else None
    if rev is not None:
        _value_line(out, "result", rev[3][1] if len(rev[3]) > 1 else None)
        out.append(f"        returned at event #{rn} after "
                   f"{format_time(rev[2] - ev[2])}" + ("" if imp is None else " (later)") + "\n",
                   style="bright_black")
    elif source.findings_indexed:
        out.append("result ", style="bold")
        out.append("none: it never returned in this trace\n", style="yellow")
    out.append("\n")
    _stack_lines(out, source, state, stack)
    taint = ev.get("taint") or ()
    lineage = ev.get("lineage") or ()
    handles = ev.get("lineage_handles")
    if taint:
        out.append("taint  ", style="bold")
        out.append(", ".join(
            f"{tok} (planted in {source.describe_task(state.taint.get(tok), state)})" if tok in state.taint else f"{tok}"
            for tok in taint) + "\n")
    if lineage:
        out.append("lineage  ", style="bold")
        parts = []
        for i, r in enumerate(lineage):
            h = handles[i] if handles is not None and i < len(handles) else None
            hk = state.handles.get((inst, h)) if h is not None else None
            what = f"{hk[0] or 'handle'} {h} " if hk else (f"handle {h} " if h is not None else "")
            parts.append(f"{what}created under root {source.describe_task(r, state)}")
        out.append("; ".join(parts) + "\n")
    v = source.verdict_at.get(ev[0])
    if v is not None:
        _import_verdict_lines(out, source, state, v)
    for f in source.findings_at.get(ev[0], ()):
        if v is not None and f.lint == "misattributed":
            continue  # the verdict above says it, with its evidence
        _verdict_lines(out, source, f)
    return out


VERDICT_STYLES = {"consistent": "bold green", "misattributed": "bold white on red", "not-judged": "bold yellow"}


def _import_verdict_lines(out: Text, source: ReplaySource, state: State, v) -> None:
    """The model's verdict for an import: what it is, which evidence decided,
    the evidence, notes."""
    out.append("\nverdict ", style="bold")
    out.append(f" {v.verdict} ", style=VERDICT_STYLES.get(v.verdict, "bold"))
    if v.verdict == "not-judged":
        out.append(f"  ({str(v.why or 'no evidence').replace('-', ' ')})\n", style="yellow")
    else:
        out.append(f"  by {v.by}", style="bold")
        if v.verdict == "misattributed":
            what = "shared by " if len(v.origins) > 1 else "true origin "
            out.append(f"; {what}" + ", ".join(request_ref(source, r, state) for r in v.origins), style="bold red")
            out.append(f"; stack root {request_ref(source, v.stack_root, state)}", style="red")
        out.append("\n")
    for e in v.evidence:
        out.append("  evidence: ", style="bold")
        if e.get("by") == "oracle":
            out.append(f"oracle: the serial run made it for {', '.join(request_ref(source, r, state) for r in e.get('roots') or ())}"
                       f" ({e.get('serial_calls')} serial call{'s' if e.get('serial_calls') != 1 else ''} with its value)\n")
        elif e.get("ambiguous"):
            out.append(f"taint token {e.get('token')!r} planted by several roots (ambiguous: no verdict)\n")
        else:
            out.append(evidence_text(e) + (f" (found {e['encoding']}-encoded)" if e.get("encoding") not in (None, "plain") else "") + "\n")
    for note in v.notes:
        out.append("  note: ", style="bold")
        out.append(str(note) + "\n")
    cov = source.coverage
    if cov:
        from ..model import findings as _f

        fmt = getattr(_f, "format_coverage", None)
        if fmt is not None:
            out.append("  coverage: ", style="bright_black")
            out.append(fmt(cov) + "\n", style="bright_black")


def event_details(source: ReplaySource, ev: Any) -> Text:
    out = Text()
    out.append(f"event #{ev[0]:,} ", style="bold")
    out.append(ev[1], style=kind_style(ev[1]) + " bold")
    out.append(f"  t=+{format_time(ev[2] - source.start_time)}\n\n")
    for k, v in ev.asdict().items():
        if k in ("n", "kind", "time"):
            continue
        out.append(f"{k:>16} ", style="bright_black")
        out.append(format_value(v, 300) + "\n")
    for f in source.findings_at.get(ev[0], ()):
        _verdict_lines(out, source, f)
    return out

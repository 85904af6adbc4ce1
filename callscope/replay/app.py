"""The replay app: scrubber on top, the live async call tree on the left, the
event list and the details of the selection on the right, findings below.

Keys: ←/→ one event, shift+←/→ 100 events, PgUp/PgDn a page of the event
list, Home/End first/last event, n/p next/previous finding, / or g go to an
event number (or ``@5ms``: the first event at that time since the start),
q quit.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Input, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from .messages import IndexDone, IndexFailed, IndexProgress, Seek
from .source import ReplaySource
from .widgets import CallTree, EventList, Scrubber, event_details, import_details, task_details

MAX_FINDING_ROWS = 10_000

_TIME = re.compile(r"^@?\s*([0-9.]+)\s*(ns|us|µs|ms|s)$")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}

# task-scoped kinds: their first field is a task id
_TASK_KINDS = {"task.new", "task.start", "task.return", "task.cancel", "task.exit", "task.resolved",
               "subtask.state", "subtask.cancel", "subtask.drop", "call.queued", "call.admitted",
               "taint.plant"}
_CURSOR_ACTIONS = {"step", "page", "first", "last", "finding", "goto"}


def _finding_text(line: str) -> Text:
    """A finding's one line as plain text (its ``[lint]`` is not markup),
    the ``severity[lint] #n:`` head coloured."""
    head, sep, rest = line.partition(": ")
    t = Text()
    t.append(head + sep, style="bold red" if "misattributed" in head else "bold yellow")
    t.append(rest)
    return t


class ReplayApp(App):
    CSS_PATH = "replay.tcss"
    TITLE = "callscope replay"

    BINDINGS = [
        Binding("left", "step(-1)", "◀ step", priority=True),
        Binding("right", "step(1)", "step ▶", priority=True),
        Binding("shift+left", "step(-100)", "-100", priority=True, show=False),
        Binding("shift+right", "step(100)", "+100", priority=True, show=False),
        Binding("pageup", "page(-1)", "page up", priority=True, show=False),
        Binding("pagedown", "page(1)", "page down", priority=True, show=False),
        Binding("home", "first", "first", priority=True, show=False),
        Binding("end", "last", "last", priority=True, show=False),
        Binding("n", "finding(1)", "next finding", priority=True),
        Binding("p", "finding(-1)", "prev finding", priority=True),
        Binding("slash,g", "goto", "go to", priority=True),
        Binding("escape", "close_goto", "close", show=False),
        Binding("tab", "focus_next", "focus", show=False),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, source: ReplaySource, start_at: int = 0, index: bool = True):
        super().__init__()
        self.source = source
        self.cursor = -1
        self._start_at = start_at
        self._index = index

    # ------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        name = self.source.path or "trace"
        yield Static(f" callscope replay  {name}", id="title")
        yield Scrubber(self.source, id="scrubber")
        yield ProgressBar(total=max(1, 2 * self.source.total), show_eta=False, id="indexing")
        with Horizontal(id="main"):
            yield CallTree("instances", id="tree")
            with Vertical(id="right"):
                yield EventList(self.source, id="events")
                with VerticalScroll(id="details-box"):
                    yield Static(id="details")
        yield OptionList(id="findings")
        yield Input(placeholder="go to event number, or @time (e.g. @5ms); Enter to go, Esc to close", id="goto")
        yield Footer()

    def on_mount(self) -> None:
        tree = self.query_one(CallTree)
        tree.show_root = False
        tree.border_title = "async call tree"
        self.query_one(EventList).border_title = "events"
        self.query_one("#details-box").border_title = "details"
        findings = self.query_one("#findings", OptionList)
        findings.border_title = "findings"
        findings.add_option(Option("indexing…", disabled=True))
        self.query_one("#goto").display = False
        if self.source.truncated:
            self.notify(f"truncated trace: {self.source.truncated}", title="truncated trace",
                        severity="warning", timeout=15)
        if self.source.total == 0:
            self.notify("the trace has no events", severity="warning")
        self.seek(self._start_at)
        if self._index:
            self.run_index()
        else:
            self.query_one("#indexing").display = False
        self.query_one(EventList).focus()

    # ------------------------------------------------------------ indexing

    @work(thread=True, exclusive=True, group="index")
    def run_index(self) -> None:
        worker = get_current_worker()
        try:
            self.source.index(
                progress=lambda done, total: self.post_message(IndexProgress(done, total)),
                cancelled=lambda: worker.is_cancelled,
            )
        except Exception as e:  # a damaged chunk mid-file
            self.post_message(IndexFailed(str(e)))
            return
        if not worker.is_cancelled:
            self.post_message(IndexDone(len(self.source.findings)))

    def on_index_progress(self, msg: IndexProgress) -> None:
        self.query_one("#indexing", ProgressBar).update(total=max(1, msg.total), progress=msg.done)

    def on_index_failed(self, msg: IndexFailed) -> None:
        self.query_one("#indexing").display = False
        self.notify(f"indexing stopped: {msg.message}", severity="error", timeout=15)

    def on_index_done(self, msg: IndexDone) -> None:
        self.query_one("#indexing").display = False
        findings = self.query_one("#findings", OptionList)
        findings.clear_options()
        fs = self.source.findings
        if not fs:
            findings.add_option(Option("no findings", disabled=True))
        else:
            findings.add_options(
                Option(_finding_text(self.source.format_finding(f)), id=str(i))
                for i, f in enumerate(fs[:MAX_FINDING_ROWS])
            )
            if len(fs) > MAX_FINDING_ROWS:
                findings.add_option(Option(f"… {len(fs) - MAX_FINDING_ROWS} more (use n/p)", disabled=True))
        findings.border_title = f"findings ({len(fs)})"
        cov = self.source.coverage
        if cov is not None:  # which evidence judged the imports (docs/verdicts.md)
            from callscope.model.findings import format_coverage
            findings.border_subtitle = _safe_title(format_coverage(cov).partition(";")[0])
        self.refresh_view()

    # ---------------------------------------------------------------- seek

    def seek(self, n: int, select: Any = None) -> None:
        total = self.source.total
        if total == 0:
            self.cursor = 0
            self.query_one(Scrubber).set_cursor(0, "", None)
            return
        self.cursor = max(0, min(n, total - 1))
        self.refresh_view(select)

    def refresh_view(self, select: Any = None) -> None:
        if self.source.total == 0:
            return
        n = self.cursor
        src = self.source
        ev = src.event(n)
        state = src.state_after(n)
        self.query_one(Scrubber).set_cursor(n, ev[1] if ev else "?", ev[2] if ev else None)
        self.query_one(EventList).set_cursor(n)
        tree = self.query_one(CallTree)
        tree.rebuild(src, state)
        tree.border_title = f"async call tree after event #{n:,}"
        # the details follow the event's subject unless the user is in the tree
        if select is None and ev is not None:
            if ev[1] == "import.call":
                select = ("import", ev[3][0])
            elif ev[1] in _TASK_KINDS and ev[3] and ev[3][0] in state.tasks:
                select = ("task", ev[3][0])
        if select is not None and tree.select_data(select) and not tree.has_focus:
            self.show_details(select)
        elif not tree.has_focus and ev is not None:
            self.query_one("#details", Static).update(event_details(src, ev))

    def show_details(self, data: Any) -> None:
        src = self.source
        state = src.state_after(self.cursor)
        details = self.query_one("#details", Static)
        if data is None:
            return
        if data[0] == "task":
            details.update(task_details(src, state, data[1]))
        elif data[0] == "import":
            details.update(import_details(src, state, data[1]))
        elif data[0] == "inst":
            ev = src.event(self.cursor)
            if ev is not None:
                details.update(event_details(src, ev))

    # --------------------------------------------------------------- events

    def on_seek(self, msg: Seek) -> None:
        self.seek(msg.n)

    def on_tree_node_highlighted(self, event: CallTree.NodeHighlighted) -> None:
        if self.query_one(CallTree).has_focus:
            self.show_details(event.node.data)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is None:
            return
        self.jump_to_finding(self.source.findings[int(event.option.id)])

    def jump_to_finding(self, f) -> None:
        call = f.details.get("call")
        self.seek(f.n, ("import", call) if call is not None else None)
        self.query_one("#findings", OptionList).highlighted = self.source.findings.index(f) if len(self.source.findings) <= MAX_FINDING_ROWS else None

    # --------------------------------------------------------------- actions

    def check_action(self, action: str, parameters: tuple) -> Optional[bool]:
        # while typing an event number, the keys belong to the input
        if action in _CURSOR_ACTIONS and isinstance(self.focused, Input):
            return False
        return True

    def action_step(self, k: int) -> None:
        self.seek(self.cursor + k)

    def action_page(self, direction: int) -> None:
        h = max(1, self.query_one(EventList).scrollable_content_region.height - 1)
        self.seek(self.cursor + direction * h)

    def action_first(self) -> None:
        self.seek(0)

    def action_last(self) -> None:
        self.seek(self.source.total - 1)

    def action_finding(self, direction: int) -> None:
        if not self.source.indexed:
            self.notify("still indexing the trace; findings come when it is done")
            return
        f = self.source.next_finding(self.cursor) if direction > 0 else self.source.prev_finding(self.cursor)
        if f is None:
            self.notify("no more findings " + ("after" if direction > 0 else "before") + f" event #{self.cursor:,}")
            return
        self.jump_to_finding(f)

    def action_goto(self) -> None:
        box = self.query_one("#goto", Input)
        box.display = True
        box.value = ""
        box.focus()

    def action_close_goto(self) -> None:
        box = self.query_one("#goto", Input)
        if box.display:
            box.display = False
            self.query_one(EventList).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip().replace(",", "").replace("_", "").lstrip("#")
        n: Optional[int] = None
        m = _TIME.match(text)
        if text.isdigit():
            n = int(text)
        elif m and text.startswith("@"):
            t = self.source.start_time + int(float(m.group(1)) * _UNITS[m.group(2)])
            n = self.source.reader.first_event_at(t)
        if n is None:
            self.notify(f"not an event number: {event.value!r}", severity="error")
            return
        if n >= self.source.total:
            self.notify(f"event {n:,} is past the end (the trace has {self.source.total:,})", severity="warning")
        self.action_close_goto()
        self.seek(n)


def _safe_title(text: str) -> str:
    """A border title from trace-derived text: no markup, no control characters."""
    return "".join(c for c in text if c.isprintable()).replace("[", "(").replace("]", ")")

"""The replay app's modal screens: help (every binding) and the filter
picker. Labels are :class:`~rich.text.Text` built from plain strings: nothing
from a trace is ever parsed as markup."""

from __future__ import annotations

from typing import Any, Iterable, Optional

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


class HelpScreen(ModalScreen):
    """``?``: every key binding of the app and what it does."""

    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss", "close help"),
    ]

    def __init__(self, rows: Iterable[tuple[str, str]], **kw) -> None:
        super().__init__(**kw)
        self.rows = list(rows)

    def compose(self) -> ComposeResult:
        table = Table(show_header=True, header_style="bold", box=None, expand=False, pad_edge=False)
        table.add_column("key", style="bold cyan", no_wrap=True)
        table.add_column("what it does")
        for keys, what in self.rows:
            table.add_row(Text(keys), Text(what))
        with VerticalScroll(id="help-box"):
            yield Static(Text("callscope replay: keys (Esc or ? closes; ctrl+p opens the command palette)",
                              style="bold"))
            yield Static(table, id="help-table")

    def on_mount(self) -> None:
        self.query_one("#help-box").border_title = "help"


class FilterScreen(ModalScreen):
    """``f``: pick a filter (an instance, a root request, an event kind, a
    lint); dismisses with ``(field, value)`` or None."""

    BINDINGS = [Binding("escape", "dismiss_none", "close")]

    def __init__(self, choices: list[tuple[Optional[str], Any, Text]], **kw) -> None:
        super().__init__(**kw)
        self.choices = choices  # (field or None for a heading, value, label)

    def compose(self) -> ComposeResult:
        opts = []
        for i, (field, _value, label) in enumerate(self.choices):
            opts.append(Option(label, id=str(i), disabled=field is None))
        yield OptionList(*opts, id="filter-list")

    def on_mount(self) -> None:
        ol = self.query_one("#filter-list", OptionList)
        ol.border_title = "filter by (Enter picks, Esc closes)"
        ol.focus()
        for i, (field, _v, _l) in enumerate(self.choices):
            if field is not None:
                ol.highlighted = i
                break

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        field, value, _ = self.choices[int(event.option.id)]
        self.dismiss((field, value))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

"""The replay app's keys and command palette, driven with Textual's Pilot:
play/pause and speed, search with n/N, filters and their chip, n/N over
findings with the lint filter, export, screenshot, help, the wait-for view,
quit; every palette entry."""

from __future__ import annotations

import asyncio
import os

import pytest

pytest.importorskip("textual")

from callscope.replay.app import SPEEDS, Filter, ReplayApp  # noqa: E402
from callscope.replay.screens import FilterScreen, HelpScreen  # noqa: E402
from callscope.replay.source import ReplaySource  # noqa: E402
from callscope.replay.widgets import CallTree, EventList  # noqa: E402

from test_replay import MIS_N, misattribution_script, tree_lines, write_trace  # noqa: E402


def mixed_script(rec) -> None:
    """Two requests; root 1 returns, then an import is made on its stack
    (import-after-root-returned, event AFTER_N) and later one carrying request
    2's taint on root 1's stack (misattributed and after-root-returned,
    event MIX_MIS_N)."""
    rec.instance_new(1, "app", None)
    for task, label in ((1, "GET /a"), (2, "GET /b")):
        rec.task_new(task, 1, "wasi:http/handler.handle", None, task, label, False)
        rec.taint_plant(task, f"tok-{task}")
        rec.task_start(task)
        rec.thread_new(task, task)
    rec.task_return(1, 200)                                          # 9
    rec.import_call(1, 1, "wasi:logging/log", [1], ["late"], [], [], None)  # 10
    rec.import_return(1, None)
    for i in range(20):
        rec.note(f"tick {i}")
    rec.import_call(2, 1, "wasi:http/outgoing-handler.handle", [1], {"url": "https://b/tok-2"},
                    ["tok-2"], [], None)                             # 32
    rec.import_return(2, {"status": 201})
    rec.task_return(2, 204)
    for task in (1, 2):
        rec.task_exit(task)


AFTER_N, MIX_MIS_N = 10, 32


@pytest.fixture
def trace(tmp_path):
    return write_trace(tmp_path / "mis.cstrace")


@pytest.fixture
def mixed(tmp_path):
    return write_trace(tmp_path / "mixed.cstrace", mixed_script)


def run_app(path, size=(160, 48), **kw):
    """Decorator: run ``body(app, pilot, src)`` in the app on ``path``."""
    def deco(body):
        async def main():
            src = ReplaySource(path)
            app = ReplayApp(src, **kw)
            try:
                async with app.run_test(size=size) as pilot:
                    await app.workers.wait_for_complete()
                    await pilot.pause()
                    await body(app, pilot, src)
            finally:
                src.close()
        asyncio.run(main())
        return body
    return deco


async def settle(app, pilot):
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


def chips(app) -> str:
    return str(app.query_one("#chips").render())


# ------------------------------------------------------------------ play


def test_space_plays_and_pauses_and_speed(trace):
    @run_app(trace)
    async def body(app, pilot, src):
        assert SPEEDS[app.speed] == 10
        await pilot.press("plus", "plus")
        assert SPEEDS[app.speed] == 50
        await pilot.press("minus")
        assert SPEEDS[app.speed] == 20
        await pilot.press("space")  # 20 events/s: 187 events take 9 s
        assert app.playing and "▶ 20/s" in chips(app)
        await pilot.pause(0.5)
        assert app.cursor > 2
        await pilot.press("space")
        assert not app.playing
        at = app.cursor
        await pilot.pause(0.2)
        assert app.cursor == at
        # at the end, play starts again at the first event; at the end it stops by itself
        for _ in range(5):
            await pilot.press("plus")
        await pilot.press("end", "space")
        for _ in range(40):
            await pilot.pause(0.1)
            if not app.playing:
                break
        assert not app.playing and app.cursor == src.total - 1


# ---------------------------------------------------------------- search


def test_search_finds_kinds_names_args_labels_and_n_N_move_within_it(trace):
    @run_app(trace)
    async def body(app, pilot, src):
        await pilot.press("slash")
        box = app.query_one("#search")
        assert box.display and box.has_focus
        await pilot.press(*"import.call", "enter")
        await settle(app, pilot)
        assert app.cursor == MIS_N
        assert "import.call" in chips(app)
        # arguments
        await pilot.press("home", "slash")
        box.value = "b.example"
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.cursor == MIS_N
        # a request label: every event of task 2 ("GET /b") matches, n/N step through them
        await pilot.press("home", "slash")
        box.value = "get /b"
        await pilot.press("enter")
        await settle(app, pilot)
        first = app.cursor
        assert src.event(first)[1] == "task.new" and src.event(first)[3][0] == 2
        await pilot.press("n")
        await settle(app, pilot)
        second = app.cursor
        assert second > first and "get /b" in src.event_text(src.event(second))
        await pilot.press("N")
        await settle(app, pilot)
        assert app.cursor == first
        # not found: the cursor stays, a notice says so
        await pilot.press("slash")
        box.value = "no-such-thing"
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.cursor == first
        assert any("not found" in n.message for n in app._notifications)
        # Esc ends the search: n goes back to findings
        await pilot.press("escape")
        assert app.search_query is None and "/" not in chips(app)
        await pilot.press("home", "n")
        await settle(app, pilot)
        assert app.cursor == MIS_N


# ---------------------------------------------------------------- filter


def test_filter_narrows_to_one_request_chip_and_escape_clears(trace):
    @run_app(trace)
    async def body(app, pilot, src):
        await pilot.press("f")
        assert isinstance(app.screen, FilterScreen)
        ol = app.screen.query_one("#filter-list")
        picks = app.screen.choices
        i = next(k for k, c in enumerate(picks) if c[0] == "root" and c[1] == 2)
        ol.highlighted = i
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.filter == Filter(root=2)
        assert 'filter: request "GET /b"' in chips(app) and "Esc clears" in chips(app)
        view = list(app.view)
        assert view and all(src.event(n) is not None for n in view)
        # every kept event belongs to request 2; the misattributed import sits on
        # request 1's stack but really comes from request 2: it is kept
        assert MIS_N in view
        for n in view:
            ev = src.event(n)
            if ev[1] in ("task.new", "task.start", "taint.plant"):
                assert ev[3][0] == 2
        # stepping stays within the filter
        await pilot.press("home")
        assert app.cursor == view[0]
        await pilot.press("right")
        assert app.cursor == view[1]
        await pilot.press("end")
        assert app.cursor == view[-1]
        assert app.query_one(EventList).row_count == len(view)
        # the tree shows only request 2
        text = "\n".join(p for p, _ in tree_lines(app.query_one(CallTree)))
        assert '"GET /a"' not in text
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.filter == Filter() and app.view is None
        assert "filter" not in chips(app)


def test_filter_by_instance_and_kind(trace):
    @run_app(trace)
    async def body(app, pilot, src):
        app.set_filter(Filter(kind="import.call"))
        await settle(app, pilot)
        assert list(app.view) == [MIS_N]
        app.set_filter(Filter(inst=2))
        await settle(app, pilot)
        assert MIS_N in app.view and app.view[0] == 2  # instance.new of instance 2
        text = "\n".join(p for p, _ in tree_lines(app.query_one(CallTree)))
        assert "instance 1" not in text


def test_n_N_misattributed_first_and_lint_filter(mixed):
    @run_app(mixed)
    async def body(app, pilot, src):
        lints = [f.lint for f in src.findings]
        assert "import-after-root-returned" in lints and "misattributed" in lints
        assert src.findings[0].n == AFTER_N
        await pilot.press("n")  # default: misattributed first, skipping the earlier finding
        assert app.cursor == MIX_MIS_N
        await pilot.press("N")
        assert app.cursor == MIX_MIS_N  # no misattributed import before it
        # the lint filter: import-after-root-returned
        await pilot.press("f")
        picks = app.screen.choices
        app.screen.query_one("#filter-list").highlighted = next(
            k for k, c in enumerate(picks) if c[0] == "lint" and c[1] == "import-after-root-returned")
        await pilot.press("enter")
        await settle(app, pilot)
        assert "lint import-after-root-returned" in chips(app)
        await pilot.press("home", "n")
        assert app.cursor == AFTER_N
        await pilot.press("n")
        assert app.cursor == MIX_MIS_N  # it is both
        await pilot.press("p")  # p is N too
        assert app.cursor == AFTER_N
        findings = app.query_one("#findings")
        assert findings.option_count == 2
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.query_one("#findings").option_count == len(src.findings)


def test_details_show_import_result_and_task_return_value(mixed):
    @run_app(mixed)
    async def body(app, pilot, src):
        await pilot.press("n")
        details = str(app.query_one("#details").render())
        assert "args" in details and "https://b/tok-2" in details
        assert "result" in details and "201" in details
        assert "evidence: taint token 'tok-2'" in details
        # the model's verdict, which evidence decided, and the coverage
        assert "verdict  misattributed   by taint; true origin \"GET /b\" (task 2)" in details
        assert "coverage: imports 2: judged 1 (taint 1), not judged 1" in details
        assert "imports 2: judged 1 (taint 1)" in str(app.query_one("#findings").border_subtitle)
        # an import nothing could judge says so and why
        await pilot.press("home")
        app.seek(AFTER_N)
        await pilot.pause()
        details = str(app.query_one("#details").render())
        assert "verdict  not-judged   (no evidence)" in details
        await pilot.press("n")
        app.query_one(CallTree).focus()
        tree = app.query_one(CallTree)
        tree.select_data(("task", 1))
        await pilot.pause()
        details = str(app.query_one("#details").render())
        assert "return value 200" in details
        assert "tok-1" in details  # its arguments: the token planted in them


# ------------------------------------------------------- export, screenshot


def test_e_exports_and_s_saves_a_screenshot(trace, tmp_path):
    out = tmp_path / "shots"
    out.mkdir()

    @run_app(trace, screenshot_dir=str(out))
    async def body(app, pilot, src):
        await pilot.press("n", "e")
        assert app.last_export and os.path.dirname(app.last_export) == str(out)
        dot = open(app.last_export).read()
        assert dot.startswith("digraph") and "outgoing-handler" in dot
        await pilot.press("s")
        await pilot.pause()
        assert app.last_screenshot and os.path.dirname(app.last_screenshot) == str(out)
        svg = open(app.last_screenshot).read()
        assert svg.lstrip().startswith("<svg") and "callscope&#160;replay" in svg
        assert str(tmp_path) not in svg  # no machine path in the picture
        assert sorted(os.listdir(out)) == sorted([os.path.basename(app.last_export),
                                                  os.path.basename(app.last_screenshot)])


def test_screenshot_defaults_to_cwd(trace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    @run_app(trace)
    async def body(app, pilot, src):
        await pilot.press("s")
        await pilot.pause()
        assert os.path.dirname(app.last_screenshot) == str(tmp_path)


# ------------------------------------------------------------ help, quit


def test_help_lists_every_binding(trace):
    @run_app(trace)
    async def body(app, pilot, src):
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = " ".join(k for k, _ in app.HELP)
        for b in app.BINDINGS:
            if b.action in ("focus_next",):
                assert "tab" in keys
                continue
            what = b.key_display or b.key.split(",")[0]
            names = {"left": "←", "right": "→", "shift+left": "shift+←", "shift+right": "shift+→",
                     "pageup": "PgUp", "pagedown": "PgDn", "home": "Home", "end": "End",
                     "escape": "Esc"}
            assert names.get(what, what) in keys, b
        # keys typed on the help screen do not move the cursor
        await pilot.press("right", "n")
        assert app.cursor == 0
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


@pytest.mark.parametrize("key", ["q", "ctrl+c"])
def test_quit_keys(trace, key):
    @run_app(trace)
    async def body(app, pilot, src):
        await pilot.press(key)
        await pilot.pause()
        assert app._exit  # noqa: SLF001  (the app is exiting)


# --------------------------------------------------------------- palette


def test_every_palette_entry(trace, tmp_path):
    @run_app(trace, screenshot_dir=str(tmp_path))
    async def body(app, pilot, src):
        titles = [c.title for c in app.get_system_commands(app.screen)]
        ours = ["Play / pause", "Play faster", "Play slower", "Step forward", "Step back", "First event",
                "Last event", "Next finding", "Previous finding", "Search", "Filter", "Clear filters",
                "Go to event", "Why is it stuck", "Export view", "Save screenshot", "Help: every key",
                "Quit replay"]
        for t in ours:
            assert t in titles
        assert sum("screenshot" in t.lower() for t in titles) == 1  # Textual's ~/Downloads one is replaced

        async def palette(title):
            await pilot.press("ctrl+p")
            await pilot.pause()
            app.screen.query_one("Input").value = title
            await pilot.pause(0.15)
            await pilot.press("enter")
            await settle(app, pilot)

        await palette("Step forward")
        assert app.cursor == 1
        await palette("Last event")
        assert app.cursor == src.total - 1
        await palette("Step back")
        assert app.cursor == src.total - 2
        await palette("First event")
        assert app.cursor == 0
        await palette("Next finding")
        assert app.cursor == MIS_N
        await palette("Previous finding")
        assert app.cursor == MIS_N
        await palette("Play faster")
        assert SPEEDS[app.speed] == 20
        await palette("Play slower")
        assert SPEEDS[app.speed] == 10
        await palette("Play / pause")
        assert app.playing
        await palette("Play / pause")
        assert not app.playing
        await palette("Search")
        assert app.query_one("#search").has_focus
        await pilot.press("escape")
        await palette("Go to event")
        assert app.query_one("#goto").has_focus
        await pilot.press("escape")
        await palette("Filter")
        assert isinstance(app.screen, FilterScreen)
        await pilot.press("escape")
        app.set_filter(Filter(kind="import.call"))
        await settle(app, pilot)
        await palette("Clear filters")
        assert app.filter == Filter()
        await palette("Why is it stuck")
        assert app.waitfor
        await palette("Why is it stuck")
        assert not app.waitfor
        await palette("Export view")
        assert app.last_export and os.path.exists(app.last_export)
        await palette("Save screenshot")
        assert app.last_screenshot and os.path.exists(app.last_screenshot)
        await palette("Help: every key")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await palette("Quit replay")
        assert app._exit  # noqa: SLF001


def test_markup_in_trace_data_is_shown_as_text(tmp_path):
    def script(rec):
        rec.instance_new(1, "[bold red]inst[/]", None)
        rec.task_new(1, 1, "[link=x]f[/link]", None, 1, "[b]GET /[/b]", False)
        rec.task_start(1)
        rec.note("[red]hello[/red]")

    path = write_trace(tmp_path / "markup.cstrace", script)

    @run_app(path)
    async def body(app, pilot, src):
        await pilot.press("right", "right")
        text = "\n".join(p for p, _ in tree_lines(app.query_one(CallTree)))
        assert "[bold red]inst[/]" in text and '"[b]GET /[/b]"' in text
        await pilot.press("slash")
        app.query_one("#search").value = "[red]"
        await pilot.press("enter")
        await settle(app, pilot)
        assert src.event(app.cursor)[1] == "note"
        assert "[red]" in chips(app)
        await pilot.press("f")
        await pilot.pause()
        labels = [str(c[2]) for c in app.screen.choices]
        assert any("[bold red]inst[/]" in x for x in labels)
        await pilot.press("escape")


def test_control_characters_in_trace_data_are_shown_escaped(tmp_path):
    def script(rec):
        rec.instance_new(1, "app\x1b[2J", None)
        rec.task_new(1, 1, "f\x07", None, 1, "GET /\x1b]0;pwned\x07", False)
        rec.task_start(1)
        rec.note("bell\x07")

    path = write_trace(tmp_path / "ctrl.cstrace", script)

    @run_app(path)
    async def body(app, pilot, src):
        await pilot.press("right", "right")
        text = "\n".join(p for p, _ in tree_lines(app.query_one(CallTree)))
        assert "\x1b" not in text and "\x07" not in text
        assert "app\\x1b[2J" in text and "\\x07" in text
        svg = app.export_screenshot()
        assert "\x1b" not in svg and "\x07" not in svg

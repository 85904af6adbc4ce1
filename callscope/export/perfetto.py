"""A trace as Chrome trace-event JSON (the "JSON Array/Object Format" that
ui.perfetto.dev and chrome://tracing open): ``callscope export --format
perfetto -o t.json``. docs/perfetto.md describes the mapping.

* a process per component instance (``pid`` = instance id + 1, named by
  ``process_name`` metadata), one more (NO_INSTANCE_PID) for a trap or
  deadlock that belongs to no instance;
* a track per task: each task is its own thread (``tid`` = TASK_TID0 + task
  id, named by ``thread_name`` metadata: its request label, function and
  id), so concurrent tasks of an instance never share a track; on it a
  slice from the task's start to its exit (``B``/``E``; a task cancelled or
  unfinished when the trace ends is closed at the end, ``args.unfinished``),
  before it a "backpressure" slice while the call was held back;
* instants (``ph: i``, thread-scoped) on the task's track for its imports
  (args: call, name, async call stack, findings with their evidence),
  import returns, waitable-set and event-delivery events, streams and
  futures; backpressure counter changes as process-scoped instants;
* flow arrows (``s``/``f``, bound to the enclosing slices): caller ->
  callee for every subtask, and true origin -> misattributed import (flows
  go forward in time in this format, so the arrow starts on the origin
  root's track at the moment its taint was planted or, failing that, where
  its slice is, and ends at the import).

Threads, not async (``b``/``e``) events, carry the task slices because flow
events bind to thread slices only (an async slice cannot be a flow's end in
chrome://tracing or in Perfetto's JSON importer); one thread per task gives
the same one-track-per-task picture.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any, Iterable, Iterator, Optional

from ..model import check_all

TASK_TID0 = 1_000_000  # task tids start here: never equal to a pid
NO_INSTANCE_PID = 10_000_000  # events of no instance (a trap with no task, a deadlock)
NO_TASK_TID0 = 500_000  # + pid: per instance, the track for events no task is current at


def no_task_tid(pid: int) -> int:
    return NO_TASK_TID0 + pid if pid < NO_TASK_TID0 else NO_TASK_TID0 - 1
MAX_ARG = 200  # characters of one trace string in args


def _s(v: Any, limit: int = MAX_ARG) -> Any:
    if v is None or isinstance(v, (bool, int, float)):
        return v
    s = str(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _us(ns: int) -> float:
    return round(ns / 1000.0, 3)


def _jsonable(v: Any, depth: int = 0) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x, depth + 1) for k, x in list(v.items())[:32]} if depth < 4 else "..."
    if isinstance(v, (list, tuple)):
        return [_jsonable(x, depth + 1) for x in list(v)[:32]] if depth < 4 else "..."
    if isinstance(v, bytes):
        return _s(v.hex())
    return _s(v)


_WAITABLE = {"waitable-set.new", "waitable-set.drop", "waitable.join", "waitable-set.wait", "waitable-set.poll",
             "event.delivered"}
_BACKPRESSURE = {"backpressure.inc", "backpressure.dec", "backpressure.set"}
EVENT_CODES = {0: "none", 1: "subtask", 2: "stream-read", 3: "stream-write", 4: "future-read",
               5: "future-write", 6: "task-cancelled"}


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


class _Out:
    """The trace events written so far, each as its JSON text (a dict per
    event would cost ten times the output; issue 13), and the processes and
    no-task tracks they use, for the metadata written before them."""

    __slots__ = ("items", "pids", "no_task", "may_spill", "spill")

    SPILL_AT = 4096  # events held as text before they go to the spill file

    def __init__(self, spill: bool = False) -> None:
        self.items: list[str] = []
        self.pids: set = set()
        self.no_task: set = set()  # pids whose "(no current task)" track has events
        # spill: past SPILL_AT, the events leave memory for an unlinked
        # temporary file, a batch at a time, comma-joined (the timeline is
        # written after the metadata, which is known only at the end)
        self.may_spill = spill
        self.spill: Any = None

    def append(self, e: dict) -> None:
        pid = e["pid"]
        self.pids.add(pid)
        if e.get("tid") == no_task_tid(pid):
            self.no_task.add(pid)
        self.items.append(_dumps(e))
        if self.may_spill and len(self.items) >= self.SPILL_AT:
            self._spill()

    def _spill(self) -> None:
        if self.spill is None:
            try:
                self.spill = tempfile.TemporaryFile(prefix="callscope-perfetto-")
            except OSError:  # (no temporary directory: kept in memory)
                self.may_spill = False
                return
            self.spill.write(",".join(self.items).encode())
        else:
            self.spill.write(("," + ",".join(self.items)).encode())
        self.items = []

    def pieces(self, lead: str) -> Iterator[bytes]:
        """Every event's text, comma-joined, ``lead`` before the first, in
        pieces to be concatenated (nothing when there are no events; the
        spilled ones first: they came first)."""
        if self.spill is not None:
            if self.items:
                self._spill()
            spill, self.spill = self.spill, None
            spill.seek(0)
            head = lead.encode()
            for block in iter(lambda: spill.read(1 << 20), b""):
                yield head + block
                head = b""
            spill.close()
            return
        for k in range(0, len(self.items), 4096):
            yield ((lead if k == 0 else ",") + ",".join(self.items[k:k + 4096])).encode()


class _Task:
    """A task's track (read and set as ``t["key"]``); slots, not a dict: a
    trace of many tasks keeps one small record each."""

    __slots__ = ("inst", "func", "caller", "root", "label", "pid", "tid", "open", "closed", "queued", "new_time",
                 "start", "end", "id")

    def __init__(self, inst, func, caller, root, label, pid, tid, new_time, id) -> None:
        self.inst, self.func, self.caller, self.root, self.label = inst, func, caller, root, label
        self.pid, self.tid, self.new_time, self.id = pid, tid, new_time, id
        self.open = self.closed = False
        self.queued = self.start = self.end = None

    def __getitem__(self, k: str) -> Any:
        return getattr(self, k)

    def __setitem__(self, k: str, v: Any) -> None:
        setattr(self, k, v)


def to_perfetto(events: Any, title: Optional[str] = None) -> bytes:
    """The JSON bytes for ``events`` (``(n, kind, time, fields)``); the same
    events give the same bytes."""
    return b"".join(perfetto_chunks(events, title))


def perfetto_chunks(events: Any, title: Optional[str] = None) -> Iterator[bytes]:
    """:func:`to_perfetto`'s bytes in pieces. ``events``: a list, an
    iterable (read into a list: the findings need a first pass), or a
    function giving a fresh iterator of them each call (a trace is then
    read twice and never held whole)."""
    if callable(events):
        evs: Any = None
        findings = check_all(events())
    else:
        evs = list(events) if not isinstance(events, list) else events
        findings = check_all(iter(evs))
    by_n: dict[int, list] = {}
    for fd in findings:
        n = fd.details.get("call_at", fd.n) if fd.lint == "cdn-loop-misrouted" else fd.n
        by_n.setdefault(n, []).append(fd)

    out = _Out(spill=True)
    meta = _Out()
    inst_names: dict[int, Optional[str]] = {}
    tasks: dict[int, _Task] = {}  # id -> {inst, func, caller, root, label, pid, tid, open, queued, start}
    threads: dict[int, int] = {}  # runtime thread id -> task id
    plants: dict[int, int] = {}  # root task -> time its first token was planted
    current_thread: Optional[int] = None
    calls: dict[int, tuple] = {}  # import call id -> (task, pid) until it returns
    flows: list[tuple] = []  # (id, name, s_pid, s_tid, s_ts, f_pid, f_tid, f_ts)
    end_time = 0

    def pid_of(inst: Optional[int]) -> int:
        if inst is None:
            return NO_INSTANCE_PID
        if inst not in inst_names:
            inst_names[inst] = None
        return int(inst) + 1

    def task_name(t: _Task, tid: int) -> str:
        head = f'"{_s(t["label"], 80)}" ' if t["label"] else ""
        kind = "root export task" if t["caller"] is None else "task"
        return f"{head}{kind} {tid} {_s(t['func'], 80)}"

    def track_of_task(task: Optional[int], inst: Optional[int]) -> tuple[int, int]:
        t = tasks.get(task) if task is not None else None
        if t is not None:
            return t["pid"], t["tid"]
        pid = pid_of(inst)
        return pid, no_task_tid(pid)

    def current_task() -> Optional[int]:
        return threads.get(current_thread) if current_thread is not None else None

    def instant(name: str, cat: str, ts: int, pid: int, tid: int, args: dict, scope: str = "t") -> None:
        out.append({"name": name, "cat": cat, "ph": "i", "s": scope, "ts": _us(ts), "pid": pid, "tid": tid,
                    "args": args})

    def close_queued(t: _Task, ts: int, extra: Optional[dict] = None) -> None:
        if t["queued"] is not None:
            e = {"name": "backpressure", "cat": "backpressure", "ph": "E", "ts": _us(ts), "pid": t["pid"],
                 "tid": t["tid"]}
            if extra:
                e["args"] = extra
            out.append(e)
            t["queued"] = None

    def open_task(t: _Task, ts: int, tid: int) -> None:
        if t["open"] or t["closed"]:
            return
        close_queued(t, ts)
        t["open"] = True
        t["start"] = ts
        out.append({"name": task_name(t, tid), "cat": "task", "ph": "B", "ts": _us(ts), "pid": t["pid"],
                    "tid": t["tid"], "args": {"task": tid, "instance": t["inst"], "func": _s(t["func"]),
                                              "caller": t["caller"], "root": t["root"], "label": _s(t["label"])}})
        if t["caller"] is not None and t["caller"] in tasks and tasks[t["caller"]]["open"]:
            c = tasks[t["caller"]]
            flows.append((f"subtask {t['caller']} -> {tid}", c["pid"], c["tid"], t["new_time"], t["pid"], t["tid"],
                          ts))

    def close_task(t: _Task, ts: int, extra: Optional[dict] = None) -> None:
        close_queued(t, ts, extra)
        if t["open"]:
            e = {"name": "", "cat": "task", "ph": "E", "ts": _us(ts), "pid": t["pid"], "tid": t["tid"]}
            if extra:
                e["args"] = extra
            out.append(e)
            t["open"] = False
            t["end"] = ts
        t["closed"] = True

    for ev in (events() if evs is None else evs):
        n, kind, ts, f = ev[0], ev[1], ev[2], ev[3]
        end_time = max(end_time, ts)
        if kind == "instance.new":
            inst_names[f[0]] = f[1]
        elif kind == "task.new":
            tid = f[0]
            t = _Task(f[1], f[2], f[3], f[4], f[5], pid_of(f[1]), TASK_TID0 + int(tid), ts, tid)
            tasks[tid] = t
            meta.append({"name": "thread_name", "ph": "M", "pid": t["pid"], "tid": t["tid"],
                         "args": {"name": task_name(t, tid)}})
            meta.append({"name": "thread_sort_index", "ph": "M", "pid": t["pid"], "tid": t["tid"],
                         "args": {"sort_index": int(tid)}})
        elif kind == "call.queued":
            t = tasks.get(f[0])
            if t is not None and not t["open"] and not t["closed"] and t["queued"] is None:
                t["queued"] = ts
                out.append({"name": "backpressure", "cat": "backpressure", "ph": "B", "ts": _us(ts),
                            "pid": t["pid"], "tid": t["tid"], "args": {"task": f[0], "why": "call held back "
                                                                       "(backpressure / may-not-enter)"}})
        elif kind == "call.admitted":
            t = tasks.get(f[0])
            if t is not None:
                close_queued(t, ts)
        elif kind == "task.start":
            t = tasks.get(f[0])
            if t is not None:
                open_task(t, ts, f[0])
        elif kind == "thread.new":
            threads[f[0]] = f[1]
        elif kind == "thread.switch":
            current_thread = f[1]
        elif kind == "task.return" or kind == "task.cancel":
            t = tasks.get(f[0])
            if t is not None:
                if not t["open"] and not t["closed"]:
                    open_task(t, t["new_time"], f[0])  # returned without a recorded start (sync lift)
                instant("task.return" if kind == "task.return" else "task.cancel", "task", ts, t["pid"], t["tid"],
                        {"task": f[0]})
        elif kind == "task.exit":
            t = tasks.get(f[0])
            if t is not None:
                if not t["open"] and not t["closed"]:
                    open_task(t, t["new_time"], f[0])
                close_task(t, ts)
        elif kind == "import.call":
            call, inst, name, stack = f[0], f[1], f[2], list(f[3] or ())
            task = stack[0] if stack else None
            pid, tid = track_of_task(task, inst)
            calls[call] = (task, pid)
            if task in tasks and not tasks[task]["open"] and not tasks[task]["closed"]:
                open_task(tasks[task], tasks[task]["new_time"], task)
            args: dict = {"call": call, "import": _s(name), "instance": inst, "stack": stack[:32], "event": n}
            fds = by_n.get(n, [])
            mis = [fd for fd in fds if fd.lint == "misattributed"]
            args["verdict"] = "misattributed" if mis else ("finding" if fds else "no finding")
            if fds:
                args["findings"] = [{"lint": fd.lint, "severity": fd.severity, "message": _s(fd.message, 600),
                                     "evidence": _jsonable(fd.details.get("evidence") or [])} for fd in fds]
            if mis:
                d = mis[0].details
                args["attributed_to"] = d.get("stack_root")
                args["caused_by"] = list(d.get("origins") or [d.get("origin")])
            instant(_s(name, 120) if name is not None else "import", "import.misattributed" if mis else "import",
                    ts, pid, tid, args)
            for fd in mis:
                for origin in fd.details.get("origins") or [fd.details.get("origin")]:
                    o = tasks.get(origin)
                    if o is None or o["start"] is None:
                        continue
                    at = plants.get(origin, o["start"])
                    at = max(at, o["start"])
                    if o["end"] is not None:
                        at = min(at, o["end"])
                    if at <= ts and task in tasks and tasks[task]["open"]:
                        flows.append((f"true origin {origin} -> misattributed call {call}", o["pid"], o["tid"], at,
                                      pid, tid, ts))
        elif kind == "import.return":
            made = calls.pop(f[0], None)  # on the track of the task that made the call
            if made is not None:
                t = tasks.get(made[0])
                if t is None:
                    instant("import.return", "import", ts, made[1], no_task_tid(made[1]), {"call": f[0], "event": n})
                elif t["open"]:
                    instant("import.return", "import", ts, t["pid"], t["tid"], {"call": f[0], "event": n})
        elif kind == "taint.plant":
            t = tasks.get(f[0])
            if t is not None:
                plants.setdefault(f[0], ts)
                if t["open"]:
                    instant("taint.plant", "taint", ts, t["pid"], t["tid"], {"token": _s(f[1])})
        elif kind in _BACKPRESSURE:
            pid = pid_of(f[0])
            instant(kind, "backpressure", ts, pid, no_task_tid(pid), {"instance": f[0], "value": _jsonable(f[1])}, "p")
        elif kind in _WAITABLE or kind.startswith("stream.") or kind.startswith("future."):
            task = current_task()
            if kind in ("waitable-set.wait", "waitable-set.poll", "event.delivered"):
                task = threads.get(f[0], task)
            t = tasks.get(task) if task is not None else None
            if t is None or not t["open"]:
                continue
            if kind == "event.delivered":
                args = {"code": EVENT_CODES.get(f[1], f[1]), "handle": f[2], "event": n}
            else:
                args = {"fields": _jsonable(list(f)), "event": n}
            instant(kind, "waitable" if kind in _WAITABLE else kind.split(".")[0], ts, t["pid"], t["tid"], args)
        elif kind in ("trap", "deadlock"):
            task = f[0] if kind == "trap" else None
            t = tasks.get(task) if task is not None else None
            if t is not None and t["open"]:
                instant(kind, "fault", ts, t["pid"], t["tid"], {"message": _s(f[1])})
            else:
                out.append({"name": kind, "cat": "fault", "ph": "i", "s": "g", "ts": _us(ts), "pid": NO_INSTANCE_PID,
                            "tid": no_task_tid(NO_INSTANCE_PID), "args": {"message": _s(f[-1])}})

    for tid, t in tasks.items():  # still running at the end of the trace
        if t["open"] or t["queued"] is not None:
            close_task(t, end_time, {"unfinished": True})

    for i, (name, sp, st, sts, fp, ft, fts) in enumerate(flows):
        out.append({"name": name, "cat": "flow", "ph": "s", "id": i + 1, "ts": _us(sts), "pid": sp, "tid": st})
        out.append({"name": name, "cat": "flow", "ph": "f", "bp": "e", "id": i + 1, "ts": _us(fts), "pid": fp,
                    "tid": ft})

    pids = sorted(out.pids | {t["pid"] for t in tasks.values()})
    head = _Out()
    for pid in pids:
        if pid == NO_INSTANCE_PID:
            name = "(no instance)"
        else:
            inst = pid - 1
            nm = inst_names.get(inst)
            name = f"instance {inst}" + (f" {_s(nm, 80)}" if nm else "")
        head.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": name}})
        head.append({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0, "args": {"sort_index": pid}})
        if pid in out.no_task:
            head.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": no_task_tid(pid),
                         "args": {"name": "(no current task)"}})
    other = {"generator": "callscope export --format perfetto", "trace": _s(title),
             "findings": len(findings),
             "misattributed": sum(1 for fd in findings if fd.lint == "misattributed")}
    # (the text json.dumps gives the whole document, a batch of events at a time)
    yield b'{"traceEvents":['
    first = True
    for part in (head, meta, out):
        for piece in part.pieces("" if first else ","):
            yield piece
            first = False
    yield ('],"displayTimeUnit":"ns","otherData":' + _dumps(other) + "}\n").encode()

"""The runtime's observer interface, and the adapter that feeds a trace
``Recorder`` from it.

The runtime calls ``store.observer.<transition>(...)`` only when an observer
is attached (each call site tests ``observer is not None`` first), so a run
without one pays one attribute load and a compare per transition.

``RecordingObserver`` turns runtime objects into the ids and plain values
the trace format wants, and computes the attribution evidence of each import
call: the async call stack (current task first, root export task last), the
taint tokens found in its arguments, and the roots under which the streams
and futures it is given were created (lineage).
"""

from __future__ import annotations

import itertools
from typing import Any, Optional

import msgpack

from callscope.component import types as T

from callscope.model.tokens import DEFAULT_TAINT_WINDOW, _PlantedLazily, _ascii_forms, encoded_forms
from callscope.trace.format import COPY_OPS, KIND_ID
from callscope.trace.sink import CSink, Core

from .thread import STACK
from .valueplan import generic_summarizer, may_hold_async, may_hold_handles, may_hold_text, values_summarizer
from .waitables import SharedFutureImpl, SharedStreamImpl

_K_THREAD_NEW = KIND_ID["thread.new"]
_K_THREAD_SET_TASK = KIND_ID["thread.set-task"]

_K_TASK_NEW = KIND_ID["task.new"]
_K_TASK_START = KIND_ID["task.start"]
_K_TASK_RETURN = KIND_ID["task.return"]
_K_TASK_EXIT = KIND_ID["task.exit"]
_K_SUBTASK_STATE = KIND_ID["subtask.state"]
_K_WS_WAIT = KIND_ID["waitable-set.wait"]
_K_EVENT = KIND_ID["event.delivered"]
_K_IMPORT_CALL = KIND_ID["import.call"]
_K_IMPORT_RETURN = KIND_ID["import.return"]
_K_HANDLE_NEW = KIND_ID["handle.new"]
_K_TAINT = KIND_ID["taint.plant"]
_K_TAINT_RETIRE = KIND_ID["taint.retire"]
_K_COPY = {kind: {op: KIND_ID[f"{kind}.{op}"] for op in COPY_OPS} for kind in ("stream", "future")}

BYTES_SCAN_LIMIT = 1 << 16  # bytes of one byte string / list<u8> searched for taint (TaintIndex.SCAN_LIMIT: one limit for text and bytes)


def _walk(value, strings: list, shared: list, depth: int = 0) -> bool:
    """Collect the strings and the streams/futures in ``value``; True when it
    holds any stream or future (so it needs ``_plain`` before recording).
    Byte strings and lists of small ints (``list<u8>`` such as HTTP header
    values) count as strings too, decoded as latin-1 (their first
    ``BYTES_SCAN_LIMIT`` bytes)."""
    c = value.__class__
    if c is str or isinstance(value, str):
        strings.append(value)
        return False
    if c is int or c is float or c is bool or value is None:
        return False
    if c is SharedStreamImpl or c is SharedFutureImpl:
        shared.append(value)
        return True
    if c is bytes or c is bytearray or c is memoryview:
        if value:
            strings.append(bytes(value[:BYTES_SCAN_LIMIT]).decode("latin-1"))
        return False
    if depth >= 6:
        return False
    found = False
    if c is dict:
        for v in value.values():
            found = _walk(v, strings, shared, depth + 1) or found
    elif c is list or c is tuple:
        if value and value[0].__class__ is int:
            try:
                strings.append(bytes(value[:BYTES_SCAN_LIMIT]).decode("latin-1"))
                return False
            except (ValueError, TypeError):
                pass  # not all small ints: walk it element by element
        for v in value:
            found = _walk(v, strings, shared, depth + 1) or found
    return found


def _handles(value, t, out: list, depth: int = 0) -> None:
    """Collect (resource type, rep) of the own/borrow handles in ``value`` of
    component type ``t``."""
    from callscope.component import types as T
    c = t.__class__
    if c is T.OwnType or c is T.BorrowType:
        out.append((t.rt, value))
    elif depth > 6 or isinstance(t, T.PrimValType) or value is None:
        return
    elif c is T.ListType:
        for v in value:
            _handles(v, t.t, out, depth + 1)
    elif c is T.RecordType:
        for f in t.fields:
            _handles(value.get(f.label), f.t, out, depth + 1)
    elif c is T.TupleType:
        for i, et in enumerate(t.ts):
            _handles(value.get(str(i)), et, out, depth + 1)
    elif c is T.OptionType:
        if "some" in value:
            _handles(value["some"], t.t, out, depth + 1)
    elif c is T.ResultType:
        for label, et in (("ok", t.ok), ("error", t.error)):
            if label in value and et is not None:
                _handles(value[label], et, out, depth + 1)
    elif c is T.VariantType:
        for case in t.cases:
            if case.label in value and case.t is not None:
                _handles(value[case.label], case.t, out, depth + 1)


# what trace/_sink.c's Core follows to find the handles _handles finds: a
# type's handle spec, made once (_handle_spec), is None when a value of it
# holds no handle _handles would collect, else one of
_HS_HANDLE = 0  # (0, rt): the value itself, a rep of resource type rt
_HS_LIST = 1  # (1, spec): each item of a list (or tuple)
_HS_GET = 2  # (2, ((key, spec), ...)): value.get(key) of a dict (a record's fields, a tuple's "0", "1", ...)
_HS_CASE = 3  # (3, ((key, spec), ...)): value[key] of a dict holding key (option, result, variant)


def _handle_spec(t, depth: int = 0):
    """The handle spec of component type ``t`` at ``depth``: _handles' steps
    for a value of it (a None container holds nothing; past depth 6 only an
    own/borrow itself is collected), with the parts that can hold no handle
    left out (for a value of the type's shape they collect nothing)."""
    c = t.__class__
    if c is T.OwnType or c is T.BorrowType:
        return (_HS_HANDLE, t.rt)
    if depth > 6 or isinstance(t, T.PrimValType):
        return None
    if c is T.ListType:
        sub = _handle_spec(t.t, depth + 1)
        return None if sub is None else (_HS_LIST, sub)
    if c is T.RecordType:
        kind, parts = _HS_GET, [(f.label, f.t) for f in t.fields]
    elif c is T.TupleType:
        kind, parts = _HS_GET, [(str(i), et) for i, et in enumerate(t.ts)]
    elif c is T.OptionType:
        kind, parts = _HS_CASE, [("some", t.t)]
    elif c is T.ResultType:
        kind, parts = _HS_CASE, [(label, et) for label, et in (("ok", t.ok), ("error", t.error)) if et is not None]
    elif c is T.VariantType:
        kind, parts = _HS_CASE, [(case.label, case.t) for case in t.cases if case.t is not None]
    else:
        return None
    subs = tuple((key, sub) for key, et in parts if (sub := _handle_spec(et, depth + 1)) is not None)
    return (kind, subs) if subs else None


def _params_handle_spec(ts) -> tuple:
    """(parameter index, handle spec) of the parameters of types ``ts`` that
    can hold handles (the C core's I_HSPEC)."""
    return tuple((i, spec) for i, t in enumerate(ts) if (spec := _handle_spec(t)) is not None)


def _plain(value, depth: int = 0):
    """Host values as the recorder can summarize them (streams and futures
    become short descriptions)."""
    if isinstance(value, (SharedStreamImpl, SharedFutureImpl)):
        kind = "stream" if isinstance(value, SharedStreamImpl) else "future"
        return f"<{kind} #{value.id}>"
    if depth > 6:
        return "…"
    if isinstance(value, dict):
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


class TaintIndex:
    """Finds which planted tokens occur in an import's strings. Tokens are
    grouped by their first PREFIX characters (planted tokens often share
    them, e.g. "req-"). A string is searched one of two ways, whichever is
    cheaper for it: with few groups, for each prefix with ``str.find`` (C
    speed); with more (FEW, or more than the string has characters: every
    request planting its own UUID), by looking up the prefix at each place,
    so a search costs what the string's length does, not what the number
    of tokens planted so far does. Either way, at each place a prefix occurs,
    the substrings of the group's token lengths are looked up in a set. A
    token shorter than PREFIX is found only as a whole string.

    A root's encoded forms (callscope.model.tokens.Planted with ``forms``)
    are indexed lazily: its tokens wait in ``pending`` until a search that
    is not a planted token as it is (``expand``, first thing in ``find``
    and in trace/_sink.c's search). Which strings are found is the same as
    indexing the forms when planted: a string that is a token as it is was
    found either way, and every other search sees every form. Guests that
    pass their tokens on as they are (the demo) never pay for the forms."""

    PREFIX = 3
    SCAN_LIMIT = 1 << 16  # characters of one string searched for tokens
    # up to this many groups (and no more than the string has characters),
    # each prefix is looked for; beyond, each place is looked up (a str.find
    # costs ~1 ns a character, a lookup ~40 ns: trace/_sink.c uses the same)
    FEW = 32

    def __init__(self):
        self.groups: dict = {}  # prefix -> {token length: set of tokens}
        self.roots: dict = {}  # token -> the root task id that added it first
        # token -> how many more times it was added (by other roots, or
        # twice by one), for retire: a token leaves the index when every add
        # of it is undone (trace/_sink.c's Core.plant counts the same way)
        self.more: dict = {}
        self.pending: list = []  # (tokens, root task id): their encoded forms not indexed yet

    def __bool__(self):
        return bool(self.roots)

    def add(self, token: str, root_id: int) -> None:
        if not token:
            return
        if token in self.roots:
            self.more[token] = self.more.get(token, 0) + 1
            return
        self.roots[token] = root_id
        by_len = self.groups.get(token[:self.PREFIX])
        if by_len is None:
            by_len = self.groups[token[:self.PREFIX]] = {}
        toks = by_len.get(len(token))
        if toks is None:
            toks = by_len[len(token)] = set()
        toks.add(token)

    def _release(self, token) -> None:
        """Undo one ``add`` of ``token``: out of the index when no root
        still in it added it."""
        n = self.more.get(token)
        if n is not None:
            if n > 1:
                self.more[token] = n - 1
            else:
                del self.more[token]
            return
        if self.roots.pop(token, None) is None:
            return
        prefix = token[:self.PREFIX]
        by_len = self.groups.get(prefix)
        toks = by_len.get(len(token)) if by_len is not None else None
        if toks is not None:
            toks.discard(token)
            if not toks:
                del by_len[len(token)]
                if not by_len:
                    del self.groups[prefix]

    def retire(self, tokens, root_id: int) -> None:
        """Take a root's ``tokens`` (its ``task.tokens``, as planted) out of
        the index, their encoded forms too: every ``add`` that planting and
        ``expand`` made for it undone, in the same way (a token another root
        in the index planted as well stays)."""
        if not tokens:
            return
        for tok in tokens:
            if tok:
                self._release(tok)
        if self.queues_forms(tokens):
            pending = self.pending
            for i, item in enumerate(pending):
                if item[1] == root_id:  # (never expanded: only drop it)
                    del pending[i]
                    return
            self.release_forms(tokens)

    def release_forms(self, tokens) -> None:
        """Undo the adds ``expand`` made of ``tokens``' encoded forms
        (retire's last step; trace/_sink.c's Core.root_exit calls it too)."""
        for tok in tokens:
            if tok and tok.__class__ is str:
                for form, _ in encoded_forms(tok):
                    self._release(form)

    @staticmethod
    def queues_forms(tokens) -> bool:
        """Whether planting ``tokens`` queues their encoded forms in
        ``pending`` (a Planted with ``forms`` and a plain token; Core.plant in
        trace/_sink.c asks the same)."""
        return bool(tokens) and bool(getattr(tokens, "forms", False)) and bool(getattr(tokens, "plain", len(tokens)))

    def expand(self) -> None:
        """Index the encoded forms of the pending tokens, in the order they
        were planted (``pending`` is emptied in place: trace/_sink.c's Core
        holds the same list)."""
        pending = self.pending[:]
        del self.pending[:]
        for tokens, root_id in pending:
            for tok in tokens:
                if tok and tok.__class__ is str:
                    for form, _ in encoded_forms(tok):
                        self.add(form, root_id)

    def find(self, strings: list) -> list:
        """The tokens in ``strings``, each once: the strings' order, and in
        one string the order of the places they occur (then their length)."""
        if self.pending:
            self.expand()
        found: list = []
        roots = self.roots
        groups = self.groups
        p = self.PREFIX
        for s in strings:
            if s in roots:  # the common case: an argument passed on as it is
                if s not in found:
                    found.append(s)
                continue
            s = s[:self.SCAN_LIMIT]
            places: list = []  # (place, its group) where a prefix occurs
            if len(groups) <= min(len(s), self.FEW):
                for prefix, by_len in groups.items():
                    if len(prefix) < p:
                        continue
                    i = s.find(prefix)
                    while i >= 0:
                        places.append((i, by_len))
                        i = s.find(prefix, i + 1)
            else:
                for i in range(len(s) - p + 1):
                    by_len = groups.get(s[i:i + p])
                    if by_len is not None:
                        places.append((i, by_len))
            hits = sorted((i, n, sub) for i, by_len in places for n, toks in by_len.items()
                          if (sub := s[i:i + n]) in toks)  # (place, length, token)
            for _, _, sub in hits:
                if sub not in found:
                    found.append(sub)
        if len(found) > 1:
            # a token inside a longer one found too (".../req-1" in ".../req-17")
            # is that longer one's evidence, not its own
            found = [t for t in found if not any(t != u and t in u for u in found)]
        return found


def _holds_shared(value) -> bool:
    return _walk(value, [], [])


def _generic(lim, may_hold_async: bool):
    return generic_summarizer(lim, _plain, _holds_shared if may_hold_async else (lambda v: False))


class _Plan:
    """What recording needs to know about one function type, worked out once
    (see ``valueplan``): which parameters to walk for taint and lineage
    (``walk``: (index, holds only text) pairs; empty when none can hold
    text or a stream/future), whether any can hold own/borrow handles, and
    the summarizers of its parameter and result lists."""

    __slots__ = ("ft", "param_types", "walk", "text1", "handles", "hspec", "args", "results")

    def __init__(self, ft, lim):
        self.ft = ft
        ts = tuple(ft.param_types())
        self.param_types = ts
        walk = []
        asy = [may_hold_async(t) for t in ts]
        for i, t in enumerate(ts):
            if asy[i] or may_hold_text(t):
                d = t.__class__
                walk.append((i, d is T.StringType or d is T.CharType))
        self.walk = tuple(walk)
        # the one parameter to search, when it is the only one and only text
        # (a URL): searched with no lists made
        self.text1 = walk[0][0] if len(walk) == 1 and walk[0][1] else -1
        self.handles = any(may_hold_handles(t) for t in ts)
        # where the handles are, for the C core (None: none it would find)
        self.hspec = _params_handle_spec(ts) if self.handles else None
        shared = any(asy)
        self.args = values_summarizer(ts, lim, _generic(lim, shared), _plain if shared else None)
        self.results = _results_summarizer(ft, lim)


def _results_summarizer(ft, lim):
    """The summarizer of a function type's result list (a _Plan's results)."""
    rs = tuple(ft.result)
    shared = any(may_hold_async(t) for t in rs)
    return values_summarizer(rs, lim, _generic(lim, shared), _plain if shared else None)


# (the C core's attribute, under the property of the same name below)
_CORE_LAST_CALL_ID = Core.last_call_id if Core is not None else None
# the transitions recorded by the sink's emitters (and its switch), with no
# Python in between
_HOOKS = ("task_new", "thread_new", "thread_switch", "task_start", "task_exit", "subtask_new",
          "waitable_set_wait", "event_delivered")
assert Core is None or Core.HOOKS == _HOOKS


class RecordingObserver(Core if Core is not None else object):
    """Feeds a :class:`callscope.trace.recorder.Recorder`.

    With the C sink the observer is its own C core (trace/_sink.c, Core,
    which this class derives from): the runtime's ``obs.import_call(...)``,
    ``obs.import_return(...)``, ``obs.task_return(...)``, ``obs.copy_op(...)``
    find C methods on this class (bound to it below, so that CPython
    specializes both the lookup and the call; an instance attribute over a
    class's method is looked up the generic way at every call, ~150
    instructions). With the Python sink the Python methods (``_py_*``) are
    bound over them on the instance."""

    def __init__(self, recorder, taint_window: int = DEFAULT_TAINT_WINDOW):
        self.rec = recorder
        sink = recorder._sink
        # Every event goes to the recorder's sink (trace/sink.py) with one
        # call: sink.emit(kind, *fields) from the methods below that work
        # something out first. The events that only copy ids are recorded by
        # the sink's emitters, bound below as the transitions of the methods
        # named _py_<transition> (which say what they record; unused): the
        # runtime's call goes straight to the sink, with no Python frame in
        # between when the sink is C.
        self._emit = sink.emit
        self._s = sink.intern  # a string's reference in the trace's string table
        # the ids of import calls, 1, 2, ... (counted by the C core when there
        # is one: next_call_id is then its method)
        self._call_ids = itertools.count(1)
        self._tokens = TaintIndex()
        self.traps = 0
        self._plans: dict = {}  # id(function type) -> _Plan
        self._callee_of: dict = {}  # call id -> the called function's _Plan, until it returns
        self._summ_any = _generic(recorder._limits, True)
        self._core = None
        self._last_call_id = 0
        if Core is not None and isinstance(sink, CSink):
            # import.call, import.return and task.return in C (trace/_sink.c, Core),
            # falling back on the methods below
            Core.__init__(self, sink, self._callee_of, self._tokens.roots, self._tokens.groups, self._summ_any,
                          (self._py_import_call_id, self._py_import_return, self._py_task_return),
                          (_K_IMPORT_CALL, _K_IMPORT_RETURN, _K_TASK_RETURN),
                          self._core_info, self._core_ret_info, (SharedStreamImpl, SharedFutureImpl),
                          (BYTES_SCAN_LIMIT, TaintIndex.SCAN_LIMIT), _K_COPY, STACK, _K_HANDLE_NEW,
                          _K_TAINT, TaintIndex.PREFIX, self._tokens.pending, self._tokens.expand,
                          self._tokens.more)
            self._core = self
            # plant_tokens' tokens read off their class (what the attributes
            # forms and plain give, with no lookup: ~600 instructions a root)
            try:
                self.set_planted(_PlantedLazily)
            except ValueError:  # (the class changed: its attributes are read)
                pass
            # the pending roots' encoded forms indexed by the core itself when
            # a search needs them (TaintIndex.expand's steps, in C); an ASCII
            # token's forms made in C too (tokens.ascii_forms: what
            # encoded_forms gives it, with no Python frame or cache entry)
            self.set_forms(encoded_forms, _ascii_forms is not None)
        else:
            self.next_call_id = self._py_next_call_id
            self.import_call = self._py_import_call
            self.import_return = self._py_import_return
            self.task_return = self._py_task_return
            self.copy_op = self._py_copy_op
        # the taint window (docs/verdicts.md): the tokens of the roots that
        # exited, the last taint_window of them searched for, older ones
        # retired from the index (0: none retired)
        self.taint_window = taint_window
        self._exited: dict = {}  # root task id -> its tokens, in the order they exited
        root_exit = self._root_exit
        if self._core is not None and taint_window > 0:
            # (_root_exit in C: Core.root_exit, the same steps on the same dicts)
            self.set_root_exit(self._exited, taint_window, _K_TAINT_RETIRE, self._tokens.release_forms)
            root_exit = self.root_exit
        e = sink.emitter
        hooks = (  # (in Core.HOOKS' order)
            e(_K_TASK_NEW, 1, ((0, "id"), (0, "inst.id"), (0, "name", "intern"), (0, "caller.id"),
                               (0, "root.id"), (0, "label", "intern"), (0, "ft.async_", "not")),
              then=(self.plant if self._core is not None else self._plant, 0, "tokens")),
            e(_K_THREAD_NEW, 2, (0, 1)),
            sink.switch,
            e(_K_TASK_START, 1, ((0, "id"),)),
            e(_K_TASK_EXIT, 1, ((0, "id"),), then=(root_exit, 0, "tokens") if taint_window > 0 else None),
            e(_K_SUBTASK_STATE, 4, ((0, "id"), 1, 3)),
            e(_K_WS_WAIT, 2, ((0, "tid"), 1)),
            e(_K_EVENT, 4, ((0, "tid"), 1, 2, (3, "", "scalar"))),
        )
        if self._core is not None:
            # Core's methods of these names call them (as methods of this
            # class: see the class's doc)
            self.set_hooks(hooks)
        else:
            for name, hook in zip(_HOOKS, hooks):
                setattr(self, name, hook)

    def _core_info(self, callee) -> tuple:
        """What the C core needs of a callee (trace/_sink.c, Core)."""
        p = self._plan(callee.ft)
        ref = self._s(callee.name)
        return (callee, ref, p.walk, p.args, p.results, p.handles, self._egress(callee), msgpack.packb(ref),
                p.hspec or None)

    def _core_ret_info(self, ft) -> tuple:
        # (an export's type: only its results are recorded, its parameters
        # never; a plan of it made already, by an import of the same type, is
        # used as it is)
        p = self._plans.get(id(ft))
        if p is not None and p.ft is ft:
            return (ft, p.results)
        return (ft, _results_summarizer(ft, self.rec._limits))

    # the id of the import call recorded last: a host function's own notes
    # about the call it is serving (e.g. wasi:http's cdn-loop copy)
    @property
    def last_call_id(self) -> int:
        return _CORE_LAST_CALL_ID.__get__(self) if self._core is not None else self._last_call_id

    @last_call_id.setter
    def last_call_id(self, call_id: int) -> None:
        if self._core is not None:
            _CORE_LAST_CALL_ID.__set__(self, call_id)
        else:
            self._last_call_id = call_id

    # -- instances, tasks, threads --------------------------------------------
    def instance_new(self, inst) -> None:
        parent = inst.parent.id if inst.parent is not None else None
        self.rec.instance_new(inst.id, inst.name or None, parent)

    def _py_task_new(self, task) -> None:
        caller = task.caller
        s = self._s
        name = task.name
        label = task.label
        self._emit(_K_TASK_NEW, task.id, task.inst.id, s(name) if name else None,
                   caller.id if caller is not None else None, task.root.id, s(label) if label else None,
                   not task.ft.async_)
        if task.tokens:
            self._plant(task)

    def _plant(self, task) -> None:
        """A root task's taint tokens (only root tasks have them)."""
        s = self._s
        add = self._tokens.add
        tid = task.id
        tokens = task.tokens
        plain = getattr(tokens, "plain", len(tokens))  # (the rest: encoded forms, indexed only)
        for i, tok in enumerate(tokens):
            add(tok, tid)
            if i < plain:
                self._emit(_K_TAINT, tid, s(tok))
        if TaintIndex.queues_forms(tokens):  # (their encoded forms: indexed when first searched for)
            self._tokens.pending.append((tuple(tokens), tid))

    def _py_task_start(self, task) -> None:
        self._emit(_K_TASK_START, task.id)

    def _py_task_return(self, task, result) -> None:
        ft = task.ft
        p = self._plans.get(id(ft))
        if p is None or p.ft is not ft:
            p = self._plan(ft)
        self._emit(_K_TASK_RETURN, task.id, p.results(result))

    def task_cancel(self, task) -> None:
        self.rec.task_cancel(task.id)

    def task_cancel_requested(self, task) -> None:
        self.rec.note(f"cancellation requested of task {task.id}")

    def _py_task_exit(self, task) -> None:
        self._emit(_K_TASK_EXIT, task.id)

    def _root_exit(self, task) -> None:
        """A root task that planted tokens exited: once more than
        ``taint_window`` such roots have, the oldest one's tokens leave the
        index (``taint.retire``), so a long recording (``serve``) keeps a
        bounded index. An import after it holding only those tokens has no
        taint evidence (not judged unless other evidence judges it). With
        the C core, its ``root_exit`` does these steps (on the same dicts,
        the window as it was given)."""
        exited = self._exited
        exited[task.id] = task.tokens
        if len(exited) > self.taint_window:
            root_id = next(iter(exited))
            tokens = exited.pop(root_id)
            self._tokens.retire(tokens, root_id)
            self._emit(_K_TAINT_RETIRE, root_id)

    def _py_thread_new(self, tid: int, task_id: int) -> None:
        self._emit(_K_THREAD_NEW, tid, task_id)

    def thread_set_task(self, thread, from_task, to_task) -> None:
        self._emit(_K_THREAD_SET_TASK, thread.tid, from_task.id, to_task.id)

    def _py_thread_switch(self, from_tid, to_tid) -> None:
        """None is the host's event loop; X -> loop, loop -> Y becomes X -> Y."""
        self.rec._sink.switch(from_tid, to_tid)

    # -- backpressure ------------------------------------------------------------
    def call_queued(self, task) -> None:
        self.rec.call_queued(task.id)

    def call_admitted(self, task, cancelled: bool) -> None:
        self.rec.call_admitted(task.id)

    def backpressure(self, inst, op: str) -> None:
        self.rec.backpressure(inst.id, inst.backpressure, op)

    # -- subtasks, waitables ----------------------------------------------------
    def _py_subtask_new(self, task, handle: int, name: str, state: int) -> None:
        self._emit(_K_SUBTASK_STATE, task.id, handle, state)

    def subtask_cancel(self, task, handle: int) -> None:
        self.rec.subtask_cancel(task.id, handle)

    def _py_waitable_set_wait(self, thread, set_handle: int) -> None:
        self._emit(_K_WS_WAIT, thread.tid, set_handle)

    def _py_event_delivered(self, thread, code: int, p1: int, p2) -> None:
        self._emit(_K_EVENT, thread.tid, code, p1, p2 if p2.__class__ is int else self.rec._v(p2))

    def _py_copy_op(self, inst, kind: str, op: str, handle: int, result: int, size: int) -> None:
        if result.__class__ is not int and result is not None:
            result = self.rec._v(result)
        if op == "new":
            self._emit(_K_COPY[kind][op], handle, None, result, inst.id)
            if STACK:
                self._emit(_K_HANDLE_NEW, self._s(kind), inst.id, handle, STACK[-1].task.root.id)
        else:
            self._emit(_K_COPY[kind][op], handle, size, result, inst.id)

    # -- imports -------------------------------------------------------------------
    def _py_next_call_id(self) -> int:
        """The next import call's id."""
        return next(self._call_ids)

    def _plan(self, ft) -> "_Plan":
        p = self._plans.get(id(ft))
        if p is None or p.ft is not ft:
            p = self._plans[id(ft)] = _Plan(ft, self.rec._limits)
        return p

    def _py_import_call(self, task, callee, args: list) -> int:
        """An import call starting: its id (the C core's ``import_call`` does
        this, with the method below as its fallback)."""
        call_id = self.next_call_id()
        self._py_import_call_id(call_id, task, callee, args)
        return call_id

    def _py_import_call_id(self, call_id: int, task, callee, args: list) -> None:
        ft = callee.ft
        p = self._plans.get(id(ft))
        if p is None or p.ft is not ft:
            p = self._plan(ft)
        stack = (task.id,) if task.caller is None else tuple([t.id for t in task.async_call_stack()])
        taint = lineage = ()
        if p.text1 >= 0:
            v = args[p.text1]
            roots = self._tokens.roots
            if roots and isinstance(v, str):
                # (what find gives when the argument is a token as it is)
                taint = (v,) if v in roots else self._tokens.find([v])
        elif p.walk:
            strings: list = []
            shared: list = []
            for i, text_only in p.walk:
                v = args[i]
                if text_only and isinstance(v, str):
                    strings.append(v)
                else:
                    _walk(v, strings, shared, 1)
            if strings and self._tokens.roots:  # (not bool(): a Python __bool__ call)
                taint = self._tokens.find(strings)
            if shared:
                lineage = [s.root.id for s in shared if s.root is not None]
        if p.handles:
            # (trace/_sink.c's core_handles does these steps, following
            # p.hspec: a change here is a change there; tests/test_core_handles.py)
            roots = task.inst.store.resource_roots
            egress = self._tokens.roots and self._egress(callee)
            if roots or egress:
                lineage = list(lineage)
                reps: list = []
                for v, t in zip(args, p.param_types):
                    _handles(v, t, reps)
                views: list = []
                for rt, rep in reps:
                    root = roots.get((rt, rep)) if roots else None
                    if root is not None:
                        lineage.append(root.id)
                    # a host resource may show what its object carries (an HTTP
                    # request's headers and path): taint evidence too
                    view = getattr(rt.dtor, "taint_view", None) if egress else None
                    if view is not None:
                        _walk(view(rep), views, [])
                if views:
                    found = self._tokens.find(views)
                    taint = list(taint) + [t for t in found if t not in taint]
        self.last_call_id = call_id
        self._callee_of[call_id] = p
        summary = p.args(args)
        s = self._s
        name = callee.name
        self._emit(_K_IMPORT_CALL, call_id, task.inst.id, s(name), stack, summary,
                   tuple(map(s, taint)) if taint else (), tuple(lineage) if lineage else (),
                   None)

    # Imports through which a request leaves the host: the contents of host
    # resources handed to them (an outgoing request's headers and path) are
    # searched for taint too. Other imports' resources are not looked into:
    # it would cost on every call and flag every setter of a request object,
    # where the send is what a user wants named.
    EGRESS_PREFIXES = ("wasi:http/client@", "wasi:http/outgoing-handler@")

    def _egress(self, callee) -> bool:
        name = callee.name or ""
        return name.startswith(self.EGRESS_PREFIXES)

    def _py_import_return(self, call_id: int, result) -> None:
        p = self._callee_of.pop(call_id, None)
        self._emit(_K_IMPORT_RETURN, call_id, (p.results if p is not None else self._summ_any)(result))

    def idle(self) -> None:
        """The event loop is about to wait for the outside world (real I/O):
        the trace gets what is buffered, so none of it waits in memory."""
        self.rec.flush()

    # -- faults --------------------------------------------------------------------
    def trap(self, task, message: str) -> None:
        self.traps += 1
        self.rec.trap(task.id if task is not None else None, message)

    def deadlock(self, message: str) -> None:
        self.rec.deadlock(message)

    def note(self, text: str) -> None:
        self.rec.note(text)


if Core is not None:
    # Core's methods as method descriptors of this class itself: CPython's
    # specialized call of a C method checks that the instance's type is the
    # descriptor's exactly (Core's own would send every call down the
    # generic path)
    Core.bind_methods(RecordingObserver)

"""Attribution findings over trace events, one lint type per problem (in the
manner of tokio-console's warnings).

Each lint has ``check(events) -> list[Finding]``, ``format(finding) -> str``
(one line) and ``summary(findings) -> str``. :func:`check_all` runs several
lints in one pass over the events. Events are ``(n, kind, time, fields)``.

Ground truth for attribution, independent of the async call stack the host
walks (``import.call``'s ``stack``: current task first, root export task
last):

* taint: ``taint.plant`` records a token planted in a root call's inputs;
  ``import.call``'s ``taint`` lists the tokens found in that import's
  arguments;
* lineage: ``import.call``'s ``lineage`` lists the roots under which the
  resources/streams/futures passed to the import were created
  (``lineage_handles`` optionally names those handles; ``handle.new`` says
  what each is).
"""

from __future__ import annotations

import heapq
import re
from array import array
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Iterable, Iterator, Optional, Sequence

__all__ = [
    "Finding",
    "ImportVerdict",
    "Lint",
    "Misattributed",
    "ImportAfterRootReturned",
    "ImportWithoutRoot",
    "LongBackpressure",
    "CdnLoopMisrouted",
    "SetTaskMisuse",
    "DEFAULT_LINTS",
    "default_lints",
    "check_all",
    "format_finding",
    "summary",
    "verdicts",
    "format_coverage",
    "finding_json",
]


@dataclass(frozen=True)
class Finding:
    lint: str  # the lint's name, e.g. "misattributed"
    severity: str  # "warning" | "error"
    n: int  # event number the finding is about
    time: int
    message: str  # one line, self-contained
    details: dict = field(default_factory=dict, compare=False)


class VerdictFinding:
    """A misattributed import's finding, its ``message`` and ``details``
    made from its :class:`ImportVerdict` and the history each time they are
    read, not kept: a trace whose every import is misattributed keeps its
    verdicts (a few hundred bytes each), not a message and a dict of details
    per import as well (issue 13: memory bounded by the input). Read like a
    :class:`Finding` (the same attributes), equal to and hashed like the
    one with the same fields; a class of its own with slots only, so that
    it keeps no instance dict."""

    __slots__ = ("_v", "_i", "_ctx", "_lint", "_n", "_time")

    def __init__(self, lint: "Misattributed", v: Any, ctx: "_Context", columns: Any = None,
                 i: int = -1) -> None:
        # the verdict itself, or (replay, keep_verdicts) its place in the
        # lint's columns, where it is kept already
        self._lint = lint
        self._v = v if columns is None else columns
        self._i = i if columns is not None else -1
        self._ctx = ctx
        self._n = v.n if columns is None else None
        self._time = v.time if columns is None else None

    @property
    def verdict(self) -> "ImportVerdict":
        return self._v if self._i < 0 else self._v[self._i]

    lint = property(lambda self: self._lint.name)
    severity = property(lambda self: self._lint.severity)
    n = property(lambda self: self._n if self._i < 0 else self._v.ns[self._i])
    time = property(lambda self: self._time if self._i < 0 else self._v.time[self._i])
    message = property(lambda self: self._lint._message(self.verdict, self._ctx))
    details = property(lambda self: self._lint._details(self.verdict, self._ctx))

    def __eq__(self, other):
        if not isinstance(other, (Finding, VerdictFinding)):
            return NotImplemented
        return (self.lint, self.severity, self.n, self.time, self.message) == \
            (other.lint, other.severity, other.n, other.time, other.message)

    def __hash__(self):
        return hash((self.lint, self.severity, self.n, self.time, self.message))

    def __repr__(self) -> str:
        return (f"VerdictFinding(lint={self.lint!r}, severity={self.severity!r}, n={self.n!r}, "
                f"time={self.time!r}, message={self.message!r})")


@dataclass(slots=True)
class _TaskInfo:
    id: int
    inst: int
    func: Optional[str]
    caller: Optional[int]
    root: int
    label: Optional[str]
    returned_n: Optional[int] = None
    returned_time: Optional[int] = None
    how: Optional[str] = None  # "returned" | "cancelled"


class _Context:
    """What every lint needs to know about the history so far."""

    def __init__(self) -> None:
        self.tasks: dict[int, _TaskInfo] = {}
        # token -> (task, event n, root) of its first planting
        self.taint: dict[str, tuple[int, int, Optional[int]]] = {}
        # token -> the roots that planted it, for a token planted by several
        # (ambiguous) only: a trace of one token a request keeps no set a token
        self.taint_roots: dict[str, set] = {}
        self._order: list = []  # tokens in the order first planted
        self._forms: dict = {}  # encoded form -> (token, encoding), or None: of several roots' tokens
        self._forms_done = 0  # how many of _order have their forms in _forms
        # import call id -> ImportVerdict, for the calls later lints asked for
        # while reading (``wanted``), once Misattributed has finished: not a
        # map of every import
        self.verdict_of: dict = {}
        self.wanted: set = set()
        self.handles: dict[tuple[int, int], tuple[Optional[str], Optional[int], int]] = {}  # (inst,h) -> (kind, root, n)
        self.imports = 0
        self.end_time: Optional[int] = None
        self.end_n: Optional[int] = None

    def feed(self, ev: Any) -> None:
        kind = ev[1]
        f = ev[3]
        self.end_time = ev[2]
        self.end_n = ev[0]
        if kind == "task.new":
            self.tasks[f[0]] = _TaskInfo(f[0], f[1], f[2], f[3], f[4], f[5])
        elif kind == "task.return" or kind == "task.cancel":
            t = self.tasks.get(f[0])
            if t is not None and t.returned_n is None:
                t.returned_n, t.returned_time = ev[0], ev[2]
                t.how = "returned" if kind == "task.return" else "cancelled"
        elif kind == "taint.plant":
            tok = f[1]
            first = self.taint.get(tok)
            if first is None:
                self.taint[tok] = (f[0], ev[0], self.root_of(f[0]))
                self._order.append(tok)
            else:
                root = self.root_of(f[0])
                several = self.taint_roots.get(tok)
                if several is not None:
                    several.add(root)
                elif root != first[2]:
                    self.taint_roots[tok] = {first[2], root}
        elif kind == "handle.new":
            self.handles[(f[1], f[2])] = (f[0], f[3], ev[0])
        elif kind == "import.call":
            self.imports += 1

    def root_of(self, task_id: Optional[int]) -> Optional[int]:
        t = self.tasks.get(task_id)
        return t.root if t is not None else task_id

    def form_of(self, found: str) -> Optional[tuple]:
        """``(token, encoding)`` for a found string that is not a planted
        token but an encoded form of one (the drivers search for the forms
        callscope.model.tokens.encoded_forms gives, and record only the
        tokens); None when it is no form of a planted token, or of the
        tokens of several roots."""
        if self._forms_done < len(self._order):
            from .tokens import encoded_forms
            forms = self._forms
            for tok in self._order[self._forms_done:]:
                for form, enc in encoded_forms(tok):
                    if form in forms:
                        got = forms[form]
                        if got is not None and self._roots(got[0]) != self._roots(tok):
                            forms[form] = None
                    else:
                        forms[form] = (tok, enc)
            self._forms_done = len(self._order)
        return self._forms.get(found)

    def _roots(self, tok: str) -> Any:
        """The root that planted ``tok``, or the set of them when several did."""
        return self.taint_roots.get(tok) or self.taint[tok][2]

    def ambiguous(self, tok: str) -> bool:
        """Planted by several roots: says nothing about which one."""
        return tok in self.taint_roots

    def describe(self, task_id: Optional[int]) -> str:
        if task_id is None:
            return "no task"
        t = self.tasks.get(task_id)
        if t is None:
            return f"task {task_id} (unknown)"
        label = f' "{t.label}"' if t.label else ""
        return f"task {task_id} {t.func}{label}"


def _import_fields(f: Sequence) -> tuple:
    call, inst, name, stack = f[0], f[1], f[2], tuple(f[3] or ())
    taint = tuple(f[5] or ()) if len(f) > 5 else ()
    lineage = tuple(f[6] or ()) if len(f) > 6 else ()
    lineage_handles = tuple(f[7]) if len(f) > 7 and f[7] is not None else None
    return call, inst, name, stack, taint, lineage, lineage_handles


class _Ints:
    """A column of ints as 8 bytes each (``array('q')``), turning into a list
    at the first value that does not fit (a trace may hold any msgpack value
    the reader lets through): the pending imports of a long trace cost a
    few words each, not a tuple and three int objects (issue 13)."""

    __slots__ = ("a",)

    def __init__(self) -> None:
        self.a: Any = array("q")

    def append(self, v: Any) -> None:
        a = self.a
        if type(a) is array and type(v) is int and -(1 << 63) <= v < (1 << 63):
            a.append(v)
        else:
            if type(a) is array:
                self.a = a = a.tolist()
            a.append(v)

    def __getitem__(self, i: int) -> Any:
        return self.a[i]

    def __len__(self) -> int:
        return len(self.a)


class _ImportColumns:
    """Imports a column per field: event number, time and call id as 8-byte
    ints, name, instance, stack (shared between the imports that have the
    same one) and stack root as lists, and ``extra``, by position, what only
    some imports have. The pending imports and the kept verdicts."""

    __slots__ = ("ns", "time", "call", "name", "inst", "stack", "stack_root", "extra", "_stacks")

    def __init__(self) -> None:
        self.ns, self.time, self.call = _Ints(), _Ints(), _Ints()
        self.name: list = []
        self.inst: list = []
        self.stack: list = []
        self.stack_root: list = []
        self.extra: dict = {}
        self._stacks: dict = {}

    def _add(self, n, time, call, name, inst, stack, stack_root, extra) -> None:
        if extra is not None:
            self.extra[len(self.name)] = extra
        self.ns.append(n)
        self.time.append(time)
        self.call.append(call)
        self.name.append(name)
        self.inst.append(inst)
        self.stack.append(self._stacks.setdefault(stack, stack))
        self.stack_root.append(stack_root)

    def __len__(self) -> int:
        return len(self.name)


class _PendingImports(_ImportColumns):
    """The imports Misattributed decides at the end (the oracle's records come
    last); ``extra``: (evidence, taint origins, lineage origins, ambiguous)
    for the imports that have any."""

    __slots__ = ()

    def add(self, n, time, call, name, inst, stack, stack_root, evidence, taint_o, lineage_o, ambiguous) -> None:
        self._add(n, time, call, name, inst, stack, stack_root,
                  (evidence, taint_o, lineage_o, ambiguous) if evidence or taint_o or lineage_o or ambiguous else None)

    def __iter__(self) -> Iterator[tuple]:
        """``(n, time, call, name, inst, stack, stack_root, evidence,
        taint_origins, lineage_origins, ambiguous)`` per import, in order."""
        none = ((), (), (), False)
        pop = self.extra.pop
        for i in range(len(self.name)):
            yield (self.ns[i], self.time[i], self.call[i], self.name[i], self.inst[i], self.stack[i],
                   self.stack_root[i], *pop(i, none))


class _VerdictColumns(_ImportColumns):
    """The verdicts a Misattributed kept (``keep_verdicts``), a column per
    field: indexing or iterating gives each as an :class:`ImportVerdict`
    (made when read: equal to the one appended). Replay keeps a verdict per
    import; a trace of many imports keeps some eight words each, not an
    object, its three int objects and its list slot (issue 13). ``extra``:
    (origins, evidence, notes) where any is not empty."""

    __slots__ = ("codes",)

    VERDICTS = ("consistent", "misattributed", "not-judged")
    BYS = ("oracle", "taint", "lineage", "none")
    WHYS = (None, "no-stack-root", "no-evidence", "ambiguous")

    def __init__(self) -> None:
        super().__init__()
        self.codes = bytearray()  # 3 a verdict: its verdict, by and why, as indices of the tables above

    def append(self, v: ImportVerdict) -> None:
        self.add(v.n, v.time, v.call, v.name, v.inst, v.stack, v.stack_root, v.verdict, v.by, v.origins,
                 v.evidence, v.notes, v.why)

    def add(self, n, time, call, name, inst, stack, stack_root, verdict, by, origins, evidence, notes, why) -> None:
        """One verdict by its fields; ``evidence`` may hold the pending
        records' flat key/value tuples (made dicts when read)."""
        codes = (self.VERDICTS.index(verdict), self.BYS.index(by), self.WHYS.index(why))
        self._add(n, time, call, name, inst, stack, stack_root,
                  (origins, evidence, notes) if origins or evidence or notes else None)
        self.codes += bytes(codes)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("verdict index out of range")
        c = self.codes
        origins, evidence, notes = self.extra.get(i, _NO_EXTRA)
        if evidence:
            evidence = _evidence_dicts(evidence)
        return ImportVerdict(self.ns[i], self.time[i], self.call[i], self.name[i], self.inst[i], self.stack[i],
                             self.stack_root[i], self.VERDICTS[c[3 * i]], self.BYS[c[3 * i + 1]], origins,
                             evidence, notes, self.WHYS[c[3 * i + 2]])

    def __iter__(self) -> Iterator[ImportVerdict]:
        for i in range(len(self)):
            yield self[i]


_NO_EXTRA = ((), (), ())


def _evidence_dicts(evidence: Sequence) -> list:
    """The pending records' flat key/value tuples as the dicts
    docs/verdicts.md gives (a dict already made stays)."""
    return [dict(zip(e[::2], e[1::2])) if type(e) is tuple else e for e in evidence]


class ByEvent:
    """``get(n)``: the item whose ``n`` is event n, ``at(n)``: all of them,
    over a list in event order (found by bisection: no map of every item
    kept beside the list). ``ns``: the items' event numbers, where they are
    kept apart (else a _VerdictColumns' own column, else each item's ``n``).
    Replay's verdicts and findings by event, export's graph imports."""

    __slots__ = ("_items", "_ns")

    def __init__(self, items: Any, ns: Any = None) -> None:
        self._items = items
        col = getattr(items, "ns", None) if ns is None else None
        self._ns = ns if ns is not None else (col.a if col is not None else None)

    def _range(self, n: Any) -> tuple:
        if type(n) is not int:
            return 0, 0
        items, ns = self._items, self._ns
        if ns is not None:
            i = j = bisect_left(ns, n)
            while j < len(ns) and ns[j] == n:
                j += 1
            return i, j
        i = j = bisect_left(items, n, key=_n_of)
        while j < len(items) and items[j].n == n:
            j += 1
        return i, j

    def get(self, n: Any, default: Any = None) -> Any:
        i, j = self._range(n)
        return self._items[i] if i < j else default

    def at(self, n: Any) -> list:
        i, j = self._range(n)
        return [self._items[k] for k in range(i, j)]

    def __len__(self) -> int:
        return len(self._items)


_n_of = attrgetter("n")


class Lint:
    """Base of the lints. Subclasses set ``name``, ``severity``, ``noun`` and
    implement ``_on(ev, ctx, out)`` (and ``_finish(ctx, out)`` if needed)."""

    name = "lint"
    severity = "warning"
    noun = ("finding", "findings")  # singular, plural for summary()
    what = "found"
    kinds: Optional[frozenset] = None  # event kinds _on wants (None: all)

    def reset(self) -> None:
        pass

    def _on(self, ev: Any, ctx: _Context, out: list) -> None:
        raise NotImplementedError

    def _finish(self, ctx: _Context, out: list) -> None:
        pass

    def check(self, events: Iterable[Any]) -> list[Finding]:
        return check_all(events, [self])

    def format(self, finding: Finding) -> str:
        return f"{finding.severity}[{finding.lint}] #{finding.n}: {finding.message}"

    def summary(self, findings: Sequence[Finding]) -> str:
        k = count_of(findings, self.name)
        return f"{k} {self.noun[0] if k == 1 else self.noun[1]} {self.what}"


@dataclass(slots=True)
class ImportVerdict:
    """One import's verdict (docs/verdicts.md): ``verdict`` is
    ``consistent``, ``misattributed`` or ``not-judged``; ``by`` the evidence
    that decided (``oracle``, ``taint``, ``lineage``, ``none``); ``origins``
    the roots that evidence names; ``why`` for a not-judged one
    (``no-stack-root``, ``no-evidence``, ``ambiguous``). ``origins``,
    ``evidence`` and ``notes`` are sequences; an empty one is the shared
    empty tuple (a trace of many imports keeps no empty lists)."""
    n: int
    time: int
    call: Any
    name: Any
    inst: Any
    stack: tuple
    stack_root: Optional[int]
    verdict: str
    by: str
    origins: Sequence
    evidence: Sequence
    notes: Sequence
    why: Optional[str] = None

    @property
    def shared(self) -> bool:
        return self.verdict == "misattributed" and len(self.origins) > 1


VERDICT_KINDS = frozenset({"import.call", "oracle.verdict", "oracle.end", "taint.retire"})


class Misattributed(Lint):
    """An import whose true origin is a different root export task than the
    root of its async call stack. Evidence, in rank order (docs/verdicts.md):
    the behavioural oracle (``oracle.verdict`` records, written at the end of
    a trace recorded with it), then taint (tokens planted by exactly one
    root; a token planted by several is ambiguous and says nothing), then
    lineage. Where a higher rung judges, a lower one that disagrees is a
    note. Every import gets an :class:`ImportVerdict` (``self.verdicts``
    after a check); ``coverage()`` counts them."""

    name = "misattributed"
    kinds = VERDICT_KINDS
    noun = ("import", "imports")
    what = "attributed to the wrong root task"

    def __init__(self, keep_verdicts: bool = True) -> None:
        # keep_verdicts=False (summary, export): only the coverage counts,
        # the findings and the verdicts other lints ask for are kept, not an
        # ImportVerdict per import (issue 13: memory bounded by the input)
        self.keep_verdicts = keep_verdicts
        self.reset()

    def reset(self) -> None:
        self._counts = {"verdicts": {"consistent": 0, "misattributed": 0, "not-judged": 0},
                        "by": {"oracle": 0, "taint": 0, "lineage": 0},
                        "why": {"no-stack-root": 0, "no-evidence": 0, "ambiguous": 0}}
        self._pending = _PendingImports()  # per import.call, decided at the end
        self._oracle: dict = {}  # call -> (verdict, roots, serial_calls)
        self.oracle_status: Optional[str] = None  # None: no oracle in the trace
        self.oracle_counts: dict = {}
        self.verdicts: Any = _VerdictColumns()  # (a sequence of ImportVerdict)
        self.taint_retired = 0  # roots whose tokens the recorder stopped searching for (taint.retire)

    def _on(self, ev, ctx, out):
        kind = ev[1]
        f = ev[3]
        if kind == "import.call":
            call, inst, name, stack, taint, lineage, lineage_handles = _import_fields(f)
            stack_root = ctx.root_of(stack[-1]) if stack else None
            evidence = []
            taint_origins: list = []
            ambiguous: list = []
            for found in taint:
                tok, enc = found, "plain"
                hit = ctx.taint.get(tok)
                if hit is None:
                    form = ctx.form_of(found)
                    if form is None:
                        continue
                    tok, enc = form
                    hit = ctx.taint[tok]
                root = ctx.root_of(hit[0])
                if ctx.ambiguous(tok):
                    ambiguous.append(tok)
                    # (evidence kept as flat key, value tuples until the verdict is
                    # made: a third of a dict's size; made dicts as the verdict is)
                    evidence.append(("by", "taint", "token", tok, "ambiguous", True,
                                     "roots", sorted(ctx.taint_roots[tok])))
                    continue
                e = ("by", "taint", "token", tok, "encoding", enc, "planted_in", hit[0],
                     "planted_at", hit[1], "root", root)
                if enc != "plain":
                    e += ("found", found)
                evidence.append(e)
                if root not in taint_origins:
                    taint_origins.append(root)
            lineage_origins: list = []
            for i, root in enumerate(lineage):
                if root is None:
                    continue
                root = ctx.root_of(root)
                e = ("by", "lineage", "root", root)
                if lineage_handles is not None and i < len(lineage_handles):
                    h = lineage_handles[i]
                    e += ("handle", h)
                    info = ctx.handles.get((inst, h))
                    if info is not None:
                        e += ("handle_kind", info[0], "created_at", info[2])
                evidence.append(e)
                if root not in lineage_origins:
                    lineage_origins.append(root)
            self._pending.add(ev[0], ev[2], call, name, inst, stack, stack_root, evidence or (),
                              taint_origins or (), lineage_origins or (), bool(ambiguous))
        elif kind == "oracle.verdict":
            roots = [ctx.root_of(r) for r in (f[2] or ())]
            self._oracle[f[0]] = (f[1], roots, f[3] if len(f) > 3 else None)
        elif kind == "taint.retire":
            self.taint_retired += 1
        elif kind == "oracle.end":
            self.oracle_status = str(f[0])
            self.oracle_counts = {"serial_imports": f[1], "matched": f[2], "unmatched": f[3]} if len(f) > 3 else {}

    def _finish(self, ctx, out):
        oracle = self._oracle
        pending, self._pending = self._pending, _PendingImports()
        keep = self.keep_verdicts
        wanted = ctx.wanted
        c_verdict, c_by, c_why = self._counts["verdicts"], self._counts["by"], self._counts["why"]
        for (n, time, call, name, inst, stack, stack_root, evidence, taint_o, lineage_o, ambiguous) in pending:
            notes: list = []
            why = None
            o = oracle.get(call)
            if stack_root is None:
                verdict, by, origins, why = "not-judged", "none", (), "no-stack-root"
            elif o is not None and o[0] in ("consistent", "misattributed") and o[1]:
                by = "oracle"
                roots = list(dict.fromkeys(o[1]))
                evidence = [{"by": "oracle", "roots": roots, "serial_calls": o[2]}, *evidence]
                if o[0] == "consistent" or stack_root in roots:
                    verdict, origins = "consistent", [stack_root]
                else:
                    verdict, origins = "misattributed", roots
                for other in (taint_o, lineage_o):
                    for r in other:
                        if r not in origins and r != stack_root:
                            notes.append(f"argument carries data from {ctx.describe(r)}")
            elif taint_o:
                # One root's data: consistent when it is the stack root's.
                # Several roots' data in one call (a batch made for A, B and
                # C on A's task): the host attributes all of it to one root,
                # so it is misattributed for the others ("shared by N
                # requests, attributed to one"), the stack root among them.
                by, origins = "taint", taint_o
                verdict = "consistent" if taint_o == [stack_root] else "misattributed"
                for r in lineage_o:
                    if r not in taint_o:
                        notes.append(f"an argument was created under {ctx.describe(r)}")
            elif lineage_o:
                by, origins = "lineage", lineage_o
                verdict = "consistent" if stack_root in lineage_o else "misattributed"
            else:
                verdict, by, origins = "not-judged", "none", ()
                why = "ambiguous" if ambiguous else "no-evidence"
            c_verdict[verdict] += 1
            if verdict == "not-judged":
                c_why[why] = c_why.get(why, 0) + 1
            else:
                c_by[by] += 1
            if not (keep or verdict == "misattributed" or call in wanted):
                continue
            notes = list(dict.fromkeys(notes)) if notes else ()
            if keep:  # (kept as columns, the evidence as it is: its findings read it back from them)
                cols = self.verdicts
                cols.add(n, time, call, name, inst, tuple(stack), stack_root, verdict, by, origins, evidence,
                         notes, why)
                if call in wanted:
                    ctx.verdict_of[call] = cols[-1]
                if verdict == "misattributed":
                    out.append(VerdictFinding(self, None, ctx, cols, len(cols) - 1))
                continue
            if evidence:
                evidence = _evidence_dicts(evidence)
            v = ImportVerdict(n, time, call, name, inst, tuple(stack), stack_root, verdict, by, origins,
                              evidence, notes, why)
            if call in wanted:
                ctx.verdict_of[call] = v
            if verdict == "misattributed":
                out.append(VerdictFinding(self, v, ctx))

    def _message(self, v: ImportVerdict, ctx) -> str:
        ev_text = "; ".join(_evidence_text(e, ctx) for e in v.evidence if not e.get("ambiguous"))
        if v.shared:
            where = (f"but is shared by {len(v.origins)} requests, attributed to one: "
                     + ", ".join(ctx.describe(r) for r in v.origins))
        else:
            where = f"but originates in root {ctx.describe(v.origins[0])}"
        msg = f"import {v.name} (call {v.call}) is attributed to root {ctx.describe(v.stack_root)} {where}: {ev_text}"
        if v.notes:
            msg += " (notes: " + "; ".join(v.notes) + ")"
        return msg

    def _details(self, v: ImportVerdict, ctx) -> dict:
        return {
            "call": v.call, "import": v.name, "inst": v.inst, "stack": list(v.stack),
            "stack_root": v.stack_root, "stack_root_label": _label(ctx, v.stack_root),
            "origin": v.origins[0], "origin_label": _label(ctx, v.origins[0]),
            "origins": list(v.origins), "origin_labels": [_label(ctx, r) for r in v.origins],
            "shared": v.shared, "by": v.by, "evidence": v.evidence, "notes": v.notes,
        }

    def coverage(self) -> dict:
        """The counts of docs/verdicts.md's ``coverage`` object."""
        by, verdicts, why = (dict(self._counts[k]) for k in ("by", "verdicts", "why"))
        total = sum(verdicts.values())
        judged = total - verdicts["not-judged"]
        return {"imports": total, "judged": judged, "not_judged": total - judged, "by": by,
                "verdicts": verdicts, "not_judged_why": why,
                "oracle": self.oracle_status or "off", "oracle_counts": dict(self.oracle_counts),
                "limits": {"taint_scan_chars": TAINT_SCAN_CHARS, "taint_retired": self.taint_retired}}


TAINT_SCAN_CHARS = 1 << 16  # callscope.runtime.observe: BYTES_SCAN_LIMIT == TaintIndex.SCAN_LIMIT


def format_coverage(cov: dict) -> str:
    """``imports 2,592: judged 2,592 (oracle 2,592), not judged 0``; in words
    when nothing could be judged."""
    total, judged, nj = cov["imports"], cov["judged"], cov["not_judged"]
    by = ", ".join(f"{k} {v:,}" for k, v in cov["by"].items() if v)
    why = ", ".join(f"{k.replace('-', ' ')} {v:,}" for k, v in cov["not_judged_why"].items() if v)
    line = f"imports {total:,}: judged {judged:,}" + (f" ({by})" if by else "") + f", not judged {nj:,}"
    if why:
        line += f" ({why})"
    if total and not judged:
        line += (" - nothing could be judged: " +
                 ("the oracle matched no import, and " if cov["oracle"] == "ran" else
                  "no oracle ran (callscope check runs it), and " if cov["oracle"] == "off" else
                  f"the oracle {cov['oracle']}, and ")
                 + "no planted token or handle created under a root reached an import")
    if cov["by"].get("taint") or (nj and cov["not_judged_why"].get("no-evidence")):
        line += f"; taint searched the first {cov['limits']['taint_scan_chars']:,} characters of each string"
    retired = cov["limits"].get("taint_retired", 0)
    if retired:
        line += (f"; the tokens of {retired:,} exited root{'' if retired == 1 else 's'} were no longer searched "
                 "for after the taint window (--taint-window)")
    return line


def _label(ctx: _Context, task_id: Optional[int]) -> Optional[str]:
    t = ctx.tasks.get(task_id)
    return t.label if t is not None else None


def _evidence_text(e: dict, ctx: _Context) -> str:
    if e["by"] == "oracle":
        roots = ", ".join(ctx.describe(r) for r in e["roots"]) or "no root"
        k = e.get("serial_calls")
        return f"oracle: the serial run made this call with these values under {roots}" + (f" ({k} serial call{'s' if k != 1 else ''})" if k else "")
    if e["by"] == "taint":
        enc = f" (found {e['encoding']}-encoded: {e['found']!r})" if e.get("found") else ""
        return f"taint token {e['token']!r}{enc} planted in {ctx.describe(e['planted_in'])} (event #{e['planted_at']})"
    h = ""
    if "handle" in e:
        kind = e.get("handle_kind") or "handle"
        h = f" {kind} {e['handle']}"
        if "created_at" in e:
            h += f" (event #{e['created_at']})"
    return f"lineage:{h} created under root task {e['root']}" if h else f"lineage: an argument created under root task {e['root']}"


RESOURCE_DROP = "[resource-drop]"  # the name of a host resource's destructor (the component model's)


class ImportAfterRootReturned(Lint):
    """An import made after the root task its stack names had returned (or
    been cancelled): the host has likely finished that request's span. A
    host resource's drop (``[resource-drop]...``, its destructor) is not one:
    a guest runtime with a garbage collector (componentize-py, JS) drops
    what a request used after answering it, on every request; that is
    cleanup, not work done for the request, and would bury the imports that
    are."""

    name = "import-after-root-returned"
    kinds = frozenset({"import.call"})
    noun = ("import", "imports")
    what = "made after their root task returned"

    def summary(self, findings):
        k = count_of(findings, self.name)
        return f"{k} {'import' if k == 1 else 'imports'} made after {'its' if k == 1 else 'their'} root task returned"

    def _on(self, ev, ctx, out):
        if ev[1] != "import.call":
            return
        call, inst, name, stack, *_ = _import_fields(ev[3])
        if not stack or (isinstance(name, str) and name.startswith(RESOURCE_DROP)):
            return
        root = ctx.root_of(stack[-1])
        t = ctx.tasks.get(root)
        if t is None or t.returned_n is None:
            return
        dt = ev[2] - t.returned_time
        msg = (
            f"import {name} (call {call}) made {_dur(dt)} after its root {ctx.describe(root)} "
            f"{t.how} (event #{t.returned_n})"
        )
        out.append(
            Finding(
                self.name, self.severity, ev[0], ev[2], msg,
                {"call": call, "import": name, "inst": inst, "root": root, "root_label": t.label,
                 "returned_at": t.returned_n, "how": t.how, "after_ns": dt},
            )
        )


class ImportWithoutRoot(Lint):
    """An import whose async call stack does not end at a root export task
    (empty stack, unknown task, or a task that some other task called)."""

    name = "import-without-root"
    kinds = frozenset({"import.call"})
    noun = ("import", "imports")
    what = "made with no export root"

    def _on(self, ev, ctx, out):
        if ev[1] != "import.call":
            return
        call, inst, name, stack, taint, lineage, _ = _import_fields(ev[3])
        if stack:
            last = ctx.tasks.get(stack[-1])
            if last is not None and last.caller is None:
                return
            why = (
                f"its stack ends at unknown task {stack[-1]}"
                if last is None
                else f"its stack ends at {ctx.describe(stack[-1])}, which {ctx.describe(last.caller)} called"
            )
        else:
            why = "its async call stack is empty (no current task)"
        origins = _origins(ctx, taint, lineage)
        extra = f"; by taint/lineage it originates in root {' and '.join(ctx.describe(r) for r in origins)}" if origins else ""
        out.append(
            Finding(
                self.name, self.severity, ev[0], ev[2], f"import {name} (call {call}): {why}{extra}",
                {"call": call, "import": name, "inst": inst, "stack": list(stack), "origins": origins},
            )
        )


class LongBackpressure(Lint):
    """A call held back by backpressure (``call.queued`` until
    ``call.admitted``) longer than ``threshold_ns``; calls still queued at the
    end of the trace count up to the last event's time."""

    name = "long-backpressure"
    kinds = frozenset({"call.queued", "call.admitted", "task.exit"})
    noun = ("call", "calls")

    def __init__(self, threshold_ns: int = 10_000_000):
        self.threshold_ns = threshold_ns
        self._queued: dict[int, tuple[int, int]] = {}

    @property
    def what(self) -> str:
        return f"held back by backpressure for more than {_dur(self.threshold_ns)}"

    def reset(self) -> None:
        self._queued = {}

    def _on(self, ev, ctx, out):
        kind = ev[1]
        if kind == "call.queued":
            self._queued.setdefault(ev[3][0], (ev[0], ev[2]))
        elif kind == "call.admitted" or kind == "task.exit":
            q = self._queued.pop(ev[3][0], None)
            if q is not None and ev[2] - q[1] > self.threshold_ns:
                self._emit(ctx, out, ev[3][0], q, ev[2], ev[0] if kind == "call.admitted" else None, ev[0])

    def _emit(self, ctx, out, task, q, end_time, admitted_n, at_n):
        waited = end_time - q[1]
        t = ctx.tasks.get(task)
        state = f"admitted at event #{admitted_n}" if admitted_n is not None else "never admitted"
        inst = f" into instance {t.inst}" if t is not None else ""
        msg = f"call {ctx.describe(task)}{inst} held back by backpressure for {_dur(waited)} (queued at event #{q[0]}, {state})"
        out.append(
            Finding(
                self.name, self.severity, at_n, end_time, msg,
                {"task": task, "label": t.label if t else None, "inst": t.inst if t else None,
                 "queued_at": q[0], "admitted_at": admitted_n, "waited_ns": waited},
            )
        )

    def _finish(self, ctx, out):
        for task, q in sorted(self._queued.items(), key=lambda kv: kv[1][0]):
            if ctx.end_time is not None and ctx.end_time - q[1] > self.threshold_ns:
                self._emit(ctx, out, task, q, ctx.end_time, None, ctx.end_n)
        self._queued = {}


_CDN_NOTE = re.compile(r"^cdn-loop: copied (?P<value>.*) of root task (?P<root>\d+) onto import call (?P<call>\d+)$")


class CdnLoopMisrouted(Lint):
    """The CDN-Loop case (RFC 8586; NOTES §5): the host copies an incoming
    request's ``cdn-loop`` header onto the outgoing requests it attributes to
    it by the async call stack (a ``note`` ``cdn-loop: copied VALUE of root
    task R onto import call C`` right after that ``import.call``). When the
    call's true origin (its verdict: the oracle, taint, lineage) is another
    root, the header went to the wrong outgoing request: loop detection
    breaks."""

    name = "cdn-loop-misrouted"
    kinds = frozenset({"import.call", "note"})
    noun = ("cdn-loop header", "cdn-loop headers")
    what = "copied onto another request's outgoing request"

    def __init__(self) -> None:
        self._last: Optional[tuple] = None  # (call, name, taint, lineage) of the last import.call
        self._notes: list = []

    def reset(self) -> None:
        self._last = None
        self._notes = []

    def _on(self, ev, ctx, out):
        if ev[1] == "import.call":
            call, inst, name, stack, taint, lineage, _ = _import_fields(ev[3])
            self._last = (call, name, taint, lineage, ev[0])
            return
        m = _CDN_NOTE.match(str(ev[3][0]))
        if m is None or self._last is None or self._last[0] != int(m["call"]):
            return
        self._notes.append((ev[0], ev[2], m["value"], ctx.root_of(int(m["root"])), self._last))
        ctx.wanted.add(self._last[0])

    def _finish(self, ctx, out):
        # judged as its import is (the oracle first, when the misattributed
        # lint ran before this one); else by taint and lineage
        for n, time, value, copied_from, (call, name, taint, lineage, call_n) in self._notes:
            v = ctx.verdict_of.get(call)
            if v is not None:
                origins = list(v.origins) if v.verdict != "not-judged" else []
            else:
                origins = _origins(ctx, taint, lineage)
            if not origins or copied_from in origins:
                continue
            msg = (f"cdn-loop {value} of root {ctx.describe(copied_from)} was copied onto the outgoing "
                   f"request of {name} (call {call}, event #{call_n}), which originates in root "
                   f"{' and '.join(ctx.describe(r) for r in origins)}")
            out.append(Finding(self.name, self.severity, n, time, msg,
                               {"call": call, "import": name, "value": value, "copied_from": copied_from,
                                "copied_from_label": _label(ctx, copied_from), "origin": origins[0],
                                "origin_label": _label(ctx, origins[0]), "origins": origins,
                                "call_at": call_n, "by": v.by if v is not None else None}))
        self._notes = []


class SetTaskMisuse(Lint):
    """An import made by a thread that moved (``thread.set-task``) to the
    task of a request that did not cause it: the guest moved to the wrong
    task, or moved and then did another request's work. Judged as the
    import's verdict judges it (the oracle first, when the misattributed lint
    ran before this one; else taint and lineage). Reported for each import
    the thread makes on the task it moved to, until it moves again."""

    name = "set-task-misuse"
    kinds = frozenset({"thread.switch", "thread.set-task", "import.call"})
    noun = ("import", "imports")
    what = "made after a thread.set-task to another request's task"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.current = None  # the running thread (the last thread.switch's to_thread)
        self.moved: dict = {}  # thread -> (event n, from task, to task) of its last move
        self._candidates: list = []

    def _on(self, ev, ctx, out):
        kind, f = ev[1], ev[3]
        if kind == "thread.switch":
            self.current = f[1]
            return
        if kind == "thread.set-task":
            self.moved[f[0]] = (ev[0], f[1], f[2])
            return
        move = self.moved.get(self.current)
        if move is None:
            return
        call, inst, name, stack, taint, lineage, _ = _import_fields(f)
        if not stack or stack[0] != move[2]:
            return  # not on the task it moved to (it called from a subtask, or moved since)
        self._candidates.append((ev[0], ev[2], self.current, move, call, name, taint, lineage))
        ctx.wanted.add(call)

    def _finish(self, ctx, out):
        verdict_of = getattr(ctx, "verdict_of", {})
        for n, time, thread, move, call, name, taint, lineage in self._candidates:
            v = verdict_of.get(call)
            if v is not None:
                origins = list(v.origins) if v.verdict != "not-judged" else []
            else:
                origins = _origins(ctx, taint, lineage)
            moved_root = ctx.root_of(move[2])
            if not origins or moved_root in origins:
                continue
            msg = (f"thread {thread} moved to {ctx.describe(move[2])} by thread.set-task (event #{move[0]}), "
                   f"then made import {name} (call {call}), which root "
                   f"{' and '.join(ctx.describe(r) for r in origins)} caused")
            out.append(Finding(self.name, self.severity, n, time, msg,
                               {"call": call, "import": name, "thread": thread, "set_task_at": move[0],
                                "from_task": move[1], "to_task": move[2], "to_root": moved_root,
                                "origins": origins, "by": v.by if v is not None else None}))
        self._candidates = []


def _origins(ctx: _Context, taint, lineage) -> list:
    """The roots an import really comes from, by taint and lineage."""
    origins: list = []
    for tok in taint:
        hit = ctx.taint.get(tok)
        if hit is None:
            form = ctx.form_of(tok)
            if form is not None:
                tok = form[0]
                hit = ctx.taint[tok]
        if hit is not None and not ctx.ambiguous(tok) and ctx.root_of(hit[0]) not in origins:
            origins.append(ctx.root_of(hit[0]))
    for r in lineage:
        if r is not None and ctx.root_of(r) not in origins:
            origins.append(ctx.root_of(r))
    return origins


def _dur(ns: int) -> str:
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.1f}µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.1f}ms"
    return f"{ns / 1e9:.2f}s"


def default_lints(backpressure_threshold_ns: int = 10_000_000, keep_verdicts: bool = True) -> list[Lint]:
    """Every lint; ``keep_verdicts=False``: Misattributed keeps counts and
    findings, not every import's verdict (what summary and export need)."""
    return [Misattributed(keep_verdicts), ImportAfterRootReturned(), ImportWithoutRoot(), LongBackpressure(backpressure_threshold_ns),
            CdnLoopMisrouted(), SetTaskMisuse()]


DEFAULT_LINTS = (Misattributed, ImportAfterRootReturned, ImportWithoutRoot, LongBackpressure, CdnLoopMisrouted,
                 SetTaskMisuse)


class Findings(list):
    """The findings :func:`check_all` kept (in event order) and, in
    ``counts``, how many each lint found in all; ``total`` their sum. With
    a ``keep`` limit only the first ``keep`` findings (by event) are kept:
    a trace where every import is misattributed does not keep a finding per
    import for a listing that shows twenty (issue 13)."""

    counts: Counter
    total: int


class _Collector:
    """Where the lints put their findings: all of them, or the first
    ``keep`` (by event, then by the order found: what the stable sort of
    all of them would put first), and the counts of all."""

    __slots__ = ("keep", "heap", "counts", "seq")

    def __init__(self, keep: Optional[int]) -> None:
        self.keep = keep
        self.heap: list = []
        self.counts: Counter = Counter()
        self.seq = 0

    def append(self, f: Finding) -> None:
        self.counts[f.lint] += 1
        if self.keep is None:
            self.heap.append(f)
            return
        if not self.keep:
            return
        # (a min-heap of the negated (event, order found) keys: its top is the
        # last of the ones kept, the one a finding from earlier replaces)
        self.seq += 1
        key = (-(f.n if f.n is not None else -1), -self.seq)
        if len(self.heap) < self.keep:
            heapq.heappush(self.heap, (key, f))
        elif key > self.heap[0][0]:
            heapq.heapreplace(self.heap, (key, f))

    def result(self) -> Findings:
        if self.keep is None:
            out = Findings(sorted(self.heap, key=lambda f: (f.n if f.n is not None else -1)))
        else:
            out = Findings(f for _, f in sorted(self.heap, key=lambda kf: kf[0], reverse=True))
        out.counts = self.counts
        out.total = sum(self.counts.values())
        return out


def count_of(findings: Sequence[Finding], lint: str) -> int:
    """How many findings of ``lint``: all found, when ``findings`` kept only
    some (a :class:`Findings` with a ``keep`` limit)."""
    counts = getattr(findings, "counts", None)
    if counts is not None:
        return counts.get(lint, 0)
    return sum(1 for f in findings if f.lint == lint)


def check_all(events: Iterable[Any], lints: Optional[Sequence[Lint]] = None,
              keep: Optional[int] = None) -> Findings:
    """Run ``lints`` (default: all, default thresholds) over ``events`` in one
    pass; findings in event order (the first ``keep`` of them, when given;
    ``counts`` and ``total`` count all)."""
    if lints is None:
        lints = default_lints()
    for lint in lints:
        lint.reset()
    ctx = _Context()
    out = _Collector(keep)
    every = [lint for lint in lints if lint.kinds is None]
    by_kind: dict[str, list[Lint]] = {}
    for lint in lints:
        for k in lint.kinds or ():
            by_kind[k] = [x for x in lints if x.kinds is None or k in x.kinds]
    for ev in events:
        ctx.feed(ev)
        for lint in by_kind.get(ev[1], every):
            lint._on(ev, ctx, out)
    for lint in lints:
        lint._finish(ctx, out)
    return out.result()


_BY_NAME = {cls.name: cls for cls in DEFAULT_LINTS}


def format_finding(finding: Finding) -> str:
    cls = _BY_NAME.get(finding.lint, Lint)
    return Lint.format(cls.__new__(cls), finding)


def summary(findings: Sequence[Finding], lints: Optional[Sequence[Lint]] = None) -> str:
    """One line per lint that found something (``"no findings"`` if none)."""
    if lints is None:
        lints = default_lints()
    lines = [lint.summary(findings) for lint in lints if count_of(findings, lint.name)]
    return "\n".join(lines) if lines else "no findings"


def verdicts(events: Iterable[Any]) -> tuple:
    """``(verdicts, coverage)``: every import's :class:`ImportVerdict` and the
    coverage counts (docs/verdicts.md), from a trace's events."""
    lint = Misattributed()
    check_all(events, [lint])
    return lint.verdicts, lint.coverage()


def _json_value(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, bytes):
        return v.decode("latin-1")
    return str(v)


def finding_json(f: Finding) -> dict:
    """A finding as docs/verdicts.md's JSON object: lint, severity, n, time,
    message, call, import, stack_root, origins, evidence (null/[] where the
    lint has none), and the rest of its details."""
    d = f.details or {}
    out = {"lint": f.lint, "severity": f.severity, "n": f.n, "time": f.time,
           "call": d.get("call"), "import": d.get("import"),
           "stack_root": d.get("stack_root", d.get("root")),
           "origins": list(d.get("origins") or ([d["origin"]] if d.get("origin") is not None else [])),
           "evidence": list(d.get("evidence") or [])}
    for k, v in d.items():
        if k not in out:
            out[k] = v
    out["message"] = f.message
    return _json_value(out)

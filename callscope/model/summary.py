"""Counts over a trace, for ``callscope run``'s closing summary and
``callscope summary``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

from .findings import (Finding, Lint, Misattributed, _dur, check_all, default_lints, format_coverage,
                       summary as findings_summary)


@dataclass
class TraceSummary:
    events: int = 0
    instances: int = 0
    tasks: int = 0
    root_tasks: int = 0
    imports: int = 0
    traps: int = 0
    deadlocks: int = 0
    start_time: Optional[int] = None
    end_time: Optional[int] = None
    kinds: Counter = field(default_factory=Counter)  # events per kind
    findings: list = field(default_factory=list)  # of Finding
    findings_by_lint: Counter = field(default_factory=Counter)
    truncated: Optional[str] = None  # why, when the trace was truncated
    header: dict = field(default_factory=dict)
    coverage: Optional[dict] = None  # docs/verdicts.md (None: no misattributed lint ran)
    verdicts: list = field(default_factory=list)  # ImportVerdict per import (empty: lints made with keep_verdicts=False)

    @property
    def duration_ns(self) -> int:
        if self.start_time is None or self.end_time is None:
            return 0
        return self.end_time - self.start_time


FINDINGS_SHOWN = 20  # findings format_summary lists (the rest: "... and N more")


def summarize_events(events: Iterable[Any], lints: Optional[Sequence[Lint]] = None,
                     keep: Optional[int] = None) -> TraceSummary:
    """Counts and findings over ``events`` in one pass; only the first
    ``keep`` findings kept when given (their counts are of all)."""
    s = TraceSummary()
    kinds = s.kinds
    first = last = None

    def counted(evs):
        nonlocal first, last
        for ev in evs:
            if first is None:
                first = ev
            last = ev
            k = ev[1]
            kinds[k] += 1
            if k == "task.new" and ev[3][3] is None:
                s.root_tasks += 1
            yield ev

    if lints is None:
        lints = default_lints()
    s.findings = check_all(counted(events), lints, keep)
    s.events = sum(kinds.values())
    s.instances = kinds["instance.new"]
    s.tasks = kinds["task.new"]
    s.imports = kinds["import.call"]
    s.traps = kinds["trap"]
    s.deadlocks = kinds["deadlock"]
    if first is not None:
        s.start_time, s.end_time = first[2], last[2]
    s.findings_by_lint = Counter(s.findings.counts)
    for lint in lints:
        if isinstance(lint, Misattributed):
            s.coverage = lint.coverage()
            s.verdicts = lint.verdicts
    s._lints = list(lints)
    return s


def summarize_trace(reader: Any, lints: Optional[Sequence[Lint]] = None, keep: Optional[int] = None) -> TraceSummary:
    """:func:`summarize_events` over a :class:`~callscope.trace.TraceReader`,
    plus its header and truncation."""
    s = summarize_events(reader.events(), lints, keep)
    s.truncated = reader.truncation if reader.truncated else None
    s.header = reader.header
    return s


def format_summary(s: TraceSummary, findings_limit: int = FINDINGS_SHOWN) -> str:
    """Human-readable multi-line summary."""
    lines = []
    g = (s.header or {}).get("guest") or {}
    if g:
        lines.append(f"guest: {g.get('name')} ({g.get('size')} bytes, sha256 {str(g.get('sha256'))[:12]})")
    if s.truncated:
        lines.append(f"TRUNCATED: {s.truncated}")
    lines.append(f"events: {s.events} over {_dur(s.duration_ns)}")
    lines.append(
        f"instances: {s.instances}  tasks: {s.tasks} ({s.root_tasks} root)  imports: {s.imports}"
        f"  traps: {s.traps}  deadlocks: {s.deadlocks}"
    )
    if s.coverage is not None:
        lines.append(format_coverage(s.coverage))
    nf = getattr(s.findings, "total", len(s.findings))
    lines.append(f"findings: {nf}")
    if nf:
        lints = getattr(s, "_lints", None) or default_lints()
        for line in findings_summary(s.findings, lints).splitlines():
            lines.append(f"  {line}")
        from .findings import format_finding

        for f in s.findings[:findings_limit]:
            lines.append(f"  {format_finding(f)}")
        if nf > findings_limit:
            lines.append(f"  ... and {nf - findings_limit} more")
    return "\n".join(lines)

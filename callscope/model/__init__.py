"""Pure functions over trace events: state at event N, findings, counts."""

from .findings import (
    Finding,
    ImportAfterRootReturned,
    ImportWithoutRoot,
    Lint,
    LongBackpressure,
    Misattributed,
    check_all,
    default_lints,
    CdnLoopMisrouted,
    format_finding,
    summary as findings_summary,
)
from .state import State, Timeline
from .summary import TraceSummary, format_summary, summarize_events, summarize_trace

__all__ = [
    "Finding",
    "ImportAfterRootReturned",
    "ImportWithoutRoot",
    "Lint",
    "LongBackpressure",
    "Misattributed",
    "State",
    "Timeline",
    "TraceSummary",
    "check_all",
    "default_lints",
    "CdnLoopMisrouted",
    "format_finding",
    "format_summary",
    "summarize_events",
    "summarize_trace",
    "findings_summary",
]

"""Messages the replay widgets and the indexing worker post (dataclasses, as
toolong does)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class Seek(Message):
    """Move the cursor to event ``n``."""

    n: int


@dataclass
class IndexProgress(Message):
    """The indexing worker got ``done`` of ``total`` steps along."""

    done: int
    total: int


@dataclass
class IndexDone(Message):
    """Indexing finished: findings and snapshots are ready."""

    findings: int


@dataclass
class IndexFailed(Message):
    message: str

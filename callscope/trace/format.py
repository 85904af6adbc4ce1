"""Constants of the callscope trace format (docs/trace-format.md is the contract).

The event kinds and their fields live here, in one table, in id order. The
writer puts the table in the header, so a reader of a newer minor version can
still name the fields of kinds it does not know.
"""

from __future__ import annotations

FORMAT_NAME = "callscope-trace"
FORMAT_VERSION = (1, 3)  # (major, minor); readers accept any minor of their major
# 1.1: thread.switch X -> loop, loop -> Y with nothing in between is one X -> Y
# 1.2: oracle.verdict, oracle.end (the behavioural oracle's records, at the end)
# 1.3: taint.retire (a root's tokens no longer searched for: the taint window)

MAGIC = b"CSTRACE\n"  # 8 bytes, file start
TRAILER_MAGIC = b"CSTREND\n"  # 8 bytes, file end (after the footer offset)

# frame = tag (1 byte) + u32 LE payload length + u32 LE crc32(payload) + payload
FRAME_HEADER = "<cII"
FRAME_HEADER_SIZE = 9
TAG_HEADER = b"H"
TAG_CHUNK = b"C"
TAG_FOOTER = b"F"
TRAILER = "<Q8s"  # footer frame offset, TRAILER_MAGIC
TRAILER_SIZE = 16

EXT_STR = 1  # msgpack ext type: a reference into the string table

# Kinds, in id order. Each: (name, field names). Ids are the index here; the
# writer interns each kind name as string id == kind id, so the string table
# starts with these names.
KINDS: list[tuple[str, tuple[str, ...]]] = [
    ("instance.new", ("inst", "name", "parent")),
    ("task.new", ("task", "inst", "func", "caller", "root", "label", "sync")),
    ("task.start", ("task",)),
    ("task.return", ("task", "value")),
    ("task.cancel", ("task",)),
    ("task.exit", ("task",)),
    ("task.resolved", ("task",)),
    ("subtask.state", ("task", "handle", "state")),
    ("subtask.cancel", ("task", "handle")),
    ("subtask.drop", ("task", "handle")),
    ("backpressure.inc", ("inst", "value")),
    ("backpressure.dec", ("inst", "value")),
    ("backpressure.set", ("inst", "value")),
    ("call.queued", ("task",)),
    ("call.admitted", ("task",)),
    ("waitable-set.new", ("inst", "set")),
    ("waitable-set.drop", ("inst", "set")),
    ("waitable.join", ("inst", "waitable", "set")),
    ("waitable-set.wait", ("thread", "set")),
    ("waitable-set.poll", ("thread", "set")),
    ("event.delivered", ("thread", "code", "handle", "payload")),
    ("thread.switch", ("from_thread", "to_thread")),
    ("thread.new", ("thread", "task")),
    ("import.call", ("call", "inst", "name", "stack", "args", "taint", "lineage", "lineage_handles")),
    ("import.return", ("call", "result")),
    ("handle.new", ("kind", "inst", "handle", "root")),
    ("taint.plant", ("task", "token")),
    ("trap", ("task", "message")),
    ("deadlock", ("message",)),
    ("note", ("text",)),
]

COPY_OPS = ("new", "read", "write", "cancel-read", "cancel-write", "drop-readable", "drop-writable")
for _k in ("stream", "future"):
    for _op in COPY_OPS:
        KINDS.append((f"{_k}.{_op}", ("handle", "size", "result", "inst")))
del _k, _op
# the behavioural oracle (docs/verdicts.md): after the run, one verdict per
# import call it looked at, then its summary
KINDS.append(("oracle.verdict", ("call", "verdict", "roots", "serial_calls")))
KINDS.append(("oracle.end", ("status", "serial_imports", "matched", "unmatched")))
# Appended after the kinds before it so that every earlier id stays as it was.
KINDS.append(("thread.set-task", ("thread", "from_task", "to_task")))
KINDS.append(("taint.retire", ("task",)))

KIND_NAMES: list[str] = [k for k, _ in KINDS]
KIND_ID: dict[str, int] = {k: i for i, k in enumerate(KIND_NAMES)}
FIELDS: dict[str, tuple[str, ...]] = dict(KINDS)
assert len(KINDS) < 128

# Subtask states, numbered as the spec numbers them (CanonicalABI.md).
SUBTASK_STATES = ("starting", "started", "returned", "cancelled-before-started", "cancelled-before-returned")
SUBTASK_STATE_ID = {s: i for i, s in enumerate(SUBTASK_STATES)}
# Event codes of waitable-set.wait/poll and callbacks, as the spec numbers them.
EVENT_CODES = ("none", "subtask", "stream-read", "stream-write", "future-read", "future-write", "task-cancelled")

"""The metaclass of the runtime's enums (``Task.State``, ``EventCode``...).

On Python 3.11 ``enum.EnumType`` defines ``__getattr__``, so every
``Task.State.RESOLVED`` in the runtime goes through CPython's generic
``__getattr__`` hook, which calls ``type.__getattribute__`` as a Python-level
method before it finds the member: ~850 machine instructions a read, 25 reads
a ping-pong subtask (a ninth of its cost; callgrind, docs/performance.md).
``MemberEnumType`` is ``EnumType`` whose attribute reads, when ``_fiber`` is
built, are CPython's plain ``type`` lookup first and ``EnumType.__getattr__``
only when that fails: what the hook does, in that order, without the method
call.
(Python 3.12 dropped ``EnumType.__getattr__``.) Without ``_fiber`` it is
``EnumType`` as it is.
"""

from __future__ import annotations

from enum import EnumType


class MemberEnumType(EnumType):
    pass


try:
    from . import _fiber as _cfiber
except ImportError:  # not built: EnumType's own lookup
    _cfiber = None

FAST = False
if (_cfiber is not None and "__getattribute__" not in vars(EnumType)
        and MemberEnumType.__getattribute__ is type.__getattribute__):
    _cfiber.member_getattro(MemberEnumType)
    FAST = True

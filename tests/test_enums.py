"""The runtime's enums read their members through ``enums.MemberEnumType``
(with ``_fiber`` built: type's own lookup, then ``EnumType.__getattr__``);
every attribute read gives what ``EnumType`` gives, found or not."""

from __future__ import annotations

from enum import Enum, EnumType, IntEnum

import pytest

from callscope.runtime import enums, thread, waitables, canon
from callscope.runtime.enums import MemberEnumType


class PlainOdd(Enum):
    # members named like Enum's own properties live in _member_map_ only, not
    # in the class dict: reached through EnumType.__getattr__
    name = 1
    value = 2
    other = 3


class FastOdd(Enum, metaclass=MemberEnumType):
    name = 1
    value = 2
    other = 3


class PlainInt(IntEnum):
    A = 0
    B = 1


class FastInt(IntEnum, metaclass=MemberEnumType):
    A = 0
    B = 1


def _reads(cls, names):
    out = []
    for n in names:
        try:
            v = getattr(cls, n)
        except AttributeError as e:
            out.append((n, "AttributeError", str(e)))
        else:
            out.append((n, "ok", (v.name, v.value) if isinstance(v, cls) else type(v).__name__))
    return out


NAMES = ["name", "value", "other", "A", "B", "missing", "__missing__", "_missing_", "__members__", "_member_map_",
         "__len__", "mro"]


@pytest.mark.parametrize("plain,fast", [(PlainOdd, FastOdd), (PlainInt, FastInt)])
def test_member_enum_reads_what_enum_reads(plain, fast):
    assert _reads(fast, NAMES) == _reads(plain, NAMES)
    assert [(m.name, m.value) for m in fast] == [(m.name, m.value) for m in plain]
    assert repr(fast.__members__[list(plain.__members__)[0]]).split(".")[1:] == \
        repr(plain.__members__[list(plain.__members__)[0]]).split(".")[1:]


def test_the_runtimes_enums_use_it():
    for e in (thread.Cancelled, thread.Task.State, waitables.EventCode, waitables.Subtask.State,
              waitables.CopyResult, waitables.CopyState, canon.CallbackCode):
        assert type(e) is MemberEnumType and isinstance(e, EnumType)
    assert repr(thread.Task.State.RESOLVED) == "<State.RESOLVED: 5>"
    assert int(waitables.EventCode.SUBTASK) == 1 and str(canon.CallbackCode.WAIT) == "2"
    if enums._cfiber is not None:
        assert enums.FAST

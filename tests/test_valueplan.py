"""Recording's per-type summarizers (runtime/valueplan.py) give exactly what
the generic summarizer gives, for values of the type and for values of other
shapes (host results are plain Python values)."""

import random

import msgpack
import pytest

from callscope.component import types as T
from callscope.component.abi import String
from callscope.runtime.observe import _Plan, _holds_shared, _plain, _walk
from callscope.runtime.waitables import SharedFutureImpl, SharedStreamImpl
from callscope.trace.sink import CSink, CSummarizer
from callscope.trace.summarize import summarize

SCALARS = [T.BoolType(), T.U8Type(), T.S8Type(), T.U32Type(), T.S64Type(), T.U64Type(), T.F64Type(),
           T.CharType(), T.StringType()]
RT = T.ResourceType(name="r")


def rand_type(rng, depth=0):
    k = rng.randrange(14 if depth < 4 else 4)
    if k < 3:
        return rng.choice(SCALARS)
    if k == 3:
        return rng.choice([T.OwnType(RT), T.BorrowType(RT), T.StreamType(T.U8Type()), T.FutureType(None)])
    if k == 4:
        return T.ListType(rand_type(rng, depth + 1))
    if k == 5:
        return T.ListType(rand_type(rng, depth + 1), rng.randrange(1, 5))
    if k == 6:
        return T.RecordType(tuple(T.FieldType(f"f{i}" * rng.randrange(1, 4), rand_type(rng, depth + 1))
                                  for i in range(rng.randrange(1, 11))))
    if k == 7:
        return T.TupleType(tuple(rand_type(rng, depth + 1) for _ in range(rng.randrange(1, 4))))
    if k == 8:
        return T.VariantType(tuple(T.CaseType(f"c{i}", rand_type(rng, depth + 1) if rng.random() < .7 else None)
                                   for i in range(rng.randrange(1, 4))))
    if k == 9:
        return T.OptionType(rand_type(rng, depth + 1))
    if k == 10:
        return T.ResultType(rand_type(rng, depth + 1) if rng.random() < .7 else None,
                            rand_type(rng, depth + 1) if rng.random() < .7 else None)
    if k == 11:
        return T.EnumType(tuple(f"e{i}" for i in range(rng.randrange(1, 4))))
    if k == 12:
        return T.FlagsType(tuple(f"g{i}" for i in range(rng.randrange(1, 10))))
    return T.ListType(T.U8Type())


def FakeStream(i, cls=SharedStreamImpl):
    v = object.__new__(cls)  # only .id and .root are looked at
    v.id = i
    v.root = None
    return v


def FakeFuture(i):
    return FakeStream(i, SharedFutureImpl)


def weird(rng):
    return rng.choice([None, 1 << 70, -5, 3.5, True, "x", b"bytes", (1, 2), {"?": 1}, object.__new__(object)])


def rand_value(rng, t, depth=0):
    if rng.random() < 0.03:
        return weird(rng)
    c = t.__class__
    if c is T.BoolType:
        return rng.random() < .5
    if c in (T.U8Type, T.S8Type, T.U32Type, T.S64Type, T.U64Type, T.OwnType, T.BorrowType):
        return rng.choice([0, 1, 255, 2**32 - 1, -(2**63), 2**64 - 1])
    if c is T.F64Type:
        return rng.choice([0.5, -1e300, float("inf")])
    if c is T.CharType:
        return rng.choice(["a", "é"])
    if c is T.StringType:
        s = "s" * rng.choice([0, 3, 47, 48, 49, 100])
        return String(s) if rng.random() < .5 else s
    if c is T.StreamType:
        return FakeStream(rng.randrange(10**rng.randrange(1, 30)))
    if c is T.FutureType:
        return FakeFuture(rng.randrange(100))
    if c is T.ListType:
        n = t.l if t.l is not None else rng.choice([0, 1, 3, 8, 9, 20])
        if t.t.__class__ is T.U8Type and rng.random() < .3:
            return bytes(rng.randrange(256) for _ in range(n))
        return [rand_value(rng, t.t, depth + 1) for _ in range(n)]
    if c is T.RecordType:
        return {f.label: rand_value(rng, f.t, depth + 1) for f in t.fields}
    if c is T.TupleType:
        vs = [rand_value(rng, x, depth + 1) for x in t.ts]
        return tuple(vs) if rng.random() < .3 else {str(i): v for i, v in enumerate(vs)}
    if c is T.FlagsType:
        return {label: rng.random() < .5 for label in t.labels}
    if c is T.EnumType:
        return {rng.choice(t.labels): None}
    cases = (t.cases if c is T.VariantType else
             (T.CaseType("none", None), T.CaseType("some", t.t)) if c is T.OptionType else
             (T.CaseType("ok", t.ok), T.CaseType("error", t.error)))
    case = rng.choice(cases)
    return {case.label: rand_value(rng, case.t, depth + 1) if case.t is not None else None}


def old_summary(vs, lim):
    """What the observer recorded before plans (import args / results)."""
    if vs and _holds_shared(vs):
        vs = _plain(vs)
    if vs is None or vs.__class__ is bool or (vs.__class__ is int and -(1 << 63) <= vs < (1 << 64)):
        return vs
    return summarize(vs, *lim)


@pytest.mark.parametrize("in_c", [True, False], ids=["c", "python"])
@pytest.mark.parametrize("seed", range(40))
def test_plans_summarize_like_summarize(seed, in_c, monkeypatch):
    # bounded summaries in C (trace/_sink.c's Summarizer) when built, and in
    # Python (valueplan's closures)
    from callscope.runtime import valueplan
    if in_c and valueplan.Summarizer is None:
        pytest.skip("the C extension callscope.trace._sink is not built")
    if not in_c:
        monkeypatch.setattr(valueplan, "Summarizer", None)
    rng = random.Random(seed)
    if in_c:
        sink = CSink(lambda: 0, None, None, msgpack.ExtType)  # (summaries need no fallback)
    for _ in range(60):
        lim = rng.choice([(128, 8, 48, 3), (32, 3, 5, 2), (1000, 20, 100, 5), (128, 8, 48, 1), (16, 2, 3, 3)])
        params = tuple((f"p{i}", rand_type(rng)) for i in range(rng.randrange(0, 5)))
        result = (rand_type(rng),) if rng.random() < .7 else ()
        ft = T.FuncType(params, result)
        plan = _Plan(ft, lim)
        for _ in range(5):
            args = [rand_value(rng, t) for _, t in params]
            res = [rand_value(rng, t) for t in result]
            if rng.random() < .05:
                res = weird(rng)
            assert plan.args(args) == old_summary(args, lim), (ft, args, lim)
            assert plan.results(res) == old_summary(res, lim), (ft, res, lim)
            if in_c:
                # the summary packed as the recorder packs it, without the
                # objects: the bytes of the summary packed
                for summ, vs in ((plan.args, args), (plan.results, res)):
                    if isinstance(summ, CSummarizer):
                        assert summ.packed(sink, vs) == msgpack.packb(summ(vs), use_bin_type=True), (ft, vs, lim)


def test_plans_walk_only_what_can_hold_text():
    ft = T.FuncType((("self", T.BorrowType(RT)), ("n", T.U32Type())), (T.OptionType(T.StringType()),))
    assert _Plan(ft, (128, 8, 48, 3)).walk == ()
    ft = T.FuncType((("self", T.BorrowType(RT)), ("name", T.StringType()),
                     ("kv", T.ListType(T.TupleType((T.StringType(), T.ListType(T.U8Type())))))), ())
    plan = _Plan(ft, (128, 8, 48, 3))
    assert plan.walk == ((1, True), (2, False))
    strings, shared = [], []
    _walk([{"0": "a", "1": list(b"req-1")}], strings, shared, 1)
    assert strings == ["a", "req-1"]

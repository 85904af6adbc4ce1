"""model.state.Layered (the append-mostly dicts State's snapshots share)
against a plain dict, over random sets, pops and copies; and a timeline's
snapshots sharing their history instead of copying it."""

from hypothesis import given, settings, strategies as st

from callscope.model.state import Layered, State, Timeline

ops = st.lists(st.tuples(st.sampled_from(["set", "pop", "copy", "copy_other"]), st.integers(0, 12), st.integers()),
               max_size=200)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_layered_is_a_dict(program):
    live, model = Layered(), {}
    copies = []  # (Layered, dict as it was)
    for op, k, v in program:
        if op == "set":
            live[k] = v
            model[k] = v
        elif op == "pop":
            assert live.pop(k, "none") == model.pop(k, "none")
        elif op == "copy":
            copies.append((live.copy(), dict(model)))
        else:  # go on from a copy: the copies are independent
            c = live.copy()
            copies.append((live, dict(model)))
            live = c
        assert dict(live.items()) == model
        assert all((k2 in live) == (k2 in model) for k2 in range(13))
        assert all(live.get(k2) == model.get(k2) for k2 in range(13))
    for c, m in copies:
        assert dict(c.items()) == m and len(c) == len(m)


def test_snapshots_share_the_taint_history():
    evs = []
    n = 0
    for r in range(5000):
        evs.append((n, "taint.plant", n, (r, f"tok{r}")))
        n += 1
    tl = Timeline(evs, every=100)
    s = tl.state_at(len(evs))
    assert len(s.taint) == 5000 and s.taint.get("tok4999") == 4999
    # the snapshots hold the history about once (plain copies: 50 snapshots,
    # 127,500 entries in all), merged chains a few times more
    seen, total = set(), 0
    for x in tl._snaps:
        node = x.taint._parent
        while node is not None and id(node[0]) not in seen:
            seen.add(id(node[0]))
            total += len(node[0])
            node = node[1]
    assert len(tl._snaps) > 40 and total <= 5 * 5000, total
    early = tl.state_at(250)
    assert len(early.taint) == 250 and "tok300" not in early.taint

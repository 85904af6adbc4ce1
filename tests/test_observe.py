"""The recording observer's attribution evidence: taint tokens found in an
import's strings, and the lineage of the handles it is given."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.component import types as T
from callscope.runtime.observe import TaintIndex, _handles

try:
    from callscope.trace import _sink as _c
except ImportError:  # (built by pip install with a C compiler; optional)
    _c = None


def test_taint_index_finds_tokens_inside_longer_strings():
    t = TaintIndex()
    for i in range(500):
        t.add(f"https://upstream.test/req-{i}", i)
    t.add("abcd", 999)
    assert t.find(["GET https://upstream.test/req-42 HTTP/1.1"]) == ["https://upstream.test/req-42"]
    assert t.find(["https://upstream.test/req-7"]) == ["https://upstream.test/req-7"]
    assert t.find(["nothing here"]) == []
    assert sorted(t.find(["x abcd y", "https://upstream.test/req-3?q"])) == [
        "abcd", "https://upstream.test/req-3"]


def found_by_brute_force(ti, strings):
    """TaintIndex.find's definition, token by token."""
    found = []
    for s in strings:
        if s in ti.roots:
            hits = [s]
        else:
            s = s[:TaintIndex.SCAN_LIMIT]
            hits = [t for _, _, t in sorted((s.find(t), len(t), t) for t in ti.roots
                                            if len(t) >= TaintIndex.PREFIX and t in s)]
        found += [t for t in hits if t not in found]
    return [t for t in found if not any(t != u and t in u for u in found)]


TOKENS = st.lists(st.text(alphabet="rq-1/é", min_size=1, max_size=7), max_size=12)
STRINGS = st.lists(st.text(alphabet="rq-1/éx", max_size=16), max_size=4)


def _planted(tokens, strings):
    """An index of ``tokens``, and strings to search: ``strings`` and a
    token as it is. Few groups for a string's length: each prefix is looked
    for; more groups than characters: the prefix at each place is looked up."""
    ti = TaintIndex()
    for i, t in enumerate(tokens):
        ti.add(t, i)
    return ti, strings + tokens[:1]


@settings(max_examples=300, deadline=None)
@given(tokens=TOKENS, strings=STRINGS)
def test_find_either_way_is_the_definition(tokens, strings):
    ti, strings = _planted(tokens, strings)
    assert ti.find(strings) == found_by_brute_force(ti, strings)


@pytest.mark.skipif(_c is None, reason="callscope.trace._sink (the C sink) is not built: "
                                       "`pip install -e .` with a C compiler builds it")
@settings(max_examples=300, deadline=None)
@given(tokens=TOKENS, strings=STRINGS)
def test_c_find_is_the_definition(tokens, strings):
    ti, strings = _planted(tokens, strings)
    assert _c.find_tokens(strings, ti.roots, ti.groups, TaintIndex.SCAN_LIMIT, TaintIndex.PREFIX) == \
        found_by_brute_force(ti, strings)


WIDE_TOKENS = st.lists(st.text(alphabet="rq-1/é€😀", min_size=1, max_size=7), max_size=12)
WIDE_STRINGS = st.lists(st.text(alphabet="rq-1/éx€😀", max_size=16).map(lambda s: s * 2), max_size=4)


@pytest.mark.skipif(_c is None, reason="callscope.trace._sink (the C sink) is not built")
@settings(max_examples=300, deadline=None)
@given(tokens=WIDE_TOKENS, strings=WIDE_STRINGS, limit=st.sampled_from([3, 7, 20, TaintIndex.SCAN_LIMIT]))
def test_c_find_of_text_of_any_width_and_limit_is_the_python_one(tokens, strings, limit):
    """Text and tokens of 1, 2 and 4 bytes a character (the C search's own
    loop for 1-byte text and prefixes, PyUnicode_Find for the others), cut at
    the scan limit or not: what TaintIndex.find gives."""
    ti, strings = _planted(tokens, strings)
    saved = TaintIndex.SCAN_LIMIT
    TaintIndex.SCAN_LIMIT = limit
    try:
        want = ti.find(strings)
    finally:
        TaintIndex.SCAN_LIMIT = saved
    assert _c.find_tokens(strings, ti.roots, ti.groups, limit, TaintIndex.PREFIX) == want


def test_many_planted_tokens_do_not_slow_the_search_down():
    # a UUID per request: as many prefixes as requests. The search looks up
    # the string's own places instead of every prefix (counted here by the
    # groups it asks for, not timed)
    import uuid

    class CountingGroups(dict):
        asked = 0

        def get(self, key, default=None):
            CountingGroups.asked += 1
            return super().get(key, default)

    ti = TaintIndex()
    ti.groups = CountingGroups()
    for i in range(5000):
        ti.add(str(uuid.UUID(int=i * 7919 + 12345678901234567890)), i)
    tok = next(iter(ti.roots))
    s = f"https://a.test/x?id={tok}&q=1"
    CountingGroups.asked = 0
    assert ti.find([s]) == [tok]
    assert CountingGroups.asked <= len(s)
    assert found_by_brute_force(ti, [s]) == [tok]


def test_longest_token_wins():
    t = TaintIndex()
    t.add("https://a.test/req-1", 1)
    t.add("https://a.test/req-17", 17)
    assert t.find(["https://a.test/req-17"]) == ["https://a.test/req-17"]
    assert t.find(["https://a.test/req-1 and more"]) == ["https://a.test/req-1"]


def test_handles_are_found_through_compound_types():
    r1, r2 = T.ResourceType(name="r1"), T.ResourceType(name="r2")
    ty = T.RecordType((T.FieldType("a", T.OwnType(r1)),
                       T.FieldType("b", T.ListType(T.OptionType(T.BorrowType(r2)))),
                       T.FieldType("c", T.StringType())))
    out = []
    _handles({"a": 5, "b": [{"some": 7}, {"none": None}], "c": "x"}, ty, out)
    assert out == [(r1, 5), (r2, 7)]


@settings(max_examples=200, deadline=None)
@given(tokens=st.lists(st.text(alphabet="rq-1/é %:\"+", min_size=1, max_size=9), min_size=1, max_size=6),
       picks=st.lists(st.integers(0, 1000), max_size=4))
def test_forms_indexed_when_first_searched_find_what_forms_indexed_when_planted(tokens, picks):
    # the drivers' Planted with forms: TaintIndex.pending until a search
    # that is not a token as it is; the same finds as the eager index
    from callscope.model.tokens import encoded_forms, expand_tokens
    eager, lazy = TaintIndex(), TaintIndex()
    for i, t in enumerate(tokens):
        for form in expand_tokens([t]):
            eager.add(form, i)
        lazy.add(t, i)
        lazy.pending.append(((t,), i))
    forms = [f for t in tokens for f, _ in encoded_forms(t)]
    strings = [f"<{forms[p % len(forms)]}>" for p in picks if forms] + tokens[:1]
    assert lazy.find(list(strings)) == eager.find(list(strings))
    assert lazy.pending == [] and set(lazy.roots) == set(eager.roots)
    if _c is not None:
        assert _c.find_tokens(strings, lazy.roots, lazy.groups, TaintIndex.SCAN_LIMIT, TaintIndex.PREFIX) == \
            eager.find(list(strings))

"""The recording observer's attribution evidence: taint tokens found in an
import's strings, and the lineage of the handles it is given."""

from callscope.component import types as T
from callscope.runtime.observe import TaintIndex, _handles


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

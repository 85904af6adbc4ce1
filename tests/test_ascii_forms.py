"""The encoded forms of an ASCII token made in C (trace/_sink.c ascii_forms):
the same tuple as model/tokens.py's Python steps, token for token, and the
core's expand (set_forms(encoded_forms, True)) indexing what it indexes with
the Python forms."""

from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.model import tokens

try:
    from callscope.trace._sink import ascii_forms
except ImportError:  # (no C compiler at install)
    ascii_forms = None

needs_c = pytest.mark.skipif(ascii_forms is None, reason="the C extension is not built")

# what changes a form: the reserved characters, '/', ':', ' ', JSON's
# escapes and controls, '%' itself; lengths around base64's alignments
_SPECIAL = "/: %\"\\\n\r\t\b\f\x00\x01\x1f\x7f+=?&#@!*'()[]{}<>,;|^`$~._-"
ascii_text = st.text(alphabet=st.sampled_from([chr(i) for i in range(128)]), max_size=40)
tricky_text = st.text(alphabet=st.sampled_from(list(_SPECIAL) + list("aZ09")), max_size=24)


@needs_c
@settings(max_examples=600, deadline=None)
@given(tok=st.one_of(ascii_text, tricky_text))
def test_ascii_forms_are_the_python_forms(tok):
    assert ascii_forms(tok) == tokens._py_encoded_forms(tok)


@needs_c
@pytest.mark.parametrize("tok", ["", "a", "req-0001", "req-00001", "abcde", "abcdef", "https://up.test/p?q=a b",
                                 "a/b:c", "%2F", "%2F%3A%20", "a b", "\"\\/", "\x7f\x00", "x" * 300,
                                 "?" * 50, "~.-_"])
def test_ascii_forms_of_fixed_tokens(tok):
    got = ascii_forms(tok)
    assert got == tokens._py_encoded_forms(tok)
    assert all(f.__class__ is str and f.isascii() for f, _ in got)


@needs_c
def test_not_ascii_is_left_to_python():
    for tok in ("é%x", "req-é", "\u2026", "\U0001f600/a b"):
        assert ascii_forms(tok) is None
        assert tokens.encoded_forms(tok) == tokens._py_encoded_forms(tok)
    with pytest.raises(TypeError):
        ascii_forms(b"req-0001")


def test_encoded_forms_give_the_python_forms_either_way():
    for tok in ("req-0001", "https://up.test/req-1?q=a b", "é%x", "a\"b\\c"):
        assert tokens.encoded_forms(tok) == tokens._py_encoded_forms(tok)


@needs_c
@settings(max_examples=60, deadline=None)
@given(roots=st.lists(st.lists(st.one_of(st.sampled_from(["req-0001", "a/b c", "é%x", "https://up.test/p?q=1",
                                                          "req-1/x", ""]), tricky_text),
                               min_size=0, max_size=4), min_size=1, max_size=6))
def test_core_expand_with_c_forms_indexes_what_python_forms_index(roots):
    """Core.expand_forms with an ASCII token's forms from ascii_forms
    (set_forms(encoded_forms, True), what the observer sets) against the
    core calling the Python steps for every token: the same roots, groups,
    more and pending."""
    from callscope.runtime.observe import RecordingObserver
    from callscope.trace import Recorder
    from callscope.trace.sink import CSink
    got = []
    for in_c in (True, False):
        with tempfile.TemporaryDirectory() as d:
            rec = Recorder(os.path.join(d, "t.cstrace"), sink=CSink, clock=lambda: 0, argv=["test"])
            obs = RecordingObserver(rec, taint_window=0)
            assert obs._core is not None
            if not in_c:
                obs.set_forms(tokens._py_encoded_forms, False)
            for i, t in enumerate(roots):
                obs.plant(_Root(i + 1, tokens.plant_tokens(t)))
            obs.expand_forms()
            idx = obs._tokens
            got.append((dict(idx.roots), {p: {n: set(s) for n, s in g.items()} for p, g in idx.groups.items()},
                        dict(idx.more), list(idx.pending)))
            rec.close()
    assert got[0] == got[1]


class _Root:
    """What planting reads of a task."""
    __slots__ = ("id", "tokens")

    def __init__(self, tid, toks):
        self.id = tid
        self.tokens = toks

"""Text normalisation for near-duplicate exclusion: the rule as documented (checked against
a character-by-character reference), idempotence, keys over compact Texts, and groups."""

from __future__ import annotations

import sys
import unicodedata

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from negsample.io import normalize as N
from negsample.io.normalize import normalize_text, normalized_groups, normalized_keys
from negsample.io.texts import Texts, TextsBuilder


def reference(text: str) -> str:
    """The rule of negsample.io.normalize's docstring, written out char by char."""

    def invisible(c: str) -> bool:
        return unicodedata.category(c) in ("Cf", "Cc") and not c.isspace()

    def separator(c: str) -> bool:
        return c.isspace() or unicodedata.category(c).startswith("P")

    t = "".join(c for c in text if not invisible(c))
    t = unicodedata.normalize("NFKC", t)
    t = unicodedata.normalize("NFKC", t.casefold())
    out: list[str] = []
    for c in t:
        if separator(c):
            if out and out[-1] != " ":
                out.append(" ")
        else:
            out.append(c)
    return "".join(out).strip(" ")


# characters where the rule's steps matter: separators, invisible ones, compatibility
# forms, case folding that changes length, combining marks
TRICKY = (
    " \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u1680\u2000\u2028\u2029\u3000"  # whitespace
    "!\"#%&'()*,-./:;?@[\\]_{}\xa1\xa7\xab\xbb\u2010\u2014\u2019\u201c\u2026\u3001"  # P*
    "$+<=>^`|~\xa2\xa9\xb0\xb4"  # symbols (kept)
    "\x00\x01\x07\x1b\x7f\x9f\xad\u200b\u200d\u2060\ufeff"  # invisible
    "\ufb01\uff21\uff4d\u2460\xb2\u2126\u212b\u1e9e\xdf\u0130\u03a3\u03c2"  # NFKC, case
    "e\u0301\u0301\u0323Aa Zz09\u00e9\u4e1c\U0001f600"
)
texts = st.text(st.sampled_from(TRICKY), max_size=40) | st.text(max_size=40)


@given(texts)
def test_normalize_text_is_the_documented_rule(text: str) -> None:
    assert normalize_text(text) == reference(text)


@given(texts)
def test_normalize_text_is_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert not once.startswith(" ") and not once.endswith(" ") and "  " not in once


@given(st.text(st.characters(max_codepoint=127), max_size=60))
def test_ascii_fast_path_equals_the_general_path(text: str) -> None:
    assert N._ascii_bytes(text.encode()).decode() == reference(text)


def test_examples() -> None:
    assert normalize_text("  The CAT -- sat\u00a0on the\u200b mat!! ") == "the cat sat on the mat"
    assert (
        normalize_text("Stra\xdfe, \ufb01ne.") == normalize_text("STRASSE  fine") == "strasse fine"
    )
    assert normalize_text("co-operate") == normalize_text("co operate")
    assert normalize_text("\uff21\uff22\uff23") == "abc"  # full-width
    assert normalize_text("caf\u0065\u0301") == normalize_text("caf\xe9")  # NFKC composes
    assert normalize_text("soft\xadhyphen") == "softhyphen"
    assert normalize_text("a+b") != normalize_text("a b")  # symbols are kept
    assert normalize_text("5 \xb0C") == "5 \xb0c"
    assert normalize_text("...!?") == ""
    assert normalize_text("") == ""


def test_every_character_is_classified_as_the_rule_says() -> None:
    """The cached per-character kinds agree with the rule on every code point."""
    for c in range(sys.maxunicode + 1):
        if 0xD800 <= c < 0xE000:
            continue
        ch = chr(c)
        cat = unicodedata.category(ch)
        want = (
            N._SEP
            if ch.isspace() or cat[0] == "P"
            else (N._DROP if cat in ("Cf", "Cc") else N._KEEP)
        )
        assert N._kind(ch) == want, hex(c)


def test_normalize_text_refuses_non_strings() -> None:
    with pytest.raises(TypeError, match="takes a str"):
        normalize_text(b"bytes")  # type: ignore[arg-type]


def _chunked(strings: list[str], size: int) -> Texts:
    b = TextsBuilder()
    for s in range(0, len(strings), size):
        b.add_bytes([x.encode() for x in strings[s : s + size]])
    return b.finish()


@given(st.lists(texts, min_size=1, max_size=12), st.integers(1, 5))
def test_keys_are_the_hash_of_the_normalised_text(rows: list[str], size: int) -> None:
    keys = normalized_keys(_chunked(rows, size))
    assert keys.dtype == np.uint64 and keys.shape == (len(rows),)
    np.testing.assert_array_equal(keys, normalized_keys(rows))  # a list of str too
    for i in range(len(rows)):
        for j in range(len(rows)):
            if normalize_text(rows[i]) == normalize_text(rows[j]):
                assert keys[i] == keys[j]


def test_keys_refuse_non_strings() -> None:
    with pytest.raises(TypeError, match="text 1 is a int"):
        normalized_keys(["a", 3])  # type: ignore[list-item]


DOCS = [
    "The cat sat.",  # 0
    "the  CAT sat",  # 1: a near copy of 0
    "THE CAT SAT!!",  # 2: another
    "a dog",  # 3
    "A dog.",  # 4: near copy of 3
    "unique text",  # 5
    "The cat sat.",  # 6: an exact copy of 0
]


def test_groups_find_the_normalised_copies() -> None:
    members, gid = normalized_groups(Texts.from_strings(DOCS), [0])
    assert members.tolist() == [0, 1, 2, 6]
    assert len(set(gid.tolist())) == 1
    members, gid = normalized_groups(DOCS, [4, 5])
    assert members.tolist() == [3, 4]  # row 5 shares its text with no other row
    members, gid = normalized_groups(DOCS, [0, 3])
    assert members.tolist() == [0, 1, 2, 3, 4, 6]
    assert gid[0] == gid[1] == gid[2] == gid[5] != gid[3] == gid[4]
    assert normalized_groups(DOCS, [5])[0].size == 0
    assert normalized_groups(DOCS, [])[0].size == 0


def test_groups_check_the_texts_not_only_the_keys() -> None:
    """A key collision (forced here) never joins two different normalised texts."""
    keys = np.zeros(len(DOCS), np.uint64)  # every row collides
    members, _ = normalized_groups(DOCS, [3], keys=keys)
    assert members.tolist() == [3, 4]
    with pytest.raises(ValueError, match="one per text"):
        normalized_groups(DOCS, [3], keys=keys[:2])

"""Texts: the compact, read-only Sequence[str] of the corpus columns; lookups, duplicate
ids and duplicate documents found on the bytes, with and without pyarrow."""

from __future__ import annotations

import pickle
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from negsample.io import texts as T
from negsample.io.texts import Texts, TextsBuilder

WORDS = ["", "a", "cat", "café", "東京", "a cat", " ", "\x00x", "\u2028", "😀 smile"]


def _chunked(strings: list[str], size: int) -> Texts:
    """The strings in chunks of ``size`` rows, through the builder (small buffers)."""
    b = TextsBuilder()
    for s in range(0, len(strings), size):
        b.add_bytes([x.encode() for x in strings[s : s + size]])
    return b.finish()


@pytest.fixture(params=[False, True], ids=["arrow", "numpy-only"])
def arrow(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    if request.param:
        monkeypatch.setattr(T, "_have_arrow", lambda: False)
    return not request.param


@given(st.lists(st.sampled_from(WORDS), max_size=30), st.integers(1, 7))
def test_a_read_only_sequence_of_str(strings: list[str], size: int) -> None:
    t = _chunked(strings, size)
    assert isinstance(t, Sequence) and len(t) == len(strings)
    assert list(t) == strings and t.tolist() == strings
    assert t == strings and strings == t and t == Texts.from_strings(strings)
    assert [t[i] for i in range(-len(t), len(t))] == strings + strings
    assert t[1:5] == strings[1:5] and t[::-2] == strings[::-2]  # slices are list[str]
    assert isinstance(t[:2], list)
    assert [bytes(b) for b in t.iter_bytes()] == [s.encode() for s in strings]
    assert t.byte_lengths().tolist() == [len(s.encode()) for s in strings]
    rows = list(range(len(strings)))[::-1] * 2
    assert t.take(rows) == [strings[r] for r in rows]
    assert pickle.loads(pickle.dumps(t)) == strings
    for s in set(WORDS):
        assert (s in t) == (s in strings)
        if s in strings:
            assert t.index(s) == strings.index(s) and t.count(s) == strings.count(s)


def test_indexing_errors_and_types() -> None:
    t = Texts.from_strings(["a", "b"])
    with pytest.raises(IndexError):
        t[2]
    with pytest.raises(IndexError):
        t[-3]
    with pytest.raises(TypeError, match="integers or slices"):
        t["a"]  # type: ignore[call-overload]
    assert t[np.int64(1)] == "b"
    with pytest.raises(TypeError, match="item 1 is a int"):
        Texts.from_strings(["a", 3])  # type: ignore[list-item]
    with pytest.raises(UnicodeEncodeError):
        Texts.from_strings(["\ud800"])
    with pytest.raises(TypeError):
        hash(t)
    assert t != ["a"] and t != ["a", "c"] and t != "ab"
    assert "n=2" in repr(t)
    assert len(Texts([])) == 0 and Texts([]) == []


def test_title_and_text_views_share_the_documents_bytes() -> None:
    titles = ["", "T1", "T2", "", "T4 long"]
    bodies = ["x", "body 1", "", "y z", "b"]
    docs = [f"{t} {x}" if t and x else t or x for t, x in zip(titles, bodies, strict=True)]
    d = Texts.from_strings(docs)
    cuts = [np.array([len(t.encode()) for t in titles], np.int32)]
    assert d.titles(cuts) == titles and d.after_titles(cuts) == bodies
    assert d.titles(cuts).take([4, 1]) == ["T4 long", "T1"]
    assert pickle.loads(pickle.dumps(d.after_titles(cuts))) == bodies
    assert d.titles(cuts).nbytes < d.nbytes + 100


def test_builder_and_pickles_of_views() -> None:
    b = TextsBuilder()
    for _ in range(10):
        b.add_bytes([b"abc", b"de"])
    t = b.finish()
    assert len(t._chunks) == 10 and t.tolist() == ["abc", "de"] * 10
    assert t.nbytes == 50 + 10 * 3 * 8
    big = Texts.from_strings(["x" * 1000, "y"])
    part = Texts([(big._chunks[0][0], big._chunks[0][1][1:])])  # a chunk inside a buffer
    assert part == ["y"] and len(pickle.dumps(part)) < 500  # only the bytes used travel


@given(
    st.lists(st.sampled_from(["d1", "d2", "d3", "x", "é", ""]), max_size=12, unique=True),
    st.lists(st.sampled_from(["d1", "d2", "zz", "é", "", "x"]), max_size=12),
)
def test_lookup(table: list[str], keys: list[str]) -> None:
    want = [table.index(k) if k in table else -1 for k in keys]
    for arrow in (True, False):
        old = T._have_arrow
        T._have_arrow = (lambda: True) if arrow else (lambda: False)  # type: ignore[assignment]
        try:
            got = T.lookup(_chunked(table, 3), Texts.from_strings(keys))
        finally:
            T._have_arrow = old  # type: ignore[assignment]
        assert got.tolist() == want


def test_first_duplicate(arrow: bool) -> None:
    assert T.first_duplicate(Texts.from_strings(["a", "b", "c"])) is None
    assert T.first_duplicate(_chunked(["a", "b", "c", "b", "a"], 2)) == (1, 3)
    assert T.first_duplicate(Texts.from_strings([])) is None


def _brute_groups(docs: list[str], rows: list[int]) -> dict[int, int]:
    """row -> text, for rows sharing their text with another row and with one of ``rows``."""
    wanted = {docs[r] for r in rows}
    count: dict[str, int] = {}
    for d in docs:
        count[d] = count.get(d, 0) + 1
    return {i: i for i, d in enumerate(docs) if d in wanted and count[d] > 1}


@given(
    st.lists(
        st.sampled_from([*WORDS, "same prefix and length 1", "same prefix and length 2"]),
        min_size=1,
        max_size=40,
    ),
    st.data(),
)
def test_document_groups_match_exact_text_equality(docs: list[str], data: st.DataObject) -> None:
    rows = data.draw(st.lists(st.integers(0, len(docs) - 1), max_size=6))
    members, gid = T.document_groups(_chunked(docs, 5), np.asarray(rows, np.int64))
    want = _brute_groups(docs, rows)
    assert members.tolist() == sorted(want)
    for a, ga in zip(members.tolist(), gid.tolist(), strict=True):
        for b, gb in zip(members.tolist(), gid.tolist(), strict=True):
            assert (ga == gb) == (docs[a] == docs[b])


def test_fingerprints_depend_on_the_row_only() -> None:
    a = Texts.from_strings(["short", "x" * 30, "abc"])
    b = _chunked(["zzzzzzzzzz", "abc", "short", "x" * 30], 1)
    fa, fb = T.fingerprints(a), T.fingerprints(b)
    assert fa[0] == fb[2] and fa[1] == fb[3] and fa[2] == fb[1]
    assert len(set(T.fingerprints(Texts.from_strings(WORDS)).tolist())) == len(set(WORDS))

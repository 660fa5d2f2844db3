"""The jsonl reader: the fast path (pyarrow) and the line-by-line path give the same rows
or the same error as the reader of negsample 0.1 (kept below as the oracle), whatever the
bytes; and a numpy-only install (no pyarrow, no orjson) reads the same datasets."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import negsample as ns
from negsample.io import _jsonl, _reading, texts
from tests.beir_helpers import write_beir

# -- the oracle: negsample 0.1's reader, verbatim but for the return value ------------------


def _old_lines(path: Path):  # type: ignore[no-untyped-def]
    lineno = 0
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1:
                if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                    raise ns.DataError(
                        path, 1, "the file is UTF-16 (byte-order mark); save it as UTF-8"
                    )
                if raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ns.DataError(
                    path,
                    lineno,
                    f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}",
                ) from None
            if line.strip():
                yield lineno, line


def _old_field(rec: dict[str, Any], key: str, path: Path, lineno: int, required: bool) -> str:
    if key not in rec:
        if required:
            raise ns.DataError(path, lineno, f"missing field {key!r}")
        return ""
    v = rec[key]
    if v is None and not required:
        return ""
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise ns.DataError(path, lineno, f"field {key!r} must be a string, got {type(v).__name__}")
    return str(v)


class _Surrogate(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def _old_read(path: Path, title: bool) -> tuple[list[str], list[str], list[str]]:
    """ids, titles, texts as negsample 0.1 read them (or its DataError)."""
    fields = ("title", "text") if title else ("text",)
    required = () if title else ("text",)
    what = "document" if title else "query"
    ids: list[str] = []
    cols: dict[str, list[str]] = {f: [] for f in fields}
    seen: dict[str, int] = {}
    for lineno, line in _old_lines(path):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ns.DataError(
                path, lineno, f"malformed JSON ({exc.msg} at column {exc.colno})"
            ) from exc
        if not isinstance(rec, dict):
            raise ns.DataError(path, lineno, f"expected a JSON object, got {type(rec).__name__}")
        _id = _old_field(rec, "_id", path, lineno, required=True)
        if not _id.strip():
            raise ns.DataError(path, lineno, "empty _id")
        if _id in seen:
            raise ns.DataError(
                path, lineno, f"duplicate {what} id {_id!r} (first on line {seen[_id]})"
            )
        seen[_id] = lineno
        values = {f: _old_field(rec, f, path, lineno, required=f in required) for f in fields}
        if not any(v.strip() for v in values.values()):
            also = " and no title" if "title" in fields else ""
            raise ns.DataError(path, lineno, f"{what} {_id!r} has an empty text{also}")
        for t in (_id, *values.values()):
            try:
                t.encode("utf-8")
            except UnicodeEncodeError:  # 0.1 accepted it; now refused on its line
                raise _Surrogate(lineno) from None
        ids.append(_id)
        for f in fields:
            cols[f].append(values[f])
    if not ids:
        raise ns.DataError(path, None, f"no {what} records")
    return ids, cols.get("title", [""] * len(ids)), cols["text"]


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except ns.DataError as exc:
        return "error", str(exc)


def _new(path: Path, title: bool, fast: bool) -> tuple[str, Any]:
    def run() -> tuple[list[str], list[str], list[str]]:
        r = _jsonl.read_records(path, what="document" if title else "query", title=title, fast=fast)
        if title:
            assert r.cuts is not None
            return (
                r.ids.tolist(),
                r.texts.titles(r.cuts).tolist(),
                r.texts.after_titles(r.cuts).tolist(),
            )
        return r.ids.tolist(), [""] * len(r.ids), r.texts.tolist()

    return _outcome(run)


def _old(path: Path, title: bool) -> tuple[str, Any]:
    try:
        return _outcome(lambda: _old_read(path, title))
    except _Surrogate as exc:  # the new reader refuses it on its line (0.1 took it)
        return "surrogate", exc.line
    except RecursionError:  # negsample 0.1 crashed with a traceback
        return "recursion", None


def _agree(path: Path, title: bool) -> None:
    fast, slow, old = _new(path, title, True), _new(path, title, False), _old(path, title)
    assert fast == slow, (fast, slow)
    if old[0] == "surrogate":
        assert slow[0] == "error" and f":{old[1]}: " in slow[1], (slow, old)
        assert "lone surrogate" in slow[1], slow
    elif old[0] == "recursion":
        assert slow[0] == "error" and "nested too deeply" in slow[1], slow
    else:
        assert slow == old, (slow, old)


# -- random files -----------------------------------------------------------------------------

_TEXTS = st.sampled_from(
    ["a text", "", " ", "\u3000", "café", "東京", 'q"uote', "tab\t", "x\\ny", "\u2028", "}{"]
)
_VALUES = st.one_of(
    _TEXTS,
    st.none(),
    st.integers(-5, 10**20),
    st.floats(allow_nan=True),
    st.booleans(),
    st.just({"nested": [1, {"_id": "z"}]}),
)


@st.composite
def _record_line(draw: st.DrawFn) -> bytes:
    rec: dict[str, Any] = {}
    for key in draw(st.permutations(["_id", "title", "text", "metadata"])):
        if draw(st.integers(0, 5)) == 0:
            continue  # a missing field
        if key == "_id":
            rec[key] = draw(st.one_of(st.sampled_from(["d1", "d2", "d3", " ", ""]), _VALUES))
        else:
            rec[key] = draw(_VALUES)
    line = json.dumps(rec, ensure_ascii=draw(st.booleans()), allow_nan=True).encode()
    damage = draw(st.integers(0, 12))
    if damage == 0:
        line = line + b" " + line  # two objects on one line
    elif damage == 1:
        cut = draw(st.integers(0, len(line)))
        line = line[:cut] + b"\n" + line[cut:]  # an object split over two lines
    elif damage == 2:
        at = draw(st.integers(0, len(line)))
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xef\xbb\xbf", b"\x0c", b"\r"]))
        line = line[:at] + bad + line[at:]
    elif damage == 3:
        line = b"  " + line + b"\t "
    elif damage == 4:
        line = line.replace(b'"d', b'"\\ud800d', 1)  # a lone surrogate escape
    elif damage == 5:
        line = line.replace(b'"_id"', b'"_id": "d9", "_id"', 1)  # a repeated key
    return line


@st.composite
def _jsonl_file(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(_record_line(), max_size=8))
    seps = [draw(st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\n \n"])) for _ in lines]
    body = b"".join(line + sep for line, sep in zip(lines, seps, strict=True))
    if draw(st.booleans()) and body.endswith(b"\n"):
        body = body[:-1]
    head = draw(st.sampled_from([b"", b"\xef\xbb\xbf", b"\n"]))
    return head + body


@given(data=_jsonl_file(), title=st.booleans(), block=st.sampled_from([None, 48, 4096]))
def test_fast_and_line_by_line_readers_agree_with_the_old_reader(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, title: bool, block: int | None
) -> None:
    path = tmp_path_factory.mktemp("jsonl") / "corpus.jsonl"
    path.write_bytes(data)
    old_size = _reading.BLOCK_SIZE
    if block is not None:
        _reading.BLOCK_SIZE = block  # several blocks: every block boundary
    try:
        _agree(path, title)
    finally:
        _reading.BLOCK_SIZE = old_size


# -- cases, one by one ----------------------------------------------------------------------

CASES = {
    "two objects on a line": b'{"_id": "a", "text": "x"} {"_id": "b", "text": "y"}\n',
    "object over two lines": b'{"_id": "a",\n "text": "x"}\n',
    "byte-order mark on line 2": b'{"_id": "a", "text": "x"}\n\xef\xbb\xbf{"_id": "b", "text": "y"}\n',
    "int id": b'{"_id": 12, "text": "x"}\n{"_id": 13, "text": "y"}\n',
    "numeric text": b'{"_id": "a", "text": 15}\n',
    "float text": b'{"_id": "a", "text": 1.5}\n',
    "null title": b'{"_id": "a", "title": null, "text": "x"}\n',
    "null text": b'{"_id": "a", "title": "t", "text": null}\n',
    "repeated key": b'{"_id": "a", "_id": "b", "text": "x"}\n',
    "bad byte in an ignored field": b'{"_id": "a", "text": "x", "m": "\xff"}\n',
    "raw NUL": b'{"_id": "a", "text": "x\x00y"}\n',
    "escaped NUL": b'{"_id": "a", "text": "x\\u0000y"}\n',
    "lone surrogate": b'{"_id": "a", "text": "x\\ud800"}\n',
    "surrogate pair": b'{"_id": "a", "text": "x\\ud83d\\ude00"}\n',
    "CRLF": b'{"_id": "a", "text": "x"}\r\n{"_id": "b", "text": "y"}\r\n',
    "blank lines": b'\n{"_id": "a", "text": "x"}\n\n  \n\r\n\xe3\x80\x80\n{"_id": "b", "text": "y"}\n',
    "form feed line": b'{"_id": "a", "text": "x"}\n\x0c\n',
    "no final newline": b'{"_id": "a", "text": "x"}\n{"_id": "b", "text": "y"}',
    "NaN in a field": b'{"_id": "a", "text": "x", "s": NaN}\n',
    "big int in a field": b'{"_id": "a", "text": "x", "n": 123456789012345678901234567890}\n',
    "deep nesting": b'{"_id": "a", "text": "x", "m": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
    "empty object": b"{}\n",
    "array": b"[1, 2]\n",
    "whitespace id": b'{"_id": "\\u3000", "text": "x"}\n',
    "whitespace text": b'{"_id": "a", "title": "\\u2028", "text": " "}\n',
    "title only": b'{"_id": "a", "title": "t"}\n',
    "duplicate ids far apart": b"".join(
        b'{"_id": "d%d", "text": "x"}\n' % (i % 150) for i in range(151)
    ),
    "empty file": b"",
    "only blank lines": b"\n\n \n",
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("title", [True, False])
@pytest.mark.parametrize("block", [None, 64])
def test_cases(tmp_path: Path, case: str, title: bool, block: int | None) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(CASES[case])
    old_size = _reading.BLOCK_SIZE
    if block is not None:
        _reading.BLOCK_SIZE = block
    try:
        _agree(path, title)
        gz = tmp_path / "corpus.jsonl.gz"
        gz.write_bytes(gzip.compress(CASES[case]))
        fast, slow = _new(gz, title, True), _new(gz, title, False)
        assert fast == slow
        if fast[0] == "error":  # the same message, naming the .gz file
            assert fast[1].replace("corpus.jsonl.gz", "corpus.jsonl") == _new(path, title, False)[1]
    finally:
        _reading.BLOCK_SIZE = old_size


def test_known_messages(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    expect = {
        "lone surrogate": "corpus.jsonl:1: field 'text' holds a lone surrogate \\ud800",
        "raw NUL": "corpus.jsonl:1: malformed JSON (Invalid control character at at column 24)",
        "deep nesting": "corpus.jsonl:1: malformed JSON (nested too deeply)",
        "two objects on a line": "corpus.jsonl:1: malformed JSON (Extra data at column 27)",
        "duplicate ids far apart": "corpus.jsonl:151: duplicate document id 'd0' (first on line 1)",
    }
    for case, message in expect.items():
        path.write_bytes(CASES[case])
        for fast in (True, False):
            kind, got = _new(path, True, fast)
            assert kind == "error" and message in got, (case, got)


def test_a_line_longer_than_a_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_reading, "BLOCK_SIZE", 32)
    path = tmp_path / "corpus.jsonl"
    long = "word " * 200
    path.write_text(
        json.dumps({"_id": "a", "text": long}) + "\n" + json.dumps({"_id": "b", "text": "x"})
    )
    for fast in (True, False):
        assert _new(path, True, fast) == ("ok", (["a", "b"], ["", ""], [long, "x"]))


def test_corrupt_gzip_names_the_line(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "b", gz=True)
    p = root / "corpus.jsonl.gz"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ns.DataError, match=r"corpus.jsonl.gz:\d+: cannot read the file"):
        ns.load_beir(root, "train")
    p.write_bytes(data[:20] + b"\x00" * 40 + data[60:])  # damaged deflate data
    with pytest.raises(ns.DataError, match=r"corpus.jsonl.gz:\d+: cannot read the file"):
        ns.load_beir(root, "train")


# -- a numpy-only install -------------------------------------------------------------------


def _numpy_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_jsonl, "_fast_reader", lambda title: None)
    monkeypatch.setattr(_jsonl, "_loader", lambda: json.loads)
    monkeypatch.setattr(texts, "_have_arrow", lambda: False)


def test_numpy_only_reads_the_same_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_beir(tmp_path / "b", n_docs=500)
    emb = ns.load_embeddings(root / "embeddings", ns.load_beir(root, "test"))
    with open(root / "corpus.jsonl", "a") as f:  # a duplicate text, for duplicate_texts()
        f.write(json.dumps({"_id": "copy", "title": "", "text": "doc 6 text"}) + "\n")
    with open(root / "qrels" / "train.tsv", "a") as f:
        f.write("q0\td6\t1\n")
    want = ns.load_beir(root, "train")
    assert any(d.size for d in want.duplicate_texts())
    _numpy_only(monkeypatch)
    got = ns.load_beir(root, "train")
    for name in ("corpus_ids", "corpus_titles", "corpus_texts", "document_texts", "query_ids"):
        assert getattr(got, name) == getattr(want, name)
    assert got.stats == want.stats
    for a, b in zip(got.positives, want.positives, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(got.duplicate_texts(), want.duplicate_texts(), strict=True):
        np.testing.assert_array_equal(a, b)
    (root / "corpus.jsonl").write_bytes(
        (root / "corpus.jsonl").read_bytes().replace(b'"copy"', b'"d3"')
    )
    with pytest.raises(ns.DataError, match=r"corpus.jsonl:501: duplicate document id 'd3'"):
        ns.load_beir(root, "train")
    (root / "corpus.jsonl").write_bytes(
        (root / "corpus.jsonl")
        .read_bytes()
        .replace(b'{"_id": "d3", "title": "", "text": "doc 6 text"}\n', b"")
    )
    emb2 = ns.load_embeddings(root / "embeddings", ns.load_beir(root, "test"))
    np.testing.assert_array_equal(emb.corpus, emb2.corpus)
    np.testing.assert_array_equal(emb.queries, emb2.queries)


def test_core_import_needs_numpy_only() -> None:
    """The reader modules import without pyarrow, orjson or polars."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('pyarrow', 'orjson', 'polars', 'msgspec'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import negsample.io.data, negsample.io.embeddings, negsample.io.runs\n"
        "from negsample.io import _jsonl\n"
        "assert _jsonl._fast_reader(True) is None\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr

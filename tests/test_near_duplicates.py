"""Near-duplicate exclusion (issue 19, item 5): the embedding rule ``Filters(near_duplicate=t)``
(cosine with any labelled positive >= t) and the normalised-text rule
(``BeirDataset.near_duplicate_texts``, ``mine_dataset(near_duplicate_texts=True)``), each
counted; both opt-in (``--near-duplicate THRESH`` turns on both)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import negsample as ns
from negsample import filters as F
from negsample._ragged import as_ragged
from negsample.cli import main
from negsample.io.encoding import DatasetEmbeddings
from negsample.io.normalize import normalize_text
from negsample.pipeline.settings import run_settings
from tests.beir_helpers import write_beir


def cosines(corpus: np.ndarray, a: Any, b: Any) -> np.ndarray:
    """cos(corpus[a], corpus[b]) in float64, the oracle."""
    x = corpus[np.asarray(a)].astype(np.float64)
    y = corpus[np.asarray(b)].astype(np.float64)
    nx = np.linalg.norm(x, axis=-1)[..., :, None]
    ny = np.linalg.norm(y, axis=-1)[..., None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x @ y.T) / (nx * ny)


# -- the filter's values ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, 0.0, -0.5, 1.0000001, 2, float("nan"), float("inf"), True])
def test_bad_thresholds_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="near_duplicate"):
        ns.Filters(near_duplicate=bad)


def test_threshold_string_is_refused() -> None:
    with pytest.raises(ValueError, match="near_duplicate must be a real number"):
        ns.Filters(near_duplicate="0.9")  # type: ignore[arg-type]


def test_repr_round_trips_and_is_unchanged_without_it() -> None:
    f = ns.Filters(range_min=2, near_duplicate=0.95)
    assert eval("ns." + repr(f)) == f
    assert repr(f).endswith("anchor='min', near_duplicate=0.95)")
    # the repr (and a resumable run's settings hash) of filters without it: as before
    assert repr(ns.Filters(relative_margin=0.05)) == (
        "Filters(range_min=0, range_max=None, absolute_margin=None, relative_margin=0.05, "
        "max_score=None, min_score=None, anchor='min')"
    )
    assert not ns.Filters(near_duplicate=1.0).is_noop
    assert ns.Filters(near_duplicate=1.0).needs_vectors
    assert not ns.Filters().needs_vectors


# -- the rule, by hand -----------------------------------------------------------------------


def _hand_corpus() -> np.ndarray:
    """Unnormalised rows with known cosines to row 0 (the positive) and row 1 (another)."""
    c = np.zeros((8, 3), np.float32)
    c[0] = [1, 0, 0]  # positive 1
    c[1] = [0, 1, 0]  # positive 2 (of query 1 only)
    c[2] = [5, 0, 0]  # a copy of 0, five times longer: cos 1 (inner product 5)
    c[3] = [0.96, 0.28, 0]  # cos 0.96 with 0
    c[4] = [0.3, 0.3, 0.9055386]  # cos 0.3 with both
    c[5] = [0, 2, 0.1]  # cos 0.9988 with 1
    c[6] = [0, 0, 0]  # a zero vector: no direction, never a near duplicate
    c[7] = [-1, 0, 0]  # opposite
    return c


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_mask_by_hand(metric: str) -> None:
    corpus = _hand_corpus()
    if metric == "cosine":
        corpus = corpus[[0, 1, 2, 3, 4, 5, 7]]  # a cosine index refuses the zero vector
    index = ns.NumpyIndex(corpus, metric=metric)
    ids = np.arange(2, corpus.shape[0])
    cand = np.stack([ids, ids])
    positives = [[0], [0, 1]]
    batch = ns.SamplerBatch(
        query_index=np.arange(2),
        ids=cand,
        scores=np.zeros(cand.shape, np.float32),
        valid=np.ones(cand.shape, bool),
        positives=as_ragged(positives, 2, index.ntotal)[0],
        positive_scores=np.zeros(3, np.float32),
        seed=0,
        index=index,
    )
    want = cosines(corpus, [0, 1], ids)
    with np.errstate(invalid="ignore"):
        for t in (0.29, 0.31, 0.95, 0.97, 0.999, 1.0):  # none within 1e-4 of a cosine but 1
            keep = F.near_duplicate_mask(batch, t)
            assert keep[0].tolist() == (~(want[0] >= t)).tolist(), t
            assert keep[1].tolist() == (~((want >= t).any(axis=0))).tolist(), t
    keep = F.near_duplicate_mask(batch, 0.95)
    removed0 = set(cand[0][~keep[0]].tolist())
    assert removed0 == {2, 3}  # the long copy and cos 0.96; the inner product would differ
    assert set(cand[1][~keep[1]].tolist()) == {2, 3, 5}  # every positive is compared
    if metric == "ip":
        assert keep[:, 4].all()  # the zero vector is kept
    # only valid candidates are scored; the others are left as they are
    valid = batch.valid.copy()
    valid[:, 0] = False
    assert F.near_duplicate_mask(batch, 0.95, valid)[:, 0].all()


def test_mask_needs_an_index() -> None:
    ids = np.array([[3, 4, 5]])
    sc = np.array([[0.9, 0.8, 0.7]], np.float32)
    with pytest.raises(ValueError, match="a run file without embeddings"):
        ns.TopKSampler(k=3).sample(ids, sc, [[1]], n=2, filters=ns.Filters(near_duplicate=0.9))


def test_blocks_do_not_change_the_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    """One query with 3,000 positives: pairs scored a few at a time give the same mask."""
    rng = np.random.default_rng(1)
    corpus = rng.standard_normal((4000, 8)).astype(np.float32)
    corpus[3000:3100] = corpus[:100] * 3 + 1e-3  # near copies of positives
    pos = [list(range(3000)), [5, 7]]
    queries = corpus[[0, 5]] + 0.01
    index = ns.NumpyIndex(corpus)
    f = ns.Filters(near_duplicate=0.99)
    ref = ns.mine(queries, index, pos, ns.TopKSampler(k=300), n=20, seed=0, filters=f)
    monkeypatch.setattr(F, "_PAIR_SCORES", 1000)  # 3 pairs a block at width 300
    got = ns.mine(queries, index, pos, ns.TopKSampler(k=300), n=20, seed=0, filters=f)
    np.testing.assert_array_equal(got.ids, ref.ids)
    assert got.stats.removed == ref.stats.removed
    # the count is the oracle's over the 300 candidates of each query
    top = ns.mine(queries, index, pos, ns.TopKSampler(k=300, strategy="top"), n=300, seed=0)
    want = sum(
        int((cosines(corpus, p, row).max(axis=0) >= 0.99).sum())
        for p, row in zip(pos, top.ids, strict=True)
    )
    assert ref.stats.removed["near_duplicate"] == want >= 30
    assert not np.isin(ref.ids[0], np.arange(3000, 3100)).any()


# -- in mine(): counted, composable, the rank window unchanged -------------------------------


@pytest.fixture(scope="module")
def copies() -> tuple[np.ndarray, np.ndarray, list[list[int]], np.ndarray]:
    """600 x 16 with near copies (cosine ~0.999) of each query's first positive."""
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((600, 16)).astype(np.float32)
    pos = [sorted(rng.choice(500, 2, replace=False).tolist()) for _ in range(40)]
    twins = np.arange(500, 540)
    corpus[twins] = np.stack([corpus[p[0]] for p in pos]) * 0.8
    corpus[twins] += 0.03 * rng.standard_normal((40, 16)).astype(np.float32)
    queries = np.stack([corpus[p[0]] + 0.4 * rng.standard_normal(16) for p in pos])
    return corpus, queries.astype(np.float32), pos, twins


def test_removed_candidates_leave_their_rank_empty(copies: Any) -> None:
    corpus, queries, pos, _ = copies
    index = ns.NumpyIndex(corpus)
    sampler = ns.TopKSampler(k=10, strategy="top", on_shortfall="pad")
    plain = ns.mine(queries, index, pos, sampler, n=10, seed=0)
    f = ns.Filters(near_duplicate=0.95)
    got = ns.mine(queries, index, pos, sampler, n=10, seed=0, filters=f)
    cos = [cosines(corpus, pos[q], plain.ids[q]).max(axis=0) for q in range(len(pos))]
    for q in range(len(pos)):
        kept = plain.ids[q][cos[q] < 0.95]
        assert got.ids[q][: kept.size].tolist() == kept.tolist()  # ranks 0-9 only
        assert (got.ids[q][kept.size :] == -1).all()
    n_near = int(sum((c >= 0.95).sum() for c in cos))
    assert n_near >= 30  # the twins rank high
    assert got.stats.removed["near_duplicate"] == n_near
    assert got.stats.short_rows == sum(1 for c in cos if (c >= 0.95).any())


def test_counted_after_the_other_filters(copies: Any) -> None:
    corpus, queries, pos, _ = copies
    index = ns.NumpyIndex(corpus)
    sampler = ns.TopKSampler(k=50)
    both = ns.Filters(range_min=3, near_duplicate=0.95)
    got = ns.mine(queries, index, pos, sampler, n=5, seed=0, filters=both)
    window = ns.mine(queries, index, pos, sampler, n=5, seed=0, filters=ns.Filters(range_min=3))
    assert got.stats.removed["rank_window"] == window.stats.removed["rank_window"]
    for q, row in enumerate(got.ids):
        assert (cosines(corpus, pos[q], row).max(axis=0) < 0.95).all()


def test_random_sampler_refuses_it(copies: Any) -> None:
    corpus, queries, pos, _ = copies
    with pytest.raises(ValueError, match="score filters do not apply"):
        ns.mine(
            queries,
            ns.NumpyIndex(corpus),
            pos,
            ns.RandomSampler(),
            n=3,
            filters=ns.Filters(near_duplicate=0.9),
        )


SAMPLERS = [
    ns.TopKSampler(k=60),
    ns.SimANSSampler(k=60, temperature=0.05),
    ns.TriSampler(k=60),
    ns.TriSampler(k=60, variant="T1", positive_anchor="each"),
    ns.ReSa2Sampler(k1=120, k1_prime=60, k2=20),
]


@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
def test_same_output_whatever_the_chunk_or_slice(copies: Any, sampler: Any) -> None:
    corpus, queries, pos, twins = copies
    index = ns.NumpyIndex(corpus)
    f = ns.Filters(near_duplicate=0.95, relative_margin=0.0, anchor="max")
    ref = ns.mine(queries, index, pos, sampler, n=5, seed=7, filters=f)
    assert ref.stats.removed.get("near_duplicate", 0) > 0
    for chunk in (1, 7):
        got = ns.mine(queries, index, pos, sampler, n=5, seed=7, filters=f, chunk_size=chunk)
        np.testing.assert_array_equal(got.ids, ref.ids)
        np.testing.assert_array_equal(got.scores, ref.scores)
        assert got.stats.removed == ref.stats.removed
    parts = [
        ns.mine(queries[a:b], index, pos[a:b], sampler, n=5, seed=7, filters=f, query_offset=a)
        for a, b in ((0, 13), (13, 40))
    ]
    np.testing.assert_array_equal(np.concatenate([p.ids for p in parts]), ref.ids)
    for q, row in zip(ref.query_index, ref.ids, strict=True):
        row = row[row >= 0]
        assert (cosines(corpus, pos[q], row).max(axis=0) < 0.95).all()
        assert not np.isin(row, twins[q]).any()


# -- the property, for every searching sampler ------------------------------------------------


@st.composite
def near_problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, list[list[int]], int, float]:
    n_docs = draw(st.integers(30, 150))
    dim = draw(st.integers(2, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    corpus = rng.standard_normal((n_docs, dim)).astype(np.float32)
    n_q = draw(st.integers(1, 8))
    pos = [
        sorted(rng.choice(n_docs, draw(st.integers(1, 5)), replace=False).tolist())
        for _ in range(n_q)
    ]
    # near copies of positives, scaled: cosines near and at the threshold
    n_copy = draw(st.integers(0, n_docs // 3))
    src = np.array([p[0] for p in pos])[rng.integers(0, n_q, n_copy)]
    dst = rng.choice(n_docs, n_copy, replace=False)
    noise = draw(st.sampled_from([0.0, 1e-3, 0.05, 0.3]))
    corpus[dst] = corpus[src] * rng.uniform(0.5, 3, (n_copy, 1)).astype(np.float32)
    corpus[dst] += noise * rng.standard_normal((n_copy, dim)).astype(np.float32)
    queries = np.stack([corpus[p[0]] + 0.5 * rng.standard_normal(dim) for p in pos])
    n = draw(st.integers(1, 4))
    t = draw(st.sampled_from([0.5, 0.9, 0.95, 0.99, 1.0]))
    return corpus, queries.astype(np.float32), pos, n, t


@settings(max_examples=25)
@given(near_problems(), st.sampled_from(SAMPLERS[:1] + SAMPLERS[2:]), st.integers(0, 2**32))
def test_no_negative_is_a_near_duplicate_of_a_positive(
    problem: Any, sampler: Any, seed: int
) -> None:
    corpus, queries, pos, n, t = problem
    sampler = dataclasses.replace(sampler, on_shortfall="pad")
    index = ns.NumpyIndex(corpus)
    negs = ns.mine(
        queries, index, pos, sampler, n=n, seed=seed, filters=ns.Filters(near_duplicate=t)
    )
    for q, row in zip(negs.query_index, negs.ids, strict=True):
        row = row[row >= 0]
        if row.size:
            with np.errstate(invalid="ignore", divide="ignore"):
                cos = cosines(corpus, pos[q], row)
            # float32 inner products against a float64 oracle: a hair of slack
            assert not (cos >= t + 1e-5).any(), (q, row, cos)
    assert negs.stats.removed.get("near_duplicate", 0) >= 0


# -- the normalised-text rule on a dataset -----------------------------------------------------


def _dataset(texts: list[str], positives: list[list[int]]) -> ns.BeirDataset:
    return ns.BeirDataset(
        path=Path("."),
        split="train",
        corpus_ids=[f"d{i}" for i in range(len(texts))],
        corpus_titles=[""] * len(texts),
        corpus_texts=texts,
        query_ids=[f"q{i}" for i in range(len(positives))],
        query_texts=[f"query {i}" for i in range(len(positives))],
        positives=[np.asarray(p, np.int64) for p in positives],
        relevance=[np.ones(len(p), np.int64) for p in positives],
    )


def test_near_duplicate_texts_finds_the_copies() -> None:
    texts = [
        "The cat sat on the mat.",  # 0: positive of q0
        "the cat  sat on the MAT",  # 1: near copy of 0
        "The cat sat on the mat.",  # 2: exact copy of 0
        "The\u00a0cat\u200b sat, on the mat!",  # 3: near copy (nbsp, zero-width, commas)
        "The cat sat on a mat.",  # 4: another text
        "Dogs bark.",  # 5: positive of q1
        "DOGS -- bark",  # 6: near copy of 5
    ]
    ds = _dataset(texts, [[0], [5, 4], [4]])
    near = ds.near_duplicate_texts()
    exact = ds.duplicate_texts()
    assert [r.tolist() for r in near] == [[1, 2, 3], [6], []]
    assert [r.tolist() for r in exact] == [[2], [], []]
    for a, b in zip(near, exact, strict=True):
        assert set(b.tolist()) <= set(a.tolist())


def _embedded(texts: list[str], positives: list[list[int]], dim: int = 8) -> Any:
    rng = np.random.default_rng(3)
    corpus = rng.standard_normal((len(texts), dim)).astype(np.float32)
    queries = np.stack([corpus[p[0]] + 0.3 * rng.standard_normal(dim) for p in positives])
    return _dataset(texts, positives), DatasetEmbeddings(corpus, queries.astype(np.float32), "t")


@st.composite
def text_problems(draw: st.DrawFn) -> tuple[list[str], list[list[int]]]:
    base = ["alpha beta", "gamma", "delta epsilon zeta", "eta", "theta iota"]
    n_docs = draw(st.integers(8, 40))
    texts = []
    for _ in range(n_docs):
        t = draw(st.sampled_from(base))
        style = draw(st.sampled_from(["same", "upper", "spaces", "punct", "other"]))
        if style == "upper":
            t = t.upper()
        elif style == "spaces":
            t = "  " + t.replace(" ", " \t ") + "\n"
        elif style == "punct":
            t = t.replace(" ", ", ") + "!"
        elif style == "other":
            t = t + " " + str(draw(st.integers(0, 5)))
        texts.append(t)
    n_q = draw(st.integers(1, 5))
    pos = [
        sorted(draw(st.sets(st.integers(0, n_docs - 1), min_size=1, max_size=3)))
        for _ in range(n_q)
    ]
    return texts, pos


@settings(max_examples=25)
@given(text_problems(), st.integers(0, 2**32))
def test_no_negative_has_a_positives_normalised_text(problem: Any, seed: int) -> None:
    texts, pos = problem
    ds, emb = _embedded(texts, pos)
    if min(len(texts) - len(p) for p in pos) < 2:
        return
    res = ns.mine_dataset(
        ds,
        ns.TopKSampler(k=len(texts), on_shortfall="pad"),
        embeddings=emb,
        n=2,
        seed=seed,
        near_duplicate_texts=True,
    )
    for q, row in zip(res.negatives.query_index, res.negatives.ids, strict=True):
        mine = {normalize_text(texts[p]) for p in pos[q]}
        assert not {normalize_text(texts[d]) for d in row[row >= 0]} & mine


def test_mine_dataset_counts_text_and_embedding_rules_apart() -> None:
    texts = ["A b c", "a B c.", "x y", "x  y!", "p q", "r s", "t u", "v w", "m n", "k l"]
    ds, emb = _embedded(texts, [[0], [2], [4]])
    corpus = emb.corpus.copy()
    corpus[5] = corpus[4] * 2  # an embedding twin of q2's positive, under other text
    emb = emb._replace(corpus=corpus)
    sampler = ns.TopKSampler(k=9, strategy="top", on_shortfall="pad")  # every document
    logs: list[str] = []
    plain = ns.mine_dataset(ds, sampler, embeddings=emb, n=9, seed=0)
    got = ns.mine_dataset(
        ds,
        sampler,
        embeddings=emb,
        n=9,
        seed=0,
        near_duplicate_texts=True,
        filters=ns.Filters(near_duplicate=0.95),
        log=logs.append,
    )
    assert "excluded" not in plain.negatives.stats.removed
    assert got.negatives.stats.removed["excluded"] == 2  # 1 for q0, 3 for q1
    assert got.negatives.stats.removed["near_duplicate"] == 1  # 5 for q2
    assert 1 in plain.negatives.ids[0] and 1 not in got.negatives.ids[0]
    assert 5 in plain.negatives.ids[2] and 5 not in got.negatives.ids[2]
    assert any("near-duplicate texts: 2 (query, document) pairs" in m for m in logs), logs


def test_mine_dataset_refusals() -> None:
    ds, emb = _embedded(["a", "b", "c", "d", "e"], [[0]])
    with pytest.raises(ValueError, match="cannot go with exclude_duplicate_texts=False"):
        ns.mine_dataset(
            ds, embeddings=emb, n=2, exclude_duplicate_texts=False, near_duplicate_texts=True
        )
    with pytest.raises(TypeError, match="near_duplicate_texts must be True or False"):
        ns.mine_dataset(ds, embeddings=emb, n=2, near_duplicate_texts="yes")  # type: ignore[arg-type]
    cands = ns.Candidates(np.array([[1, 2, 3]]), np.array([[0.9, 0.8, 0.7]], np.float32))
    with pytest.raises(ValueError, match="a run file gives none"):
        ns.mine_dataset(ds, candidates=cands, n=2, filters=ns.Filters(near_duplicate=0.9))


def test_settings_hash_includes_both_rules() -> None:
    """A resumed run never mixes chunks mined with and without the rules."""
    ds, emb = _embedded(["a", "A.", "b", "c", "d"], [[0]])
    index = ns.NumpyIndex(emb.corpus)
    sampler = ns.TopKSampler(k=3)

    def h(filters: Any, exclude: Any) -> str:
        return run_settings(
            emb.queries, index, ds.positives, sampler, n=2, seed=0, filters=filters, exclude=exclude
        ).hash

    hashes = {
        h(None, None),
        h(ns.Filters(near_duplicate=0.95), None),
        h(ns.Filters(near_duplicate=0.9), None),
        h(None, ds.near_duplicate_texts()),
    }
    assert len(hashes) == 4


# -- the command line -------------------------------------------------------------------------


def _with_near_copies(root: Path) -> tuple[Path, dict[str, str]]:
    """A BEIR folder where, for 6 queries, a non-positive document is a recased, respaced
    copy of one of the query's positives (with a vector close to it)."""
    write_beir(root, shuffle_embedding_ids=False)
    ds = ns.load_beir(root, "train")
    corpus = [json.loads(line) for line in (root / "corpus.jsonl").read_text().splitlines()]
    vecs = np.load(root / "embeddings" / "corpus.npy")
    qvecs = np.load(root / "embeddings" / "queries.npy")  # train = every query, in order
    all_pos = {int(x) for p in ds.positives for x in p}
    free = [i for i in range(len(corpus)) if i not in all_pos]
    copies = {}
    for qi in range(6):
        pos = ds.positives[qi]
        src, dst = int(pos[np.argmax(vecs[pos] @ qvecs[qi])]), free[qi]  # the best positive
        corpus[dst]["title"] = corpus[src]["title"].upper()
        corpus[dst]["text"] = "  " + corpus[src]["text"].replace(" ", " -- ") + "."
        vecs[dst] = vecs[src] * 0.999 + 0.001
        copies[corpus[dst]["_id"]] = ds.query_ids[qi]
    (root / "corpus.jsonl").write_text("".join(json.dumps(c) + "\n" for c in corpus))
    np.save(root / "embeddings" / "corpus.npy", vecs)
    return root, copies


def _argv(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "mine",
        "--data",
        str(root),
        "--embeddings",
        str(root / "embeddings"),
        "--sampler",
        "TopKSampler(k=10, strategy='top')",
        "--n",
        "7",
        "--format",
        "tevatron",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def test_cli_near_duplicate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, copies = _with_near_copies(tmp_path / "beir")
    out, stats = tmp_path / "negs.jsonl", tmp_path / "stats.json"
    assert main(_argv(root, out, "--stats-json", str(stats))) == 0
    rows = {r["query_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert all(d in rows[q]["negative_document_ids"] for d, q in copies.items())
    capsys.readouterr()
    assert main(_argv(root, out, "--stats-json", str(stats), "--near-duplicate", "0.95")) == 0
    err = capsys.readouterr().err
    rows = {r["query_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert not any(d in rows[q]["negative_document_ids"] for d, q in copies.items())
    removed = json.loads(stats.read_text())["mining"]["removed"]
    assert removed["excluded"] == 6  # the normalised-text rule found every copy first
    assert "near-duplicate texts: 6 (query, document) pairs" in err
    assert "near_duplicate=0.95" in err  # the filters line


@pytest.mark.parametrize(
    ("extra", "msg"),
    [
        (["--near-duplicate", "0"], "must be a cosine in (0, 1]"),
        (["--near-duplicate", "1.5"], "must be a cosine in (0, 1]"),
        (["--near-duplicate", "x"], "expected a number"),
        (["--near-duplicate", "0.9", "--keep-duplicate-texts"], "drop --keep-duplicate-texts"),
    ],
)
def test_cli_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], msg: str
) -> None:
    root = write_beir(tmp_path / "beir")
    assert main(_argv(root, tmp_path / "o.jsonl", *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0], err
    assert not (tmp_path / "o.jsonl").exists()


def test_cli_refuses_it_with_a_run_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_beir(tmp_path / "beir")
    run = tmp_path / "run.trec"
    run.write_text("q0 Q0 d1 1 0.5 x\n")
    argv = ["mine", "--data", str(root), "--run", str(run), "--out", str(tmp_path / "o.jsonl")]
    assert main([*argv, "--quiet", "--near-duplicate", "0.9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--run gives none" in err[0], err


class _OffHost(ns.NumpyIndex):
    """A NumpyIndex that says it computes elsewhere (as a GPU index does)."""

    @property
    def searches_on_host(self) -> bool:
        return False


def test_the_score_path_of_an_index_off_the_host_agrees(
    copies: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GPU index is asked for s(d+, d-) through index.score; same removals, in blocks
    of (row, positive) pairs of any size."""
    corpus, queries, pos, _ = copies
    f = ns.Filters(near_duplicate=0.95, range_min=2)
    sampler = ns.ReSa2Sampler(k1=120, k1_prime=60, k2=20)
    host = ns.mine(queries, ns.NumpyIndex(corpus), pos, sampler, n=5, seed=1, filters=f)
    off = ns.mine(queries, _OffHost(corpus), pos, sampler, n=5, seed=1, filters=f)
    np.testing.assert_array_equal(off.ids, host.ids)
    assert off.stats.removed == host.stats.removed
    assert host.stats.removed["near_duplicate"] > 0
    monkeypatch.setattr(F, "_PAIR_SCORES", 300)  # 2 or 3 pairs a block
    small = ns.mine(queries, _OffHost(corpus), pos, sampler, n=5, seed=1, filters=f)
    np.testing.assert_array_equal(small.ids, host.ids)


@pytest.mark.parametrize("kind", ["faiss-flat", "torch-cpu"])
def test_other_indexes_remove_the_same(copies: Any, kind: str) -> None:
    """Every exact index serves the rule (faiss Flat, torch on the CPU): the same
    removals as NumpyIndex, and no negative is a near copy of a positive."""
    corpus, queries, pos, _ = copies
    if kind == "faiss-flat":
        pytest.importorskip("faiss")
        index: Any = ns.FaissIndex(corpus, "Flat")
    else:
        pytest.importorskip("torch")
        index = ns.TorchIndex(corpus, device="cpu")
    f = ns.Filters(near_duplicate=0.95)
    sampler = ns.TopKSampler(k=50, strategy="top")
    ref = ns.mine(queries, ns.NumpyIndex(corpus), pos, sampler, n=5, seed=0, filters=f)
    got = ns.mine(queries, index, pos, sampler, n=5, seed=0, filters=f)
    assert got.stats.removed == ref.stats.removed
    assert ref.stats.removed["near_duplicate"] > 0
    for q, row in enumerate(got.ids):
        assert (cosines(corpus, pos[q], row).max(axis=0) < 0.95).all()

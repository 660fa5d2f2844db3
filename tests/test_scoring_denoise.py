"""The denoising step with deterministic fake scorers and judges: nothing labelled FN is
written, the output is the first n passing draws in draw order, margins are sign-safe,
chunking changes nothing, and every check is counted."""

from __future__ import annotations

import doctest
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import negsample as ns
from negsample.scoring import (
    Denoised,
    JudgeItem,
    Label,
    Margins,
    ScoringStats,
    denoise,
    mine_denoised,
)
from tests.beir_helpers import write_beir

N_DOCS, N_Q, DIM = 600, 30, 16


def _num(text: str) -> int:
    return int(text.split("#")[1])


def _h(*xs: int) -> float:
    """A deterministic hash of ints in [0, 1)."""
    z = 0x9E3779B97F4A7C15
    for x in xs:
        z = ((z ^ (x + 0x632BE59BD9B4E019)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
        z ^= z >> 31
    return z / 2**64


class FakeScorer:
    """Teacher score of (q#i, d#j): a hash in [-3, 3), negative for about half the pairs;
    the positives of even queries (when given) score in [3, 4), so their rows keep most
    draws, while odd queries have positives of any sign."""

    name = "fake-scorer"

    def __init__(self, positives: Sequence[np.ndarray] | None = None) -> None:
        self.stats = ScoringStats()
        self.calls: list[int] = []
        self.boost = set()
        if positives is not None:
            self.boost = {(q, int(p)) for q, ps in enumerate(positives) if q % 2 == 0 for p in ps}

    def value(self, q: int, d: int) -> float:
        if (q, d) in self.boost:
            return float(np.float32(3.0 + _h(q, d, 5)))
        return float(np.float32(6.0 * _h(q, d, 7) - 3.0))

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        self.calls.append(len(pairs))
        self.stats.add(pairs=len(pairs), requests=1)
        return np.array([self.value(_num(q), _num(d)) for q, d in pairs], np.float32)


class FakeJudge:
    """FN for the planted hidden positives and for a hashed 20% of the others; a hashed
    10% fail (None); the rest HN or TN. Records every item it is asked."""

    name = "fake-judge"

    def __init__(self, hidden: Sequence[np.ndarray] | None = None, fail: float = 0.1) -> None:
        self.hidden = [set(h.tolist()) for h in hidden] if hidden is not None else None
        self.fail = fail
        self.stats = ScoringStats()
        self.asked: list[JudgeItem] = []

    def label(self, q: int, d: int) -> Label | None:
        if self.hidden is not None and d in self.hidden[q]:
            return "FN"
        u = _h(q, d, 11)
        if u < self.fail:
            return None
        if u < self.fail + 0.2:
            return "FN"
        return "HN" if u < 0.7 else "TN"

    def judge(self, items: Sequence[JudgeItem]) -> list[Label | None]:
        self.asked.extend(items)
        self.stats.add(pairs=len(items))
        return [self.label(_num(it.query), _num(it.document)) for it in items]


@pytest.fixture(scope="module")
def data() -> ns.SyntheticRetrieval:
    return ns.make_synthetic(N_DOCS, N_Q, DIM, seed=3, max_positives=3)


def texts() -> tuple[list[str], list[str]]:
    return [f"q#{i}" for i in range(N_Q)], [f"d#{j}" for j in range(N_DOCS)]


SAMPLERS = [
    ns.TopKSampler(k=60),
    ns.SimANSSampler(k=80, temperature=0.05),
    ns.TriSampler(variant="T2", k=80),
    ns.ReSa2Sampler(k1=120, k1_prime=60, k2=30),
    ns.RandomSampler(),
    ns.TopKSampler(k=60, on_shortfall="drop"),
]


def _reference(
    data: ns.SyntheticRetrieval,
    sampler: ns.BaseSampler,
    n: int,
    cap: int,
    judge: FakeJudge | None,
    scorer: FakeScorer | None,
    margins: Margins | None,
    on_failure: str = "skip",
) -> list[list[int]]:
    """Per row: all ``cap`` draws, filtered one by one in draw order, first ``n`` kept."""
    import dataclasses

    s = sampler
    if sampler.on_shortfall == "drop":
        s = dataclasses.replace(sampler, on_shortfall="pad")
    full = ns.mine(data.queries, ns.NumpyIndex(data.corpus), data.positives, s, n=cap, seed=5)
    out = []
    for r in range(len(full)):
        q = int(full.query_index[r])
        kept: list[int] = []
        for d in full.ids[r].tolist():
            if d < 0 or len(kept) == n:
                continue
            if margins is not None and scorer is not None:
                sp = [scorer.value(q, int(p)) for p in data.positives[q]]
                ok, _ = margins.keep([scorer.value(q, d)], [min(sp)])
                if not ok[0]:
                    continue
            if judge is not None:
                lab = judge.label(q, d)
                if lab == "FN" or (lab is None and on_failure == "skip"):
                    continue
            kept.append(d)
        out.append(kept)
    return out


def _run(data: ns.SyntheticRetrieval, sampler: ns.BaseSampler, **kw: object) -> Denoised:
    qt, dt = texts()
    args: dict[str, object] = dict(query_texts=qt, document_texts=dt, n=5, seed=5)
    args.update(kw)
    return mine_denoised(
        data.queries,
        ns.NumpyIndex(data.corpus),
        data.positives,
        sampler,
        **args,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: repr(s)[:40])
def test_first_n_passing_draws_in_draw_order(data, sampler) -> None:  # type: ignore[no-untyped-def]
    judge = FakeJudge(data.hidden)
    scorer = FakeScorer(data.positives)
    margins = Margins(relative_margin=0.05, max_score=2.5)
    # oversample=1: every rejection forces a widening, the hardest path
    res = _run(data, sampler, judge=judge, scorer=scorer, margins=margins, oversample=1.0)
    cap = sampler.max_n or 32 * 5
    ref = _reference(data, sampler, 5, cap, judge, scorer, margins)
    got = [row[row >= 0].tolist() for row in res.negatives.ids]
    if sampler.on_shortfall == "drop":
        assert res.stats.dropped_rows == sum(1 for r in ref if len(r) < 5) > 0
        ref = [r for r in ref if len(r) == 5]
    assert got == ref
    # no FN-labelled (or unlabelled, skipped) id is ever written
    for q, row in zip(res.negatives.query_index.tolist(), got, strict=True):
        assert all(judge.label(q, d) in ("HN", "TN") for d in row)
        assert not set(row) & set(data.positives[q].tolist())
    # the same output whatever the over-sampling and chunking
    again = _run(
        data,
        sampler,
        judge=FakeJudge(data.hidden),
        scorer=FakeScorer(data.positives),
        margins=margins,
        oversample=6.0,
        chunk_rows=4,
        chunk_size=7,
    )
    assert np.array_equal(again.negatives.ids, res.negatives.ids)
    assert np.array_equal(again.negatives.scores, res.negatives.scores, equal_nan=True)
    assert np.array_equal(again.checked_per_row, res.checked_per_row)
    assert res.stats.widened_rows > 0 and again.stats.widened_rows <= res.stats.widened_rows


def test_only_what_is_needed_is_asked(data) -> None:  # type: ignore[no-untyped-def]
    judge = FakeJudge(data.hidden, fail=0.0)
    res = _run(data, ns.TopKSampler(k=60), judge=judge, oversample=3.0)
    st = res.stats
    assert st.pairs_judged == len(judge.asked) == st.candidates_checked
    assert st.candidates_checked == int(res.checked_per_row.sum())
    # a row that is not short was checked n times plus once per rejection
    rejected = {k: v for k, v in st.removed.items()}
    assert sum(rejected.values()) == st.candidates_checked - st.kept
    assert st.labels["FN"] == rejected["judge_fn"] == st.extra_positives
    full = res.negatives.ids >= 0
    assert np.all(res.checked_per_row[full.all(axis=1)] >= 5)
    assert st.pairs_per_query == pytest.approx(st.candidates_checked / N_Q)
    # each row was asked about its draws in order: the asked ones per row are a prefix
    seen: dict[int, list[int]] = {}
    for it in judge.asked:
        seen.setdefault(_num(it.query), []).append(_num(it.document))
    draws = ns.mine(
        data.queries, ns.NumpyIndex(data.corpus), data.positives, ns.TopKSampler(k=60), n=60, seed=5
    )
    for q, asked in seen.items():
        row = draws.ids[q].tolist()
        assert sorted(asked, key=row.index) == row[: len(asked)]
    # extra positives are the FN-labelled draws
    for q, extra in enumerate(res.extra_positives):
        assert all(judge.label(q, d) == "FN" for d in extra.tolist())
    # the judge saw the query's first positive (TopK rows have no anchor)
    _qt, dt = texts()
    assert all(it.positive == dt[int(data.positives[_num(it.query)][0])] for it in judge.asked)
    # the output's mining stats carry the removals
    assert res.negatives.stats.removed["denoise:judge_fn"] == st.removed["judge_fn"]
    assert ns.negative_quality(res.negatives, data.hidden).false_negatives == 0


def test_margins_sign_safe() -> None:
    m = Margins(relative_margin=0.05)
    # s+ = 1: threshold 0.95 ; s+ = -2: threshold -2.1 (the naive 0.95 * s+ = -1.9 is wrong)
    keep, reason = m.keep([0.94, 0.95, 0.96, -2.2, -2.1, -2.0, -1.95], [1, 1, 1, -2, -2, -2, -2])
    assert keep.tolist() == [True, False, False, True, False, False, False]
    assert reason.tolist() == [-1, 3, 3, -1, 3, 3, 3]
    m2 = Margins(absolute_margin=0.5, max_score=0.9, min_score=-1.0)
    keep, reason = m2.keep([0.95, -1.0, 0.6, 0.4, -0.5], [1, 1, 1, 1, 1])
    # max_score first, then min_score (strict), then the absolute margin s- < s+ - 0.5
    assert keep.tolist() == [False, False, False, True, True]
    assert reason.tolist() == [0, 1, 2, -1, -1]
    assert Margins(relative_margin=0.0).keep([1.0, 0.99], [1.0, 1.0])[0].tolist() == [False, True]
    for bad in (1.01, -0.1):
        with pytest.raises(ValueError, match="relative_margin must be in"):
            Margins(relative_margin=bad)
    # r = 1 (TopK-PercPos p = 0): the limit Filters always had, one engine for both
    assert Margins(relative_margin=1.0).keep([-0.1, 0.0], [0.5, 0.5])[0].tolist() == [True, False]
    with pytest.raises(ValueError, match="finite"):
        Margins(absolute_margin=float("nan"))
    with pytest.raises(ValueError, match="anchor"):
        Margins(anchor="each")


def test_margin_filter_on_teacher_scores(data) -> None:  # type: ignore[no-untyped-def]
    scorer = FakeScorer(data.positives)
    margins = Margins(absolute_margin=0.3, anchor="max")
    res = _run(data, ns.TopKSampler(k=60), scorer=scorer, margins=margins)
    assert res.teacher is not None
    for r in range(len(res.negatives)):
        q = int(res.negatives.query_index[r])
        sp = max(scorer.value(q, int(p)) for p in data.positives[q])
        assert res.teacher.anchor[r] == pytest.approx(sp)
        for c, d in enumerate(res.negatives.ids[r].tolist()):
            if d >= 0:
                t = scorer.value(q, d)
                assert res.teacher.negative[r, c] == pytest.approx(t)
                assert t < sp - 0.3
    # teacher scores of every positive, aligned with the positives
    for q in range(N_Q):
        want = [scorer.value(q, int(p)) for p in data.positives[q]]
        assert res.teacher.positive[q].tolist() == pytest.approx(want)
    st = res.stats
    assert st.positive_pairs_scored == sum(p.size for p in data.positives)
    assert st.pairs_scored == st.candidates_checked
    assert st.removed.get("absolute_margin", 0) == st.candidates_checked - st.kept
    assert st.scorer is not None and st.scorer.pairs == st.pairs_scored + st.positive_pairs_scored
    # teacher_negatives swaps in the teacher's scores; retriever scores stay in negatives
    tn = res.teacher_negatives()
    assert np.array_equal(tn.ids, res.negatives.ids)
    assert not np.allclose(tn.scores, res.negatives.scores, equal_nan=True)


def test_judge_policies(data) -> None:  # type: ignore[no-untyped-def]
    base = _run(data, ns.TopKSampler(k=60), judge=FakeJudge())
    keep = _run(data, ns.TopKSampler(k=60), judge=FakeJudge(), on_judge_failure="keep")
    assert keep.stats.failed_kept > 0 and "judge_failed" not in keep.stats.removed
    assert base.stats.removed["judge_failed"] == base.stats.labels["failed"]
    hn = _run(data, ns.TopKSampler(k=60), judge=FakeJudge(fail=0.0), judge_keep=("HN",))
    j = FakeJudge(fail=0.0)
    for q, row in zip(hn.negatives.query_index.tolist(), hn.negatives.ids, strict=True):
        assert all(j.label(q, d) == "HN" for d in row[row >= 0].tolist())
    assert hn.stats.removed["judge_label"] > 0
    with pytest.raises(RuntimeError, match="gave no label for query"):
        _run(data, ns.TopKSampler(k=60), judge=FakeJudge(), on_judge_failure="raise")


def test_short_rows_pad_or_drop(data) -> None:  # type: ignore[no-untyped-def]
    # a judge that rejects 90%: rows of a 12-candidate window run short
    class Strict(FakeJudge):
        def label(self, q: int, d: int) -> Label | None:
            return "HN" if _h(q, d, 3) < 0.1 else "FN"

    pad = _run(data, ns.TopKSampler(k=12), judge=Strict(), n=3)
    assert pad.stats.short_rows > 0
    assert pad.stats.padded == int((pad.negatives.ids < 0).sum()) > 0
    assert pad.negatives.stats.short_rows == pad.stats.short_rows
    assert pad.stats.max_draws == 12
    drop = _run(data, ns.TopKSampler(k=12, on_shortfall="drop"), judge=Strict(), n=3)
    assert drop.stats.dropped_rows == pad.stats.short_rows
    assert len(drop.negatives) == N_Q - pad.stats.short_rows
    assert len(drop.extra_positives) == len(drop.checked_per_row) == len(drop.negatives)
    assert (drop.negatives.ids >= 0).all()


def test_chunking_and_split_invariance(data) -> None:  # type: ignore[no-untyped-def]
    qt, dt = texts()
    negs = ns.mine(
        data.queries, ns.NumpyIndex(data.corpus), data.positives, ns.TopKSampler(k=60), n=20, seed=5
    )
    kw = dict(query_texts=qt, document_texts=dt, positives=data.positives, n=5)
    whole = denoise(negs, judge=FakeJudge(data.hidden), scorer=FakeScorer(), **kw)  # type: ignore[arg-type]
    for chunk in (1, 7):
        part = denoise(
            negs, judge=FakeJudge(data.hidden), scorer=FakeScorer(), chunk_rows=chunk, **kw
        )  # type: ignore[arg-type]
        assert np.array_equal(part.negatives.ids, whole.negatives.ids)
        assert part.stats.candidates_checked == whole.stats.candidates_checked
    # rows denoised in two halves and joined: the same rows
    import dataclasses

    halves = []
    for sl in (slice(0, 11), slice(11, None)):
        sub = dataclasses.replace(
            negs,
            ids=negs.ids[sl],
            scores=negs.scores[sl],
            query_index=negs.query_index[sl],
            anchor_ids=negs.anchor_ids[sl],
        )
        halves.append(denoise(sub, judge=FakeJudge(data.hidden), scorer=FakeScorer(), **kw))  # type: ignore[arg-type]
    assert np.array_equal(np.concatenate([h.negatives.ids for h in halves]), whole.negatives.ids)
    merged = halves[0].stats.merge(halves[1].stats)
    assert merged.candidates_checked == whole.stats.candidates_checked
    assert merged.removed == whole.stats.removed


def test_each_anchor_rows_and_redraw_alignment(data) -> None:  # type: ignore[no-untyped-def]
    s = ns.SimANSSampler(k=80, positive_anchor="each")
    judge = FakeJudge(data.hidden)
    res = _run(data, s, judge=judge, oversample=1.0)
    assert len(res.negatives) == sum(p.size for p in data.positives)
    _qt, dt = texts()
    # each row was judged against its own anchor positive
    anchors = {
        (q, dt[int(a)])
        for q, a in zip(
            res.negatives.query_index.tolist(), res.negatives.anchor_ids.tolist(), strict=True
        )
    }
    assert {(_num(it.query), it.positive) for it in judge.asked} <= anchors
    ref = _run(data, s, judge=FakeJudge(data.hidden), oversample=80 / 5)
    assert np.array_equal(ref.negatives.ids, res.negatives.ids)


def test_redraw_must_repeat_the_draws(data) -> None:  # type: ignore[no-untyped-def]
    qt, dt = texts()
    idx = ns.NumpyIndex(data.corpus)
    negs = ns.mine(data.queries, idx, data.positives, ns.TopKSampler(k=60), n=5, seed=5)

    def other_seed(m: int, qs: np.ndarray) -> ns.Negatives:
        return ns.mine(data.queries, idx, data.positives, ns.TopKSampler(k=60), n=m, seed=6)

    with pytest.raises(RuntimeError, match="does not start with the first 5 draws"):
        denoise(
            negs,
            query_texts=qt,
            document_texts=dt,
            positives=data.positives,
            judge=FakeJudge(data.hidden),
            redraw=other_seed,
            max_draws=60,
        )


def test_validation(data) -> None:  # type: ignore[no-untyped-def]
    qt, dt = texts()
    idx = ns.NumpyIndex(data.corpus)
    negs = ns.mine(data.queries, idx, data.positives, ns.TopKSampler(k=60), n=5, seed=5)
    kw: dict[str, object] = dict(query_texts=qt, document_texts=dt, positives=data.positives)
    with pytest.raises(ValueError, match="nothing to denoise"):
        denoise(negs, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pass a scorer"):
        denoise(negs, judge=FakeJudge(), margins=Margins(absolute_margin=0.1), **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n=6 negatives wanted"):
        denoise(negs, n=6, judge=FakeJudge(), **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="document_texts has 10"):
        denoise(negs, judge=FakeJudge(), **{**kw, "document_texts": dt[:10]})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="judge_keep"):
        denoise(negs, judge=FakeJudge(), judge_keep=("FN",), **kw)  # type: ignore[arg-type]
    dropped = ns.mine(
        data.queries, idx, data.positives, ns.TopKSampler(k=6, on_shortfall="drop"), n=6, seed=5
    )
    if dropped.stats.dropped_rows:
        with pytest.raises(ValueError, match="on_shortfall='drop'"):
            denoise(dropped, judge=FakeJudge(), **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_draws=100 exceeds"):
        _run(data, ns.TopKSampler(k=60), judge=FakeJudge(), max_draws=100)


def test_teacher_scores_reach_the_writers(tmp_path: Path) -> None:
    """FlagEmbedding pos_scores/neg_scores and sentence-transformers' scores column."""
    root = write_beir(tmp_path / "beir", n_docs=300, n_queries=12)
    ds = ns.load_beir(root, "train")
    emb = ns.load_embeddings(root / "embeddings", ds)
    docs = ds.document_texts

    class TextScorer:
        name = "len"
        stats = ScoringStats()

        def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
            return np.array([len(q) * 0.1 - len(d) * 0.01 for q, d in pairs], np.float32)

    res = mine_denoised(
        emb.queries,
        ns.NumpyIndex(emb.corpus),
        ds.positives,
        ns.TopKSampler(k=40),
        query_texts=ds.query_texts,
        document_texts=docs,
        n=4,
        seed=0,
        scorer=TextScorer(),
    )
    assert res.teacher is not None
    path = tmp_path / "flag.jsonl"
    ns.write_negatives(
        res.teacher_negatives(),
        ds,
        path,
        "flagembedding",
        scores=True,
        positive_scores=res.teacher.positive,
    )
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == ds.n_queries
    for obj in lines:
        for text, s in zip(obj["pos"], obj["pos_scores"], strict=True):
            assert s == pytest.approx(len(obj["query"]) * 0.1 - len(text) * 0.01, abs=1e-5)
        for text, s in zip(obj["neg"], obj["neg_scores"], strict=True):
            assert s == pytest.approx(len(obj["query"]) * 0.1 - len(text) * 0.01, abs=1e-5)
    st_path = tmp_path / "st.jsonl"
    ns.write_negatives(
        res.teacher_negatives(),
        ds,
        st_path,
        "st-ntuple",
        scores=True,
        positive_scores=res.teacher.positive,
    )
    row = json.loads(st_path.read_text().splitlines()[0])
    assert row["scores"][0] == pytest.approx(
        len(row["anchor"]) * 0.1 - len(row["positive"]) * 0.01, abs=1e-5
    )


def test_doctests() -> None:
    import negsample.scoring  # noqa: F401

    names = ("denoise", "margins", "results", "mine", "base", "cache", "llm", "models")
    for name in (*names, "listwise", "_http"):
        mod = sys.modules[f"negsample.scoring.{name}"]
        result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, name


def test_import_stays_light() -> None:
    import subprocess

    code = (
        "import sys, negsample, negsample.scoring\n"
        "heavy = {'torch', 'sentence_transformers', 'transformers'}\n"
        "print(sorted(heavy & set(sys.modules)), 'negsample.scoring' in sys.modules)\n"
        "import importlib; importlib.reload(negsample)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] True"
    code2 = "import sys, negsample; print('negsample.scoring' in sys.modules)"
    out2 = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True, check=True)
    assert out2.stdout.strip() == "False"


def test_api_doc_lists_the_scoring_api() -> None:
    import re

    import negsample.scoring as sc

    text = (Path(__file__).parents[1] / "docs" / "api.md").read_text()
    section = text.split("## Denoising: `negsample.scoring`", 1)[1]
    documented = set()
    for line in section.splitlines():
        m = re.match(r"^\* (.*?): ", line)
        if m:
            documented |= set(re.findall(r"`(\w+)`", m.group(1)))
    assert documented == set(sc.__all__), documented ^ set(sc.__all__)
    assert list(sc.__all__) == sorted(sc.__all__, key=lambda s: (not s.isupper(), s))


def test_runs() -> None:
    from negsample.scoring.mine import _runs

    assert _runs(np.array([3, 5, 200, 201, 45]), gap=64) == [(3, 46), (200, 202)]
    assert _runs(np.array([9, 9, 10])) == [(9, 11)]
    assert _runs(np.array([], np.int64)) == []


@pytest.mark.realdata
def test_nfcorpus_perfect_judge_removes_every_hidden_positive() -> None:
    """Real data with exact score ties (duplicate documents): widening through redraws of
    query slices repeats the first draws whatever the chunking, and a perfect judge leaves
    no false negative."""
    from tests.conftest import shared_dataset

    root = shared_dataset("nfcorpus")
    ds = ns.load_beir(root, "train")
    emb = ns.load_embeddings(root / "embeddings" / "all-MiniLM-L6-v2", ds)
    rows = [i for i, p in enumerate(ds.positives) if p.size >= 2][:200]
    split = ns.hide_positives([ds.positives[i] for i in rows], seed=0)
    q = np.ascontiguousarray(emb.queries[rows])
    qt = [f"q#{i}" for i in range(len(rows))]
    dt = [f"d#{j}" for j in range(ds.n_corpus)]

    class Oracle(FakeJudge):
        def label(self, q: int, d: int) -> Label | None:
            return "FN" if d in self.hidden[q] else "HN"  # type: ignore[index]

    index = ns.NumpyIndex(emb.corpus)
    kw: dict[str, object] = dict(query_texts=qt, document_texts=dt, n=7, seed=0)
    before = ns.mine(q, index, split.shown[:, None], ns.TopKSampler(k=30), n=7, seed=0)
    assert ns.negative_quality(before, split.hidden).false_negatives > 100
    runs = [
        mine_denoised(
            q,
            index,
            split.shown[:, None],
            ns.TopKSampler(k=30),
            judge=Oracle(split.hidden),
            oversample=over,
            chunk_size=chunk_size,
            **kw,  # type: ignore[arg-type]
        )
        for over, chunk_size in ((1.0, 32), (1.0, None), (3.0, 7))
    ]
    assert runs[0].stats.widened_rows > 0 and runs[0].stats.redraw_calls >= 1
    for other in runs[1:]:
        assert np.array_equal(runs[0].negatives.ids, other.negatives.ids)
    assert ns.negative_quality(runs[0].negatives, split.hidden).false_negatives == 0


def test_draw_plan() -> None:
    from negsample.scoring import draw_plan

    topk = ns.TopKSampler(k=50)
    p = draw_plan(topk, 7, oversample=2.0, n_corpus=1000)
    assert (p.first, p.max_draws, p.on_short) == (14, 50, "pad") and p.sampler is topk
    # capped by the region, by the corpus, by max_draws; at least n
    assert draw_plan(topk, 7, oversample=10, n_corpus=1000).first == 50
    assert draw_plan(topk, 7, oversample=2, n_corpus=11).max_draws == 10
    assert draw_plan(topk, 7, oversample=5, n_corpus=1000, max_draws=20).first == 20
    assert draw_plan(topk, 7, oversample=1.0, n_corpus=1000).first == 7
    # a sampler without a region: 32 x n
    assert draw_plan(ns.RandomSampler(), 3, oversample=2, n_corpus=10**6).max_draws == 96
    # drop -> pad for the draws, drop after denoising
    d = draw_plan(ns.TopKSampler(k=50, on_shortfall="drop"), 7, n_corpus=1000)
    assert d.sampler.on_shortfall == "pad" and d.on_short == "drop"
    for bad, msg in (
        ({"oversample": 0.5}, "oversample"),
        ({"oversample": float("inf")}, "oversample"),
        ({"oversample": float("nan")}, "oversample"),
        ({"max_draws": 60}, "max_draws=60 exceeds"),
        ({"max_draws": 5}, "smaller than n=7"),
        ({"n_corpus": 0}, "n_corpus"),
    ):
        kw = {"oversample": 2.0, "n_corpus": 1000, **bad}
        with pytest.raises(ValueError, match=msg):
            draw_plan(topk, 7, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fewer than the n=60"):
        draw_plan(topk, 60, n_corpus=1000)
    # the plan is what mine_denoised mines first
    data = ns.make_synthetic(n_docs=300, n_queries=6, dim=8, seed=0)
    texts = [f"q#{i}" for i in range(6)], [f"d#{j}" for j in range(300)]
    res = mine_denoised(
        data.queries,
        ns.NumpyIndex(data.corpus),
        data.positives,
        ns.TopKSampler(k=40),
        query_texts=texts[0],
        document_texts=texts[1],
        n=4,
        oversample=3.0,
        judge=FakeJudge(fail=0.0),
    )
    first = draw_plan(ns.TopKSampler(k=40), 4, oversample=3.0, n_corpus=300).first
    assert first == 12
    assert res.stats.widened_rows == 0 and res.stats.max_draws == first


class AnchorJudge:
    """FN for document 4 when judged against positive 0, HN otherwise."""

    name = "anchor"
    stats = None

    def judge(self, items: Sequence[JudgeItem]) -> list[Label | None]:
        return ["FN" if (it.document, it.positive) == ("d#4", "d#0") else "HN" for it in items]


def _two_anchor_rows() -> ns.Negatives:
    ids = np.array([[4, 5, 6, 7], [5, 4, 8, 9]])
    return ns.Negatives(
        ids, np.zeros(ids.shape, np.float32), np.array([0, 0]), np.array([0, 1]), ns.MiningStats()
    )


def test_fn_actions_by_hand() -> None:
    kw = dict(
        query_texts=["q#0"],
        document_texts=[f"d#{i}" for i in range(10)],
        positives=[[0, 1]],
        n=2,
        judge=AnchorJudge(),
    )
    rem = denoise(_two_anchor_rows(), **kw)  # type: ignore[arg-type]
    assert rem.negatives.ids.tolist() == [[5, 6], [5, 4]]  # 4 is HN against positive 1
    assert [e.tolist() for e in rem.extra_positives] == [[4], []]
    assert rem.positives[0].tolist() == [0, 1] and rem.stats.fn_action == "remove"
    rel = denoise(_two_anchor_rows(), fn_action="relabel", **kw)  # type: ignore[arg-type]
    # 4 is a positive of query 0 now: it leaves row 1 too, which is short
    assert rel.positives[0].tolist() == [0, 1, 4] and rel.stats.relabelled == 1
    assert rel.negatives.ids.tolist() == [[5, 6], [5, -1]]
    assert rel.stats.removed["judge_fn_elsewhere"] == 1 and rel.stats.short_rows == 1
    assert rel.negatives.stats.removed["denoise:judge_fn_elsewhere"] == 1
    drop = denoise(_two_anchor_rows(), fn_action="drop-query", drop_above=0, **kw)  # type: ignore[arg-type]
    assert len(drop.negatives) == 0 and drop.dropped_queries.tolist() == [0]
    assert drop.stats.dropped_queries == 1 and drop.stats.dropped_query_rows == 2
    keep = denoise(_two_anchor_rows(), fn_action="drop-query", drop_above=1, **kw)  # type: ignore[arg-type]
    assert keep.negatives.ids.tolist() == rem.negatives.ids.tolist()
    for bad, msg in (
        ({"fn_action": "delete"}, "fn_action must be one of"),
        ({"fn_action": "drop-query", "drop_above": -1}, "drop_above must be"),
    ):
        with pytest.raises(ValueError, match=msg):
            denoise(_two_anchor_rows(), **kw, **bad)  # type: ignore[arg-type]
    no_judge = {k: v for k, v in kw.items() if k != "judge"}
    with pytest.raises(ValueError, match="pass a judge"):
        denoise(
            _two_anchor_rows(),
            fn_action="relabel",
            scorer=FakeScorer(),
            teacher_scores=True,
            **no_judge,
        )  # type: ignore[arg-type]


def test_relabel_with_a_teacher_extends_its_positive_scores(data) -> None:  # type: ignore[no-untyped-def]
    scorer = FakeScorer(data.positives)
    res = _run(
        data, ns.TopKSampler(k=60), judge=FakeJudge(data.hidden), scorer=scorer, fn_action="relabel"
    )
    assert res.stats.relabelled > 0 and res.teacher is not None
    for q in range(N_Q):
        assert res.teacher.positive[q].size == res.positives[q].size
        added = res.positives[q][data.positives[q].size :]
        want = [scorer.value(q, int(d)) for d in added]
        assert np.allclose(res.teacher.positive[q][data.positives[q].size :], want)
    assert res.stats.as_dict()["relabelled"] == res.stats.relabelled

"""Policies across queries: the reuse cap (``max_negative_reuse``) and other queries'
positives (counted always, removed with ``exclude_other_positives``)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import negsample as ns
from negsample._ragged import as_ragged
from negsample.crossquery import PositiveMask, cap_negative_reuse, reuse_keys
from tests.strategies import ReuseDraws, reuse_draws

DATA = ns.make_synthetic(3000, 160, 16, seed=7, max_positives=3)
INDEX = ns.NumpyIndex(DATA.corpus)


def _same(a: ns.Negatives, b: ns.Negatives, stats: bool = True) -> None:
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.query_index, b.query_index)
    np.testing.assert_array_equal(a.anchor_ids, b.anchor_ids)
    if stats:
        x, y = a.stats.as_dict(), b.stats.as_dict()
        x.pop("timings"), y.pop("timings")
        assert x == y


def _uses(ids: np.ndarray) -> np.ndarray:
    v = ids[ids >= 0]
    return np.bincount(v) if v.size else np.zeros(1, np.int64)


# -- the mask ---------------------------------------------------------------------------------


def test_positive_mask() -> None:
    m = PositiveMask.of([[3], [5, 7], []], 12)
    assert m.size == 3 and repr(m) == "PositiveMask(3 of 12 rows)"
    ids = np.array([[3, 4, -1, 11], [7, 0, 5, 12]])
    np.testing.assert_array_equal(m.contains(ids), [[1, 0, 0, 0], [1, 0, 1, 0]])
    assert m == PositiveMask.of(np.array([[3, -1], [5, 7]]), 12)
    assert m == PositiveMask.of(as_ragged([[3], [5, 7]], 2, 12)[0], 12)
    assert PositiveMask.of(m, 12) is m
    with pytest.raises(ValueError, match="covers 12 corpus rows, the index 13"):
        PositiveMask.of(m, 13)
    with pytest.raises(ValueError, match="out of range"):
        PositiveMask.of([[12]], 12)
    with pytest.raises(TypeError, match="integers"):
        PositiveMask.of(np.array([[0.5]]), 12)


# -- the cap on its own ------------------------------------------------------------------------


def _negatives(d: ReuseDraws) -> ns.Negatives:
    return ns.Negatives(
        d.ids, d.ids.astype(np.float32), d.query_index, d.anchor_ids, ns.MiningStats(seed=d.seed)
    )


def _reference(d: ReuseDraws, order_seed: int) -> list[list[int]]:
    """Textbook deferred acceptance, ONE proposal at a time, rows chosen at random: each
    row proposes its draws in order until it holds n; a document holding more than N
    rows drops the one with the largest (key, query, anchor)."""
    rng = np.random.default_rng(order_seed)
    rows, width = d.ids.shape
    nxt = [0] * rows
    held: list[list[int]] = [[] for _ in range(rows)]
    holders: dict[int, list[tuple[float, int, int, int, int]]] = {}
    while True:
        want = [r for r in range(rows) if len(held[r]) < d.n and nxt[r] < width]
        if not want:
            break
        r = want[int(rng.integers(len(want)))]
        c = nxt[r]
        nxt[r] += 1
        doc = int(d.ids[r, c])
        if doc < 0:
            continue
        key = float(reuse_keys(d.seed, d.query_index[[r]], np.array([doc]))[0])
        holders.setdefault(doc, []).append((key, int(d.query_index[r]), int(d.anchor_ids[r]), r, c))
        held[r].append(c)
        if len(holders[doc]) > d.max_reuse:
            worst = max(holders[doc])
            holders[doc].remove(worst)
            held[worst[3]].remove(worst[4])
    return [[int(d.ids[r, c]) for c in sorted(held[r])] for r in range(rows)]


@given(reuse_draws())
def test_cap_properties(d: ReuseDraws) -> None:
    out = cap_negative_reuse(_negatives(d), n=d.n, max_reuse=d.max_reuse, seed=d.seed)
    assert out.ids.shape == (len(d.ids), d.n)
    # no document above the cap
    assert _uses(out.ids).max() <= d.max_reuse
    st_ = out.stats.reuse
    assert st_ is not None and st_.max_after == _uses(out.ids).max(initial=0)
    first = np.where(np.cumsum(d.ids >= 0, axis=1) <= d.n, d.ids, -1)
    assert st_.max_before == _uses(first).max(initial=0)
    # each row: its kept draws in draw order, then -1
    for r in range(len(d.ids)):
        kept = out.ids[r][out.ids[r] >= 0].tolist()
        assert (out.ids[r][len(kept) :] == -1).all()
        draws = [int(x) for x in d.ids[r] if x >= 0]
        assert [x for x in draws if x in kept] == kept
    # the same as one proposal at a time, in any order (deferred acceptance's theorem)
    want = _reference(d, 0)
    assert [out.ids[r][out.ids[r] >= 0].tolist() for r in range(len(d.ids))] == want
    assert _reference(d, 1) == want
    # stable: a draw a row passed over is kept by exactly N rows with smaller keys
    keys = {
        (r, int(x)): (
            float(reuse_keys(d.seed, d.query_index[[r]], np.array([x]))[0]),
            int(d.query_index[r]),
            int(d.anchor_ids[r]),
        )
        for r in range(len(d.ids))
        for x in d.ids[r]
        if x >= 0
    }
    holders: dict[int, list[int]] = {}
    for r in range(len(d.ids)):
        for x in out.ids[r][out.ids[r] >= 0].tolist():
            holders.setdefault(x, []).append(r)
    for r in range(len(d.ids)):
        kept = out.ids[r][out.ids[r] >= 0].tolist()
        draws = [int(x) for x in d.ids[r] if x >= 0]
        last = max((draws.index(x) for x in kept), default=-1)
        for j, x in enumerate(draws):
            if x in kept or (len(kept) == d.n and j > last):
                continue
            hs = holders.get(x, [])
            assert len(hs) == d.max_reuse
            assert all(keys[(h, x)] < keys[(r, x)] for h in hs)
    # the rows' order does not matter
    perm = np.random.default_rng(d.seed % 1000).permutation(len(d.ids))
    shuffled = ReuseDraws(
        d.ids[perm], d.query_index[perm], d.anchor_ids[perm], d.n, d.max_reuse, d.seed
    )
    again = cap_negative_reuse(_negatives(shuffled), n=d.n, max_reuse=d.max_reuse, seed=d.seed)
    np.testing.assert_array_equal(again.ids, out.ids[perm])
    # rows short because of the cap, counted
    valid = (d.ids >= 0).sum(axis=1)
    lost = np.minimum(valid, d.n) - (out.ids >= 0).sum(axis=1)
    assert st_.rows_short == int((lost > 0).sum()) and st_.slots_short == int(lost.sum())
    # a cap nobody reaches: the first n draws
    big = cap_negative_reuse(_negatives(d), n=d.n, max_reuse=10**6, seed=d.seed)
    np.testing.assert_array_equal(big.ids, _compact(d.ids, d.n))
    assert big.stats.reuse is not None and big.stats.reuse.removed == 0


def _compact(a: np.ndarray, n: int) -> np.ndarray:
    out = np.full((a.shape[0], n), -1, np.int64)
    for r, row in enumerate(a):
        v = row[row >= 0][:n]
        out[r, : v.size] = v
    return out


@given(reuse_draws())
def test_cap_drop_rows(d: ReuseDraws) -> None:
    """``on_short="drop"``: every row kept is full, nothing above the cap, and a dropped
    row's places go to the others (the result equals capping the kept rows alone)."""
    out = cap_negative_reuse(
        _negatives(d), n=d.n, max_reuse=d.max_reuse, seed=d.seed, on_short="drop"
    )
    assert (out.ids >= 0).all() and _uses(out.ids).max(initial=0) <= d.max_reuse
    assert out.stats.dropped_rows == len(d.ids) - len(out)
    left = set(zip(out.query_index.tolist(), out.anchor_ids.tolist(), strict=True))
    pairs = zip(d.query_index.tolist(), d.anchor_ids.tolist(), strict=True)
    kept = np.array([i for i, p in enumerate(pairs) if p in left], np.int64)
    alone = ReuseDraws(d.ids[kept], d.query_index[kept], d.anchor_ids[kept], d.n, d.max_reuse,
                       d.seed)  # fmt: skip
    np.testing.assert_array_equal(
        cap_negative_reuse(_negatives(alone), n=d.n, max_reuse=d.max_reuse, seed=d.seed).ids,
        out.ids,
    )


def test_cap_hand_computed() -> None:
    # three rows want document 9 first; the cap keeps the two with the smallest keys
    ids = np.array([[9, 1, 2], [9, 3, 4], [9, 5, 6]])
    qi = np.arange(3)
    keys = reuse_keys(0, qi, np.full(3, 9))
    loser = int(np.argmax(keys))
    d = ns.Negatives(ids, np.zeros((3, 3), np.float32), qi, np.full(3, -1), ns.MiningStats())
    out = cap_negative_reuse(d, n=2, max_reuse=2, seed=0)
    want = ids[:, :2].copy()
    want[loser] = ids[loser, 1:]
    np.testing.assert_array_equal(out.ids, want)
    r = out.stats.reuse
    assert r is not None
    assert (r.removed, r.documents_capped, r.rows_short, r.max_before, r.max_after) == (
        1, 1, 0, 3, 2,
    )  # fmt: skip
    with pytest.raises(ValueError, match="fewer than n=4"):
        cap_negative_reuse(d, n=4, max_reuse=2, seed=0)
    with pytest.raises(ValueError, match="max_reuse must be a positive integer"):
        cap_negative_reuse(d, n=2, max_reuse=0, seed=0)


# -- mine() with the cap -----------------------------------------------------------------------

SAMPLERS = {
    "topk": ns.TopKSampler(k=30),
    "topk-top": ns.TopKSampler(k=30, strategy="top"),
    "simans": ns.SimANSSampler(k=40, temperature=0.05),
    "tri-each": ns.TriSampler(k=40, m=20, positive_anchor="each", temperature=0.05),
    "resa2": ns.ReSa2Sampler(k1=60, k1_prime=30, k2=12),
    "random": ns.RandomSampler(),
    "topk-fill": ns.TopKSampler(k=6, on_shortfall="fill"),
}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_mine_cap_is_split_free(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = SAMPLERS[name]
    kw: dict[str, Any] = dict(n=5, seed=11, max_negative_reuse=1)
    ref = ns.mine(DATA.queries, INDEX, DATA.positives, s, **kw)
    reuse = ref.stats.reuse
    assert reuse is not None and reuse.draws == min(10, s.max_n or 10)
    assert _uses(ref.ids).max() <= 1 and reuse.max_before > 1 and reuse.documents_capped > 0
    # chunk sizes, memory budgets and sampling threads: the same bytes
    for threads, chunk, budget in (("1", 7, 256.0), ("3", None, 0.05)):
        monkeypatch.setenv("NEGSAMPLE_SAMPLING_THREADS", threads)
        got = ns.mine(
            DATA.queries, INDEX, DATA.positives, s, chunk_size=chunk, memory_budget_mb=budget, **kw
        )
        _same(got, ref)
    # resumable chunks (each mined with its query_offset), the cap when they are put together
    for chunk in (13,):
        got = ns.mine_resumable(
            DATA.queries, INDEX, DATA.positives, s, work_dir=tmp_path / f"w{chunk}",
            chunk_size=chunk, **kw,
        )  # fmt: skip
        _same(got, ref)
    # a cap nobody reaches: the uncapped output, byte for byte
    plain = ns.mine(DATA.queries, INDEX, DATA.positives, s, n=5, seed=11)
    big = ns.mine(DATA.queries, INDEX, DATA.positives, s, n=5, seed=11, max_negative_reuse=10**9)
    _same(big, plain, stats=False)
    assert big.stats.short_rows == plain.stats.short_rows or s.on_shortfall == "fill"
    assert big.stats.other_positives == plain.stats.other_positives


def test_mine_cap_drop_and_errors() -> None:
    s = ns.TopKSampler(k=8, on_shortfall="drop")
    out = ns.mine(DATA.queries, INDEX, DATA.positives, s, n=6, seed=0, max_negative_reuse=1)
    assert (out.ids >= 0).all() and _uses(out.ids).max() <= 1
    assert out.stats.dropped_rows == len(DATA.queries) - len(out) > 0
    assert out.stats.reuse is not None and out.stats.reuse.rows_short > 0
    with pytest.raises(ValueError, match="max_negative_reuse must be a positive integer"):
        ns.mine(DATA.queries, INDEX, DATA.positives, s, n=2, max_negative_reuse=0)
    with pytest.raises(ValueError, match="reuse_oversample must be a finite number >= 1"):
        ns.mine(DATA.queries, INDEX, DATA.positives, n=2, max_negative_reuse=3,
                reuse_oversample=0.5)  # fmt: skip


def test_resume_after_interruption_gives_the_same_bytes(tmp_path: Path) -> None:
    s = ns.SimANSSampler(k=40, temperature=0.05)
    kw: dict[str, Any] = dict(n=5, seed=2, max_negative_reuse=1, exclude_other_positives=True)
    ref = ns.mine(DATA.queries, INDEX, DATA.positives, s, **kw)

    def stop(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    work = tmp_path / "w"
    with pytest.raises(KeyboardInterrupt):
        ns.mine_resumable(
            DATA.queries, INDEX, DATA.positives, s, work_dir=work, chunk_size=32,
            on_chunk=stop, **kw,
        )  # fmt: skip
    assert len(list(work.glob("chunk_*.npz"))) == 3
    logs: list[str] = []
    got = ns.mine_resumable(
        DATA.queries, INDEX, DATA.positives, s, work_dir=work, chunk_size=32, log=logs.append,
        **kw,
    )  # fmt: skip
    assert any("resumed 3 of 5 chunks" in m for m in logs), logs
    _same(got, ref)
    # another cap over the same draws: the chunks are reused (they hold the draws only)
    logs.clear()
    two = ns.mine_resumable(
        DATA.queries, INDEX, DATA.positives, s, work_dir=work, chunk_size=32, log=logs.append,
        **{**kw, "max_negative_reuse": 2},
    )  # fmt: skip
    assert any("resumed 5 of 5 chunks" in m for m in logs), logs
    _same(two, ns.mine(DATA.queries, INDEX, DATA.positives, s, **{**kw, "max_negative_reuse": 2}))


# -- other queries' positives -------------------------------------------------------------------


def _other_count(negs: ns.Negatives, positives: list[list[int]]) -> int:
    every = {p for ps in positives for p in ps}
    return sum(int(x) in every for x in negs.ids[negs.ids >= 0].ravel())


@pytest.mark.parametrize("name", ["topk", "tri-each", "random"])
def test_other_positives_are_counted(name: str) -> None:
    negs = ns.mine(DATA.queries, INDEX, DATA.positives, SAMPLERS[name], n=5, seed=1)
    assert negs.stats.other_positives == _other_count(negs, DATA.positives) > 0


def _crowded() -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Queries whose top ranks are other queries' positives: 200 near copies of one
    point, each the positive of its own query, and 200 queries near that point (more
    than the first pass's room for them, ``MASK_SLACK``)."""
    rng = np.random.default_rng(3)
    corpus = rng.standard_normal((1000, 8)).astype(np.float32)
    centre = corpus[0] * 3
    corpus[:200] = centre + 0.01 * rng.standard_normal((200, 8)).astype(np.float32)
    queries = (centre + 0.01 * rng.standard_normal((200, 8))).astype(np.float32)
    return corpus, queries, [[i] for i in range(200)]


def test_exclusion_keeps_the_search_depth() -> None:
    """A TopK taking its whole window in rank order sees the top k candidates once the
    positives of every query are removed, however many of them crowd the top ranks."""
    corpus, queries, positives = _crowded()
    index = ns.NumpyIndex(corpus)
    k = 12
    got = ns.mine(queries, index, positives, ns.TopKSampler(k=k, strategy="top"), n=k,
                  seed=0, exclude_other_positives=True)  # fmt: skip
    assert got.stats.deep_searches > 0  # the first pass (depth + slack) was not enough
    full = index.search(queries, 1000)
    for q in range(len(queries)):
        want = [int(d) for d in full.ids[q] if d >= 200][:k]
        assert got.ids[q].tolist() == want
    assert got.stats.other_positives == 0
    assert got.stats.removed["other_positive"] > 0
    # chunks and slices (each chunk knows every query's positives)
    import tempfile

    with tempfile.TemporaryDirectory() as wd:
        again = ns.mine_resumable(
            queries, index, positives, ns.TopKSampler(k=k, strategy="top"), n=k, seed=0,
            work_dir=wd, chunk_size=16, exclude_other_positives=True,
        )  # fmt: skip
    _same(again, got)


def test_exclusion_split_free_and_refusals(tmp_path: Path) -> None:
    s = ns.ReSa2Sampler(k1=60, k1_prime=30, k2=12)
    ref = ns.mine(DATA.queries, INDEX, DATA.positives, s, n=5, seed=4, exclude_other_positives=True)
    assert _other_count(ref, DATA.positives) == 0 == ref.stats.other_positives
    got = ns.mine_resumable(DATA.queries, INDEX, DATA.positives, s, n=5, seed=4,
                            work_dir=tmp_path / "w", chunk_size=50,
                            exclude_other_positives=True)  # fmt: skip
    _same(got, ref)
    # a slice with the whole set's positives gives the rows of the whole call
    part = ns.mine(DATA.queries[40:90], INDEX, DATA.positives[40:90], s, n=5, seed=4,
                   query_offset=40, exclude_other_positives=True,
                   set_positives=DATA.positives)  # fmt: skip
    np.testing.assert_array_equal(part.ids, ref.ids[40:90])
    with pytest.raises(ValueError, match="searches no candidates"):
        ns.mine(DATA.queries, INDEX, DATA.positives, ns.RandomSampler(), n=3,
                exclude_other_positives=True)  # fmt: skip


def test_exclusion_with_candidates_from_a_run(tmp_path: Path) -> None:
    res = INDEX.search(DATA.queries, 80)
    cands = ns.Candidates(res.ids, res.scores)
    s = ns.TopKSampler(k=40)
    got = ns.mine_resumable(None, None, DATA.positives, s, n=5, seed=1, candidates=cands,
                            work_dir=tmp_path / "w", chunk_size=60,
                            exclude_other_positives=True)  # fmt: skip
    assert _other_count(got, DATA.positives) == 0 and got.stats.removed["other_positive"] > 0
    plain = ns.mine_resumable(None, None, DATA.positives, s, n=5, seed=1, candidates=cands,
                              work_dir=tmp_path / "p", chunk_size=60)  # fmt: skip
    assert plain.stats.other_positives == _other_count(plain, DATA.positives) > 0


def test_report_has_the_other_positives_column(tmp_path: Path) -> None:
    from tests.beir_helpers import write_beir

    root = write_beir(tmp_path / "beir", n_docs=300, n_queries=20)
    ds = ns.load_beir(root, "train")
    emb = ns.load_embeddings(root / "embeddings", ds)
    rep = ns.sampler_report(ds, emb, [ns.TopKSampler(k=40)], n=4, seeds=[0])
    fr = next(iter(rep.full_runs.values()))
    negs = ns.mine(emb.queries, ns.NumpyIndex(emb.corpus), ds.positives, ns.TopKSampler(k=40),
                   n=4, seed=0)  # fmt: skip
    assert fr["other_positives"] == negs.stats.other_positives
    assert "other pos %" in rep.table() and "another query's positive" in rep.markdown()


@given(st.integers(0, 2**32))
def test_keys_are_a_function_of_seed_query_and_document(seed: int) -> None:
    qi = np.array([5, 5, 9, 5])
    d = np.array([3, 4, 3, 3])
    k = reuse_keys(seed, qi, d)
    assert k[0] == k[3] and len({k[0], k[1], k[2]}) == 3 and ((0 < k) & (k < 1)).all()


# -- the command line --------------------------------------------------------------------------


def _mine_argv(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "mine", "--data", str(root), "--embeddings", str(root / "embeddings"), "--sampler",
        "topk(k=30)", "--n", "4", "--seed", "5", "--format", "flagembedding", "--chunk-size",
        "5", "--out", str(out), "--quiet", *extra,
    ]  # fmt: skip


def _doc_uses(path: Path) -> Counter[int]:
    from tests.beir_helpers import doc_index

    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return Counter(doc_index(t) for r in rows for t in r["neg"])


def test_cli_cap_and_exclusion_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from negsample.cli import main
    from tests.beir_helpers import write_beir

    root = write_beir(tmp_path / "beir", n_docs=400, n_queries=24)
    ref, stats = tmp_path / "ref.jsonl", tmp_path / "ref.json"
    flags = ["--max-negative-reuse", "1", "--exclude-other-positives"]
    assert main([*_mine_argv(root, ref, *flags), "--stats-json", str(stats)]) == 0
    err = capsys.readouterr().err
    assert "reuse cap 1 (over 8 draws per row)" in err and "another query: 0" in err
    info = json.loads(stats.read_text())["mining"]
    assert info["reuse"]["max_after"] <= 1 < info["reuse"]["max_before"]
    assert info["removed"]["other_positive"] > 0 and info["other_positives"] == 0
    assert max(_doc_uses(ref).values()) == 1
    ds = ns.load_beir(root, "train")
    every = {int(p) for ps in ds.positives for p in ps}
    assert not set(_doc_uses(ref)) & every
    # interrupted after 2 of 5 chunks, then resumed: the same bytes
    out = tmp_path / "out.jsonl"
    assert main([*_mine_argv(root, out, *flags), "--max-chunks", "2"]) == 3
    assert main(_mine_argv(root, out, *flags)) == 0
    assert "resumed 2 of 5 chunks" in capsys.readouterr().err
    assert out.read_bytes() == ref.read_bytes()
    # without the flags: counted, not removed, and the default file is unchanged by counting
    plain, pstats = tmp_path / "plain.jsonl", tmp_path / "plain.json"
    assert main([*_mine_argv(root, plain), "--stats-json", str(pstats)]) == 0
    pinfo = json.loads(pstats.read_text())["mining"]
    assert pinfo["reuse"] is None and "other_positive" not in pinfo["removed"]
    assert pinfo["other_positives"] == sum(c for d, c in _doc_uses(plain).items() if d in every)


def test_cli_cap_composes_with_a_judge(tmp_path: Path) -> None:
    from negsample.cli import main
    from tests.beir_helpers import doc_index, write_beir
    from tests.test_scoring_llm import Server

    server = Server(lambda doc, attempt, req: (200, {}, "FN" if doc_index(doc) % 3 == 0
                                               else "HN", 0.0))  # fmt: skip
    try:
        root = write_beir(tmp_path / "beir", n_docs=400, n_queries=24)
        out, stats = tmp_path / "o.jsonl", tmp_path / "s.json"
        argv = _mine_argv(root, out, "--max-negative-reuse", "1", "--judge-url", server.url,
                          "--judge-model", "m", "--judge-cache", str(tmp_path / "j.sqlite"),
                          "--stats-json", str(stats))  # fmt: skip
        assert main(argv) == 0
    finally:
        server.close()
    uses = _doc_uses(out)
    assert max(uses.values()) == 1 and not any(d % 3 == 0 for d in uses)
    info = json.loads(stats.read_text())
    assert info["mining"]["reuse"]["max_after"] == 1 and info["denoise"]["removed"]["judge_fn"]


def test_cli_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from negsample.cli import main
    from tests.beir_helpers import write_beir

    root = write_beir(tmp_path / "beir", n_docs=400, n_queries=24)
    argv = _mine_argv(root, tmp_path / "o.jsonl")
    at = argv.index("topk(k=30)")
    bad = [*argv[:at], "random", *argv[at + 1 :], "--exclude-other-positives"]
    assert main(bad) == 2
    assert "RandomSampler searches none" in capsys.readouterr().err
    assert main([*argv, "--max-negative-reuse", "0"]) == 2
    assert main([*argv, "--max-negative-reuse", "2", "--reuse-oversample", "0.5"]) == 2
    assert "must be a finite number >= 1" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()

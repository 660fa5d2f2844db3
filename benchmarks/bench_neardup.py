"""Near-duplicate exclusion on real BEIR data (issue 19, item 5): what each rule removes,
what it does to false negatives and hardness, and what it costs.

On NFCorpus and SciFact (train qrels; the precomputed all-MiniLM-L6-v2 embeddings of
``../shared/data``, L2-normalised, so the inner product is the cosine; exact search,
``NumpyIndex``), for TopK (random of the top 200) and ReSa2 (its defaults, k1 = 1000):

1. **Removed, every positive shown** (mining as ``negsample mine`` does): the exact
   duplicate rule (the default), the normalised-text rule (``near_duplicate_texts``) and
   the embedding rule ``Filters(near_duplicate=t)`` at t = 0.9 / 0.95 / 0.98 (with the
   text rule, as ``--near-duplicate t`` runs them): candidates removed by each
   (``excluded`` and ``near_duplicate`` in ``stats.removed``). **Cost**: the seconds of
   ``mine()`` with the default rules and with ``--near-duplicate 0.95``'s, side by side
   (both in every round, order alternating), medians over ``--repeats``; the text rules'
   own seconds apart (the hashing of every document's normalised text).
2. **The hidden-positive protocol** (``negsample.hidden_positive_protocol``'s rule, run here
   step by step so that the text rule can be given too): for every query with two or more
   positives the miner is shown one (``hide_positives``, per seed) and both rules see that
   one only; a sampled negative that is a hidden positive is a false negative. FN rate,
   hardness (mean ``s(q, d-)``), short rows, and the candidates the rules removed, mean over
   ``--seeds``.

    python benchmarks/bench_neardup.py           # 3 seeds, 3 repeats
    python benchmarks/bench_neardup.py --quick   # 1 seed, 1 repeat

Writes benchmarks/results/bench_neardup{,_quick}.json and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

import negsample as ns

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEGSAMPLE_SHARED_DATA", ROOT.parent / "shared" / "data"))
MODEL = "all-MiniLM-L6-v2"
THRESHOLDS = (0.9, 0.95, 0.98)
SAMPLERS = {"TopK k=200": ns.TopKSampler(k=200), "ReSa2": ns.ReSa2Sampler()}


def configs() -> list[tuple[str, bool, float | None]]:
    """(label, normalised-text rule, embedding threshold): the rows of each table."""
    return [("exact duplicates (default)", False, None), ("+ normalised text", True, None)] + [
        (f"+ text + cos >= {t}", True, t) for t in THRESHOLDS
    ]


def load(name: str) -> tuple[ns.BeirDataset, Any, ns.NumpyIndex]:
    ds = ns.load_beir(SHARED / name, "train")
    emb = ns.load_embeddings(SHARED / name / "embeddings" / MODEL, ds)
    corpus = np.ascontiguousarray(emb.corpus, dtype=np.float32)  # in memory, as mined
    return ds, emb._replace(corpus=corpus), ns.NumpyIndex(corpus)


def text_rules(ds: ns.BeirDataset, repeats: int) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """Both text rules' exclusions and their seconds (medians), side by side."""
    t_exact, t_norm = [], []
    exact = near = []
    for _ in range(repeats):
        t = time.perf_counter()
        exact = ds.duplicate_texts()
        t_exact.append(time.perf_counter() - t)
        t = time.perf_counter()
        near = ds.near_duplicate_texts()
        t_norm.append(time.perf_counter() - t)
    info = {
        "exact_pairs": int(sum(e.size for e in exact)),
        "normalised_pairs": int(sum(e.size for e in near)),
        "exact_seconds": C.median(t_exact),
        "normalised_seconds": C.median(t_norm),
        "document_mb": round(ds.document_texts.nbytes / 2**20, 1)
        if hasattr(ds.document_texts, "nbytes")
        else None,
    }
    return info, exact, near


#: The configurations timed side by side (the others are mined once, for their counts).
TIMED = ("exact duplicates (default)", "+ text + cos >= 0.95")


def removal_table(
    ds: ns.BeirDataset, emb: Any, index: ns.NumpyIndex, repeats: int
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Counts of every configuration (one run each), and the seconds of the default
    against ``--near-duplicate 0.95`` (both rules): ``repeats`` rounds, both in each round
    (order alternating), medians."""
    info, exact, near = text_rules(ds, repeats)
    rows, timing = [], []
    cfg = {c[0]: c for c in configs()}

    def run(sampler: Any, name: str) -> tuple[Any, float]:
        _, text, t = cfg[name]
        f = None if t is None else ns.Filters(near_duplicate=t)
        t0 = time.perf_counter()
        negs = ns.mine(
            emb.queries,
            index,
            ds.positives,
            sampler,
            n=7,
            seed=0,
            filters=f,
            exclude=near if text else exact,
        )
        return negs.stats, time.perf_counter() - t0

    for label, sampler in SAMPLERS.items():
        run(sampler, TIMED[0])  # warm-up
        seconds: dict[str, list[float]] = {name: [] for name in TIMED}
        for rep in range(repeats):
            for name in TIMED if rep % 2 == 0 else TIMED[::-1]:
                seconds[name].append(run(sampler, name)[1])
        base, with_rule = (C.median(seconds[name]) for name in TIMED)
        timing.append(
            {
                "sampler": label,
                "default_seconds": base,
                "near_duplicate_0.95_seconds": with_rule,
                "ratio": with_rule / base,
                "runs": seconds,
            }
        )
        for name in cfg:
            st, _ = run(sampler, name)
            rows.append(
                {
                    "sampler": label,
                    "config": name,
                    "candidates_seen": st.candidates_seen,
                    "excluded": st.removed.get("excluded", 0),
                    "near_duplicate": st.removed.get("near_duplicate", 0),
                    "short_rows": st.short_rows,
                }
            )
    return info, rows, timing


def protocol_table(
    ds: ns.BeirDataset, emb: Any, index: ns.NumpyIndex, seeds: list[int]
) -> list[dict[str, Any]]:
    out = []
    acc: dict[tuple[str, str], list[dict[str, float]]] = {}
    oracle: dict[tuple[str, float], list[tuple[int, int, int]]] = {}
    n_eval = 0
    for seed in seeds:
        split = ns.hide_positives(ds.positives, seed, ds.n_corpus)
        n_eval = int(split.query_rows.size)
        shown = [np.array([s], np.int64) for s in split.shown.tolist()]
        sub = dataclasses.replace(ds, positives=shown, relevance=[np.ones(1, np.int64)] * n_eval)
        exact, near = sub.duplicate_texts(), sub.near_duplicate_texts()
        q = np.ascontiguousarray(emb.queries[split.query_rows])
        for label, sampler in SAMPLERS.items():
            # the sampler's candidate list (its depth, exact duplicates excluded): how many
            # are near copies of the shown positive, and how many of those hidden positives
            depth = sampler.depth
            top = ns.TopKSampler(k=depth, strategy="top", on_shortfall="pad")
            cands = ns.mine(q, index, shown, top, n=depth, seed=0, exclude=exact).ids
            vec = emb.corpus[np.maximum(cands, 0)]
            cos = np.einsum("qd,qkd->qk", emb.corpus[split.shown], vec)
            hid = np.stack([np.isin(c, h) for c, h in zip(cands, split.hidden, strict=True)])
            for t in THRESHOLDS:
                is_near = (cos >= t) & (cands >= 0)
                oracle.setdefault((label, t), []).append(
                    (
                        int(is_near.sum()),
                        int((is_near & hid).sum()),
                        int(((cands >= 0) & hid).sum()),
                    )
                )
            for name, text, t in configs():
                f = None if t is None else ns.Filters(near_duplicate=t)
                negs = ns.mine(
                    q,
                    index,
                    shown,
                    sampler,
                    n=7,
                    seed=seed,
                    filters=f,
                    exclude=near if text else exact,
                )
                qual = ns.negative_quality(negs, split.hidden)
                acc.setdefault((label, name), []).append(
                    {
                        "fn_rate": qual.fn_rate,
                        "hardness": qual.hardness,
                        "short_rows": negs.stats.short_rows,
                        "excluded": negs.stats.removed.get("excluded", 0),
                        "near_duplicate": negs.stats.removed.get("near_duplicate", 0),
                    }
                )
    for (label, name), runs in acc.items():
        row: dict[str, Any] = {"sampler": label, "config": name, "queries": n_eval}
        for key in runs[0]:
            row[key] = float(np.mean([r[key] for r in runs]))
        row["fn_rate_std"] = (
            float(np.std([r["fn_rate"] for r in runs], ddof=1)) if len(runs) > 1 else float("nan")
        )
        out.append(row)
    for (label, t), runs in oracle.items():
        out.append(
            {
                "sampler": label,
                "threshold": t,
                "candidates_near": float(np.mean([r[0] for r in runs])),
                "near_that_are_hidden_positives": float(np.mean([r[1] for r in runs])),
                "hidden_positives_among_candidates": float(np.mean([r[2] for r in runs])),
            }
        )
    return out


def _section(
    name: str,
    ds: ns.BeirDataset,
    n_pos: int,
    text: dict[str, Any],
    removal: list[dict[str, Any]],
    timing: list[dict[str, Any]],
    proto: list[dict[str, Any]],
    repeats: int,
    seeds: list[int],
) -> str:
    removed = C.markdown_table(
        ["sampler", "rules", "candidates seen", "excluded", "near_duplicate", "short rows"],
        [
            [
                r["sampler"],
                r["config"],
                r["candidates_seen"],
                r["excluded"],
                r["near_duplicate"],
                r["short_rows"],
            ]
            for r in removal
        ],
    )
    cost = C.markdown_table(
        ["sampler", "default (s)", "--near-duplicate 0.95 (s)", "ratio"],
        [
            [
                r["sampler"],
                round(r["default_seconds"], 2),
                round(r["near_duplicate_0.95_seconds"], 2),
                f"{r['ratio']:.2f}x",
            ]
            for r in timing
        ],
    )
    near = [r for r in proto if "threshold" in r]
    proto = [r for r in proto if "threshold" not in r]
    oracle = C.markdown_table(
        [
            "sampler (its candidates)",
            "cos >=",
            "near copies of the shown positive",
            "of which hidden positives",
            "hidden positives among the candidates",
        ],
        [
            [
                r["sampler"],
                r["threshold"],
                round(r["candidates_near"], 1),
                round(r["near_that_are_hidden_positives"], 1),
                round(r["hidden_positives_among_candidates"], 1),
            ]
            for r in near
        ],
    )
    fn = C.markdown_table(
        ["sampler", "rules", "FN rate %", "hardness", "short rows", "excluded", "near_duplicate"],
        [
            [
                r["sampler"],
                r["config"],
                f"{100 * r['fn_rate']:.2f}",
                f"{r['hardness']:.4f}",
                round(r["short_rows"], 1),
                round(r["excluded"], 1),
                round(r["near_duplicate"], 1),
            ]
            for r in proto
        ],
    )
    return (
        f"### {name} (train: {ds.n_corpus:,} documents, {ds.n_queries:,} queries, "
        f"{n_pos:,} positives)\n\n"
        f"Text rules: {text['exact_pairs']:,} (query, document) pairs with an identical text "
        f"({text['exact_seconds']:.2f} s), {text['normalised_pairs']:,} with an equal "
        f"normalised text ({text['normalised_seconds']:.2f} s, {text['document_mb']} MB of "
        "documents hashed).\n\n"
        f"Removed, every positive shown (n = 7, seed 0):\n\n{removed}\n\n"
        "Cost: seconds of `mine()` with the default rules and with both near-duplicate "
        f"rules at 0.95, side by side, median of {repeats} (text rules' own seconds "
        f"above):\n\n{cost}\n\n"
        f"Hidden-positive protocol ({proto[0]['queries']:,} queries with two or more "
        f"positives, one shown; mean over seeds {seeds}):\n\n{fn}\n\n"
        "Among each sampler's candidate list (its search depth, exact duplicates of the shown "
        "positive excluded), the near copies of the shown positive by the embedding rule and "
        f"how many are hidden positives (mean over seeds):\n\n{oracle}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, 1 repeat")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--datasets", nargs="+", default=["nfcorpus", "scifact"])
    args = ap.parse_args(argv)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    repeats = args.repeats or (1 if args.quick else 3)
    for name in args.datasets:
        if not (SHARED / name / "embeddings" / MODEL / "corpus.npy").is_file():
            print(f"{SHARED / name}: dataset or embeddings not found", file=sys.stderr)
            return 2
    load_before = os.getloadavg()
    t_all = time.perf_counter()
    results: dict[str, Any] = {}
    md = []
    for name in args.datasets:
        ds, emb, index = load(name)
        n_pos = sum(p.size for p in ds.positives)
        print(
            f"{name}: {ds.n_corpus} docs, {ds.n_queries} queries, {n_pos} positives",
            file=sys.stderr,
        )
        text, removal, timing = removal_table(ds, emb, index, repeats)
        proto = protocol_table(ds, emb, index, seeds)
        results[name] = {
            "text_rules": text,
            "removed": removal,
            "timing": timing,
            "protocol": proto,
        }
        md.append(_section(name, ds, n_pos, text, removal, timing, proto, repeats, seeds))
    machine = C.machine()
    command = "python benchmarks/bench_neardup.py" + (" --quick" if args.quick else "")
    extra = " ".join(a for a in (argv if argv is not None else sys.argv[1:]) if a != "--quick")
    command += f" {extra}" if extra else ""
    payload = {
        "command": command,
        "machine": machine,
        "load": C.load_note(load_before, os.getloadavg()),
        "seeds": seeds,
        "repeats": repeats,
        "wall_seconds": round(time.perf_counter() - t_all, 1),
        "datasets": results,
    }
    header = (
        f"Near-duplicate exclusion on real BEIR data, `{command}` "
        f"({payload['wall_seconds']} s; {machine.get('cpu', '?')}, "
        f"{machine['affinity']} CPUs; {payload['load']}; CPU only, not measured on a GPU). "
        "Exact search (`NumpyIndex`) over the precomputed all-MiniLM-L6-v2 vectors "
        "(L2-normalised: inner product = cosine); TopK = random of the top 200, ReSa2 = its "
        "defaults (k1 = 1000).\n\n"
    )
    C.write_results(
        "bench_neardup_quick" if args.quick else "bench_neardup", payload, header + "\n\n".join(md)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

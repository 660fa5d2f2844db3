"""A false-negative filter on NFCorpus with a SIMULATED judge (the hidden-positive protocol).

This is a simulation, not an LLM run: the "judge" is an oracle that knows the hidden
positives of the protocol and errs at a set rate. For every (query, candidate) it is asked,
it gives the true label (FN for a hidden positive, HN otherwise) with probability
``accuracy`` and the wrong one otherwise, the error drawn from a hash of (seed, query,
document): reproducible, and the same pair always gets the same answer. accuracy 0.82 is the
agreement with human labels the ReSa2 appendix reports for its LLM (Li et al., ACML 2025);
1.0 is a perfect judge. The same error rate applies to both classes, so an 82% judge also
discards 18% of the true negatives it sees (each costs one more judge call).

For each sampler and seed, on the 2,402 NFCorpus train queries with two or more positives
(one shown, the others hidden; ``negsample.hide_positives``): the negatives of
``negsample.mine`` (before) and of ``negsample.scoring.mine_denoised`` with the simulated
judge (after: the first n draws the judge does not call FN, widened when a row runs out),
their FN rate and hardness (mean s(q, d-)), how far each moves against the TopK frontier
(TopK's FN rate interpolated between its k values at the sampler's hardness, from the
unfiltered TopK runs), and the judge calls per 1,000 queries.

    .venv/bin/python benchmarks/bench_judge_nfcorpus.py

Writes ``results/judge_nfcorpus.json``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine
from bench_fn_nfcorpus import DEFAULT_DATA, MODEL, load_nfcorpus

import negsample as ns
from negsample.scoring import JudgeItem, Label, ScoringStats, mine_denoised

ROOT = Path(__file__).resolve().parents[1]

SAMPLERS: list[tuple[str, str, dict[str, Any]]] = [
    ("TopK k=200", "topk", {"k": 200}),
    ("SimANS T=0.05", "simans", {"temperature": 0.05}),
    ("TriSampler T2", "trisampler", {"variant": "T2"}),
    ("ReSa2", "resa2", {}),
]
FRONTIER_K = (10, 30, 75, 200, 1000)


class SimulatedJudge:
    """The oracle of the hidden-positive protocol, wrong with probability ``1 - accuracy``
    (per pair, from a hash of (seed, query, document)). Items name the query row and the
    document id in their texts (``q12``, ``d345``)."""

    def __init__(self, hidden: Sequence[np.ndarray], accuracy: float, seed: int) -> None:
        self.hidden = [set(h.tolist()) for h in hidden]
        self.accuracy = accuracy
        self.seed = seed
        self.name = f"simulated(accuracy={accuracy})"
        self.stats = ScoringStats()
        self.caught = 0  # hidden positives labelled FN
        self.missed = 0  # hidden positives labelled HN (they are written)
        self.false_alarms = 0  # true negatives labelled FN (discarded)

    def _wrong(self, q: int, d: int) -> bool:
        if self.accuracy >= 1.0:
            return False
        h = hashlib.blake2b(f"{self.seed}:{q}:{d}".encode(), digest_size=8).digest()
        return int.from_bytes(h, "big") / 2**64 >= self.accuracy

    def judge(self, items: Sequence[JudgeItem]) -> list[Label | None]:
        out: list[Label | None] = []
        for it in items:
            q, d = int(it.query[1:]), int(it.document[1:])
            is_fn = d in self.hidden[q]
            wrong = self._wrong(q, d)
            if is_fn and not wrong:
                self.caught += 1
            elif is_fn:
                self.missed += 1
            elif wrong:
                self.false_alarms += 1
            out.append("FN" if is_fn != wrong else "HN")
        self.stats.add(pairs=len(items), requests=len(items))
        return out


def frontier(points: list[tuple[float, float]], h: float) -> float | None:
    """TopK's FN rate at hardness ``h``, linear between TopK points (None outside them)."""
    pts = sorted(points)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    if not xs[0] <= h <= xs[-1]:
        return None
    return float(np.interp(h, xs, ys))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("-n", type=int, default=7)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--accuracies", type=float, nargs="+", default=[1.0, 0.9, 0.82])
    ap.add_argument("--oversample", type=float, default=2.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    if not (args.data / "embeddings" / MODEL / "corpus.npy").is_file():
        print(f"NFCorpus embeddings not found under {args.data}", file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    queries, corpus, positives, _ = load_nfcorpus(args.data, "train")
    index = ns.NumpyIndex(corpus)
    doc_texts = [f"d{i}" for i in range(corpus.shape[0])]
    samplers = {lab: ns.get_sampler(name, **kw) for lab, name, kw in SAMPLERS}
    topk = {f"TopK k={k}": ns.TopKSampler(k=k) for k in FRONTIER_K}
    runs: list[dict[str, Any]] = []
    for seed in args.seeds:
        split = ns.hide_positives(positives, seed, corpus.shape[0])
        q_sub = np.ascontiguousarray(queries[split.query_rows])
        shown = split.shown[:, None]
        q_texts = [f"q{i}" for i in range(q_sub.shape[0])]
        n_q = q_sub.shape[0]
        for label, sampler in {**topk, **samplers}.items():
            t0 = time.perf_counter()
            before = ns.mine(q_sub, index, shown, sampler, n=args.n, seed=seed)
            qb = ns.negative_quality(before, split.hidden)
            base = {
                "sampler": label,
                "repr": repr(sampler),
                "seed": seed,
                "n_queries": n_q,
                "fn_rate_before": qb.fn_rate,
                "hardness_before": qb.hardness,
                "short_rows_before": before.stats.short_rows,
                "mine_seconds": time.perf_counter() - t0,
            }
            for acc in args.accuracies:
                judge = SimulatedJudge(split.hidden, acc, seed)
                t1 = time.perf_counter()
                res = mine_denoised(
                    q_sub,
                    index,
                    shown,
                    sampler,
                    query_texts=q_texts,
                    document_texts=doc_texts,
                    n=args.n,
                    seed=seed,
                    judge=judge,
                    oversample=args.oversample,
                )
                qa = ns.negative_quality(res.negatives, split.hidden)
                st = res.stats
                runs.append(
                    {
                        **base,
                        "accuracy": acc,
                        "fn_rate_after": qa.fn_rate,
                        "hardness_after": qa.hardness,
                        "false_negatives_after": qa.false_negatives,
                        "negatives_after": qa.n_negatives,
                        "judge_calls": st.candidates_checked,
                        "judge_calls_per_1000_queries": 1000 * st.candidates_checked / n_q,
                        "caught": judge.caught,
                        "missed": judge.missed,
                        "false_alarms": judge.false_alarms,
                        "short_rows_after": st.short_rows,
                        "padded_after": st.padded,
                        "widened_rows": st.widened_rows,
                        "redraw_calls": st.redraw_calls,
                        "max_draws": st.max_draws,
                        "denoise_seconds": time.perf_counter() - t1,
                    }
                )
            print(
                f"seed {seed} {label:14s} FN {100 * qb.fn_rate:5.2f}% -> "
                + ", ".join(
                    f"{r['accuracy']:.2f}: {100 * r['fn_rate_after']:5.2f}%"
                    for r in runs
                    if r["sampler"] == label and r["seed"] == seed
                ),
                file=sys.stderr,
            )

    # means over seeds
    def mean(rows: list[dict[str, Any]], key: str) -> float:
        return float(np.mean([r[key] for r in rows]))

    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["sampler"], r["accuracy"]), []).append(r)
    front_before = [
        (
            mean(groups[(f"TopK k={k}", args.accuracies[0])], "hardness_before"),
            mean(groups[(f"TopK k={k}", args.accuracies[0])], "fn_rate_before"),
        )
        for k in FRONTIER_K
    ]
    front_after = {
        acc: [
            (
                mean(groups[(f"TopK k={k}", acc)], "hardness_after"),
                mean(groups[(f"TopK k={k}", acc)], "fn_rate_after"),
            )
            for k in FRONTIER_K
        ]
        for acc in args.accuracies
    }
    order = [*topk, *samplers]
    summary = []
    for (label, acc), rows in sorted(
        groups.items(), key=lambda kv: (-kv[0][1], order.index(kv[0][0]))
    ):
        hb, fb = mean(rows, "hardness_before"), mean(rows, "fn_rate_before")
        ha, fa = mean(rows, "hardness_after"), mean(rows, "fn_rate_after")
        refb, refa = frontier(front_before, hb), frontier(front_before, ha)
        ref_f = frontier(front_after[acc], ha)
        summary.append(
            {
                "sampler": label,
                "accuracy": acc,
                "n_seeds": len(rows),
                "fn_rate_before": fb,
                "fn_rate_before_std": float(np.std([r["fn_rate_before"] for r in rows], ddof=1))
                if len(rows) > 1
                else float("nan"),
                "fn_rate_after": fa,
                "fn_rate_after_std": float(np.std([r["fn_rate_after"] for r in rows], ddof=1))
                if len(rows) > 1
                else float("nan"),
                "hardness_before": hb,
                "hardness_after": ha,
                "frontier_ratio_before": fb / refb if refb else None,
                "frontier_ratio_after": fa / refa if refa else None,
                "filtered_frontier_ratio_after": fa / ref_f if ref_f else None,
                "judge_calls_per_1000_queries": mean(rows, "judge_calls_per_1000_queries"),
                "caught": mean(rows, "caught"),
                "missed": mean(rows, "missed"),
                "false_alarms": mean(rows, "false_alarms"),
                "short_rows_after": mean(rows, "short_rows_after"),
                "padded_after": mean(rows, "padded_after"),
                "widened_rows": mean(rows, "widened_rows"),
            }
        )
    load_after = os.getloadavg()
    info = machine()
    command = "python benchmarks/bench_judge_nfcorpus.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    meta = {
        "command": command.strip(),
        "commit": _commit(),
        "simulation": "oracle judge of the hidden-positive protocol, symmetric error rate "
        "1 - accuracy, errors hashed from (seed, query, document)",
        "dataset": f"NFCorpus train qrels, {MODEL} embeddings, exact NumpyIndex",
        "n": args.n,
        "seeds": args.seeds,
        "accuracies": args.accuracies,
        "oversample": args.oversample,
        "n_queries": runs[0]["n_queries"] if runs else 0,
        "machine": info,
        "load": f"1-min load average {load_before[0]:.2f} before, {load_after[0]:.2f} after",
        "wall_seconds": round(time.perf_counter() - t_start, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "judge_nfcorpus.json").write_text(
        json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=2, default=float) + "\n"
    )
    md = markdown(summary, meta)
    (args.out / "judge_nfcorpus.md").write_text(md)
    plot(summary, front_before, args.out / "judge_nfcorpus.png", meta)
    print(md)
    return 0


def _commit() -> str:
    """The checked-out commit (``+dirty`` when the tree has changes), or ``unknown``."""
    import subprocess

    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def markdown(summary: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"SIMULATED judge (an oracle of the hidden positives that errs at a set rate; not an "
        f"LLM) on NFCorpus: {meta['n_queries']} train queries with two or more positives, "
        f"n = {meta['n']}, seeds {meta['seeds']} (mean over seeds, ± std), first draw "
        f"{meta['oversample']} x n, widened when a row runs out.",
        "",
        "| sampler | judge accuracy | FN before (%) | FN after (%) | hardness before | hardness "
        "after | vs TopK frontier before | after | after, vs filtered TopK | judge calls / "
        "1,000 queries | hidden positives caught / missed per run | good negatives discarded "
        "per run | short rows |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summary:
        lines.append(
            f"| {s['sampler']} | {s['accuracy']:.2f} "
            f"| {_pct(s['fn_rate_before'])} ± {_pct(s['fn_rate_before_std'])} "
            f"| {_pct(s['fn_rate_after'])} ± {_pct(s['fn_rate_after_std'])} "
            f"| {s['hardness_before']:.4f} | {s['hardness_after']:.4f} "
            f"| {_ratio(s['frontier_ratio_before'])} | {_ratio(s['frontier_ratio_after'])} "
            f"| {_ratio(s['filtered_frontier_ratio_after'])} "
            f"| {s['judge_calls_per_1000_queries']:,.0f} "
            f"| {s['caught']:.0f} / {s['missed']:.0f} | {s['false_alarms']:.0f} "
            f"| {s['short_rows_after']:.1f} |"
        )
    lines += [
        "",
        "'vs TopK frontier': the FN rate divided by the unfiltered TopK FN rate interpolated "
        "at the same hardness (k = 10 ... 1000); below 1 is better than TopK; '-' outside the "
        "TopK range. 'vs filtered TopK': the same against the TopK points after the same "
        "filter (same judge accuracy): does the sampler still beat or trail TopK once both are "
        "filtered ('-' with a perfect judge, where every FN rate is 0). 'judge calls': "
        "candidates the judge was asked about (every call counts; a real judge with the cache "
        "asks each pair once).",
        "",
        f"Command: `{meta['command']}` at {meta['commit']} ({meta['wall_seconds']} s; "
        f"{meta['load']}).",
        "",
    ]
    return "\n".join(lines)


def plot(
    summary: list[dict[str, Any]],
    front: list[tuple[float, float]],
    path: Path,
    meta: dict[str, Any],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    accs = sorted({s["accuracy"] for s in summary}, reverse=True)
    fig, axes = plt.subplots(1, len(accs), figsize=(5.2 * len(accs), 4.6), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, acc in zip(axes, accs, strict=True):
        pts = sorted(front)
        ax.plot(
            [p[0] for p in pts],
            [100 * p[1] for p in pts],
            "-o",
            color="0.6",
            ms=4,
            label="TopK frontier (no filter)",
        )
        for s in summary:
            if s["accuracy"] != acc or (
                s["sampler"].startswith("TopK k=") and s["sampler"] != "TopK k=200"
            ):
                continue
            b = (s["hardness_before"], 100 * s["fn_rate_before"])
            a = (s["hardness_after"], 100 * s["fn_rate_after"])
            line = ax.annotate("", xy=a, xytext=b, arrowprops={"arrowstyle": "->", "lw": 1.2})
            del line
            ax.plot(*a, "o", label=s["sampler"])
        filtered = sorted(
            (s["hardness_after"], 100 * s["fn_rate_after"])
            for s in summary
            if s["accuracy"] == acc and s["sampler"].startswith("TopK k=")
        )
        ax.plot(
            [p[0] for p in filtered],
            [p[1] for p in filtered],
            "--",
            color="0.3",
            lw=1,
            label="TopK after the filter",
        )
        ax.set_title(f"simulated judge, accuracy {acc:.2f}", fontsize=10)
        ax.set_xlabel("hardness: mean s(q, d-)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("FN rate (%)")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(
        f"NFCorpus, FN filter with a SIMULATED judge (arrows: before -> after), n={meta['n']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())

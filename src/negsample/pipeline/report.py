"""Comparing samplers on a labelled split: the hidden-positive protocol (FN rate against
hardness), the score distributions of positives and negatives, and shortfalls; as a
table, PNG plots and a markdown summary."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._optional import require
from ..candidates import positive_scores_for
from ..index.base import Index, prepare_queries
from ..io.writers import atomic_path
from ..mining import mine
from ..samplers.base import BaseSampler
from .dataset import build_index

if TYPE_CHECKING:
    from ..evaluation import ProtocolRow, ProtocolSummary
    from ..io.data import BeirDataset
    from ..io.encoding import DatasetEmbeddings

__all__ = ["SamplerReport", "sampler_report"]

_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_DENOISED_KEYS = (
    "fn_rate_before",
    "fn_rate_after",
    "hardness_before",
    "hardness_after",
    "checked_per_query",
    "judged_fn_share",
    "short_rows",
)


@dataclass
class ScoreStats:
    """Summary of a set of scores: count, mean and the 5/25/50/75/95% quantiles."""

    count: int
    mean: float
    quantiles: dict[str, float]

    @classmethod
    def of(cls, x: npt.NDArray[np.floating[Any]]) -> ScoreStats:
        x = x[np.isfinite(x)]
        if x.size == 0:
            return cls(0, float("nan"), {f"{q:g}": float("nan") for q in _QUANTILES})
        qs = np.quantile(x, _QUANTILES)
        return cls(
            int(x.size),
            float(x.mean()),
            {f"{q:g}": float(v) for q, v in zip(_QUANTILES, qs, strict=True)},
        )


@dataclass
class SamplerReport:
    """What :func:`sampler_report` measured.

    Attributes
    ----------
    protocol : one :class:`~negsample.ProtocolRow` per (sampler, seed).
    summaries : :func:`~negsample.summarize` of ``protocol``, one per sampler.
    positive_scores : ``s(q, d+)`` of every labelled positive of the split.
    negative_scores : per sampler label, ``s(q, d-)`` of the negatives mined on the full
        split (all positives shown, first seed).
    full_runs : per sampler label, the shortfall counters and seconds of that full run,
        and ``other_positives``: its sampled negatives that are a labelled positive of
        another query of the split (``negsample mine --exclude-other-positives`` removes
        them; with in-batch negatives they contradict that query's positive).
    meta : dataset, split, ``n``, seeds, index.
    denoised : with a scorer or a judge, one entry per (sampler, seed): the protocol's FN
        rate and hardness before and after :func:`negsample.scoring.mine_denoised` (same
        shown positives, same seed), candidates checked per query, the judge's labels and
        what was removed. Empty otherwise.
    """

    protocol: list[ProtocolRow]
    summaries: list[ProtocolSummary]
    positive_scores: npt.NDArray[np.float32]
    negative_scores: dict[str, npt.NDArray[np.float32]]
    full_runs: dict[str, dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)
    denoised: list[dict[str, Any]] = field(default_factory=list)

    def denoised_summary(self) -> list[dict[str, Any]]:
        """:attr:`denoised` averaged over seeds, one entry per sampler label."""
        out = []
        for label in dict.fromkeys(d["label"] for d in self.denoised):
            ds = [d for d in self.denoised if d["label"] == label]
            mean = {key: float(np.mean([d[key] for d in ds])) for key in _DENOISED_KEYS}
            out.append({"label": label, "seeds": len(ds), **mean})
        return out

    def table(self) -> str:
        """A plain-text table: FN rate and hardness (protocol, mean +- std over seeds),
        the median negative score, the shortfalls of the full run and the share of its
        negatives that are another query's positive."""
        head = (
            f"{'sampler':<44} {'FN rate %':>14} {'hardness':>16} {'median s-':>9} "
            f"{'short rows':>10} {'padded':>7} {'other pos %':>11}"
        )
        lines = [head, "-" * len(head)]
        for s in self.summaries:
            label = s.label if len(s.label) <= 44 else s.label[:41] + "..."
            neg = ScoreStats.of(self.negative_scores[s.label])
            fr = self.full_runs[s.label]
            lines.append(
                f"{label:<44} {_pm(100 * s.fn_rate_mean, 100 * s.fn_rate_std, 2):>14} "
                f"{_pm(s.hardness_mean, s.hardness_std, 3):>16} {neg.quantiles['0.5']:>9.3f} "
                f"{fr['short_rows']:>10d} {fr['padded']:>7d} {_other_share(fr, neg.count):>11}"
            )
        pos = ScoreStats.of(self.positive_scores)
        lines.append(
            f"\npositives: median s(q,d+) {pos.quantiles['0.5']:.3f} over {pos.count} judgements; "
            f"FN rate and hardness from the hidden-positive protocol on "
            f"{self.meta.get('protocol_queries', '?')} queries with 2+ positives"
        )
        if self.denoised:
            lines += ["", self._denoised_table()]
        return "\n".join(lines)

    def _denoised_table(self) -> str:
        head = (
            f"{'after denoising (' + str(self.meta.get('denoised_by', '')) + ')':<44} "
            f"{'FN before %':>11} {'FN after %':>10} {'hardness after':>14} "
            f"{'checked/query':>13} {'judged FN %':>11} {'short rows':>10}"
        )
        lines = [head, "-" * len(head)]
        for d in self.denoised_summary():
            label = d["label"] if len(d["label"]) <= 44 else d["label"][:41] + "..."
            lines.append(
                f"{label:<44} {100 * d['fn_rate_before']:>11.2f} {100 * d['fn_rate_after']:>10.2f} "
                f"{d['hardness_after']:>14.3f} {d['checked_per_query']:>13.2f} "
                f"{100 * d['judged_fn_share']:>11.2f} {d['short_rows']:>10.0f}"
            )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "protocol": [r.as_dict() for r in self.protocol],
            "summaries": [s.as_dict() for s in self.summaries],
            "positive_scores": ScoreStats.of(self.positive_scores).__dict__,
            "negative_scores": {
                k: ScoreStats.of(v).__dict__ for k, v in self.negative_scores.items()
            },
            "full_runs": self.full_runs,
            "denoised": self.denoised,
            "denoised_summary": self.denoised_summary(),
        }

    def markdown(self, images: Sequence[str] = ()) -> str:
        from ..evaluation import summary_table

        m = self.meta
        out = [
            f"# Negative sampling report: {m.get('dataset', '')} [{m.get('split', '')}]",
            "",
            f"{m.get('n_corpus')} documents, {m.get('n_queries')} queries; n = {m.get('n')} "
            f"negatives per query; seeds {m.get('seeds')}; index {m.get('index')}.",
            "",
            "## Hidden-positive protocol",
            "",
            f"On the {m.get('protocol_queries')} queries with two or more positives, each "
            "sampler is shown one positive and the others are hidden; a sampled negative that "
            "is a hidden positive is a false negative. FN rate alone rewards easy negatives, "
            "so read it beside the hardness (mean s(q,d-)): compare samplers as a frontier.",
            "",
            summary_table(self.summaries),
            "",
            "## Score distributions (all positives shown, first seed)",
            "",
            "| scores | count | mean | 5% | 25% | median | 75% | 95% | short rows | padded "
            "| another query's positive |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        rows: list[tuple[str, npt.NDArray[np.float32], dict[str, Any] | None]] = [
            ("positives s(q,d+)", self.positive_scores, None)
        ]
        rows += [(k, v, self.full_runs[k]) for k, v in self.negative_scores.items()]
        for name, x, fr in rows:
            st = ScoreStats.of(x)
            q = st.quantiles
            tail = (
                f"{fr['short_rows']} | {fr['padded']} | {fr['other_positives']} "
                f"({_other_share(fr, st.count)}%)"
                if fr
                else "- | - | -"
            )
            out.append(
                f"| {name} | {st.count} | {st.mean:.4f} | {q['0.05']:.4f} | {q['0.25']:.4f} "
                f"| {q['0.5']:.4f} | {q['0.75']:.4f} | {q['0.95']:.4f} | {tail} |"
            )
        if self.denoised:
            out += [
                "",
                f"## After denoising ({m.get('denoised_by', '')})",
                "",
                "The same protocol (same shown positives, same seeds), the sampler's draws then "
                "walked in draw order and kept only when they pass the teacher's margins and the "
                "judge (`negsample.scoring.mine_denoised`). A judge told only the shown positive "
                "cannot see the hidden ones: what it removes, it removes from its own reading.",
                "",
                "| sampler | FN before % | FN after % | hardness before | hardness after "
                "| checked per query | judged FN % | short rows |",
                "|---|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for d in self.denoised_summary():
                out.append(
                    f"| {d['label']} | {100 * d['fn_rate_before']:.2f} | "
                    f"{100 * d['fn_rate_after']:.2f} | {d['hardness_before']:.4f} | "
                    f"{d['hardness_after']:.4f} | {d['checked_per_query']:.2f} | "
                    f"{100 * d['judged_fn_share']:.2f} | {d['short_rows']:.0f} |"
                )
        for img in images:
            out += ["", f"![{Path(img).stem}]({Path(img).name})"]
        return "\n".join(out) + "\n"

    def write(self, out_dir: str | os.PathLike[str]) -> list[Path]:
        """Write ``fn_vs_hardness.png``, ``score_hist.png``, ``report.json`` and
        ``summary.md`` into ``out_dir`` (each file atomically). Returns the paths."""
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        plots = self.plot(d)
        paths = list(plots)
        with atomic_path(d / "report.json") as tmp:
            tmp.write_text(json.dumps(self.as_dict(), indent=1, default=float))
        paths.append(d / "report.json")
        with atomic_path(d / "summary.md") as tmp:
            tmp.write_text(self.markdown([str(p) for p in plots]))
        paths.append(d / "summary.md")
        return paths

    def plot(self, out_dir: Path) -> list[Path]:
        mpl = require("matplotlib", "report plots")
        mpl.use("Agg")
        plt = require("matplotlib.pyplot", "report plots")
        paths = []
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for s in self.summaries:
            ax.errorbar(
                s.hardness_mean,
                100 * s.fn_rate_mean,
                xerr=0 if np.isnan(s.hardness_std) else s.hardness_std,
                yerr=0 if np.isnan(s.fn_rate_std) else 100 * s.fn_rate_std,
                fmt="o",
                capsize=3,
                label=s.label if len(s.label) <= 40 else s.label[:37] + "...",
            )
        ax.set_xlabel("hardness: mean s(q, d-)")
        ax.set_ylabel("false-negative rate (%)")
        ax.set_title("Hidden-positive protocol: FN rate against hardness")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(self._save(fig, out_dir / "fn_vs_hardness.png"))
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        allv = [self.positive_scores[np.isfinite(self.positive_scores)]] + [
            v[np.isfinite(v)] for v in self.negative_scores.values()
        ]
        allv = [v for v in allv if v.size]
        lo = min(float(v.min()) for v in allv) if allv else 0.0
        hi = max(float(v.max()) for v in allv) if allv else 1.0
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 60)
        pos = self.positive_scores[np.isfinite(self.positive_scores)]
        ax.hist(pos, bins=bins, density=True, alpha=0.35, color="k", label="positives s(q,d+)")
        for k, v in self.negative_scores.items():
            v = v[np.isfinite(v)]
            if v.size:
                ax.hist(v, bins=bins, density=True, histtype="step", lw=1.5, label=k[:40])
        ax.set_xlabel("score")
        ax.set_ylabel("density")
        ax.set_title("Scores of positives and of sampled negatives")
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(self._save(fig, out_dir / "score_hist.png"))
        plt.close(fig)
        return paths

    @staticmethod
    def _save(fig: Any, path: Path) -> Path:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
        return path


def _other_share(full_run: Mapping[str, Any], negatives: int) -> str:
    """The share (%) of a full run's negatives that are another query's positive."""
    k = full_run.get("other_positives", 0)
    return f"{100 * k / negatives:.2f}" if negatives else "-"


def _pm(m: float, s: float, digits: int) -> str:
    return f"{m:.{digits}f}" if np.isnan(s) else f"{m:.{digits}f}±{s:.{digits}f}"


def sampler_report(
    dataset: BeirDataset,
    embeddings: DatasetEmbeddings,
    samplers: Sequence[BaseSampler] | Mapping[str, BaseSampler],
    *,
    n: int = 7,
    seeds: Sequence[int] = (0, 1, 2),
    index: str | Index = "exact",
    metric: str = "ip",
    scorer: Any = None,
    judge: Any = None,
    margins: Any = None,
    judge_keep: Sequence[str] = ("HN", "TN"),
    on_judge_failure: str = "skip",
    oversample: float = 2.0,
) -> SamplerReport:
    """Compare ``samplers`` on a labelled split.

    Runs :func:`~negsample.hidden_positive_protocol` (FN rate and hardness per sampler and
    seed, queries with two or more positives), then mines each sampler once on the whole
    split with all positives shown (first seed) for the score distributions and the
    shortfalls. Write the result with :meth:`SamplerReport.write`.

    With a ``scorer`` (and ``margins``) or a ``judge`` (``negsample.scoring``), the protocol
    is run once more per sampler and seed through
    :func:`negsample.scoring.mine_denoised` (the judge sees the query, the shown positive
    and each draw), and the report gives the FN rate before and after, the candidates
    checked per query and the judge's labels (:attr:`SamplerReport.denoised`).

    Examples
    --------
    >>> rep = ns.sampler_report(ds, emb, ["topk", ns.ReSa2Sampler()], n=7)   # doctest: +SKIP
    >>> print(rep.table()); rep.write("report/")                             # doctest: +SKIP
    """
    from ..evaluation import hidden_positive_protocol, summarize

    if isinstance(samplers, Mapping):
        labelled = {str(k): v for k, v in samplers.items()}
    else:
        labelled = {repr(s): s for s in samplers}
    idx = build_index(embeddings.corpus, index, metric=metric) if isinstance(index, str) else index
    rows = hidden_positive_protocol(
        embeddings.queries, idx, dataset.positives, labelled, n=n, seeds=list(seeds)
    )
    q = prepare_queries(embeddings.queries, idx.dim, idx.metric)
    ps = positive_scores_for(q, dataset.positives_ragged(), idx)
    negative_scores: dict[str, npt.NDArray[np.float32]] = {}
    full_runs: dict[str, dict[str, Any]] = {}
    for label, sampler in labelled.items():
        t = time.perf_counter()
        negs = mine(embeddings.queries, idx, dataset.positives, sampler, n=n, seed=int(seeds[0]))
        sc = negs.scores[negs.ids >= 0]
        negative_scores[label] = sc.astype(np.float32)
        st = negs.stats
        full_runs[label] = {
            "rows": st.n_rows,
            "short_rows": st.short_rows,
            "padded": st.padded,
            "filled": st.filled,
            "dropped_rows": st.dropped_rows,
            "other_positives": st.other_positives,
            "seconds": time.perf_counter() - t,
        }
    denoised: list[dict[str, Any]] = []
    if scorer is not None or judge is not None:
        denoised = _denoised_protocol(
            dataset,
            embeddings.queries,
            idx,
            labelled,
            rows,
            n=n,
            seeds=[int(s) for s in seeds],
            scorer=scorer,
            judge=judge,
            margins=margins,
            judge_keep=judge_keep,
            on_judge_failure=on_judge_failure,
            oversample=oversample,
        )
    meta = {
        "dataset": str(dataset.path),
        "split": dataset.split,
        "n_corpus": dataset.n_corpus,
        "n_queries": dataset.n_queries,
        "protocol_queries": rows[0].n_queries if rows else 0,
        "n": n,
        "seeds": [int(s) for s in seeds],
        "index": index if isinstance(index, str) else repr(index),
        "metric": metric,
        "embeddings": embeddings.source,
        "denoised_by": ", ".join(repr(x) for x in (scorer, margins, judge) if x is not None),
    }
    return SamplerReport(
        protocol=rows,
        summaries=summarize(rows),
        positive_scores=ps.astype(np.float32),
        negative_scores=negative_scores,
        full_runs=full_runs,
        meta=meta,
        denoised=denoised,
    )


def _denoised_protocol(
    dataset: BeirDataset,
    queries: Any,
    index: Index,
    labelled: Mapping[str, BaseSampler],
    protocol: Sequence[ProtocolRow],
    *,
    n: int,
    seeds: Sequence[int],
    **denoise_kw: Any,
) -> list[dict[str, Any]]:
    """The hidden-positive protocol through ``mine_denoised``: per (sampler, seed), the FN
    rate and hardness after denoising beside the protocol's own (before)."""
    from ..evaluation import hide_positives, negative_quality
    from ..scoring import mine_denoised

    before = {(r.label, r.seed): r for r in protocol}
    out = []
    for seed in seeds:
        split = hide_positives(dataset.positives, seed, dataset.n_corpus)
        rows = split.query_rows
        q_sub = np.ascontiguousarray(np.asarray(queries)[rows])
        q_texts = [dataset.query_texts[int(i)] for i in rows]
        for label, sampler in labelled.items():
            t = time.perf_counter()
            res = mine_denoised(
                q_sub,
                index,
                split.shown[:, None],
                sampler,
                query_texts=q_texts,
                document_texts=dataset.document_texts,
                n=n,
                seed=seed,
                **denoise_kw,
            )
            qual = negative_quality(res.negatives, split.hidden)
            st = res.stats
            b = before[(label, seed)]
            out.append(
                {
                    "label": label,
                    "seed": seed,
                    "fn_rate_before": b.fn_rate,
                    "hardness_before": b.hardness,
                    "fn_rate_after": qual.fn_rate,
                    "hardness_after": qual.hardness,
                    "false_negatives_after": qual.false_negatives,
                    "negatives_after": qual.n_negatives,
                    "checked_per_query": st.pairs_per_query,
                    "pairs_judged": st.pairs_judged,
                    "pairs_scored": st.pairs_scored,
                    "labels": dict(st.labels),
                    "judged_fn_share": st.labels.get("FN", 0) / st.pairs_judged
                    if st.pairs_judged
                    else 0.0,
                    "removed": dict(st.removed),
                    "short_rows": st.short_rows,
                    "seconds": time.perf_counter() - t,
                }
            )
    return out

"""Training files from :class:`~negsample.Negatives`: sentence-transformers (triplet,
n-tuple, and the reranker layouts labeled-pair and labeled-list), FlagEmbedding jsonl,
Tevatron jsonl (with its corpus file), a Hugging Face ``datasets`` folder, parquet of
ids and scores, and PyLate's knowledge-distillation folder (:mod:`.writers_pylate`).

Every writer writes to a temporary file (or folder) in the target folder and moves it into
place with ``os.replace``: a failed or interrupted write never leaves a half-written file.

Policies (the same for every format):

- ``-1`` (a short row's padding) is never written as a document.
- A row with no valid negative at all is skipped and counted (``empty_rows``).
- Zero rows in all is an error (:class:`EmptyOutput`): no empty file is ever written.
- Formats with a fixed number of negatives per row (``st-ntuple``, ``pylate-kd``, and
  ``hf`` in the ``st-ntuple`` layout) need exactly ``n``:
  with ``on_short="skip"`` (default) short rows are skipped and counted
  (``short_rows_skipped``); with ``on_short="error"`` any short row stops the write
  before anything is written. Variable-length formats (``st-triplet``, ``labeled-pair``,
  ``labeled-list``, ``flagembedding``, ``tevatron``, ``parquet``) write the valid negatives
  of a short row and count it (``short_rows_written``); ``on_short="error"`` refuses them
  too.
- Queries with several positives: the pair-based formats (``st-triplet``, ``st-ntuple``,
  ``labeled-list``, ``pylate-kd``) emit one row per (query, positive), all with the query's negatives
  (when the sampler made one row per positive, ``positive_anchor="each"``, each row goes
  with its own positive); ``labeled-pair`` emits each query's positives (label 1) then its
  negatives (label 0) once; ``flagembedding``, ``tevatron`` and ``parquet`` emit one row per
  query with every positive (several negatives rows of one query are merged, duplicates
  removed).
- Scores (``scores=True``) are whatever ``negatives.scores`` and ``positive_scores`` hold:
  from ``mine()`` the miner's own ``s(q, d)`` (the index's inner product or cosine, or the
  run file's score), not a teacher's, so do not train a distillation loss on them as if a
  cross-encoder had made them; from ``Denoised.teacher_negatives()`` with
  ``positive_scores=teacher.positive``, the teacher's (``--teacher-scores``).
  ``pylate-kd`` always writes scores (a distillation loss needs them): a row with a
  missing (non-finite) score is left out and counted (``unscored_rows``).
- Document text is ``title + " " + text`` (as encoded).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .. import _files
from .._files import atomic_path
from .._optional import require
from .._types import Negatives
from ..errors import InputError
from .writers_pylate import is_kd_folder, kd_tables, write_kd_folder

if TYPE_CHECKING:
    from .data import BeirDataset

__all__ = [
    "FORMATS",
    "HF_LAYOUTS",
    "FOLDER_FORMATS",
    "EmptyOutput",
    "WriteReport",
    "atomic_dir",
    "atomic_path",
    "write_negatives",
]

FORMATS = (
    "st-triplet",
    "st-ntuple",
    "labeled-pair",
    "labeled-list",
    "flagembedding",
    "tevatron",
    "hf",
    "parquet",
    "pylate-kd",
)
#: the formats whose output is a folder (``path`` names it)
FOLDER_FORMATS = ("hf", "pylate-kd")
#: the row layouts a ``hf`` (``datasets.save_to_disk``) folder can hold
HF_LAYOUTS = ("st-ntuple", "st-triplet", "labeled-pair", "labeled-list")
ON_SHORT = ("skip", "error")


@dataclass
class WriteReport:
    """What :func:`write_negatives` wrote and what it left out, and why."""

    path: str
    format: str
    rows: int = 0
    empty_rows: int = 0
    short_rows_skipped: int = 0
    short_rows_written: int = 0
    padded_slots: int = 0
    unscored_rows: int = 0
    corpus_path: str | None = None
    layout: str | None = None
    batch_size: int | None = None
    batch_conflicts: int | None = None
    batch_conflicts_before: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        what = self.format if self.layout is None else f"{self.format}, {self.layout} layout"
        s = f"wrote {self.rows} rows ({what}) to {self.path}"
        if self.corpus_path is not None:
            s += f", and the corpus to {self.corpus_path}"
        extra = []
        if self.short_rows_skipped:
            extra.append(f"{self.short_rows_skipped} short rows skipped (fewer than n negatives)")
        if self.short_rows_written:
            extra.append(f"{self.short_rows_written} short rows written with fewer negatives")
        if self.empty_rows:
            extra.append(f"{self.empty_rows} rows without any negative skipped")
        if self.unscored_rows:
            extra.append(f"{self.unscored_rows} rows with a missing score skipped")
        if self.batch_size is not None:
            extra.append(
                f"ordered for batches of {self.batch_size}: {self.batch_conflicts} rows share a "
                f"batch with a row whose positive they hold or that holds theirs "
                f"({self.batch_conflicts_before} in the unordered file)"
            )
        return s + ("; " + "; ".join(extra) if extra else "")


class EmptyOutput(InputError):
    """No row at all would be written (every row short or empty): nothing is written,
    an existing file is left as it was. ``report`` counts what was left out."""

    def __init__(self, report: WriteReport) -> None:
        self.report = report
        why = []
        if report.short_rows_skipped:
            why.append(f"{report.short_rows_skipped} short rows skipped ({report.format} needs n)")
        if report.empty_rows:
            why.append(f"{report.empty_rows} rows without any negative")
        if report.unscored_rows:
            why.append(f"{report.unscored_rows} rows with a missing score")
        super().__init__(
            f"{report.path}: no row to write ({'; '.join(why) or 'no negatives'}); nothing written"
        )


def _refuse_empty(report: WriteReport) -> None:
    if report.rows == 0:
        raise EmptyOutput(report)


class atomic_dir(_files.atomic_dir):
    """``with atomic_dir(p) as tmp: write_into(tmp)``: ``tmp`` is a fresh folder next to
    ``p``, moved onto ``p`` if the block succeeds (a previous ``p`` is replaced only if it is
    a ``datasets`` folder, i.e. a previous output), deleted if it fails
    (:class:`negsample._files.atomic_dir`)."""

    def __enter__(self) -> Path:
        p = self.path
        if p.exists() and not (
            p.is_dir() and ((p / "dataset_info.json").is_file() or is_kd_folder(p))
        ):
            what = "a file" if not p.is_dir() else "a folder that is not a datasets folder"
            raise InputError(f"{p} is {what}; refusing to replace it (choose another path)")
        return super().__enter__()


def _json_float(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 6)


def _groups(neg: Negatives) -> Iterator[tuple[int, list[int]]]:
    """(query index, row numbers of that query), in row order."""
    qi = neg.query_index
    if qi.size == 0:
        return
    cut = np.flatnonzero(np.diff(qi)) + 1
    starts = np.concatenate([[0], cut])
    stops = np.concatenate([cut, [qi.size]])
    if np.any(np.diff(qi[starts]) < 0):
        raise InputError("negatives must be sorted by query_index (as mine() returns them)")
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        yield int(qi[a]), list(range(a, b))


def write_negatives(
    negatives: Negatives,
    dataset: BeirDataset,
    path: str | os.PathLike[str],
    format: str = "st-ntuple",
    *,
    scores: bool = False,
    positive_scores: Sequence[npt.ArrayLike] | None = None,
    on_short: str = "skip",
    hf_layout: str = "st-ntuple",
    batch_size: int | None = None,
    batch_seed: int = 0,
) -> WriteReport:
    """Write ``negatives`` mined for ``dataset`` as a training file.

    Parameters
    ----------
    negatives : from :func:`negsample.mine`; ``query_index`` rows refer to
        ``dataset.query_ids``.
    path : output file (a folder for ``"hf"`` and ``"pylate-kd"``), written atomically (temporary file or
        folder + ``os.replace``).
    format : jsonl: ``"st-triplet"`` (``anchor, positive, negative``), ``"st-ntuple"``
        (``anchor, positive, negative_1 ... negative_n``), ``"labeled-pair"`` (``query,
        passage, label``: each query's positives with label 1, then its negatives with 0),
        ``"labeled-list"`` (``query, passages, labels``: ``[positive, negatives...]`` with
        ``[1, 0, ...]``), ``"flagembedding"`` (``query, pos, neg`` [``pos_scores,
        neg_scores``]), ``"tevatron"`` (``query_id, query_text, positive_document_ids,
        negative_document_ids``, plus the corpus file ``<path stem>.corpus.jsonl`` with
        ``docid, title, text`` beside it, named in the report); ``"hf"``: a
        ``datasets.save_to_disk`` folder holding the ``hf_layout`` rows; ``"parquet"``
        (``query_id, positive_ids, anchor_id, negative_ids, negative_scores``);
        ``"pylate-kd"``: PyLate's knowledge-distillation folder (``train.parquet``:
        ``query_id, document_ids, scores``, the positive first; ``queries.parquet``;
        ``documents.parquet``; a ``README.md`` naming them for ``datasets.load_dataset``),
        see :mod:`negsample.io.writers_pylate`.
    scores : add the scores ``negatives.scores`` and ``positive_scores`` hold (``mine()``'s
        are the miner's own ``s(q, d)``, not a teacher's): a ``scores`` list
        ``[s(q,d+), s(q,d-_1), ...]`` for ``st-triplet`` / ``st-ntuple``, ``score`` /
        ``scores`` in place of ``label`` / ``labels`` for the labeled layouts (as
        sentence-transformers' ``output_scores``), ``pos_scores``/``neg_scores`` for
        FlagEmbedding (``null`` where a score is unknown). Needs ``positive_scores``.
        ``pylate-kd`` writes scores whatever ``scores`` says.
    positive_scores : ``s(q, d+)`` per query, aligned with ``dataset.positives``.
    on_short : ``"skip"`` or ``"error"``; see the module policies.
    batch_size : write the rows in a batch-safe order for training batches of this many
        rows (:mod:`negsample.io.batches`): no run of ``batch_size`` consecutive rows holds
        a row with a passage that is a labelled positive of another row's query, where
        the greedy placement finds such an order; the rows that could not be placed so are
        counted (``report.batch_conflicts``), never dropped; the rows are held in memory
        to be ordered (as the ``hf`` folder always holds them). The row formats only
        (:data:`~negsample.io.batches.BATCH_FORMATS`; not ``parquet`` nor ``pylate-kd``).
        Train with the order kept (no shuffling): docs/training.md. ``None``: the usual
        order (by query).
    batch_seed : seeds that order.
    hf_layout : the rows of an ``"hf"`` folder: ``"st-ntuple"`` (default), ``"st-triplet"``,
        ``"labeled-pair"`` or ``"labeled-list"``.

    Returns
    -------
    WriteReport
        rows written and everything left out, counted.

    Raises
    ------
    EmptyOutput
        (a ``ValueError``) when no row at all would be written: no file is written.
    """
    if format not in FORMATS:
        raise InputError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if hf_layout not in HF_LAYOUTS:
        raise InputError(f"hf_layout must be one of {', '.join(HF_LAYOUTS)}, got {hf_layout!r}")
    if on_short not in ON_SHORT:
        raise InputError(f"on_short must be one of {ON_SHORT}, got {on_short!r}")
    if scores and positive_scores is None and format != "parquet":
        raise InputError("scores=True needs positive_scores (s(q, d+) per query)")
    if format == "pylate-kd" and positive_scores is None:
        raise InputError("format 'pylate-kd' writes every score: give positive_scores")
    if batch_size is not None:
        from .batches import BATCH_FORMATS

        if format not in BATCH_FORMATS:
            raise InputError(
                f"batch_size orders the rows of a row format ({', '.join(BATCH_FORMATS)}); "
                f"{format!r} has no training batches of rows to order"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    ids = np.asarray(negatives.ids)
    if len(negatives) and int(negatives.query_index.max()) >= dataset.n_queries:
        raise InputError(
            f"negatives name query {int(negatives.query_index.max())}, but the dataset has "
            f"{dataset.n_queries} queries"
        )
    if np.any(ids >= dataset.n_corpus) or np.any(ids < -1):
        raise InputError(f"negative ids out of range for a corpus of {dataset.n_corpus}")
    _check_no_positive(negatives, dataset)
    valid = ids >= 0
    n_valid = valid.sum(axis=1)
    short = (n_valid < negatives.n) & (n_valid > 0)
    if on_short == "error" and (short.any() or (n_valid == 0).any()):
        r = int(np.argmax(n_valid < negatives.n))
        raise InputError(
            f"{int((n_valid < negatives.n).sum())} rows have fewer than n={negatives.n} "
            f"negatives (first: query {dataset.query_ids[int(negatives.query_index[r])]!r} with "
            f"{int(n_valid[r])}); on_short='error' writes nothing"
        )
    report = WriteReport(path=str(path), format=format)
    report.padded_slots = int((~valid).sum())
    pos_sc = None
    if positive_scores is not None:
        pos_sc = [np.asarray(p, dtype=np.float64) for p in positive_scores]
        if len(pos_sc) != dataset.n_queries:
            raise InputError(
                f"positive_scores has {len(pos_sc)} entries, the dataset {dataset.n_queries} queries"
            )
    if format == "parquet":
        _write_parquet(negatives, dataset, Path(path), report)
        return report
    if format == "pylate-kd":
        assert pos_sc is not None
        tables = kd_tables(negatives, dataset, _groups(negatives), report, pos_sc)
        _refuse_empty(report)  # before anything is written
        with atomic_dir(path) as tmp:
            write_kd_folder(tables, tmp)
        return report
    docs = dataset.document_texts
    if format == "hf":
        report.layout = hf_layout
        datasets = require("datasets", "writing a Hugging Face datasets folder")
        rows: list[dict[str, Any]] = []
        _ROW_WRITERS[hf_layout](rows, negatives, dataset, docs, report, scores, pos_sc)
        _refuse_empty(report)  # before anything is written
        rows = _batch_order(rows, hf_layout, dataset, report, batch_size, batch_seed)
        with atomic_dir(path) as tmp:
            datasets.Dataset.from_list(rows).save_to_disk(str(tmp))
        return report
    writer = _ROW_WRITERS[format]
    if batch_size is not None:  # every row in memory, ordered, then written
        buffered: list[dict[str, Any]] = []
        writer(buffered, negatives, dataset, docs, report, scores, pos_sc)
        _refuse_empty(report)
        buffered = _batch_order(buffered, format, dataset, report, batch_size, batch_seed)
        writer = partial(_replay, buffered)
    if format == "tevatron":
        corpus_path = tevatron_corpus_path(path)
        report.corpus_path = str(corpus_path)
        with atomic_path(corpus_path) as ctmp, atomic_path(path) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                writer(f, negatives, dataset, docs, report, scores, pos_sc)
                _refuse_empty(report)  # before the moves: an empty file is never written
            with open(ctmp, "w", encoding="utf-8") as f:
                _tevatron_corpus(f, dataset)
        return report
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        writer(f, negatives, dataset, docs, report, scores, pos_sc)
        _refuse_empty(report)  # before the move: an empty file is never written
    return report


def _batch_order(
    rows: list[dict[str, Any]],
    fmt: str,
    dataset: BeirDataset,
    report: WriteReport,
    batch_size: int | None,
    seed: int,
) -> list[dict[str, Any]]:
    """``rows`` in a batch-safe order (:mod:`negsample.io.batches`), counted in
    ``report``; as they are without ``batch_size``."""
    if batch_size is None:
        return rows
    from .batches import order_rows

    ordered, got = order_rows(rows, fmt, dataset, batch_size=batch_size, seed=seed)
    report.batch_size = batch_size
    report.batch_conflicts = got.conflicts
    report.batch_conflicts_before = got.conflicts_before
    return ordered


def _replay(rows: list[dict[str, Any]], f: Sink, *_: Any) -> None:
    """A row writer that writes rows already made (and counted)."""
    for row in rows:
        _line(f, row)


def tevatron_corpus_path(path: str | os.PathLike[str]) -> Path:
    """Where the Tevatron corpus file goes beside the training file ``path``:
    ``train.jsonl`` -> ``train.corpus.jsonl`` (never ``corpus.jsonl``, which may be the
    input)."""
    p = Path(path)
    stem = p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.name
    return p.with_name(f"{stem}.corpus.jsonl")


def _check_no_positive(neg: Negatives, dataset: BeirDataset) -> None:
    hit = dataset.positives_ragged().take(neg.query_index).contains(neg.ids)
    if hit.any():
        r, c = (int(v) for v in np.argwhere(hit)[0])
        q = dataset.query_ids[int(neg.query_index[r])]
        raise InputError(
            f"negative {dataset.corpus_ids[int(neg.ids[r, c])]!r} of query {q!r} is one of its "
            "labelled positives: these negatives were not mined for this dataset and split"
        )


Sink = IO[str] | list[dict[str, Any]]


def _line(f: Sink, obj: dict[str, Any]) -> None:
    """One row: a json line in a file, or a dict in a list (for the ``hf`` folder)."""
    if isinstance(f, list):
        f.append(obj)
        return
    f.write(json.dumps(obj, ensure_ascii=False))
    f.write("\n")


def _st_rows(
    f: Sink,
    neg: Negatives,
    ds: BeirDataset,
    docs: list[str],
    report: WriteReport,
    scores: bool,
    pos_sc: list[np.ndarray] | None,
    *,
    layout: str = "st-ntuple",
) -> None:
    """The pair-based layouts: one row per (query, positive) (``st-ntuple``,
    ``labeled-list``), or per (query, positive, negative) (``st-triplet``)."""
    ntuple = layout == "st-ntuple"
    n = neg.n
    for q, rows in _groups(neg):
        positives = ds.positives[q]
        slot = {int(p): i for i, p in enumerate(positives.tolist())}
        for r in rows:
            keep = neg.ids[r] >= 0
            if not keep.any():
                report.empty_rows += 1
                continue
            if ntuple and keep.sum() < n:
                report.short_rows_skipped += 1
                continue
            if keep.sum() < n:
                report.short_rows_written += 1
            nid = neg.ids[r][keep].tolist()
            nsc = neg.scores[r][keep].tolist()
            anchor = int(neg.anchor_ids[r])
            if len(rows) > 1:
                if anchor < 0:
                    raise InputError(
                        f"query {ds.query_ids[q]!r} has {len(rows)} rows but no anchor positive"
                    )
                pairs = [anchor]
            else:
                pairs = positives.tolist()
            for p in pairs:
                ps = _json_float(pos_sc[q][slot[p]]) if pos_sc is not None else None
                if ntuple:
                    obj: dict[str, Any] = {"anchor": ds.query_texts[q], "positive": docs[p]}
                    for i, d in enumerate(nid, start=1):
                        obj[f"negative_{i}"] = docs[d]
                    if scores:
                        obj["scores"] = [ps, *(_json_float(s) for s in nsc)]
                    _line(f, obj)
                    report.rows += 1
                elif layout == "labeled-list":
                    obj = {
                        "query": ds.query_texts[q],
                        "passages": [docs[p], *(docs[d] for d in nid)],
                    }
                    if scores:
                        obj["scores"] = [ps, *(_json_float(s) for s in nsc)]
                    else:
                        obj["labels"] = [1] + [0] * len(nid)
                    _line(f, obj)
                    report.rows += 1
                else:
                    for d, s in zip(nid, nsc, strict=True):
                        obj = {
                            "anchor": ds.query_texts[q],
                            "positive": docs[p],
                            "negative": docs[d],
                        }
                        if scores:
                            obj["scores"] = [ps, _json_float(s)]
                        _line(f, obj)
                        report.rows += 1


def _labeled_pair_rows(
    f: Sink,
    neg: Negatives,
    ds: BeirDataset,
    docs: list[str],
    report: WriteReport,
    scores: bool,
    pos_sc: list[np.ndarray] | None,
) -> None:
    """Per query: each positive (label 1), then each negative (label 0), one row each."""
    for q, rows in _groups(neg):
        nid, nsc = _merged(neg, rows, report)
        if not nid:
            report.empty_rows += 1
            continue
        qt = ds.query_texts[q]
        items = [(int(p), 1, pos_sc[q][i] if pos_sc is not None else None)
                 for i, p in enumerate(ds.positives[q].tolist())]  # fmt: skip
        items += [(d, 0, s) for d, s in zip(nid, nsc, strict=True)]
        for d, label, sc in items:
            obj: dict[str, Any] = {"query": qt, "passage": docs[d]}
            if scores:
                obj["score"] = None if sc is None else _json_float(sc)
            else:
                obj["label"] = label
            _line(f, obj)
            report.rows += 1


def _tevatron_corpus(f: IO[str], ds: BeirDataset) -> None:
    """Tevatron's corpus file: one ``{"docid", "title", "text"}`` line per document."""
    for i, t, x in zip(ds.corpus_ids, ds.corpus_titles, ds.corpus_texts, strict=True):
        _line(f, {"docid": i, "title": t, "text": x})


def _merged(neg: Negatives, rows: list[int], report: WriteReport) -> tuple[list[int], list[float]]:
    """Valid negatives of a query's rows, first occurrence kept, with their scores."""
    seen: dict[int, float] = {}
    for r in rows:
        for d, s in zip(neg.ids[r].tolist(), neg.scores[r].tolist(), strict=True):
            if d >= 0 and d not in seen:
                seen[d] = s
        n_valid = int((neg.ids[r] >= 0).sum())
        if 0 < n_valid < neg.n:
            report.short_rows_written += 1
    return list(seen), list(seen.values())


def _flag_rows(
    f: Sink,
    neg: Negatives,
    ds: BeirDataset,
    docs: list[str],
    report: WriteReport,
    scores: bool,
    pos_sc: list[np.ndarray] | None,
) -> None:
    for q, rows in _groups(neg):
        nid, nsc = _merged(neg, rows, report)
        if not nid:
            report.empty_rows += 1
            continue
        obj: dict[str, Any] = {
            "query": ds.query_texts[q],
            "pos": [docs[p] for p in ds.positives[q].tolist()],
            "neg": [docs[d] for d in nid],
        }
        if scores:
            assert pos_sc is not None
            obj["pos_scores"] = [_json_float(s) for s in pos_sc[q]]
            obj["neg_scores"] = [_json_float(s) for s in nsc]
        _line(f, obj)
        report.rows += 1


def _tevatron_rows(
    f: Sink,
    neg: Negatives,
    ds: BeirDataset,
    docs: list[str],
    report: WriteReport,
    scores: bool,
    pos_sc: list[np.ndarray] | None,
) -> None:
    for q, rows in _groups(neg):
        nid, _ = _merged(neg, rows, report)
        if not nid:
            report.empty_rows += 1
            continue
        _line(
            f,
            {
                "query_id": ds.query_ids[q],
                "query_text": ds.query_texts[q],
                "positive_document_ids": [ds.corpus_ids[p] for p in ds.positives[q].tolist()],
                "negative_document_ids": [ds.corpus_ids[d] for d in nid],
            },
        )
        report.rows += 1


_ROW_WRITERS: dict[str, Callable[..., None]] = {
    "st-triplet": partial(_st_rows, layout="st-triplet"),
    "st-ntuple": partial(_st_rows, layout="st-ntuple"),
    "labeled-list": partial(_st_rows, layout="labeled-list"),
    "labeled-pair": _labeled_pair_rows,
    "flagembedding": _flag_rows,
    "tevatron": _tevatron_rows,
}


def _write_parquet(neg: Negatives, ds: BeirDataset, path: Path, report: WriteReport) -> None:
    pa = require("pyarrow", "writing parquet")
    pq = require("pyarrow.parquet", "writing parquet")
    cols: dict[str, list[Any]] = {
        "query_id": [],
        "positive_ids": [],
        "anchor_id": [],
        "negative_ids": [],
        "negative_scores": [],
    }
    for r in range(len(neg)):
        keep = neg.ids[r] >= 0
        if not keep.any():
            report.empty_rows += 1
            continue
        if keep.sum() < neg.n:
            report.short_rows_written += 1
        q = int(neg.query_index[r])
        a = int(neg.anchor_ids[r])
        cols["query_id"].append(ds.query_ids[q])
        cols["positive_ids"].append([ds.corpus_ids[p] for p in ds.positives[q].tolist()])
        cols["anchor_id"].append(ds.corpus_ids[a] if a >= 0 else None)
        cols["negative_ids"].append([ds.corpus_ids[d] for d in neg.ids[r][keep].tolist()])
        cols["negative_scores"].append(neg.scores[r][keep].astype(np.float32))
        report.rows += 1
    schema = pa.schema(
        [
            ("query_id", pa.string()),
            ("positive_ids", pa.list_(pa.string())),
            ("anchor_id", pa.string()),
            ("negative_ids", pa.list_(pa.string())),
            ("negative_scores", pa.list_(pa.float32())),
        ]
    )
    _refuse_empty(report)
    table = pa.table(cols, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, str(tmp))

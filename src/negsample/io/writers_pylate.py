"""PyLate's knowledge-distillation dataset (``format="pylate-kd"``).

PyLate (lightonai/pylate) trains ColBERT models by distillation from three subsets that
``pylate.utils.KDProcessing`` joins at load time: ``train`` rows (``query_id``,
``document_ids``, ``scores``), ``queries`` (``query_id``, ``text``) and ``documents``
(``document_id``, ``text``). This module writes them as one folder, laid out like LightOn's
own ``lightonai/ms-marco-en-bge``: three parquet files and a ``README.md`` whose ``configs``
name them, so ``datasets.load_dataset(folder, "train", split="train")`` (and ``"queries"``,
``"documents"``) reads it as the hub dataset is read, and the folder can be pushed to the hub
as it is.

Layout (ids are the BEIR string ids, as in ``ms-marco-en-bge``):

- ``train.parquet``: ``query_id`` (string), ``document_ids`` (list of string), ``scores``
  (list of float32). One row per (query, positive): the positive first, then the row's
  ``n`` negatives, ``scores[i]`` the score of ``document_ids[i]``. Every row has ``n + 1``
  documents: PyLate's collator stacks a batch's scores into one tensor and its
  ``Distillation`` loss reshapes the documents to ``(batch, n_ways)``, so the rows of a
  batch must be equally long. ``KDProcessing`` keeps the first ``n_ways`` (default 32) of
  each row: the positive, being first, is never cut.
- ``queries.parquet``: ``query_id``, ``text``: the queries of the rows written, once each,
  in dataset order.
- ``documents.parquet``: ``document_id``, ``text`` (``title + " " + text``): every document
  a written row names (positives and negatives), once each, in corpus order.

Policies (besides those of :mod:`negsample.io.writers`): a fixed-length format, so short
rows are skipped and counted (``short_rows_skipped``) as for ``st-ntuple``; a
distillation loss needs every score, so a (query, positive) row whose positive or any
negative has no finite score (a positive a ``--run`` did not retrieve, a query the teacher
did not score) is left out and counted (``unscored_rows``), never written with a made-up
score.

References
----------
PyLate, ``pylate/utils/processing.py`` (``KDProcessing``), ``pylate/utils/collator.py``
(``ColBERTCollator``) and ``docs/documentation/datasets.md`` ("Knowledge distillation
dataset"), lightonai/pylate at commit 347718e09f66eb4914154d8ad6871bf7dd3d27f1 (the same
``processing.py`` ships in pylate 1.6.0).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._optional import require
from .._types import Negatives
from ..errors import InputError

if TYPE_CHECKING:
    from .data import BeirDataset
    from .writers import WriteReport

__all__ = ["FILES", "README", "KDTables", "is_kd_folder", "kd_tables", "write_kd_folder"]

#: the parquet file of each subset, as the README's ``configs`` name them
FILES = {"train": "train.parquet", "queries": "queries.parquet", "documents": "documents.parquet"}
README = "README.md"
#: the line that marks a README as a negsample pylate-kd folder's (a previous output)
_MARK = "<!-- written by negsample: format pylate-kd -->"


@dataclass(frozen=True)
class KDTables:
    """The three subsets of a ``pylate-kd`` folder, as columns.

    Attributes
    ----------
    train : dict of str to list
        ``query_id``, ``document_ids``, ``scores`` (float32 arrays), one entry per row.
    queries : dict of str to list of str
        ``query_id``, ``text``.
    documents : dict of str to list of str
        ``document_id``, ``text``.
    width : int
        Documents per train row (the positive and ``n`` negatives).
    """

    train: dict[str, list[Any]]
    queries: dict[str, list[str]]
    documents: dict[str, list[str]]
    width: int


def kd_tables(
    negatives: Negatives,
    dataset: BeirDataset,
    groups: Iterable[tuple[int, list[int]]],
    report: WriteReport,
    positive_scores: Sequence[np.ndarray],
) -> KDTables:
    """Build the subsets of a ``pylate-kd`` folder and count what is left out in ``report``.

    Parameters
    ----------
    negatives : Negatives
        The rows to write (checked by :func:`~negsample.write_negatives`).
    dataset : BeirDataset
        The dataset they were mined for.
    groups : iterable of (int, list of int)
        (query index, row numbers of that query), in row order.
    report : WriteReport
        Counts ``rows``, ``empty_rows``, ``short_rows_skipped`` and ``unscored_rows``.
    positive_scores : sequence of ndarray
        ``s(q, d+)`` per query, aligned with ``dataset.positives``.

    Returns
    -------
    KDTables
        The columns of the three subsets.

    Raises
    ------
    ValueError
        A query without a positive, or with several rows one of which is not anchored on
        one of its positives.
    """
    n = negatives.n
    train: dict[str, list[Any]] = {"query_id": [], "document_ids": [], "scores": []}
    used_queries: list[int] = []
    used_docs = np.zeros(dataset.n_corpus, dtype=bool)
    cid = dataset.corpus_ids
    for q, rows in groups:
        qid = dataset.query_ids[q]
        positives = dataset.positives[q].tolist()
        slot = {p: i for i, p in enumerate(positives)}
        wrote = False
        for r in rows:
            keep = negatives.ids[r] >= 0
            k = int(keep.sum())
            if k == 0:
                report.empty_rows += 1
                continue
            if k < n:
                report.short_rows_skipped += 1
                continue
            nid = negatives.ids[r][keep]
            nsc = negatives.scores[r][keep].astype(np.float32)
            anchor = int(negatives.anchor_ids[r])
            if len(rows) > 1:
                if anchor not in slot:
                    raise InputError(
                        f"query {qid!r} has {len(rows)} rows, but row {r} is not anchored on "
                        f"one of its positives (anchor {anchor})"
                    )
                pairs = [anchor]
            else:
                pairs = positives
            if not pairs:
                raise InputError(f"query {qid!r} has no positive: a pylate-kd row starts with one")
            names = [cid[d] for d in nid.tolist()]
            row_written = False
            for p in pairs:
                ps = np.float32(positive_scores[q][slot[p]])
                if not (np.isfinite(ps) and np.isfinite(nsc).all()):
                    report.unscored_rows += 1
                    continue
                train["query_id"].append(qid)
                train["document_ids"].append([cid[p], *names])
                train["scores"].append(np.concatenate([[ps], nsc]))
                used_docs[p] = True
                report.rows += 1
                row_written = True
            if row_written:
                used_docs[nid] = True
                wrote = True
        if wrote:
            used_queries.append(q)
    docs = np.flatnonzero(used_docs).tolist()
    texts = dataset.document_texts
    return KDTables(
        train=train,
        queries={
            "query_id": [dataset.query_ids[q] for q in used_queries],
            "text": [dataset.query_texts[q] for q in used_queries],
        },
        documents={"document_id": [cid[d] for d in docs], "text": [texts[d] for d in docs]},
        width=n + 1,
    )


def write_kd_folder(tables: KDTables, folder: str | os.PathLike[str]) -> None:
    """Write ``tables`` into the (new, empty) ``folder``: the three parquet files and the
    README that names them. Call it inside :class:`~negsample.io.writers.atomic_dir`.

    Parameters
    ----------
    tables : KDTables
        From :func:`kd_tables`.
    folder : str or os.PathLike
        An existing empty folder.
    """
    pa = require("pyarrow", "writing a pylate-kd folder")
    pq = require("pyarrow.parquet", "writing a pylate-kd folder")
    folder = Path(folder)
    string, floats = pa.string(), pa.list_(pa.float32())
    schemas = {
        "train": pa.schema(
            [("query_id", string), ("document_ids", pa.list_(string)), ("scores", floats)]
        ),
        "queries": pa.schema([("query_id", string), ("text", string)]),
        "documents": pa.schema([("document_id", string), ("text", string)]),
    }
    columns = {"train": tables.train, "queries": tables.queries, "documents": tables.documents}
    for name, file in FILES.items():
        pq.write_table(pa.table(columns[name], schema=schemas[name]), str(folder / file))
    (folder / README).write_text(_readme(tables), encoding="utf-8")


def is_kd_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder this module wrote (a previous output, which a new
    write may replace): exactly its four files, the README carrying negsample's mark.

    Parameters
    ----------
    path : str or os.PathLike
        The folder to look at.

    Returns
    -------
    bool
    """
    p = Path(path)
    try:
        names = {x.name for x in p.iterdir()}
        return names == {README, *FILES.values()} and _MARK in (p / README).read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return False


def _readme(t: KDTables) -> str:
    configs = "".join(
        f"- config_name: {name}\n  data_files:\n  - split: train\n    path: {file}\n"
        for name, file in FILES.items()
    )
    rows, w = len(t.train["query_id"]), t.width
    nq, nd = len(t.queries["query_id"]), len(t.documents["document_id"])
    return f"""---
configs:
{configs}tags:
- pylate
- knowledge-distillation
---
{_MARK}

# Knowledge-distillation data for PyLate

Hard negatives written by negsample (`--format pylate-kd`) in the layout that PyLate's
`pylate.utils.KDProcessing` joins (that of `lightonai/ms-marco-en-bge`):

| subset | file | rows | columns |
|---|---|---|---|
| `train` | `train.parquet` | {rows} | `query_id` (string), `document_ids` (list of {w} strings), `scores` (list of {w} float32) |
| `queries` | `queries.parquet` | {nq} | `query_id`, `text` |
| `documents` | `documents.parquet` | {nd} | `document_id`, `text` (title + " " + text) |

Each `train` row is one (query, positive): `document_ids` holds the positive, then
{w - 1} mined negatives; `scores[i]` is the score of `document_ids[i]`.

The scores are those negsample was given: a teacher's (a cross-encoder's) when the data was
written with `--teacher-scores`, otherwise the miner's own `s(q, d)` (the inner product or
cosine of the embeddings that mined the negatives, or a run file's score), which are no
teacher's: distilling from them teaches the student the miner's ranking.

Load it in PyLate (`n_ways={w}` keeps every document of a row):

```py
from datasets import load_dataset
from pylate import utils

folder = "path/to/this/folder"
train = load_dataset(folder, "train", split="train")
queries = load_dataset(folder, "queries", split="train")
documents = load_dataset(folder, "documents", split="train")
train.set_transform(
    utils.KDProcessing(queries=queries, documents=documents, n_ways={w}).transform
)
```
"""

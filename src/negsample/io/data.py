"""Reading retrieval datasets in the BEIR layout: string ids mapped to rows.

A BEIR folder holds ``corpus.jsonl`` (``{"_id", "title", "text"}``), ``queries.jsonl``
(``{"_id", "text"}``) and ``qrels/{split}.tsv`` (``query-id corpus-id score``), each plain or
gzipped (``.gz``). :func:`load_beir` reads them into a :class:`BeirDataset`: corpus rows,
the split's queries, and each query's positives as corpus row indices, ready for
:func:`negsample.mine`.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._ragged import Ragged

__all__ = ["BeirDataset", "DataError", "load_beir", "resolve_file"]

IntArray = npt.NDArray[np.int64]


class DataError(ValueError):
    """Bad input data. ``str(err)`` is ``"<file>:<line>: <problem>"`` (the line is left out
    when the problem is not on one line)."""

    def __init__(self, file: str | os.PathLike[str], line: int | None, problem: str) -> None:
        self.file = str(file)
        self.line = line
        self.problem = problem
        where = f"{self.file}:{line}" if line is not None else self.file
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR split with string ids mapped to rows.

    Attributes
    ----------
    path : the dataset folder.
    split : the qrels split read (``"train"``, ``"dev"``, ``"test"``...).
    corpus_ids, corpus_titles, corpus_texts : one entry per corpus row, in file order.
    query_ids, query_texts : the split's queries (those with at least one positive
        judgement), in ``queries.jsonl`` order.
    positives : one int64 array of corpus rows per query (judgement score > 0), in qrels
        order.
    relevance : one int64 array per query, the judgement score of each positive.
    stats : counts of what was read and what was left out (``judgements``,
        ``nonpositive_judgements``, ``duplicate_judgements``, ``queries_without_positive``,
        ``queries_not_in_split``).
    """

    path: Path
    split: str
    corpus_ids: list[str]
    corpus_titles: list[str]
    corpus_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    positives: list[IntArray]
    relevance: list[IntArray]
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def n_corpus(self) -> int:
        return len(self.corpus_ids)

    @property
    def n_queries(self) -> int:
        return len(self.query_ids)

    def document_texts(self) -> list[str]:
        """``title + " " + text`` per corpus row (just ``text`` when the title is empty), the
        usual BEIR input to a bi-encoder."""
        return [
            f"{t} {x}" if t else x
            for t, x in zip(self.corpus_titles, self.corpus_texts, strict=True)
        ]

    def duplicate_texts(self) -> list[IntArray]:
        """For each query, the corpus rows that are *not* labelled positives but whose
        document text (``document_texts()``, exact match) is a positive's text: the same
        passage under another id. Sampling one as a negative trains the model to push away
        its own positive; :func:`~negsample.mine_dataset` excludes them by default."""
        texts = self.document_texts()
        group: dict[str, int] = {}
        gid = np.fromiter(
            (group.setdefault(t, len(group)) for t in texts), dtype=np.int64, count=len(texts)
        )
        shared = np.bincount(gid, minlength=len(group)) > 1
        empty = np.empty(0, np.int64)
        if not shared.any():
            return [empty] * self.n_queries
        order = np.argsort(gid, kind="stable")
        bounds = np.flatnonzero(np.diff(gid[order])) + 1
        members = dict(
            zip(gid[order][np.r_[0, bounds]].tolist(), np.split(order, bounds), strict=True)
        )
        out = []
        for p in self.positives:
            g = np.unique(gid[p])
            g = g[shared[g]]
            if g.size == 0:
                out.append(empty)
                continue
            out.append(np.setdiff1d(np.concatenate([members[x] for x in g.tolist()]), p))
        return out

    def positives_ragged(self) -> Ragged:
        """Positives as :class:`~negsample._ragged.Ragged` rows (CSR: one flat array, never
        padded to the widest row)."""
        lengths = np.fromiter((p.size for p in self.positives), np.int64, self.n_queries)
        indptr = np.zeros(self.n_queries + 1, np.int64)
        np.cumsum(lengths, out=indptr[1:])
        values = np.concatenate(self.positives) if self.positives else np.empty(0, np.int64)
        return Ragged(indptr, values.astype(np.int64, copy=False))

    def positives_padded(self) -> IntArray:
        """Positives as an int64 ``(n_queries, P)`` array padded with ``-1``."""
        width = max((p.size for p in self.positives), default=1)
        out = np.full((self.n_queries, max(width, 1)), -1, np.int64)
        for i, p in enumerate(self.positives):
            out[i, : p.size] = p
        return out

    def summary(self) -> str:
        n_pos = sum(p.size for p in self.positives)
        return (
            f"{self.path} [{self.split}]: {self.n_corpus} documents, {self.n_queries} queries, "
            f"{n_pos} positive judgements"
        )


def resolve_file(directory: str | os.PathLike[str], name: str) -> Path:
    """``directory/name`` or ``directory/name.gz``, whichever exists."""
    base = Path(directory) / name
    for p in (base, base.with_name(base.name + ".gz")):
        if p.is_file():
            return p
    raise FileNotFoundError(f"{base}: not found (nor {base.name}.gz)")


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; bad encodings name the line."""
    with _open_text(path) as f:
        lineno = 0
        try:
            for lineno, line in enumerate(f, start=1):
                if line.strip():
                    yield lineno, line
        except (UnicodeDecodeError, OSError, EOFError) as exc:
            raise DataError(path, lineno + 1, f"cannot read the file: {exc}") from exc


def _str_field(rec: dict[str, Any], key: str, path: Path, lineno: int, required: bool) -> str:
    if key not in rec:
        if required:
            raise DataError(path, lineno, f"missing field {key!r}")
        return ""
    v = rec[key]
    if v is None and not required:
        return ""
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise DataError(path, lineno, f"field {key!r} must be a string, got {type(v).__name__}")
    return str(v)


def _read_jsonl(
    path: Path, fields: tuple[str, ...], what: str
) -> tuple[list[str], dict[str, list[str]]]:
    """Ids and the requested text fields, with duplicate and empty checks."""
    ids: list[str] = []
    cols: dict[str, list[str]] = {f: [] for f in fields}
    seen: dict[str, int] = {}
    for lineno, line in _lines(path):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                path, lineno, f"malformed JSON ({exc.msg} at column {exc.colno})"
            ) from exc
        if not isinstance(rec, dict):
            raise DataError(path, lineno, f"expected a JSON object, got {type(rec).__name__}")
        _id = _str_field(rec, "_id", path, lineno, required=True)
        if not _id.strip():
            raise DataError(path, lineno, "empty _id")
        if _id in seen:
            raise DataError(
                path, lineno, f"duplicate {what} id {_id!r} (first on line {seen[_id]})"
            )
        seen[_id] = lineno
        values = {f: _str_field(rec, f, path, lineno, required=f == "text") for f in fields}
        if not any(v.strip() for v in values.values()):
            raise DataError(path, lineno, f"{what} {_id!r} has an empty text")
        ids.append(_id)
        for f in fields:
            cols[f].append(values[f])
    if not ids:
        raise DataError(path, None, f"no {what} records")
    return ids, cols


def _read_qrels(
    path: Path, query_row: dict[str, int], corpus_row: dict[str, int], stats: dict[str, int]
) -> tuple[dict[int, dict[int, int]], set[int]]:
    """``{query row: {corpus row: score}}`` for the judgements with score > 0, and the rows
    of every judged query."""
    out: dict[int, dict[int, int]] = {}
    judged: set[int] = set()
    first_line: dict[tuple[int, int], tuple[int, int]] = {}
    unknown_q: list[tuple[int, str]] = []
    unknown_d: list[tuple[int, str]] = []
    first = True
    for lineno, line in _lines(path):
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) == 1:
            parts = line.split()
        if first:
            first = False
            if parts[0].strip().lower() in ("query-id", "query_id", "qid"):
                continue  # header
        if len(parts) == 4:  # TREC qrels: qid iteration docid score
            parts = [parts[0], parts[2], parts[3]]
        if len(parts) != 3:
            raise DataError(
                path,
                lineno,
                f"expected 3 tab-separated fields (query-id corpus-id score), got {len(parts)}",
            )
        qid, did, sc = (p.strip() for p in parts)
        try:
            score = int(sc)
        except ValueError:
            try:
                fscore = float(sc)
            except ValueError:
                raise DataError(path, lineno, f"score {sc!r} is not a number") from None
            if not fscore.is_integer():
                raise DataError(path, lineno, f"score {sc!r} is not an integer grade") from None
            score = int(fscore)
        stats["judgements"] += 1
        qr = query_row.get(qid)
        dr = corpus_row.get(did)
        if qr is None:
            unknown_q.append((lineno, qid))
            continue
        if dr is None:
            unknown_d.append((lineno, did))
            continue
        key = (qr, dr)
        if key in first_line:
            prev_line, prev_score = first_line[key]
            if prev_score != score:
                raise DataError(
                    path,
                    lineno,
                    f"judgement ({qid}, {did}) has score {score} but line {prev_line} gives {prev_score}",
                )
            stats["duplicate_judgements"] += 1
            continue
        first_line[key] = (lineno, score)
        judged.add(qr)
        if score <= 0:
            stats["nonpositive_judgements"] += 1
            continue
        out.setdefault(qr, {})[dr] = score
    for bad, what, src in ((unknown_q, "query", "queries"), (unknown_d, "corpus", "corpus")):
        if bad:
            shown = ", ".join(f"{i!r} (line {n})" for n, i in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise DataError(
                path,
                bad[0][0],
                f"{len(bad)} judgements name {what} ids not in {src}: {shown}{more}",
            )
    return out, judged


def load_beir(path: str | os.PathLike[str], split: str = "train") -> BeirDataset:
    """Read a BEIR folder: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/{split}.tsv``
    (each may be ``.gz``).

    Only the split's queries with at least one judgement of score > 0 are kept; judgements
    with score <= 0 are not positives. Both are counted in ``stats``.

    Raises
    ------
    DataError
        (a ``ValueError``) naming the file, the line and the first offending ids, for a
        malformed line, a duplicate id, an empty text (a document needs a title or a text),
        a judgement naming an unknown query or document id, or a judgement repeated with a
        different score.
    FileNotFoundError
        when a file is missing.

    Examples
    --------
    >>> ds = ns.load_beir("data/nfcorpus", split="train")          # doctest: +SKIP
    >>> negs = ns.mine(q_emb, index, ds.positives, n=7)            # doctest: +SKIP
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory (expected a BEIR dataset folder)")
    corpus_file = resolve_file(root, "corpus.jsonl")
    queries_file = resolve_file(root, "queries.jsonl")
    qrels_file = resolve_file(root / "qrels", f"{split}.tsv")
    c_ids, c_cols = _read_jsonl(corpus_file, ("title", "text"), "document")
    q_ids, q_cols = _read_jsonl(queries_file, ("text",), "query")
    stats = {
        "judgements": 0,
        "nonpositive_judgements": 0,
        "duplicate_judgements": 0,
        "queries_without_positive": 0,
        "queries_not_in_split": 0,
    }
    corpus_row = {d: i for i, d in enumerate(c_ids)}
    query_row = {q: i for i, q in enumerate(q_ids)}
    judged, judged_rows = _read_qrels(qrels_file, query_row, corpus_row, stats)
    if not judged:
        raise DataError(qrels_file, None, "no judgement with a score > 0: no query has a positive")
    keep = sorted(judged)
    stats["queries_without_positive"] = len(judged_rows) - len(keep)
    stats["queries_not_in_split"] = len(q_ids) - len(judged_rows)
    return BeirDataset(
        path=root,
        split=split,
        corpus_ids=c_ids,
        corpus_titles=c_cols["title"],
        corpus_texts=c_cols["text"],
        query_ids=[q_ids[i] for i in keep],
        query_texts=[q_cols["text"][i] for i in keep],
        positives=[np.fromiter(judged[i].keys(), np.int64) for i in keep],
        relevance=[np.fromiter(judged[i].values(), np.int64) for i in keep],
        stats=stats,
    )

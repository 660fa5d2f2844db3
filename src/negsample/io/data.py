"""Reading retrieval datasets in the BEIR layout: string ids mapped to rows.

A BEIR folder holds ``corpus.jsonl`` (``{"_id", "title", "text"}``), ``queries.jsonl``
(``{"_id", "text"}``) and ``qrels/{split}.tsv`` (``query-id corpus-id score``, or the
4-column TREC form ``query-id iteration corpus-id score``), each plain or gzipped
(``.gz``; a folder holding both forms of one file is refused). Files are UTF-8 (a leading
byte-order mark is accepted). :func:`load_beir` reads them into a :class:`BeirDataset`:
corpus rows, the split's queries, and each query's positives as corpus row indices, ready
for :func:`negsample.mine`.
"""

from __future__ import annotations

import gzip
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from .._ragged import Ragged
from ..errors import InputError

__all__ = ["BeirDataset", "DataError", "load_beir", "resolve_file"]

IntArray = npt.NDArray[np.int64]


class DataError(InputError):
    """Bad input data. ``str(err)`` is ``"<file>:<line>: <problem>"`` (the line is left out
    when the problem is not on one line)."""

    def __init__(self, file: str | os.PathLike[str], line: int | None, problem: str) -> None:
        self.file = str(file)
        self.line = line
        self.problem = problem
        where = f"{self.file}:{line}" if line is not None else self.file
        super().__init__(f"{where}: {problem}")


class _TextList(list[str]):
    """The list of :attr:`BeirDataset.document_texts`; calling it (the method form of
    negsample <= 0.1) still works but is deprecated."""

    def __call__(self) -> list[str]:
        warnings.warn(
            "BeirDataset.document_texts is an attribute (like query_texts): "
            "write ds.document_texts, not ds.document_texts()",
            DeprecationWarning,
            stacklevel=2,
        )
        return self


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR split with string ids mapped to rows.

    Every text is an attribute (a list with one entry per row): ``corpus_titles``,
    ``corpus_texts``, ``document_texts`` (computed once), ``query_texts``.

    Attributes
    ----------
    path : the dataset folder.
    split : the qrels split read (``"train"``, ``"dev"``, ``"test"``...).
    corpus_ids, corpus_titles, corpus_texts : one entry per corpus row, in file order.
    query_ids, query_texts : the split's queries (those with at least one positive
        judgement), in ``queries.jsonl`` order.
    positives : one int64 array of corpus rows per query (judgement score >=
        ``min_relevance``), in qrels order.
    relevance : one int64 array per query, the judgement score of each positive.
    min_relevance : the smallest judgement score read as a positive.
    stats : counts of what was read and what was left out (``judgements``,
        ``nonpositive_judgements`` (score <= 0), ``below_min_relevance`` (0 < score <
        ``min_relevance``), ``duplicate_judgements``, ``queries_without_positive`` (no
        judgement > 0), ``queries_below_min_relevance`` (judgements > 0, none reaching
        ``min_relevance``: they lost every positive), ``queries_not_in_split``).
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
    min_relevance: int = 1

    @property
    def n_corpus(self) -> int:
        return len(self.corpus_ids)

    @property
    def n_queries(self) -> int:
        return len(self.query_ids)

    @cached_property
    def document_texts(self) -> _TextList:
        """``title + " " + text`` per corpus row (just ``text`` when the title is empty, just
        the title when the text is), the usual BEIR input to a bi-encoder. An attribute,
        like ``query_texts``; computed on first use."""
        return _TextList(
            f"{t} {x}" if t and x else (t or x)
            for t, x in zip(self.corpus_titles, self.corpus_texts, strict=True)
        )

    def duplicate_texts(self) -> list[IntArray]:
        """For each query, the corpus rows that are *not* labelled positives but whose
        document text (``document_texts``, exact match) is a positive's text: the same
        passage under another id. Sampling one as a negative trains the model to push away
        its own positive; :func:`~negsample.mine_dataset` excludes them by default."""
        texts = self.document_texts
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
            + (f" (score >= {self.min_relevance})" if self.min_relevance != 1 else "")
        )


def resolve_file(directory: str | os.PathLike[str], name: str) -> Path:
    """``directory/name`` or ``directory/name.gz``, whichever exists.

    Raises
    ------
    FileNotFoundError
        when neither exists.
    DataError
        when both exist: which one is meant is ambiguous, so neither is read.
    """
    base = Path(directory) / name
    found = [p for p in (base, base.with_name(base.name + ".gz")) if p.is_file()]
    if len(found) == 2:
        raise DataError(
            base.parent,
            None,
            f"both {found[0].name} and {found[1].name} are present; remove or rename one "
            "(which is meant is ambiguous)",
        )
    if not found:
        raise FileNotFoundError(f"{base}: not found (nor {base.name}.gz)")
    return found[0]


def _splits(qrels_dir: Path) -> list[str]:
    """The split names of the qrels files in ``qrels_dir``."""
    if not qrels_dir.is_dir():
        return []
    names = {
        p.name[: -len(".tsv.gz")] if p.name.endswith(".tsv.gz") else p.name[: -len(".tsv")]
        for p in qrels_dir.iterdir()
        if p.is_file() and (p.name.endswith(".tsv") or p.name.endswith(".tsv.gz"))
    }
    return sorted(names)


def qrels_file(root: str | os.PathLike[str], split: str) -> Path:
    """``root/qrels/{split}.tsv`` (or ``.gz``); a missing split names the splits there."""
    qdir = Path(root) / "qrels"
    try:
        return resolve_file(qdir, f"{split}.tsv")
    except FileNotFoundError as exc:
        have = _splits(qdir)
        where = f"the splits in {qdir} are: {', '.join(have)}" if have else f"{qdir} holds no *.tsv"
        raise FileNotFoundError(f"{exc}; {where}") from None


_UTF8_BOM = b"\xef\xbb\xbf"


def _open_binary(path: Path) -> IO[bytes] | gzip.GzipFile:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers in the file, each decoded on its own, so
    that bad bytes are reported on their true line. A UTF-8 byte-order mark is skipped."""
    lineno = 0
    with _open_binary(path) as f:
        try:
            for lineno, raw in enumerate(f, start=1):
                if lineno == 1:
                    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                        raise DataError(
                            path, 1, "the file is UTF-16 (byte-order mark); save it as UTF-8"
                        )
                    if raw.startswith(_UTF8_BOM):
                        raw = raw[len(_UTF8_BOM) :]
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(
                        path,
                        lineno,
                        f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}",
                    ) from None
                if line.strip():
                    yield lineno, line
        except (OSError, EOFError) as exc:
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
    path: Path, fields: tuple[str, ...], what: str, required: tuple[str, ...]
) -> tuple[list[str], dict[str, list[str]]]:
    """Ids and the requested text fields, with duplicate and empty checks. A record needs
    the ``required`` fields, and at least one of ``fields`` not blank."""
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
        values = {f: _str_field(rec, f, path, lineno, required=f in required) for f in fields}
        if not any(v.strip() for v in values.values()):
            also = " and no title" if "title" in fields else ""
            raise DataError(path, lineno, f"{what} {_id!r} has an empty text{also}")
        ids.append(_id)
        for f in fields:
            cols[f].append(values[f])
    if not ids:
        raise DataError(path, None, f"no {what} records")
    return ids, cols


_HEADER_FIRST = ("query-id", "query_id", "qid")


def _qrels_fields(line: str) -> list[str]:
    if "\t" in line:
        return [p.strip() for p in line.rstrip("\r\n").split("\t")]
    return line.split()


def _read_qrels(
    path: Path,
    query_row: dict[str, int],
    corpus_row: dict[str, int],
    stats: dict[str, int],
    min_relevance: int,
) -> tuple[dict[int, dict[int, int]], set[int], set[int]]:
    """``{query row: {corpus row: score}}`` for the judgements with score >=
    ``min_relevance``, the rows of every judged query, and those of the queries with a
    judgement > 0.

    Every line has the field count of the first one: 3 (BEIR: ``query-id corpus-id
    score``, after an optional header) or 4 (TREC: ``query-id iteration corpus-id score``).
    """
    out: dict[int, dict[int, int]] = {}
    judged: set[int] = set()
    graded: set[int] = set()
    first_line: dict[tuple[int, int], tuple[int, int]] = {}
    unknown_q: list[tuple[int, str]] = []
    unknown_d: list[tuple[int, str]] = []
    width: tuple[int, int] | None = None  # (field count, line that set it)
    for lineno, line in _lines(path):
        parts = _qrels_fields(line)
        if width is None:
            if len(parts) not in (3, 4):
                raise DataError(
                    path,
                    lineno,
                    f"expected 3 tab-separated fields (query-id corpus-id score), or 4 "
                    f"(TREC: query-id iteration corpus-id score), got {len(parts)}",
                )
            width = (len(parts), lineno)
            if parts[0].lower() in _HEADER_FIRST:
                continue  # header
        if len(parts) != width[0]:
            form = (
                "3 tab-separated fields (query-id corpus-id score)"
                if width[0] == 3
                else "4 fields (TREC: query-id iteration corpus-id score)"
            )
            raise DataError(
                path, lineno, f"expected {form} as on line {width[1]}, got {len(parts)}"
            )
        if width[0] == 4:  # TREC qrels: qid iteration docid score
            parts = [parts[0], parts[2], parts[3]]
        qid, did, sc = parts
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
        graded.add(qr)
        if score < min_relevance:
            stats["below_min_relevance"] += 1
            continue
        out.setdefault(qr, {})[dr] = score
    if width is None:
        raise DataError(path, None, "no judgements (the file is empty)")
    for bad, what, src in ((unknown_q, "query", "queries"), (unknown_d, "corpus", "corpus")):
        if bad:
            shown = ", ".join(f"{i!r} (line {n})" for n, i in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise DataError(
                path,
                bad[0][0],
                f"{len(bad)} judgements name {what} ids not in {src}: {shown}{more}",
            )
    return out, judged, graded


def load_beir(
    path: str | os.PathLike[str], split: str = "train", *, min_relevance: int = 1
) -> BeirDataset:
    """Read a BEIR folder: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/{split}.tsv``
    (each may be ``.gz``, not both).

    Parameters
    ----------
    path : the dataset folder.
    split : the qrels file to read, ``qrels/{split}.tsv``.
    min_relevance : the smallest judgement score that makes a positive (default 1: any
        score > 0). Graded qrels such as TREC-DL's (0 irrelevant, 1 related, 2 highly
        relevant, 3 perfectly relevant) want ``min_relevance=2``. Judgements below it are
        counted in ``stats["below_min_relevance"]``, and queries left without a positive
        in ``stats["queries_below_min_relevance"]``.

    Only the split's queries with at least one judgement of score >= ``min_relevance``
    are kept; the other judgements are not positives. Both are counted in ``stats``.
    A document needs a title or a text (either may be missing or empty, not both); a
    query needs a text.

    Raises
    ------
    DataError
        (a ``ValueError``) naming the file, the line and the first offending ids, for a
        malformed line, bytes that are not UTF-8, a duplicate id, an empty text, a
        judgement naming an unknown query or document id, a judgement repeated with a
        different score, a qrels line whose field count differs from the first line's,
        or both ``X`` and ``X.gz`` present.
    FileNotFoundError
        when a file is missing (a missing split names the splits that exist).

    Examples
    --------
    >>> ds = ns.load_beir("data/nfcorpus", split="train")          # doctest: +SKIP
    >>> negs = ns.mine(q_emb, index, ds.positives, n=7)            # doctest: +SKIP
    """
    if isinstance(min_relevance, bool) or not isinstance(min_relevance, int | np.integer):
        raise TypeError(f"min_relevance must be an integer, got {min_relevance!r}")
    if min_relevance < 1:
        raise ValueError(
            f"min_relevance must be >= 1 (a score <= 0 is never a positive), got {min_relevance}"
        )
    min_relevance = int(min_relevance)
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory (expected a BEIR dataset folder)")
    corpus_file = resolve_file(root, "corpus.jsonl")
    queries_file = resolve_file(root, "queries.jsonl")
    qrels = qrels_file(root, split)
    c_ids, c_cols = _read_jsonl(corpus_file, ("title", "text"), "document", ())
    q_ids, q_cols = _read_jsonl(queries_file, ("text",), "query", ("text",))
    stats = {
        "judgements": 0,
        "nonpositive_judgements": 0,
        "below_min_relevance": 0,
        "duplicate_judgements": 0,
        "queries_without_positive": 0,
        "queries_below_min_relevance": 0,
        "queries_not_in_split": 0,
    }
    corpus_row = {d: i for i, d in enumerate(c_ids)}
    query_row = {q: i for i, q in enumerate(q_ids)}
    judged, judged_rows, graded_rows = _read_qrels(
        qrels, query_row, corpus_row, stats, min_relevance
    )
    if not judged:
        raise DataError(
            qrels,
            None,
            f"no judgement with a score >= {min_relevance}: no query has a positive"
            + (
                f" ({stats['below_min_relevance']} judgements below it)"
                if min_relevance > 1
                else ""
            ),
        )
    keep = sorted(judged)
    stats["queries_without_positive"] = len(judged_rows) - len(graded_rows)
    stats["queries_below_min_relevance"] = len(graded_rows) - len(keep)
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
        min_relevance=min_relevance,
    )

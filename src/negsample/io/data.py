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

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .._ragged import Ragged
from ..errors import InputError, InputTypeError
from ._jsonl import read_records
from ._reading import DataError, block_lines, blocks, parse_grade
from .normalize import normalized_groups
from .texts import Texts, as_texts, document_groups, lookup

__all__ = ["BeirDataset", "DataError", "load_beir", "resolve_file"]

IntArray = npt.NDArray[np.int64]


class _DocumentTexts(Texts):
    """:attr:`BeirDataset.document_texts`; calling it (the method form of negsample <= 0.1)
    still works but is deprecated."""

    __slots__ = ()

    def __call__(self) -> _DocumentTexts:
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

    Every text is an attribute with one entry per row: ``corpus_titles``,
    ``corpus_texts``, ``document_texts`` (``title + " " + text``), ``query_texts``. Loaded
    by :func:`load_beir`, they are :class:`~negsample.io.texts.Texts`: read-only sequences
    of strings kept as UTF-8 bytes (indexing gives a ``str``, slicing a ``list[str]``),
    the titles and texts being views over the documents' bytes; built by hand, any
    sequences of strings do.

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
    corpus_ids: Sequence[str]
    corpus_titles: Sequence[str]
    corpus_texts: Sequence[str]
    query_ids: Sequence[str]
    query_texts: Sequence[str]
    positives: list[IntArray]
    relevance: list[IntArray]
    stats: dict[str, int] = field(default_factory=dict)
    min_relevance: int = 1
    #: the documents' bytes the titles and texts are views of (set by load_beir)
    _documents: Texts | None = field(default=None, repr=False, compare=False)

    @property
    def n_corpus(self) -> int:
        return len(self.corpus_ids)

    @property
    def n_queries(self) -> int:
        return len(self.query_ids)

    @cached_property
    def document_texts(self) -> _DocumentTexts:
        """``title + " " + text`` per corpus row (just ``text`` when the title is empty, just
        the title when the text is), the usual BEIR input to a bi-encoder. An attribute,
        like ``query_texts``: a read-only sequence of strings (compact, see
        :class:`~negsample.io.texts.Texts`)."""
        docs = self._documents
        if (
            docs is not None
            and all(isinstance(c, Texts) for c in (self.corpus_titles, self.corpus_texts))
            and docs.shares_rows(self.corpus_titles)  # type: ignore[arg-type]
            and docs.shares_rows(self.corpus_texts)  # type: ignore[arg-type]
        ):
            return _DocumentTexts(docs._chunks)
        return _DocumentTexts(
            Texts.from_strings(
                f"{t} {x}" if t and x else (t or x)
                for t, x in zip(self.corpus_titles, self.corpus_texts, strict=True)
            )._chunks
        )

    def duplicate_texts(self) -> list[IntArray]:
        """For each query, the corpus rows that are *not* labelled positives but whose
        document text (``document_texts``, exact match) is a positive's text: the same
        passage under another id. Sampling one as a negative trains the model to push away
        its own positive; :func:`~negsample.mine_dataset` excludes them by default.

        The texts are compared as bytes: a 64-bit fingerprint of each document (its length
        and first, middle and last bytes) finds the candidates sharing one with a positive,
        and their bytes decide; no Python string is made for the other documents."""
        flat = np.concatenate(self.positives) if self.positives else np.empty(0, np.int64)
        members, gid = document_groups(as_texts(self.document_texts), flat)
        return _sharing_positives(self.positives, members, gid)

    def near_duplicate_texts(self) -> list[IntArray]:
        """For each query, the corpus rows that are *not* labelled positives but whose
        document text, normalised (:func:`~negsample.io.normalize.normalize_text`: NFKC,
        case-folded, invisible characters removed, runs of whitespace and punctuation
        collapsed), equals a positive's: the same passage crawled again with other
        spacing, casing or punctuation. Holds every row of :meth:`duplicate_texts` (an
        identical text normalises alike) and the near copies besides;
        :func:`~negsample.mine_dataset` excludes them with ``near_duplicate_texts=True``.

        Every document's normalised text is hashed once, one row at a time (64-bit keys,
        8 bytes a row); rows sharing a key with a positive are compared on their
        normalised texts."""
        flat = np.concatenate(self.positives) if self.positives else np.empty(0, np.int64)
        members, gid = normalized_groups(self.document_texts, flat)
        return _sharing_positives(self.positives, members, gid)

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


def _sharing_positives(
    positives: list[IntArray], members: IntArray, gid: IntArray
) -> list[IntArray]:
    """Per query, the rows of ``members`` in a group (``gid``) of one of its positives,
    its positives left out (sorted)."""
    empty = np.empty(0, np.int64)
    if members.size == 0:
        return [empty] * len(positives)
    group_of_row = dict(zip(members.tolist(), gid.tolist(), strict=True))
    order = np.argsort(gid, kind="stable")
    bounds = np.flatnonzero(np.diff(gid[order])) + 1
    rows_of = dict(
        zip(gid[order][np.r_[0, bounds]].tolist(), np.split(members[order], bounds), strict=True)
    )
    out = []
    for p in positives:
        groups = {group_of_row[r] for r in p.tolist() if r in group_of_row}
        if not groups:
            out.append(empty)
            continue
        out.append(np.setdiff1d(np.concatenate([rows_of[g] for g in sorted(groups)]), p))
    return out


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


_HEADER_FIRST = ("query-id", "query_id", "qid")


def _qrels_fields(line: str) -> list[str]:
    if "\t" in line:
        return [p.strip() for p in line.rstrip("\r\n").split("\t")]
    return line.split()


class _Qrels:
    """The judgements of a qrels file, in line order, up to its first malformed line.

    A block of the usual form (3 tab-separated fields, no other whitespace or control
    byte, ASCII, grades of ASCII digits) is split with numpy and its ids kept as bytes;
    any other block is read line by line, with every rule and message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: DataError | None = None  # the first malformed line's, raised in order
        self.empty = True
        self._width: tuple[int, int] | None = None  # (field count, line that set it)
        parts: list[tuple[Texts, Texts, IntArray, IntArray]] = []
        try:
            for lineno, block in blocks(path):
                got = self._fast(lineno, block)
                if got is None:
                    got, self.error = self._slow(lineno, block)
                parts.append(got)
                if self.error is not None:
                    break
        except DataError as exc:  # unreadable: a gzip error, a UTF-16 file
            self.error = exc
        self.qids = Texts([c for p in parts for c in p[0]._chunks])
        self.dids = Texts([c for p in parts for c in p[1]._chunks])
        self.scores = np.concatenate([p[2] for p in parts]) if parts else np.empty(0, np.int64)
        self.lines = np.concatenate([p[3] for p in parts]) if parts else np.empty(0, np.int64)

    def _fast(
        self, lineno: int, block: bytearray
    ) -> tuple[Texts, Texts, IntArray, IntArray] | None:
        """The block's judgements when it has the usual form, else ``None``."""
        a = np.frombuffer(block, dtype=np.uint8)
        if self._width not in (None, 3) or a.size == 0 or a[-1] != 10 or a.max() >= 0x80:
            return None  # non-ASCII bytes are decoded (and checked) line by line
        tab, nl = a == 9, a == 10
        if np.count_nonzero(a <= 32) != np.count_nonzero(tab) + np.count_nonzero(nl):
            return None  # spaces, \r, NUL or other control bytes
        flat = np.flatnonzero(tab | nl)
        if flat.size % 3:
            return None
        seps = flat.reshape(-1, 3)
        if not ((a[seps[:, :2]] == 9).all() and (a[seps[:, 2]] == 10).all()):
            return None  # not 3 fields on every line, or a blank line
        starts = np.concatenate([[0], seps[:-1, 2] + 1])
        if (seps[:, 0] == starts).any() or (seps[:, 1] == seps[:, 0] + 1).any():
            return None  # an empty field
        first = 0
        if self._width is None:
            head = bytes(block[: int(seps[0, 0])]).decode("ascii").lower()
            first = 1 if head in _HEADER_FIRST else 0
        s0, s1 = seps[first:, 1] + 1, seps[first:, 2]
        n = s1 - s0
        if (n == 0).any() or (n > 18).any():
            return None
        width = int(n.max(initial=1))
        col = np.arange(width)
        inside = col < n[:, None]
        d = a[np.minimum(s0[:, None] + col, a.size - 1)].astype(np.int64) - 48
        if ((d < 0) | (d > 9))[inside].any():
            return None  # a sign, a point, a letter: parse_grade decides, line by line
        power = np.where(inside, 10 ** np.maximum(n[:, None] - 1 - col, 0), 0)
        if self._width is None:
            self._width, self.empty = (3, lineno), False
        return (
            _spans(a, starts[first:], seps[first:, 0]),
            _spans(a, seps[first:, 0] + 1, seps[first:, 1]),
            (d * power).sum(axis=1).astype(np.int64),
            (lineno + np.arange(first, seps.shape[0])).astype(np.int64),
        )

    def _slow(
        self, lineno: int, block: bytearray
    ) -> tuple[tuple[Texts, Texts, IntArray, IntArray], DataError | None]:
        """The block's judgements line by line, up to its first malformed line (its
        error is returned with the judgements before it)."""
        qids: list[str] = []
        dids: list[str] = []
        scores: list[int] = []
        lines_: list[int] = []
        error = None
        try:
            for n, line in block_lines(self.path, lineno, block):
                self._line(n, line, qids, dids, scores, lines_)
        except DataError as exc:
            error = exc
        out = (
            Texts.from_strings(qids),
            Texts.from_strings(dids),
            np.asarray(scores, np.int64),
            np.asarray(lines_, np.int64),
        )
        return out, error

    def _line(
        self,
        lineno: int,
        line: str,
        qids: list[str],
        dids: list[str],
        scores: list[int],
        lines_: list[int],
    ) -> None:
        path = self.path
        parts = _qrels_fields(line)
        width = self._width
        if width is None:
            self.empty = False
            if len(parts) not in (3, 4):
                raise DataError(
                    path,
                    lineno,
                    f"expected 3 tab-separated fields (query-id corpus-id score), or 4 "
                    f"(TREC: query-id iteration corpus-id score), got {len(parts)}",
                )
            self._width = width = (len(parts), lineno)
            if parts[0].lower() in _HEADER_FIRST:
                return  # header
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
            qid, _, did, sc = parts
        else:
            qid, did, sc = parts
        if sc.isascii() and sc.isdigit() and len(sc) < 19:
            scores.append(int(sc))
        else:
            scores.append(parse_grade(path, lineno, sc))
        qids.append(qid)
        dids.append(did)
        lines_.append(lineno)


def _spans(a: npt.NDArray[np.uint8], starts: IntArray, ends: IntArray) -> Texts:
    """A compact column of the byte spans ``a[starts[i]:ends[i]]``."""
    lengths = ends - starts
    offsets = np.zeros(lengths.size + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    index = np.repeat(starts - offsets[:-1], lengths) + np.arange(int(offsets[-1]))
    return Texts([(a[index], offsets)])


def _read_qrels(
    path: Path,
    query_ids: Texts,
    corpus_ids: Texts,
    stats: dict[str, int],
    min_relevance: int,
) -> tuple[IntArray, IntArray, IntArray, int, int]:
    """The judgements with score >= ``min_relevance`` (query rows, corpus rows, scores:
    first judgements only, in qrels order), and the numbers of judged queries and of
    queries with a judgement > 0.

    Every line has the field count of the first one: 3 (BEIR: ``query-id corpus-id
    score``, after an optional header) or 4 (TREC: ``query-id iteration corpus-id score``).
    Problems are raised in the order a line-by-line reading meets them: a malformed line,
    or an earlier judgement repeated with another score; then judgements naming unknown
    query ids, then unknown corpus ids.
    """
    q = _Qrels(path)
    qr = lookup(query_ids, q.qids)
    dr = lookup(corpus_ids, q.dids)
    score, line = q.scores, q.lines
    known = np.flatnonzero((qr >= 0) & (dr >= 0))
    key = qr[known] * max(1, len(corpus_ids)) + dr[known]
    _, first_at, inverse = np.unique(key, return_index=True, return_inverse=True)
    first = known[first_at[inverse]]  # each known line's first judgement of its pair
    clash = np.flatnonzero(score[known] != score[first])
    if clash.size:
        i, f = int(known[clash[0]]), int(first[clash[0]])
        raise DataError(
            path,
            int(line[i]),
            f"judgement ({q.qids[i]}, {q.dids[i]}) has score {score[i]} but line {line[f]} "
            f"gives {score[f]}",
        )
    if q.error is not None:
        raise q.error
    if q.empty:
        raise DataError(path, None, "no judgements (the file is empty)")
    stats["judgements"] += int(line.size)
    unknown_q = np.flatnonzero(qr < 0)
    unknown_d = np.flatnonzero((qr >= 0) & (dr < 0))
    for bad, names, what, src in (
        (unknown_q, q.qids, "query", "queries"),
        (unknown_d, q.dids, "corpus", "corpus"),
    ):
        if bad.size:
            shown = ", ".join(f"{names[i]!r} (line {line[i]})" for i in bad[:5].tolist())
            more = f" and {bad.size - 5} more" if bad.size > 5 else ""
            raise DataError(
                path,
                int(line[bad[0]]),
                f"{bad.size} judgements name {what} ids not in {src}: {shown}{more}",
            )
    is_first = known[np.sort(first_at)]  # the first judgements, in line order
    stats["duplicate_judgements"] += int(known.size - is_first.size)
    s = score[is_first]
    stats["nonpositive_judgements"] += int((s <= 0).sum())
    stats["below_min_relevance"] += int(((s > 0) & (s < min_relevance)).sum())
    kept = is_first[s >= min_relevance]
    n_judged = int(np.unique(qr[is_first]).size)
    n_graded = int(np.unique(qr[is_first[s > 0]]).size)
    return qr[kept], dr[kept], score[kept], n_judged, n_graded


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
        raise InputTypeError(f"min_relevance must be an integer, got {min_relevance!r}")
    if min_relevance < 1:
        raise InputError(
            f"min_relevance must be >= 1 (a score <= 0 is never a positive), got {min_relevance}"
        )
    min_relevance = int(min_relevance)
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory (expected a BEIR dataset folder)")
    corpus_file = resolve_file(root, "corpus.jsonl")
    queries_file = resolve_file(root, "queries.jsonl")
    qrels = qrels_file(root, split)
    return _load(root, split, min_relevance, corpus_file, queries_file, qrels, fast=True)


def _load(
    root: Path,
    split: str,
    min_relevance: int,
    corpus_file: Path,
    queries_file: Path,
    qrels: Path,
    *,
    fast: bool,
) -> BeirDataset:
    """:func:`load_beir` after its checks; ``fast=False`` reads the jsonl files line by
    line only (the reference reader, also used by the benchmarks)."""
    corpus = read_records(corpus_file, what="document", title=True, fast=fast)
    queries = read_records(queries_file, what="query", title=False, fast=fast)
    stats = {
        "judgements": 0,
        "nonpositive_judgements": 0,
        "below_min_relevance": 0,
        "duplicate_judgements": 0,
        "queries_without_positive": 0,
        "queries_below_min_relevance": 0,
        "queries_not_in_split": 0,
    }
    q_rows, d_rows, scores, n_judged, n_graded = _read_qrels(
        qrels, queries.ids, corpus.ids, stats, min_relevance
    )
    if q_rows.size == 0:
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
    order = np.argsort(q_rows, kind="stable")  # by query row, qrels order within
    keep, starts = np.unique(q_rows[order], return_index=True)
    bounds = list(zip(starts.tolist(), [*starts[1:].tolist(), order.size], strict=True))
    d_sorted, s_sorted = d_rows[order], scores[order]
    positives = [d_sorted[a:b] for a, b in bounds]
    relevance = [s_sorted[a:b] for a, b in bounds]
    stats["queries_without_positive"] = n_judged - n_graded
    stats["queries_below_min_relevance"] = n_graded - keep.size
    stats["queries_not_in_split"] = len(queries.ids) - n_judged
    docs = corpus.texts
    assert corpus.cuts is not None
    return BeirDataset(
        path=root,
        split=split,
        corpus_ids=corpus.ids,
        corpus_titles=docs.titles(corpus.cuts),
        corpus_texts=docs.after_titles(corpus.cuts),
        query_ids=queries.ids.take(keep),
        query_texts=queries.texts.take(keep),
        positives=positives,
        relevance=relevance,
        stats=stats,
        min_relevance=min_relevance,
        _documents=docs,
    )

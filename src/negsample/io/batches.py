"""A batch-safe order for training rows: no batch holds a row whose passages include a
labelled positive of another row's query.

With in-batch negatives (sentence-transformers' ``MultipleNegativesRankingLoss`` and its
cached variant, GIST, FlagEmbedding's ``use_inbatch_neg``), every passage of a batch is a
negative for every other row's query. When row ``j``'s hard negative (or its positive) is
a labelled positive of row ``i``'s query, the loss pushes ``i``'s query away from its own
positive: a contradictory signal. llm2vec #178 measured 53-93% of NQ and SQuAD batches
holding such a pair.

**The rule.** Rows ``i`` and ``j`` *conflict* when a passage of one is a labelled positive
of the other's anchor (query): ``passages(i) & positives(anchor(j))`` or ``passages(j) &
positives(anchor(i))`` is not empty. Passages and anchors are compared by text (what the
model sees: two ids with the same text are the same passage), or by id for Tevatron rows.
Two rows of one query always conflict (each one's positive is the other's), so a query's
rows land in different batches. Batches are the consecutive runs of ``batch_size`` rows
from the start (the last one shorter), as a sequential loader cuts them.

**The order** (:func:`batch_safe_order`, seeded, deterministic): ``ceil(rows /
batch_size)`` batches; rows are placed most constrained first (rows whose anchor has the
most rows), ties in a seeded random order, each into a batch with room chosen at random
among those it does not conflict with. A row that fits nowhere is placed by moving a
row of a batch it would fit into to a batch with room that row fits into; failing that,
into the batch with room where it conflicts with the fewest passages, and counted
(:attr:`BatchOrder.conflicts`). No row is ever dropped. Finding an order with no conflict
is a graph-colouring problem (NP-hard in general), so this is a greedy heuristic: a
conflict-free order may exist where it counts conflicts (never the other way round:
:func:`count_conflicts` checks the result).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._rng import Stream
from .._validate import check_int
from ..errors import InputError

if TYPE_CHECKING:
    from .data import BeirDataset

__all__ = [
    "BATCH_FORMATS",
    "BatchOrder",
    "batch_safe_order",
    "count_conflicts",
    "order_rows",
    "row_items",
]

IntArray = npt.NDArray[np.int64]

#: The formats whose rows :func:`order_rows` can order (the row formats; ``hf`` in any of
#: its layouts). Parquet (ids for your own pipeline) and ``pylate-kd`` (scores per query,
#: no in-batch negatives) are left as written.
BATCH_FORMATS = (
    "st-triplet",
    "st-ntuple",
    "labeled-pair",
    "labeled-list",
    "flagembedding",
    "tevatron",
    "hf",
)

_TRIES = 16  # random batches tried before scanning every batch with room
_REPAIR_SCAN = 256  # full batches tried when repairing a row that fits nowhere


@dataclass(frozen=True)
class BatchOrder:
    """A batch-safe order from :func:`batch_safe_order`.

    Attributes
    ----------
    order : int64 ``(rows,)``: the row written at position ``i`` is row ``order[i]``.
    batch_size : rows per batch.
    batches : ``ceil(rows / batch_size)``.
    conflicts : rows that share their batch with a row they conflict with, in this order
        (0 when the order is batch-safe).
    conflicts_before : the same count for the rows in their given order.
    """

    order: IntArray
    batch_size: int
    batches: int
    conflicts: int
    conflicts_before: int


class _Keys:
    """Rows as small ints: ``D[i]`` the passages of row ``i`` that are somebody's
    positive, ``Q[i]`` the positives of its anchor (only those can ever conflict)."""

    def __init__(
        self,
        anchors: Sequence[Hashable],
        passages: Sequence[Sequence[Hashable]],
        positives_of: Mapping[Any, Any],
    ) -> None:
        if len(anchors) != len(passages):
            raise InputError(f"{len(anchors)} anchors but {len(passages)} rows of passages")
        code: dict[Hashable, int] = {}
        anchor_q: dict[Hashable, list[int]] = {}
        for a, ps in positives_of.items():
            anchor_q[a] = sorted({code.setdefault(p, len(code)) for p in ps})
        self.D: list[list[int]] = []
        self.Q: list[list[int]] = []
        empty: list[int] = []
        for a, ps in zip(anchors, passages, strict=True):
            self.D.append(sorted({code[p] for p in ps if p in code}))
            self.Q.append(anchor_q.get(a, empty))
        self.anchors = anchors


def _conflicting_rows(keys: _Keys, batches: Sequence[Sequence[int]]) -> int:
    """Rows in a batch with a row they conflict with."""
    bad = 0
    for members in batches:
        holders: dict[int, list[int]] = {}  # positive key -> rows of the batch whose anchor has it
        for i in members:
            for p in keys.Q[i]:
                holders.setdefault(p, []).append(i)
        hit: set[int] = set()
        for i in members:
            for d in keys.D[i]:
                for j in holders.get(d, ()):
                    if j != i:
                        hit.add(i)
                        hit.add(j)
        bad += len(hit)
    return bad


def _cut(order: Sequence[int], batch_size: int) -> list[Sequence[int]]:
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def count_conflicts(
    anchors: Sequence[Hashable],
    passages: Sequence[Sequence[Hashable]],
    positives_of: Mapping[Any, Any],
    *,
    batch_size: int,
    order: Sequence[int] | None = None,
) -> int:
    """Rows that share their batch (consecutive ``batch_size`` rows in ``order``, default
    the given order) with a row they conflict with (the module's rule).

    Parameters
    ----------
    anchors : the anchor (query) of each row.
    passages : the passages of each row (its positive and negatives).
    positives_of : the labelled positives of each anchor.
    batch_size : rows per batch.
    order : the rows in the order they are written (default ``range(rows)``).

    Returns
    -------
    int
    """
    batch_size = check_int("batch_size", batch_size, 1)
    keys = _Keys(anchors, passages, positives_of)
    rows = list(range(len(anchors))) if order is None else [int(i) for i in order]
    return _conflicting_rows(keys, _cut(rows, batch_size))


def batch_safe_order(
    anchors: Sequence[Hashable],
    passages: Sequence[Sequence[Hashable]],
    positives_of: Mapping[Any, Any],
    *,
    batch_size: int,
    seed: int = 0,
) -> BatchOrder:
    """An order of the rows in which no batch of ``batch_size`` consecutive rows holds two
    rows that conflict, when the greedy placement finds one (the module's rule).

    Parameters
    ----------
    anchors : the anchor (query text, or any hashable key) of each row.
    passages : the passages of each row (positive and negatives; texts or ids).
    positives_of : the labelled positives of each anchor (keys like ``passages``).
    batch_size : rows per training batch (``per_device_train_batch_size``).
    seed : seeds the order (the same inputs and seed give the same order).

    Returns
    -------
    BatchOrder

    Examples
    --------
    >>> from negsample.io.batches import batch_safe_order
    >>> # q1's negative is q0's positive: q0 and q1 must not share a batch
    >>> o = batch_safe_order(["q0", "q1", "q2", "q3"], [["a", "x"], ["b", "a"], ["c", "y"],
    ...                      ["d", "z"]], {"q0": ["a"], "q1": ["b"], "q2": ["c"], "q3": ["d"]},
    ...                      batch_size=2, seed=0)
    >>> o.conflicts_before, o.conflicts, sorted(o.order.tolist())
    (2, 0, [0, 1, 2, 3])
    """
    batch_size = check_int("batch_size", batch_size, 1)
    keys = _Keys(anchors, passages, positives_of)
    n = len(anchors)
    before = _conflicting_rows(keys, _cut(list(range(n)), batch_size))
    if n == 0:
        return BatchOrder(np.empty(0, np.int64), batch_size, 0, 0, 0)
    k = math.ceil(n / batch_size)
    cap = [batch_size] * k
    cap[-1] = n - (k - 1) * batch_size
    rng = np.random.default_rng([int(seed) % (1 << 64), Stream.BATCH])
    per_anchor: dict[Hashable, int] = {}
    for a in anchors:
        per_anchor[a] = per_anchor.get(a, 0) + 1
    degree = np.array([per_anchor[a] for a in anchors], np.int64)
    todo = np.lexsort((rng.random(n), -degree))  # most constrained first, then at random
    members: list[list[int]] = [[] for _ in range(k)]
    room = list(range(k))  # batches with room; at[b]: position of b in room (-1: full)
    at = list(range(k))
    pos_at: dict[int, int] = {}  # key * k + batch -> rows of the batch whose anchor has it
    doc_at: dict[int, int] = {}  # key * k + batch -> rows of the batch holding it

    def clash(i: int, b: int) -> bool:
        return any(d * k + b in pos_at for d in keys.D[i]) or any(
            p * k + b in doc_at for p in keys.Q[i]
        )

    def clash_count(i: int, b: int) -> int:
        return sum(pos_at.get(d * k + b, 0) for d in keys.D[i]) + sum(
            doc_at.get(p * k + b, 0) for p in keys.Q[i]
        )

    def put(i: int, b: int) -> None:
        members[b].append(i)
        for d in keys.D[i]:
            doc_at[d * k + b] = doc_at.get(d * k + b, 0) + 1
        for p in keys.Q[i]:
            pos_at[p * k + b] = pos_at.get(p * k + b, 0) + 1
        if len(members[b]) == cap[b]:  # full: out of room (swap with the last)
            j, last = at[b], room[-1]
            room[j], at[last] = last, j
            room.pop()
            at[b] = -1

    def take_out(i: int, b: int) -> None:
        members[b].remove(i)
        for store, ks in ((doc_at, keys.D[i]), (pos_at, keys.Q[i])):
            for x in ks:
                c = store[x * k + b] - 1
                if c:
                    store[x * k + b] = c
                else:
                    del store[x * k + b]
        if at[b] < 0:  # room again
            at[b] = len(room)
            room.append(b)

    left: list[int] = []
    for i in todo.tolist():
        if not keys.D[i] and not keys.Q[i]:
            put(i, room[int(rng.integers(len(room)))])
            continue
        for _ in range(_TRIES):
            b = room[int(rng.integers(len(room)))]
            if not clash(i, b):
                put(i, b)
                break
        else:
            free = [b for b in room if not clash(i, b)]
            if free:
                put(i, free[int(rng.integers(len(free)))])
            else:
                left.append(i)
    for i in left:  # fits no batch with room: move a row out of a batch it fits into
        if not _repair(i, k, members, room, at, clash, put, take_out, rng):
            put(i, min(room, key=lambda b: (clash_count(i, b), b)))
    order: list[int] = []
    for b in range(k):
        order += [members[b][j] for j in rng.permutation(len(members[b])).tolist()]
    out = np.asarray(order, np.int64)
    after = _conflicting_rows(keys, _cut(order, batch_size))
    return BatchOrder(out, batch_size, k, after, before)


def _repair(
    i: int,
    k: int,
    members: list[list[int]],
    room: list[int],
    at: list[int],
    clash: Any,
    put: Any,
    take_out: Any,
    rng: np.random.Generator,
) -> bool:
    """Place row ``i`` in a full batch ``c`` it does not conflict with, moving one of
    ``c``'s rows to a batch with room that row does not conflict with. False if none of
    the :data:`_REPAIR_SCAN` batches tried allows it."""
    for c in rng.permutation(k)[:_REPAIR_SCAN].tolist():
        if at[c] >= 0 or clash(i, c):
            continue
        for j in list(members[c]):
            for b in list(room):
                if not clash(j, b):
                    take_out(j, c)
                    put(j, b)
                    put(i, c)
                    return True
    return False


# -- the rows of the writers' formats -------------------------------------------------------


def row_items(fmt: str, row: Mapping[str, Any]) -> tuple[Hashable, list[Hashable]]:
    """The anchor and the passages of one row of ``fmt`` (a writer's format, or a ``hf``
    layout) as :func:`batch_safe_order` compares them: texts, or ids for ``tevatron``."""
    if fmt == "st-ntuple":
        negs = [v for key, v in row.items() if key.startswith("negative_")]
        return row["anchor"], [row["positive"], *negs]
    if fmt == "st-triplet":
        return row["anchor"], [row["positive"], row["negative"]]
    if fmt == "labeled-list":
        return row["query"], list(row["passages"])
    if fmt == "labeled-pair":
        return row["query"], [row["passage"]]
    if fmt == "flagembedding":
        return row["query"], [*row["pos"], *row["neg"]]
    if fmt == "tevatron":
        return row["query_text"], [*row["positive_document_ids"], *row["negative_document_ids"]]
    raise InputError(
        f"rows of format {fmt!r} cannot be ordered for batches (row formats: "
        f"{', '.join(BATCH_FORMATS)})"
    )


def dataset_positives(dataset: BeirDataset, *, by_id: bool = False) -> dict[Hashable, set[Any]]:
    """The labelled positives of each query text of ``dataset``: their texts
    (``document_texts``), or corpus ids with ``by_id``. Queries with the same text share
    their positives (the model cannot tell them apart)."""
    docs = dataset.corpus_ids if by_id else dataset.document_texts
    out: dict[Hashable, set[Any]] = {}
    for text, pos in zip(dataset.query_texts, dataset.positives, strict=True):
        out.setdefault(text, set()).update(docs[int(p)] for p in pos.tolist())
    return out


def order_rows(
    rows: list[dict[str, Any]],
    fmt: str,
    dataset: BeirDataset,
    *,
    batch_size: int,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], BatchOrder]:
    """``rows`` of ``fmt`` (a writer's rows, or a ``hf`` layout's) in a batch-safe order
    for ``dataset``'s positives (:func:`batch_safe_order`)."""
    items = [row_items(fmt, r) for r in rows]
    got = batch_safe_order(
        [a for a, _ in items],
        [p for _, p in items],
        dataset_positives(dataset, by_id=fmt == "tevatron"),
        batch_size=batch_size,
        seed=seed,
    )
    return [rows[i] for i in got.order.tolist()], got

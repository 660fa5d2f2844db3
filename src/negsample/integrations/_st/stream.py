"""Streamed input: a ``datasets.IterableDataset`` of (anchor, positive) pairs read in
batches of :data:`~.inputs.READ_ROWS` rows, in bounded memory.

No list of the dataset's rows or texts is ever built: each batch's texts are given ids in
order of first appearance (as ``dict.fromkeys`` does), and only the distinct texts are
kept, as Arrow strings; a text is recognised by a 128-bit BLAKE2b digest of its UTF-8
bytes (two different texts share one with probability about ``n**2 / 2**129``: for a
billion texts, 1e-21). The result is the :class:`~.inputs.Pairs` that
:func:`~.inputs.read_pairs` makes of the same rows given as a ``datasets.Dataset``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..._optional import require
from ...errors import InputError
from ...samplers.base import IntArray
from .inputs import READ_ROWS, Pairs, check_texts, compact, corpus_batches, group_pairs

__all__ = ["Distinct", "read_streamed"]


class Distinct:
    """Distinct texts in order of first appearance, fed in batches."""

    def __init__(self) -> None:
        self._ids: dict[bytes, int] = {}
        self._chunks: list[Any] = []

    def __len__(self) -> int:
        return len(self._ids)

    def ids_in(self, other: Distinct) -> IntArray:
        """The id in ``other`` of each of these texts, ``-1`` where it is not there.

        Parameters
        ----------
        other : Distinct
            Another set of texts.

        Returns
        -------
        numpy.ndarray
            int64 ``(len(self),)``.
        """
        theirs = other._ids
        return np.fromiter((theirs.get(k, -1) for k in self._ids), np.int64, len(self._ids))

    def add(self, texts: list[str]) -> IntArray:
        """The id of each text, new texts taking the next ids.

        Parameters
        ----------
        texts : list[str]
            A batch of texts.

        Returns
        -------
        numpy.ndarray
            int64 ``(len(texts),)``.
        """
        pa = require("pyarrow", "mine_hard_negatives")
        ids, new = self._ids, []
        out = np.empty(len(texts), np.int64)
        for i, t in enumerate(texts):
            key = hashlib.blake2b(t.encode(), digest_size=16).digest()
            j = ids.get(key)
            if j is None:
                j = ids[key] = len(ids)
                new.append(t)
            out[i] = j
        if new:
            chunk = pa.array(new)  # string; large_string (or chunked) past 2 GiB
            self._chunks.extend(getattr(chunk, "chunks", [chunk]))
        return out

    def texts(self) -> Any:
        """The distinct texts, once (the batches are handed over).

        Returns
        -------
        pyarrow.Array
            Strings (``string`` when they fit, else ``large_string``).
        """
        pa = require("pyarrow", "mine_hard_negatives")
        chunks, self._chunks = self._chunks, []
        if not chunks:
            return pa.array([], pa.string())
        size = sum(c.nbytes for c in chunks)
        if size >= 2**31 - 2**24 or any(c.type != pa.string() for c in chunks):
            chunks = [c.cast(pa.large_string()) for c in chunks]
        return compact(pa.concat_arrays(chunks))


def read_streamed(
    dataset: Any, anchor: str, positive: str, corpus: Any, *, rows: int | None = None
) -> Pairs:
    """The texts of an ``IterableDataset``, read once in batches.

    Parameters
    ----------
    dataset : datasets.IterableDataset
        The (anchor, positive) pairs.
    anchor, positive : str
        Its text columns.
    corpus : Any
        More candidate documents (see :func:`~.inputs.corpus_batches`), read first, in
        batches too; or ``None``.
    rows : int or None
        Rows per batch (``None``: :data:`~.inputs.READ_ROWS`).

    Returns
    -------
    Pairs
        The distinct texts and the pairs, as :func:`~.inputs.read_pairs` gives them.
    """
    rows = rows or READ_ROWS
    queries, docs = Distinct(), Distinct()
    if corpus is not None:
        start = 0
        for texts in corpus_batches(corpus, rows):
            check_texts(texts, start, None)
            docs.add(texts)
            start += len(texts)
    q_parts: list[IntArray] = []
    p_parts: list[IntArray] = []
    row = 0
    for batch in dataset.iter(batch_size=rows):
        q_texts, p_texts = list(batch[anchor]), list(batch[positive])
        check_texts(q_texts, row, anchor)
        check_texts(p_texts, row, positive)
        q_parts.append(queries.add(q_texts))
        p_parts.append(docs.add(p_texts))
        row += len(q_texts)
    if row == 0:
        raise InputError("The dataset is empty. Please provide a non-empty dataset.")
    return group_pairs(
        queries.texts(), docs.texts(), np.concatenate(q_parts), np.concatenate(p_parts),
        queries.ids_in(docs),
    )  # fmt: skip

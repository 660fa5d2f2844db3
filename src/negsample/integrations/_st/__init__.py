"""The drop-in for sentence-transformers' ``util.mine_hard_negatives``, in parts.

- :mod:`.inputs`: the arguments as sentence-transformers reads them, the dataset's two text
  columns and the corpus as distinct texts, the (query, positive) pairs as row numbers;
  :mod:`.stream`: the same from a streamed ``IterableDataset``, read in batches.
- :mod:`.cache`: the embeddings, encoded or read from sentence-transformers' cache files.
- :mod:`.pool`: sentence-transformers' candidate pool (search, positives and the query's own
  text removed, cross-encoder rescoring), sampled with negsample's samplers and filters.
- :mod:`.output`: the four output layouts, built with Arrow ``take`` (in memory, or written
  block by block to an Arrow file for a streamed input).
- :mod:`.mining`: :func:`mine_hard_negatives`, which runs them in that order.

The public name is :func:`negsample.integrations.sentence_transformers.mine_hard_negatives`.
"""

from __future__ import annotations

from .mining import mine_hard_negatives

__all__ = ["mine_hard_negatives"]

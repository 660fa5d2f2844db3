"""The drop-in for sentence-transformers' ``util.mine_hard_negatives``, mined by negsample.

Change one import::

    from sentence_transformers.util import mine_hard_negatives           # before
    from negsample.integrations.sentence_transformers import mine_hard_negatives  # after

Same parameters, defaults, meanings and output layout (columns and their order, row
counts, dtypes) as sentence-transformers 6.3; plus ``sampler=`` (any negsample sampler)
and ``seed=``. :func:`mine_hard_negatives` runs the parts in order: the inputs
(:mod:`.inputs`), the embeddings (:mod:`.cache`), the candidate pool and its negatives
(:mod:`.pool`), the output dataset (:mod:`.output`). The deliberate differences from
sentence-transformers are listed in docs/sentence_transformers.md and in the docstring of
:func:`mine_hard_negatives`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._optional import require
from ...errors import InputError
from ...samplers.base import BaseSampler
from .cache import STREAM_BLOCK, embeddings
from .inputs import (
    check_call,
    columns_of,
    own_text,
    read_pairs,
    resolve_settings,
    select_columns,
    warn_old_sentence_transformers,
    window,
)
from .output import (
    Mined,
    columns,
    fingerprint,
    mined_path,
    print_stats,
    summary,
    text_digest,
    write_dataset,
)
from .pool import build_index, make_plan, negatives, pair_negatives, pair_scores
from .stream import read_streamed

__all__ = ["mine_hard_negatives"]


def mine_hard_negatives(
    dataset: Any,
    model: Any,
    anchor_column_name: str | None = None,
    positive_column_name: str | None = None,
    corpus: Any = None,
    cross_encoder: Any = None,
    range_min: int = 0,
    range_max: int | None = None,
    max_score: float | None = None,
    min_score: float | None = None,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    num_negatives: int = 3,
    sampling_strategy: str = "top",
    query_prompt_name: str | None = None,
    query_prompt: str | None = None,
    corpus_prompt_name: str | None = None,
    corpus_prompt: str | None = None,
    include_positives: bool = False,
    output_format: str = "triplet",
    output_scores: bool = False,
    batch_size: int = 32,
    faiss_batch_size: int = 16384,
    use_faiss: bool = False,
    use_multi_process: list[str] | bool = False,
    verbose: bool = True,
    cache_folder: str | None = None,
    as_triplets: bool | None = None,
    margin: float | None = None,
    *,
    sampler: BaseSampler | None = None,
    seed: int | None = 0,
) -> Any:
    """Add hard negatives to a dataset of (anchor, positive) pairs: sentence-transformers'
    ``mine_hard_negatives``, mined by negsample.

    The parameters before ``sampler`` are sentence-transformers' own, in its order, with its
    defaults and meanings (positional use works as there; the two new ones are
    keyword-only). The output ``datasets.Dataset`` has its layout.

    Parameters
    ----------
    dataset : datasets.Dataset or datasets.IterableDataset
        (anchor, positive) text pairs; a query that appears on several rows has several
        positives. An ``IterableDataset`` (streamed) is read once in batches, in bounded
        memory (sentence-transformers refuses one).
    model : SentenceTransformer
        Anything with ``encode_query`` / ``encode_document`` (or ``encode``); embeddings are
        L2-normalised, scores are cosine similarities.
    anchor_column_name, positive_column_name : str or None
        Default the first and the second column. A name that is not a column raises
        (sentence-transformers falls back silently).
    corpus : list[str], datasets.Dataset, datasets.IterableDataset or None
        More candidate documents besides the positives: a list of strings, a dataset
        column, or a ``Dataset`` / ``IterableDataset`` (its only column, or ``text``).
        Texts are de-duplicated: one text is one document.
    cross_encoder : CrossEncoder or None
        Rescore the candidates that can be sampled and the positives with
        ``cross_encoder.predict``, with or without a score filter (as sentence-transformers
        does since 6.3); ranks, filters and output scores are then the cross-encoder's.
    range_min, range_max : int, int or None
        The rank window ``[range_min, range_max)``, counted among the
        candidates that pass the filters, in a pool of the top ``range_max + max_positives
        + 1`` of the search less the query's positives and the query's own text
        (``max_positives``: the most rows any query has), as in sentence-transformers.
        ``range_max=None``: ``range_min + num_negatives + max_positives``, or ``range_min +
        10 * num_negatives + max_positives`` with ``absolute_margin``, ``relative_margin``,
        ``max_score``, or ``min_score`` together with a ``cross_encoder``.
    max_score, min_score : float or None
        Keep ``min_score < s(q,d-) < max_score``.
    absolute_margin : float or None
        Keep ``s(q,d-) < s+ - absolute_margin``.
    relative_margin : float or None
        Keep ``s(q,d-) < s+ - |s+| * relative_margin`` (0.05: NV-Retriever's TopK-PercPos
        95%); ``s+`` is the least positive score of the query.
    num_negatives : int
        Negatives per query.
    sampling_strategy : str
        ``"top"`` (the best ``num_negatives`` of the window) or ``"random"``
        (uniform without replacement from the window, seeded).
    query_prompt_name, query_prompt, corpus_prompt_name, corpus_prompt : str or None
        Passed to the model's encode calls (``prompt`` wins over ``prompt_name``).
    include_positives : bool
        Keep the positives among the candidates (reranking evaluation
        sets); forces ``output_format="n-tuple"``.
    output_format : str
        ``"triplet"`` (anchor, positive, negative), ``"n-tuple"`` (anchor,
        positive, negative_1..n), ``"labeled-pair"`` (anchor, document, label),
        ``"labeled-list"`` (anchor, [documents], [labels]); ``"n-tuple-scores"`` is
        ``"n-tuple"`` with ``output_scores=True`` (deprecated there too).
    output_scores : bool
        Add a ``scores`` column (triplet, n-tuple: ``[s+, s-...]``) or replace the labels by
        scores (``score`` / ``scores``).
    batch_size : int
        Encoding batch size.
    faiss_batch_size : int
        Queries mined per chunk (bounds memory, never changes the result).
    use_faiss : bool
        Search with a faiss Flat index (:class:`~negsample.FaissIndex`, on the GPU
        when faiss-gpu sees one) instead of the exact numpy index.
    use_multi_process : bool or list[str]
        Encode with ``model.start_multi_process_pool`` (``True`` or a list
        of devices).
    verbose : bool
        Progress bars and the summary sentence-transformers prints.
    cache_folder : str or None
        Read / write the embeddings in sentence-transformers' cache files
        (``query_embeddings_{hash}.npy``, ``corpus_embeddings_{hash}.npy``, same hash), so a
        cache written by either library serves the other; written atomically here.
    as_triplets, margin : bool or None, float or None
        Deprecated (``output_format``, ``absolute_margin``).
    sampler : BaseSampler or None
        Any negsample sampler instead of the default TopK, mined by
        :func:`negsample.mine` with the sampler's own depth (then ``range_min`` and an
        explicit ``range_max`` become a :class:`~negsample.Filters` rank window and
        ``sampling_strategy`` is the sampler's business); not with ``include_positives`` or
        ``cross_encoder``.
    seed : int or None
        The random draws (``None``: fresh entropy); sentence-transformers cannot be
        seeded.

    Returns
    -------
    datasets.Dataset
        ``triplet``: ``anchor, positive, negative[, scores]`` one row per (query, positive,
        negative); ``n-tuple``: ``anchor, positive, negative_1 .. negative_n[, scores]`` one
        row per (query, positive) with all ``n`` found; ``labeled-pair``: ``anchor,
        positive, label|score``, each query's positives then its negatives;
        ``labeled-list``: ``anchor, positive (list), labels|scores (list)``, one row per
        (query, positive) with at least one negative. Columns keep the input's names.
        For a streamed ``dataset``: the same rows, written block by block to
        ``$HF_DATASETS_CACHE/negsample/mined-<fingerprint>.arrow`` and memory-mapped (a
        map-style dataset, as sentence-transformers' trainers need).

    Notes
    -----
    Deliberate differences from sentence-transformers (see docs/sentence_transformers.md):
    seeded draws; filters are strict (``<``); unknown column names, invalid
    ``sampling_strategy`` or ``relative_margin`` values and ``None`` texts raise; cache
    files are written atomically; no 2048 cap on ``range_max`` with faiss on a GPU; an
    empty result keeps typed columns; a streamed dataset is accepted. The rules followed
    are sentence-transformers 6.3's (an older installed version is reported with a
    warning).

    Examples
    --------
    >>> from negsample.integrations.sentence_transformers import mine_hard_negatives
    >>> ds = mine_hard_negatives(pairs, model, range_max=50, relative_margin=0.05,
    ...                          num_negatives=5, output_format="n-tuple")  # doctest: +SKIP
    """

    datasets = require("datasets", "mine_hard_negatives")
    pa = require("pyarrow", "mine_hard_negatives")
    warn_old_sentence_transformers()
    streamed = isinstance(dataset, datasets.IterableDataset)
    names = columns_of(dataset)
    if (len(dataset) if not streamed else len(names)) == 0:
        raise InputError("The dataset is empty. Please provide a non-empty dataset.")
    check_call(faiss_batch_size=faiss_batch_size, use_faiss=use_faiss, sampler=sampler)
    anchor, positive = select_columns(names, anchor_column_name, positive_column_name)
    s = resolve_settings(
        output_format=output_format, output_scores=output_scores,
        absolute_margin=absolute_margin, relative_margin=relative_margin, max_score=max_score,
        min_score=min_score, margin=margin, as_triplets=as_triplets, range_min=range_min,
        range_max=range_max, num_negatives=num_negatives, sampling_strategy=sampling_strategy,
        include_positives=include_positives,
    )  # fmt: skip

    if streamed:
        pairs = read_streamed(dataset, anchor, positive, corpus)
    else:
        pairs = read_pairs(dataset, anchor, positive, corpus)
    n_q = len(pairs.queries)
    rmax = window(
        s, max_positives=pairs.max_positives, cross_encoder=cross_encoder is not None,
        verbose=verbose,
    )  # fmt: skip
    if verbose and n_q != pairs.n_rows:
        print(f"Found {n_q} unique queries out of {pairs.n_rows} total queries.")
    if verbose and pairs.max_positives > 1:
        print(f"Found an average of {np.mean(pairs.n_pos):.3f} positives per query.")
    plan = make_plan(
        s, range_max=rmax, max_positives=pairs.max_positives, n_corpus=len(pairs.corpus),
        sampler=sampler, cross_encoder=cross_encoder is not None,
    )  # fmt: skip

    q_emb, c_emb = embeddings(
        model, pairs.queries, pairs.corpus, cache_folder=cache_folder,
        query_prompt_name=query_prompt_name, query_prompt=query_prompt,
        corpus_prompt_name=corpus_prompt_name, corpus_prompt=corpus_prompt,
        batch_size=batch_size, use_multi_process=use_multi_process, verbose=verbose,
        block=STREAM_BLOCK if streamed else None,
    )  # fmt: skip
    pair_s = pair_scores(q_emb, c_emb, pairs)
    index = build_index(c_emb, use_faiss)
    del c_emb
    negs, pair_s = negatives(
        plan, q_emb, index, pairs, own_text(pairs), pair_s, cross_encoder=cross_encoder,
        include_positives=s.include_positives, seed=seed, chunk=faiss_batch_size,
        batch_size=batch_size, use_multi_process=use_multi_process, verbose=verbose,
    )  # fmt: skip

    neg_ids, neg_s = pair_negatives(negs, pairs, s.num_negatives)
    mined = Mined(
        queries=pairs.queries, corpus=pairs.corpus, pair_q=pairs.pair_q, pair_p=pairs.pair_p,
        pair_s=pair_s.astype(np.float64), neg_ids=neg_ids, neg_s=neg_s, q_first=pairs.q_first,
    )  # fmt: skip
    source = text_digest(pairs.queries) if streamed else getattr(dataset, "_fingerprint", None)
    fp = fingerprint(
        [
            source, text_digest(pairs.corpus), s.output_format,
            s.output_scores, anchor, positive, repr(plan.sampler), s.num_negatives,
            negs.stats.seed, pairs.pair_q, pairs.pair_p, neg_ids, mined.pair_s, neg_s,
        ]
    )  # fmt: skip
    fmt, scores = s.output_format, s.output_scores
    if streamed:  # written block by block, then memory-mapped
        out = write_dataset(mined, fmt, scores, anchor, positive, mined_path(fp))
    else:
        table = pa.table(columns(mined, fmt, scores, anchor, positive))
        out = datasets.Dataset(table, fingerprint=fp)
    if verbose:
        settings = {
            "absolute_margin": s.absolute_margin,
            "relative_margin": s.relative_margin,
            "max_score": s.max_score,
            "min_score": s.min_score,
        }
        print_stats(summary(mined, s.output_format), negs.stats, settings, s.range_min)
    return out

"""Ray Data stages for the embarrassingly parallel work beside the search: encoding texts,
scoring pairs with a teacher, labelling items with an LLM judge.

Each stage is a ``ray.data`` ``map_batches`` over an actor pool
(``compute=ray.data.ActorPoolStrategy(min_size=..., max_size=...)``) whose actors build
their model (or judge) once, through negsample's own loaders, and then take one task per
call: a shard of texts, a slice of pairs, a group of judge items. What comes back is
written by the driver alone, into negsample's own formats:

- :func:`encode_ray` / :func:`encode_dataset_ray`: the encoding cache of
  :func:`negsample.encode` (the same keys and files, filled by
  :func:`~negsample.io.encoding.fill_cache`), shard by shard as each finishes: an
  interrupted run keeps its finished shards and a rerun (here or by ``encode``) computes
  only the others; a later ``encode`` or ``negsample mine`` finds the cache.
- :class:`RayScorer` (:func:`score_pairs_ray`): a :class:`~negsample.scoring.Scorer`
  built from a :class:`~negsample.pipeline.options.TeacherSpec`.
- :class:`RayJudge` (:func:`judge_items_ray`): a :class:`~negsample.scoring.Judge` built
  from a :class:`~negsample.pipeline.options.JudgeSpec`; the actors' judges keep their
  answers in memory and send them back, and the driver writes them into the sqlite
  :class:`~negsample.scoring.JudgementCache` (one writer), so a rerun asks nothing it
  has asked.

The search keeps its own actors (:class:`~negsample.distributed.ReplicatedIndex`,
:class:`~negsample.distributed.ShardedIndex`). Ray is imported when a stage runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._device import check_precision, resolve_devices, resolve_precision
from ..errors import InputError, InputTypeError
from ..io.encoding import (
    DEFAULT_SHARD_SIZE,
    DatasetEmbeddings,
    _length_order,
    _model_path,
    cache_key,
    encode_dataset,
    fill_cache,
)
from ..pipeline.options import RAY_STAGES
from ._denoise_stages import (
    DEFAULT_ITEMS_PER_TASK,
    DEFAULT_PAIRS_PER_TASK,
    RayJudge,
    RayScorer,
    judge_items_ray,
    score_pairs_ray,
)
from ._stage import Actor, Pool, Session, run, session, strings, worker_device

if TYPE_CHECKING:
    from ..io.data import BeirDataset

__all__ = [
    "DEFAULT_ITEMS_PER_TASK",
    "DEFAULT_PAIRS_PER_TASK",
    "STAGES",
    "RayJudge",
    "RayScorer",
    "encode_dataset_ray",
    "encode_ray",
    "judge_items_ray",
    "score_pairs_ray",
]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

#: The stages ``negsample mine --ray-stages`` may name.
STAGES = RAY_STAGES


# -- encoding ---------------------------------------------------------------------------------


class _EncodeActor(Actor):
    """A sentence-transformers model on one worker, fed by negsample's
    :class:`~negsample.io._encoder.TextEncoder` as :func:`negsample.encode` feeds it: one
    shard of texts (in decreasing length) per task."""

    def _build(self, **kw: Any) -> Any:
        from ..io._encoder import TextEncoder, load_model

        device = kw.pop("device")
        return TextEncoder(kw.pop("path"), devices=resolve_devices(device), loader=load_model, **kw)

    def _task(self, row: dict[str, Any]) -> FloatArray:
        v = next(iter(self.impl.stream([strings(row["texts"])])))
        return np.ascontiguousarray(v, dtype=np.float32)


def _encode_compute(
    texts: Sequence[str],
    actor_kwargs: dict[str, Any],
    pool: Pool,
    session: Session,
    note: str | None,
) -> Callable[[list[tuple[int, IntArray]]], Iterator[tuple[int, FloatArray]]]:
    """The :data:`~negsample.io.encoding.ShardCompute` of the encoding stage: each shard
    one task of the pool (``note``: what to say on stderr when it starts)."""

    def compute(work: list[tuple[int, IntArray]]) -> Iterator[tuple[int, FloatArray]]:
        rows = [{"task": i, "texts": [texts[r] for r in rows]} for i, rows in work]
        if note is not None:
            print(f"negsample: {len(work)} shards of {note} ({pool.describe()})", file=sys.stderr)
        yield from run(_EncodeActor, actor_kwargs, rows, pool, session)

    return compute


def encode_ray(
    texts: Sequence[str],
    model: str | None = None,
    *,
    cache_dir: str | None = None,
    address: str | None = None,
    workers: int | None = None,
    min_workers: int = 1,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    batch_size: int = 64,
    batch_tokens: int | None = None,
    normalize: bool = True,
    max_seq_length: int | None = None,
    prompt: str | None = None,
    prompt_name: str | None = None,
    precision: str | None = None,
    device: str | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: bool = True,
    desc: str = "texts",
) -> FloatArray:
    """:func:`negsample.encode` as a Ray Data stage: each shard of texts one task of an
    actor pool whose actors load the model once; the vectors go into the same cache.

    Parameters
    ----------
    texts, model, batch_size, batch_tokens, normalize, max_seq_length, prompt, prompt_name,
    shard_size, progress, desc
        As for :func:`negsample.encode`. ``model`` (a local folder) must be at the same
        path on every node (shared storage); ``None`` is the bundled all-MiniLM-L6-v2.
    cache_dir : str or None
        the encoding cache (``None``: none; the vectors are returned only). The entry is
        :func:`~negsample.io.encoding.cache_key`'s: the one :func:`negsample.encode` with
        the same settings reads and writes.
    address : str or None
        the cluster (:func:`~negsample.distributed.connect`), joined only when a shard is
        to be encoded (a cache hit needs no cluster).
    workers, min_workers : int or None, int
        the actor pool: ``ray.data.ActorPoolStrategy(min_size=min_workers,
        max_size=workers)`` (``None``: as many as the free CPUs and GPUs allow; never more
        than there are shards to encode).
    cpus_per_worker, gpus_per_worker : float
        what each actor reserves.
    precision, device : str or None
        the precision and device of the actors' model: ``device`` ``None`` is ``"cuda"``
        on actors with GPUs, else ``"cpu"`` (not the driver's devices); the precision's
        default follows it (docs/devices.md), and both are part of the cache key.

    Returns
    -------
    float32 ``(len(texts), dim)``, memory-mapped from the cache when there is one.
    """
    with session(address) as s:
        return _encode_ray(
            texts,
            model,
            cache_dir=cache_dir,
            pool=Pool(workers, min_workers, cpus_per_worker, gpus_per_worker),
            session=s,
            batch_size=batch_size,
            batch_tokens=batch_tokens,
            normalize=normalize,
            max_seq_length=max_seq_length,
            prompt=prompt,
            prompt_name=prompt_name,
            precision=precision,
            device=device,
            shard_size=shard_size,
            progress=progress,
            desc=desc,
        )


def _encode_ray(
    texts: Sequence[str],
    model: str | None,
    *,
    cache_dir: str | None,
    pool: Pool,
    session: Session,
    batch_size: int = 64,
    batch_tokens: int | None = None,
    normalize: bool = True,
    max_seq_length: int | None = None,
    prompt: str | None = None,
    prompt_name: str | None = None,
    precision: str | None = None,
    device: str | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: bool = True,
    desc: str = "texts",
) -> FloatArray:
    if isinstance(texts, str):
        raise InputTypeError("texts must be a sequence of strings, not one string")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputTypeError(f"texts[{i}] is a {type(t).__name__}, not a string")
    if not len(texts):
        raise InputError("no texts to encode")
    for name, value in (("batch_size", batch_size), ("shard_size", shard_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    run_device = worker_device(device, pool.gpus)
    run_precision = resolve_precision(check_precision(precision), run_device)
    path = _model_path(model)
    actor_kwargs = {
        "path": path,
        "device": run_device,
        "precision": run_precision,
        "batch_size": batch_size,
        "batch_tokens": batch_tokens,
        "normalize": normalize,
        "max_seq_length": max_seq_length,
        "prompt": prompt,
        "prompt_name": prompt_name,
    }
    note = f"{desc} to encode on Ray" if progress else None
    compute = _encode_compute(texts, actor_kwargs, pool, session, note)
    if cache_dir is not None:
        key = cache_key(
            texts,
            model,
            normalize=normalize,
            max_seq_length=max_seq_length,
            prompt=prompt,
            prompt_name=prompt_name,
            precision=run_precision,
            device=run_device,
        )
        return fill_cache(
            texts,
            cache_dir=cache_dir,
            key=key,
            compute=compute,
            shard_size=shard_size,
            progress=progress,
            desc=desc,
            model=path,
        )
    n = len(texts)
    order = _length_order(texts)
    work = [(i, order[i * shard_size : (i + 1) * shard_size]) for i in range(-(-n // shard_size))]
    rows_of = dict(work)
    out: FloatArray | None = None
    for i, v in compute(work):
        if out is None:
            out = np.empty((n, v.shape[1]), np.float32)
        out[rows_of[i]] = v
    assert out is not None
    return out


def encode_dataset_ray(
    dataset: BeirDataset,
    model: str | None = None,
    *,
    cache_dir: str | None = None,
    address: str | None = None,
    workers: int | None = None,
    min_workers: int = 1,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
    query_prompt_name: str | None = None,
    document_prompt_name: str | None = None,
    **kwargs: Any,
) -> DatasetEmbeddings:
    """:func:`negsample.encode_dataset` with :func:`encode_ray` for both sides: the same
    vectors, cache entries and ``source`` (a run's settings), so mining started with one
    continues with the other. One connection to the cluster for both sides (none when
    both are cached). The pool and ``address`` are :func:`encode_ray`'s; the rest of
    ``kwargs`` (``batch_size``, ``precision``, ``device``...) is ``encode``'s."""
    kwargs["device"] = worker_device(kwargs.get("device"), gpus_per_worker)
    with session(address) as s:
        pool = Pool(workers, min_workers, cpus_per_worker, gpus_per_worker)

        def encoder(texts: Sequence[str], model: Any, **kw: Any) -> FloatArray:
            return _encode_ray(texts, model, pool=pool, session=s, **kw)

        return encode_dataset(
            dataset,
            model,
            cache_dir=cache_dir,
            query_prompt=query_prompt,
            document_prompt=document_prompt,
            query_prompt_name=query_prompt_name,
            document_prompt_name=document_prompt_name,
            encoder=encoder,
            **kwargs,
        )

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

import contextlib
import dataclasses
import logging
import math
import pickle
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._device import check_precision, resolve_devices, resolve_precision
from .._optional import require
from ..io.encoding import (
    DEFAULT_SHARD_SIZE,
    DatasetEmbeddings,
    _length_order,
    _model_path,
    cache_key,
    encode_dataset,
    fill_cache,
)
from ..pipeline.options import RAY_STAGES, JudgeSpec, TeacherSpec
from ..scoring.base import LABELS, JudgeItem, Label, ScoringStats
from ..scoring.cache import JudgementCache
from ._ray import connect, ray_module

if TYPE_CHECKING:
    from ..io.data import BeirDataset

__all__ = [
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
#: Pairs a scoring actor takes per call.
DEFAULT_PAIRS_PER_TASK = 2048
#: Judge items an actor takes per call (a listwise group is never split).
DEFAULT_ITEMS_PER_TASK = 64


# -- the session and the pool -----------------------------------------------------------------


class _Session:
    """A connection to Ray made when first needed (a cache hit needs none), let go at the
    end if this session made it."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.started = False
        self.used = False

    def ensure(self) -> None:
        if not self.used:
            self.started = connect(self.address)
            self.used = True

    def close(self) -> None:
        if self.started:
            ray_module().shutdown()
        self.started = self.used = False


@contextlib.contextmanager
def _session(address: str | None) -> Iterator[_Session]:
    s = _Session(address)
    try:
        yield s
    finally:
        s.close()


@dataclasses.dataclass(frozen=True)
class _Pool:
    """The actor pool of a stage: at most ``workers`` actors (``None``: as many as the
    cluster's free CPUs and GPUs allow), at least ``min_workers``, each reserving
    ``cpus`` CPUs and ``gpus`` GPUs."""

    workers: int | None = None
    min_workers: int = 1
    cpus: float = 1.0
    gpus: float = 0.0

    def __post_init__(self) -> None:
        sizes = [("min_workers", self.min_workers)]
        if self.workers is not None:
            sizes.append(("workers", self.workers))
        for name, v in sizes:
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.workers is not None and self.min_workers > self.workers:
            raise ValueError(f"min_workers={self.min_workers} exceeds workers={self.workers}")
        for name, f in (("cpus_per_worker", self.cpus), ("gpus_per_worker", self.gpus)):
            if isinstance(f, bool) or not isinstance(f, int | float) or not 0 <= f < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {f!r}")

    def most(self) -> int:
        """The pool's largest size (asks the cluster when ``workers`` is ``None``)."""
        if self.workers is not None:
            return int(self.workers)
        from .runner import default_workers

        return default_workers(self.cpus, self.gpus)

    def map_args(self, tasks: int) -> dict[str, Any]:
        """``map_batches`` keywords: the actor pool strategy and each actor's resources
        (no more actors than tasks)."""
        data = _ray_data()
        hi = max(1, min(self.most(), tasks))
        args: dict[str, Any] = {
            "compute": data.ActorPoolStrategy(min_size=min(self.min_workers, hi), max_size=hi),
            "num_cpus": self.cpus,
        }
        if self.gpus:
            args["num_gpus"] = self.gpus
        return args

    def describe(self) -> str:
        most = "as many as fit" if self.workers is None else f"at most {self.workers}"
        return f"{most} actors of {self.cpus:g} CPU and {self.gpus:g} GPU"


def _worker_device(device: str | None, gpus: float) -> str:
    """The device an actor runs its model on: ``device`` as given, or (``None`` /
    ``"auto"``) ``"cuda"`` on actors that reserve GPUs, else ``"cpu"``. Decided here, not
    by the driver's own devices, so the cache key names the precision the actors use."""
    if device is None or str(device).strip().lower() == "auto":
        return "cuda" if gpus > 0 else "cpu"
    if not isinstance(device, str):
        raise TypeError(f"device must be a device name, got {device!r}")
    return device


def _ray_data() -> Any:
    ray_module()  # the ImportError that names negsample[ray]
    return require("ray.data", "Ray Data stages")


@contextlib.contextmanager
def _data_context() -> Iterator[Any]:
    """Ray Data without its own progress bars (the stages show theirs), its INFO lines per
    execution, or the deprecation warnings its own context raises about its own fields
    (nothing a user of negsample can change); put back afterwards."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="ray.data")
        data = _ray_data()
        ctx = data.DataContext.get_current()
        bars = ctx.enable_progress_bars
        logger = logging.getLogger("ray.data")
        level = logger.level
        ctx.enable_progress_bars = False
        logger.setLevel(max(level, logging.WARNING))
        try:
            yield data
        finally:
            ctx.enable_progress_bars = bars
            logger.setLevel(level)


def _pickled(exc: BaseException) -> bytes:
    try:
        return pickle.dumps(exc)
    except Exception:  # an exception that does not pickle: its type and message
        return pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))


def _run(
    actor: type,
    ctor: dict[str, Any],
    rows: list[dict[str, Any]],
    pool: _Pool,
    session: _Session,
) -> Iterator[tuple[int, Any]]:
    """Each row (with its ``"task"`` number) through one call of an actor of the pool:
    ``map_batches(actor, batch_size=1, compute=ActorPoolStrategy(...))``. Yields
    ``(task, result)`` as each finishes, in any order; an exception raised in an actor is
    raised here as itself. Leaving early stops the execution (and its actors)."""
    session.ensure()
    with _data_context() as data:
        ds = data.from_items(rows, override_num_blocks=len(rows))
        out = ds.map_batches(
            actor,
            batch_size=1,
            batch_format="numpy",
            fn_constructor_kwargs=ctor,
            **pool.map_args(len(rows)),
        )
        it = iter(out.iter_batches(batch_size=None, batch_format="numpy"))
        try:
            for batch in it:
                for task, result, error in zip(
                    batch["task"], batch["out"], batch["error"], strict=True
                ):
                    if len(error):
                        raise pickle.loads(error)
                    yield int(task), pickle.loads(result)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()


class _Actor:
    """What every stage's actor shares: ``_build`` once (an error there is sent back with
    every task), then one task per row; results and errors go back as pickled bytes (the
    driver raises an error as itself)."""

    def __init__(self, **kwargs: Any) -> None:
        self.failed: BaseException | None = None
        try:
            self.impl = self._build(**kwargs)
        except Exception as exc:
            self.failed = exc

    def _build(self, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _task(self, row: dict[str, Any]) -> Any:
        raise NotImplementedError

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        outs, errors = [], []
        for j in range(len(batch["task"])):
            try:
                if self.failed is not None:
                    raise self.failed
                result = self._task({k: v[j] for k, v in batch.items()})
                outs.append(pickle.dumps(result, protocol=5))
                errors.append(b"")
            except Exception as exc:
                outs.append(b"")
                errors.append(_pickled(exc))
        return {
            "task": np.asarray(batch["task"], np.int64),
            "out": np.array(outs, dtype=object),
            "error": np.array(errors, dtype=object),
        }


def _strings(column: Any) -> list[str]:
    return [str(t) for t in column]


# -- encoding ---------------------------------------------------------------------------------


class _EncodeActor(_Actor):
    """A sentence-transformers model on one worker, fed by negsample's
    :class:`~negsample.io._encoder.TextEncoder` as :func:`negsample.encode` feeds it: one
    shard of texts (in decreasing length) per task."""

    def _build(self, **kw: Any) -> Any:
        from ..io._encoder import TextEncoder, load_model

        device = kw.pop("device")
        return TextEncoder(kw.pop("path"), devices=resolve_devices(device), loader=load_model, **kw)

    def _task(self, row: dict[str, Any]) -> FloatArray:
        v = next(iter(self.impl.stream([_strings(row["texts"])])))
        return np.ascontiguousarray(v, dtype=np.float32)


def _encode_compute(
    texts: Sequence[str],
    actor_kwargs: dict[str, Any],
    pool: _Pool,
    session: _Session,
    note: str | None,
) -> Callable[[list[tuple[int, IntArray]]], Iterator[tuple[int, FloatArray]]]:
    """The :data:`~negsample.io.encoding.ShardCompute` of the encoding stage: each shard
    one task of the pool (``note``: what to say on stderr when it starts)."""

    def compute(work: list[tuple[int, IntArray]]) -> Iterator[tuple[int, FloatArray]]:
        rows = [{"task": i, "texts": [texts[r] for r in rows]} for i, rows in work]
        if note is not None:
            print(f"negsample: {len(work)} shards of {note} ({pool.describe()})", file=sys.stderr)
        yield from _run(_EncodeActor, actor_kwargs, rows, pool, session)

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
    with _session(address) as s:
        return _encode_ray(
            texts,
            model,
            cache_dir=cache_dir,
            pool=_Pool(workers, min_workers, cpus_per_worker, gpus_per_worker),
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
    pool: _Pool,
    session: _Session,
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
        raise TypeError("texts must be a sequence of strings, not one string")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is a {type(t).__name__}, not a string")
    if not len(texts):
        raise ValueError("no texts to encode")
    for name, value in (("batch_size", batch_size), ("shard_size", shard_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    run_device = _worker_device(device, pool.gpus)
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
    kwargs["device"] = _worker_device(kwargs.get("device"), gpus_per_worker)
    with _session(address) as s:
        pool = _Pool(workers, min_workers, cpus_per_worker, gpus_per_worker)

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


# -- teacher scores ---------------------------------------------------------------------------


class _ScoreActor(_Actor):
    """A teacher scorer (:meth:`TeacherSpec.build`) on one worker: one slice of pairs (in
    decreasing length) per task."""

    def _build(self, **kw: Any) -> Any:
        return kw["spec"].build()

    def _task(self, row: dict[str, Any]) -> dict[str, Any]:
        before = self.impl.stats.copy()
        pairs = list(zip(_strings(row["query"]), _strings(row["document"]), strict=True))
        scores = np.asarray(self.impl.score(pairs), np.float32).reshape(-1)
        return {"scores": scores, "stats": self.impl.stats.since(before).as_dict()}


class RayScorer:
    """A :class:`~negsample.scoring.Scorer` whose :meth:`score` is a Ray Data stage: the
    pairs of a call, in decreasing length, cut into slices of ``pairs_per_task``, each
    scored by an actor that built the teacher once (``spec.build()``) for the call.

    Parameters
    ----------
    spec : TeacherSpec
        the teacher (a cross-encoder or a bi-encoder); its model path must be valid on
        every node. ``device=None`` is ``"cuda"`` on actors with GPUs, else ``"cpu"``.
    address : str or None
        the cluster, joined at the first call (and let go by :meth:`close` if joined here).
    workers, min_workers, cpus_per_worker, gpus_per_worker : as for :func:`encode_ray`.
    pairs_per_task : int
        pairs one actor scores per task.

    Notes
    -----
    A pair's score depends only on the slice it is scored in, never on how many actors
    ran or which one took it: the same pairs give the same bits with any pool. Against
    the teacher in one process the scores differ by floating-point rounding where the
    batches differ (a call longer than ``pairs_per_task`` is batched in slices); a call of
    at most ``pairs_per_task`` pairs is batched exactly as the local scorer batches it.
    Each call is one Ray Data execution: its actors start and load the model for it, so
    give it many pairs at once (``denoise(chunk_rows=...)``).
    """

    def __init__(
        self,
        spec: TeacherSpec,
        *,
        address: str | None = None,
        workers: int | None = None,
        min_workers: int = 1,
        cpus_per_worker: float = 1.0,
        gpus_per_worker: float = 0.0,
        pairs_per_task: int = DEFAULT_PAIRS_PER_TASK,
    ) -> None:
        if not isinstance(spec, TeacherSpec):
            raise TypeError(f"spec must be a TeacherSpec, got {type(spec).__name__}")
        if isinstance(pairs_per_task, bool) or not isinstance(pairs_per_task, int):
            raise ValueError(f"pairs_per_task must be a positive int, got {pairs_per_task!r}")
        if pairs_per_task < 1:
            raise ValueError(f"pairs_per_task must be a positive int, got {pairs_per_task!r}")
        self.pool = _Pool(workers, min_workers, cpus_per_worker, gpus_per_worker)
        self.spec = dataclasses.replace(spec, device=_worker_device(spec.device, self.pool.gpus))
        self.pairs_per_task = pairs_per_task
        self.name = f"{spec.kind}:{spec.path}"  # the local scorer's name
        self.stats = ScoringStats()
        self._session = _Session(address)

    def __repr__(self) -> str:
        return (
            f"RayScorer({self.name!r}, {self.pool.describe()}, pairs_per_task="
            f"{self.pairs_per_task})"
        )

    def score(self, pairs: Sequence[tuple[str, str]]) -> FloatArray:
        """float32 ``(len(pairs),)``: one score per (query text, document text) pair."""
        t0 = time.perf_counter()
        for i, p in enumerate(pairs):
            if len(p) != 2 or not isinstance(p[0], str) or not isinstance(p[1], str):
                raise TypeError(f"pair {i}: expected (query text, document text), got {p!r:.80}")
        if not len(pairs):
            return np.empty(0, np.float32)
        chars = np.fromiter((len(a) + len(b) for a, b in pairs), np.int64, len(pairs))
        order = np.argsort(-chars, kind="stable").astype(np.int64)
        step = self.pairs_per_task
        tasks = [order[a : a + step] for a in range(0, order.size, step)]
        rows = [
            {
                "task": t,
                "query": [pairs[i][0] for i in idx],
                "document": [pairs[i][1] for i in idx],
            }
            for t, idx in enumerate(tasks)
        ]
        out = np.full(len(pairs), np.nan, np.float32)
        for t, res in _run(_ScoreActor, {"spec": self.spec}, rows, self.pool, self._session):
            if res["scores"].shape != (tasks[t].size,):
                raise RuntimeError(
                    f"{self.name} returned {res['scores'].shape} scores for {tasks[t].size} pairs"
                )
            out[tasks[t]] = res["scores"]
            self.stats.merge(ScoringStats(**{**res["stats"], "seconds": 0.0}))
        self.stats.add(seconds=time.perf_counter() - t0)
        return out

    def close(self) -> None:
        """Let the cluster go if this scorer joined it."""
        self._session.close()

    def __enter__(self) -> RayScorer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def score_pairs_ray(
    pairs: Sequence[tuple[str, str]], spec: TeacherSpec, **kwargs: Any
) -> FloatArray:
    """The teacher scores of ``pairs`` on a Ray cluster: ``RayScorer(spec, **kwargs)``'s
    :meth:`~RayScorer.score` (``kwargs``: ``address``, ``workers``, ``min_workers``,
    ``cpus_per_worker``, ``gpus_per_worker``, ``pairs_per_task``)."""
    with RayScorer(spec, **kwargs) as scorer:
        return scorer.score(pairs)


# -- judge labels -----------------------------------------------------------------------------


class _Collected(JudgementCache):
    """The judgement cache of an actor's judge: in memory, holding the labels the driver
    found cached for the task's items, and keeping the answers the judge puts, for the
    driver to write into the real cache."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self._mutex = threading.Lock()
        self._known: dict[str, Label] = {}
        self.new: list[tuple[str, Label, str, str, str | None]] = []

    def load(self, cached: dict[str, Label]) -> None:
        with self._mutex:
            self._known = dict(cached)
            self.new = []

    def drain(self) -> list[tuple[str, Label, str, str, str | None]]:
        with self._mutex:
            out, self.new = self.new, []
            return out

    def get_many(self, keys: Any) -> dict[str, Label]:
        with self._mutex:
            return {k: self._known[k] for k in keys if k in self._known}

    def put(
        self,
        key: str,
        label: Label,
        *,
        model: str = "",
        prompt_version: str = "",
        answer: str | None = None,
    ) -> None:
        if label not in LABELS:
            raise ValueError(f"only the labels {LABELS} are cached, got {label!r}")
        with self._mutex:
            self._known[key] = label
            self.new.append((key, label, model, prompt_version, answer))


def _leaves(judge: Any) -> list[Any]:
    """The LLM judges inside ``judge`` (both of a cascade), whose cache keys an item has."""
    if hasattr(judge, "cache_key"):
        return [judge]
    return [*_leaves(judge.first), *_leaves(judge.second)]


class _JudgeActor(_Actor):
    """An LLM judge (:meth:`JudgeSpec.build`) on one worker with an in-memory cache: one
    group of items per task; its new answers and counters go back with the labels."""

    def _build(self, **kw: Any) -> Any:
        self.collected = _Collected()
        return kw["spec"].build(cache=self.collected)

    def _task(self, row: dict[str, Any]) -> dict[str, Any]:
        task = pickle.loads(row["payload"])
        self.collected.load(task["cached"])
        judge = self.impl
        before = judge.stats.copy()
        counts = {k: getattr(judge, k, 0) for k in ("escalated", "confirmed", "overturned")}
        labels, error = None, None
        try:
            labels = list(judge.judge([JudgeItem(*it) for it in task["items"]]))
        except Exception as exc:  # what was answered before it still goes back
            error = exc
        return {
            "labels": labels,
            "new": self.collected.drain(),
            "stats": judge.stats.since(before).as_dict(),
            "cascade": {k: getattr(judge, k, 0) - v for k, v in counts.items()},
            "error": error,
        }


class RayJudge:
    """A :class:`~negsample.scoring.Judge` whose :meth:`judge` is a Ray Data stage: the
    items of a call in tasks of about ``items_per_task`` (a listwise judge's
    (query, positive) group, and the repeats of an item, never split), each labelled by an
    actor that built the judge once for the call.

    The driver opens the sqlite cache (``spec.cache``) and is its only writer: it sends
    each task the labels already cached for its items (so the actors' judges ask only for
    the rest, as the local judge would), and writes the answers each task sends back as
    soon as it returns. A run interrupted loses at most the tasks in flight; a rerun asks
    nothing it had received. The requests are those of the local judge (the same items
    per request), so a deterministic endpoint gives the same labels.

    Parameters
    ----------
    spec : JudgeSpec
        the judge; the endpoint must be reachable from every node, and the API key
        (``spec.key_env``) set in the workers' environment: the key is not sent through
        Ray.
    address, workers, min_workers, cpus_per_worker, gpus_per_worker : as for
        :class:`RayScorer`. ``spec.concurrency`` is the requests in flight over the whole
        pool (each actor takes its share, at least one).
    items_per_task : int
        items one actor judges per task.

    Notes
    -----
    Each actor's judge has its own breakers (``max_consecutive_failures``, the retry
    budget, ``max_outage``): they trip per actor. A :class:`~negsample.scoring.JudgeError`
    raised in an actor is raised here, after the answers received were cached.
    """

    def __init__(
        self,
        spec: JudgeSpec,
        *,
        address: str | None = None,
        workers: int | None = None,
        min_workers: int = 1,
        cpus_per_worker: float = 1.0,
        gpus_per_worker: float = 0.0,
        items_per_task: int = DEFAULT_ITEMS_PER_TASK,
    ) -> None:
        if not isinstance(spec, JudgeSpec):
            raise TypeError(f"spec must be a JudgeSpec, got {type(spec).__name__}")
        if isinstance(items_per_task, bool) or not isinstance(items_per_task, int):
            raise ValueError(f"items_per_task must be a positive int, got {items_per_task!r}")
        if items_per_task < 1:
            raise ValueError(f"items_per_task must be a positive int, got {items_per_task!r}")
        self.pool = _Pool(workers, min_workers, cpus_per_worker, gpus_per_worker)
        self.spec = spec
        self.items_per_task = items_per_task
        self.cache = JudgementCache(spec.cache)
        self._local = spec.build(cache=self.cache)  # its keys and name; it asks nothing
        self._leaves = _leaves(self._local)
        self.name = str(self._local.name)
        self.stats = ScoringStats()
        self.escalated = self.confirmed = self.overturned = 0
        self._session = _Session(address)

    def __repr__(self) -> str:
        return f"RayJudge({self._local!r}, {self.pool.describe()})"

    def _groups(self, items: list[JudgeItem]) -> list[list[int]]:
        """Item indices that go to one actor together: a (query, positive) group for a
        listwise judge, the repeats of one item otherwise; in first appearance order."""
        groups: dict[Any, list[int]] = {}
        listwise = self.spec.mode == "listwise"
        for i, it in enumerate(items):
            groups.setdefault((it.query, it.positive) if listwise else it, []).append(i)
        return list(groups.values())

    def judge(self, items: Sequence[JudgeItem | tuple[str, str, str]]) -> list[Label | None]:
        """One label per item (``None`` where the judge failed), in the order given."""
        t0 = time.perf_counter()
        its = []
        for i, x in enumerate(items):
            if not isinstance(x, tuple) or len(x) != 3 or not all(isinstance(t, str) for t in x):
                raise TypeError(
                    f"item {i}: expected (query, positive, document) strings, got {x!r:.80}"
                )
            its.append(JudgeItem(*x))
        if not its:
            return []
        keys = [[leaf.cache_key(it) for leaf in self._leaves] for it in its]
        cached = self.cache.get_many(k for ks in keys for k in ks)
        tasks: list[list[int]] = []
        for group in self._groups(its):
            if tasks and len(tasks[-1]) + len(group) <= self.items_per_task:
                tasks[-1].extend(group)
            else:
                tasks.append(list(group))
        rows = []
        for t, idx in enumerate(tasks):
            hits = {k: cached[k] for i in idx for k in keys[i] if k in cached}
            payload = {"items": [tuple(its[i]) for i in idx], "cached": hits}
            rows.append({"task": t, "payload": pickle.dumps(payload, protocol=5)})
        self._session.ensure()
        share = max(1, self.spec.concurrency // max(1, min(self.pool.most(), len(tasks))))
        actor_spec = dataclasses.replace(self.spec, concurrency=share)
        labels: list[Label | None] = [None] * len(its)
        try:
            for t, res in _run(_JudgeActor, {"spec": actor_spec}, rows, self.pool, self._session):
                for key, label, model, version, answer in res["new"]:
                    self.cache.put(key, label, model=model, prompt_version=version, answer=answer)
                self.stats.merge(ScoringStats(**{**res["stats"], "seconds": 0.0}))
                self.escalated += res["cascade"]["escalated"]
                self.confirmed += res["cascade"]["confirmed"]
                self.overturned += res["cascade"]["overturned"]
                if res["error"] is not None:
                    raise res["error"]
                for i, lab in zip(tasks[t], res["labels"], strict=True):
                    labels[i] = lab
        finally:
            self.stats.add(seconds=time.perf_counter() - t0)
        return labels

    def close(self) -> None:
        """Close the cache; let the cluster go if this judge joined it."""
        self._session.close()
        self.cache.close()

    def __enter__(self) -> RayJudge:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def judge_items_ray(
    items: Sequence[JudgeItem | tuple[str, str, str]], spec: JudgeSpec, **kwargs: Any
) -> list[Label | None]:
    """The labels of ``items`` on a Ray cluster: ``RayJudge(spec, **kwargs)``'s
    :meth:`~RayJudge.judge` (``kwargs``: ``address``, ``workers``, ``min_workers``,
    ``cpus_per_worker``, ``gpus_per_worker``, ``items_per_task``); the answers land in
    ``spec.cache``."""
    with RayJudge(spec, **kwargs) as judge:
        return judge.judge(items)

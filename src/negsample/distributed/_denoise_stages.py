"""The teacher and the judge as Ray Data stages: :class:`RayScorer` and :class:`RayJudge`
(see :mod:`negsample.distributed.stages`)."""

from __future__ import annotations

import dataclasses
import pickle
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InputError, InputTypeError
from ..pipeline.options import JudgeSpec, TeacherSpec
from ..scoring.base import LABELS, JudgeItem, Label, ScoringStats
from ..scoring.cache import JudgementCache
from ._stage import Actor, Pool, Session, run, strings, worker_device

__all__ = ["RayJudge", "RayScorer", "judge_items_ray", "score_pairs_ray"]

FloatArray = npt.NDArray[np.float32]

#: Pairs a scoring actor takes per call.
DEFAULT_PAIRS_PER_TASK = 2048
#: Judge items an actor takes per call (a listwise group is never split).
DEFAULT_ITEMS_PER_TASK = 64


# -- teacher scores ---------------------------------------------------------------------------


class _ScoreActor(Actor):
    """A teacher scorer (:meth:`TeacherSpec.build`) on one worker: one slice of pairs (in
    decreasing length) per task."""

    def _build(self, **kw: Any) -> Any:
        return kw["spec"].build()

    def _task(self, row: dict[str, Any]) -> dict[str, Any]:
        before = self.impl.stats.copy()
        pairs = list(zip(strings(row["query"]), strings(row["document"]), strict=True))
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
            raise InputTypeError(f"spec must be a TeacherSpec, got {type(spec).__name__}")
        if isinstance(pairs_per_task, bool) or not isinstance(pairs_per_task, int):
            raise InputError(f"pairs_per_task must be a positive int, got {pairs_per_task!r}")
        if pairs_per_task < 1:
            raise InputError(f"pairs_per_task must be a positive int, got {pairs_per_task!r}")
        self.pool = Pool(workers, min_workers, cpus_per_worker, gpus_per_worker)
        self.spec = dataclasses.replace(spec, device=worker_device(spec.device, self.pool.gpus))
        self.pairs_per_task = pairs_per_task
        self.name = f"{spec.kind}:{spec.path}"  # the local scorer's name
        self.stats = ScoringStats()
        self._session = Session(address)

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
                raise InputTypeError(
                    f"pair {i}: expected (query text, document text), got {p!r:.80}"
                )
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
        for t, res in run(_ScoreActor, {"spec": self.spec}, rows, self.pool, self._session):
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
            raise InputError(f"only the labels {LABELS} are cached, got {label!r}")
        with self._mutex:
            self._known[key] = label
            self.new.append((key, label, model, prompt_version, answer))


def _leaves(judge: Any) -> list[Any]:
    """The LLM judges inside ``judge`` (both of a cascade), whose cache keys an item has."""
    if hasattr(judge, "cache_key"):
        return [judge]
    return [*_leaves(judge.first), *_leaves(judge.second)]


class _JudgeActor(Actor):
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
            raise InputTypeError(f"spec must be a JudgeSpec, got {type(spec).__name__}")
        if isinstance(items_per_task, bool) or not isinstance(items_per_task, int):
            raise InputError(f"items_per_task must be a positive int, got {items_per_task!r}")
        if items_per_task < 1:
            raise InputError(f"items_per_task must be a positive int, got {items_per_task!r}")
        self.pool = Pool(workers, min_workers, cpus_per_worker, gpus_per_worker)
        self.spec = spec
        self.items_per_task = items_per_task
        self.cache = JudgementCache(spec.cache)
        self._local = spec.build(cache=self.cache)  # its keys and name; it asks nothing
        self._leaves = _leaves(self._local)
        self.name = str(self._local.name)
        self.stats = ScoringStats()
        self.escalated = self.confirmed = self.overturned = 0
        self._session = Session(address)

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
                raise InputTypeError(
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
            for t, res in run(_JudgeActor, {"spec": actor_spec}, rows, self.pool, self._session):
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

"""What the Ray Data stages share (:mod:`negsample.distributed.stages`): a connection made
when first needed, the actor pool (``ray.data.ActorPoolStrategy``) and its resources,
the actors' device, and :func:`run`: one row per task through ``map_batches`` over the
pool, results and errors sent back as pickled bytes."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import pickle
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._optional import require
from ..errors import InputError, InputTypeError
from ._ray import connect, ray_module

__all__ = ["Actor", "Pool", "Session", "run", "session", "strings", "worker_device"]


# -- the session and the pool -----------------------------------------------------------------


class Session:
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
def session(address: str | None) -> Iterator[Session]:
    s = Session(address)
    try:
        yield s
    finally:
        s.close()


@dataclasses.dataclass(frozen=True)
class Pool:
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
                raise InputError(f"{name} must be a positive integer, got {v!r}")
        if self.workers is not None and self.min_workers > self.workers:
            raise InputError(f"min_workers={self.min_workers} exceeds workers={self.workers}")
        for name, f in (("cpus_per_worker", self.cpus), ("gpus_per_worker", self.gpus)):
            if isinstance(f, bool) or not isinstance(f, int | float) or not 0 <= f < math.inf:
                raise InputError(f"{name} must be a finite number >= 0, got {f!r}")

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


def worker_device(device: str | None, gpus: float) -> str:
    """The device an actor runs its model on: ``device`` as given, or (``None`` /
    ``"auto"``) ``"cuda"`` on actors that reserve GPUs, else ``"cpu"``. Decided here, not
    by the driver's own devices, so the cache key names the precision the actors use."""
    if device is None or str(device).strip().lower() == "auto":
        return "cuda" if gpus > 0 else "cpu"
    if not isinstance(device, str):
        raise InputTypeError(f"device must be a device name, got {device!r}")
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


def run(
    actor: type,
    ctor: dict[str, Any],
    rows: list[dict[str, Any]],
    pool: Pool,
    session: Session,
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


class Actor:
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


def strings(column: Any) -> list[str]:
    return [str(t) for t in column]

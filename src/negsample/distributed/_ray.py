"""Ray, imported lazily: connecting, the remote worker class, and errors made plain."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from .._optional import require
from ..errors import InputError

__all__ = ["connect", "get", "is_worker_lost", "ray_module", "remote_worker_class"]


def ray_module() -> Any:
    """The ``ray`` module, or an ImportError naming ``pip install "negsample[ray]"``."""
    return require("ray", "distributed mining")


def connect(address: str | None = None) -> bool:
    """Connect this process to a Ray cluster unless it already is.

    Parameters
    ----------
    address : ``"auto"`` (the cluster started on this machine with ``ray start``, or
        ``$RAY_ADDRESS``), ``"HOST:PORT"`` of a head node, ``"local"`` (start a private
        Ray instance in this process), or ``None`` (``$RAY_ADDRESS`` if set, else a
        private instance).

    Returns
    -------
    bool
        True when this call connected (the caller should disconnect with
        ``ray.shutdown()`` when done); False when the process was already connected.

    Raises
    ------
    ValueError
        when no cluster answers at ``address``.
    """
    ray = ray_module()
    if ray.is_initialized():
        return False
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise InputError(f"address must be 'auto', 'local' or HOST:PORT, got {address!r}")
    _check_reachable(address)
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "configure_logging": True}
    if address in (None, "local"):
        kwargs["include_dashboard"] = False
    # ray.init swaps a SIGTERM handler of the caller (the CLI's: SIGTERM as Ctrl-C) for
    # sys.exit, under a C++ handler that prints a stack: the caller's is put back
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as exc:
        raise InputError(
            f"cannot reach a Ray cluster at {address!r} ({str(exc).splitlines()[0]}); start one "
            "with `ray start --head`, or use 'local' for a private instance"
        ) from exc
    finally:
        if callable(sigterm) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)
    return True


def _check_reachable(address: str | None, timeout: float = 10.0) -> None:
    """Fail in seconds, not after Ray's minutes of retries, when nothing listens at an
    explicit ``HOST:PORT``."""
    if address is None or address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"address must be 'auto', 'local' or HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise InputError(
            f"cannot reach a Ray cluster at {address!r} ({exc}); start one with "
            "`ray start --head`, or use 'local' for a private instance"
        ) from exc


@lru_cache(maxsize=1)
def remote_worker_class() -> Any:
    """:class:`~negsample.distributed._workers.IndexWorker` as a Ray actor class."""
    from ._workers import IndexWorker

    return ray_module().remote(IndexWorker)


def is_worker_lost(exc: BaseException) -> bool:
    """True for the errors that mean a worker process or its node is gone (the work it
    held can be given to another worker), as opposed to an error raised by the work."""
    ex = ray_module().exceptions
    lost = tuple(
        getattr(ex, name)
        for name in (
            "RayActorError",
            "ActorUnavailableError",
            "WorkerCrashedError",
            "NodeDiedError",
        )
        if hasattr(ex, name)
    )
    return isinstance(exc, lost)


def get(refs: Any, timeout: float | None = None) -> Any:
    """``ray.get``, re-raising an error raised inside a worker as the original exception
    (a ``ValueError`` in a worker is a ``ValueError`` here, with its own message)."""
    ray = ray_module()
    try:
        return ray.get(refs, timeout=timeout)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, Exception) and not is_worker_lost(cause):
            raise cause from exc
        raise


def kill(actors: Sequence[Any]) -> None:
    """Stop actors for good (no restart); already dead ones are skipped."""
    ray = ray_module()
    for a in actors:
        try:
            ray.kill(a, no_restart=True)
        except Exception:  # an actor already gone needs nothing more
            pass

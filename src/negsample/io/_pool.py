"""A multi-process pool over several devices, each process feeding its model with the same
:class:`~negsample.io.feeder.TokenFeeder` as a single process does.

Each group of inputs is split into one interleaved piece per process (inputs ``w, w + n,
w + 2n, ...``: the same mix of lengths in every piece, still in decreasing order) on one
shared queue, two groups ahead, so that a process that finishes early takes the next piece;
the pieces' outputs are put back in the group's order.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["DevicePool"]

#: Groups handed to the processes ahead of the one being collected.
_AHEAD = 2


def _worker(
    factory: Callable[..., Any],
    args: tuple[Any, ...],
    device: str,
    n_cpu: int,
    inbox: Any,
    outbox: Any,
) -> None:
    """Build ``factory(*args, device=device)`` (an object with ``stream(groups)``) and run
    the pieces of ``inbox`` through it until ``None``."""
    try:
        if device == "cpu" and n_cpu > 1:  # several CPU processes share the cores
            import torch

            torch.set_num_threads(max(1, (os.cpu_count() or 1) // n_cpu))
        runner = factory(*args, device=device)
        keys: deque[Any] = deque()

        def pieces() -> Iterator[Sequence[Any]]:
            while True:
                msg = inbox.get()
                if msg is None:
                    return
                keys.append(msg[0])
                yield msg[1]

        for out in runner.stream(pieces()):
            outbox.put((keys.popleft(), np.ascontiguousarray(out)))
    except BaseException:
        outbox.put(("error", device, traceback.format_exc()))


class DevicePool:
    """One process per device (``spawn``: safe with CUDA), each running
    ``factory(*args, device=d)``; :meth:`stream` maps groups of inputs through them.

    ``factory`` must be a module-level function (it is pickled by reference) and ``args``
    picklable. Close the pool (or use it as a context manager) to stop the processes.
    """

    def __init__(self, factory: Callable[..., Any], args: tuple[Any, ...], devices: Sequence[str]):
        if not devices:
            raise InputError("a pool needs at least one device")
        ctx = mp.get_context("spawn")
        self.devices = [str(d) for d in devices]
        self._inbox: Any = ctx.Queue()
        self._outbox: Any = ctx.Queue()
        n_cpu = sum(d == "cpu" for d in self.devices)
        self._procs = [
            ctx.Process(
                target=_worker,
                args=(factory, args, d, n_cpu, self._inbox, self._outbox),
                name=f"negsample-pool-{d}",
                daemon=True,
            )
            for d in self.devices
        ]
        for p in self._procs:
            p.start()
        self._broken = False

    def _get(self) -> Any:
        while True:
            try:
                msg = self._outbox.get(timeout=1.0)
            except queue.Empty:
                dead = [(p.name, p.exitcode) for p in self._procs if not p.is_alive()]
                if dead:
                    self._broken = True
                    raise RuntimeError(
                        f"pool process(es) exited without a result: {dead}"
                    ) from None
                continue
            if msg[0] == "error":
                self._broken = True
                raise RuntimeError(f"pool process on {msg[1]} failed:\n{msg[2]}")
            return msg

    def stream(self, groups: Iterable[Sequence[Any]]) -> Iterator[np.ndarray]:
        """The outputs of each group, in the group's order, one group at a time."""
        n = len(self._procs)
        todo = iter(groups)
        pending: deque[tuple[int, int, int]] = deque()  # (group id, inputs, pieces)
        seq = 0

        def submit() -> bool:
            nonlocal seq
            items = next(todo, None)
            if items is None:
                return False
            k = min(n, len(items))
            for w in range(k):
                self._inbox.put(((seq, w), list(items[w::n])))
            pending.append((seq, len(items), k))
            seq += 1
            return True

        for _ in range(_AHEAD):
            if not submit():
                break
        got: dict[tuple[int, int], np.ndarray] = {}
        try:
            yield from self._collect(pending, got, n, submit)
        finally:
            if pending:  # left early (an error, or the caller stopped): do not finish them
                self._broken = True

    def _collect(
        self,
        pending: deque[tuple[int, int, int]],
        got: dict[tuple[int, int], np.ndarray],
        n: int,
        submit: Callable[[], bool],
    ) -> Iterator[np.ndarray]:
        while pending:
            gid, size, k = pending[0]
            while sum(key[0] == gid for key in got) < k:
                key, arr = self._get()
                got[key] = arr
            parts = [got.pop((gid, w)) for w in range(k)]
            out = np.empty((size, *parts[0].shape[1:]), dtype=parts[0].dtype) if parts else None
            for w, part in enumerate(parts):
                assert out is not None
                out[w::n] = part
            pending.popleft()
            submit()
            yield out if out is not None else np.empty((0,), np.float32)

    def close(self) -> None:
        """Stop the processes: each finishes its pieces, or at once after a failure."""
        for _ in self._procs:
            self._inbox.put(None)
        for p in self._procs:
            p.join(timeout=1 if self._broken else 60)
            if p.is_alive():  # pragma: no cover - a stuck process
                p.terminate()
                p.join(timeout=5)
        self._procs = []

    def __enter__(self) -> DevicePool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

"""The run store: the work folder of a resumable run, and everything kept in it.

One run's work folder holds::

    manifest.json                         {"hash": <settings hash>, "settings": {...}}
    chunk_<hash[:16]>_<first>_<end>.npz   a finished chunk of queries first:end, which
                                          also holds the full settings hash
    index-<key>/                          an approximate index built for the run
                                          (mine_dataset), so a resumed run searches it
    .<anything>                           temporaries of a write in progress

and its lock ``<work folder>.lock`` lies beside it (so the lock outlives the folder's
removal). The rules that keep a resume from mixing runs are all here:

- one process at a time works in a folder (:meth:`RunStore.lock`, an OS lock);
- opening a folder for a run (:meth:`RunStore.prepare`) removes the temporaries a killed
  run left, refuses a manifest of other settings (:class:`SettingsMismatch`, naming the
  settings that differ), rewrites a missing or unreadable one, and removes the chunk
  files named for other settings;
- a chunk is loaded only when the hash inside it is this run's; a chunk made with other
  settings (renamed, say) or damaged is never trusted (:meth:`RunStore.load_chunk`): it
  is removed, counted and computed again;
- every file is written atomically (:mod:`negsample._files`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._files import atomic_file, clear_hidden, hold_lock, write_json
from .._types import MiningStats, Negatives
from ..errors import InputError

__all__ = ["MANIFEST", "Finished", "RunStore", "SettingsMismatch"]

#: The manifest's file name in a work folder.
MANIFEST = "manifest.json"

Rejected = Literal["foreign", "damaged"]


class SettingsMismatch(InputError):
    """The work folder holds a run made with other settings."""


@dataclass(frozen=True)
class Finished:
    """The chunks of a run found finished in its work folder (:meth:`RunStore.finished`).

    ``parts`` maps a chunk's position (in the run's chunk list) to its result; ``foreign``
    and ``damaged`` count the chunk files that were removed instead of loaded (made with
    other settings, unreadable).
    """

    parts: dict[int, Negatives]
    foreign: int = 0
    damaged: int = 0


class RunStore:
    """The work folder of a resumable run (see the module's description).

    Parameters
    ----------
    work_dir : str or os.PathLike
        The folder (made when a run is prepared); its lock is ``<work_dir>.lock``.

    Examples
    --------
    >>> import tempfile, negsample as ns
    >>> from negsample.pipeline import RunStore
    >>> store = RunStore(tempfile.mkdtemp() + "/work")
    >>> with store.lock():
    ...     store.prepare("0" * 64, {"n": 7}, log=None)
    ...     store.chunk_file("0" * 64, 0, 100).name
    'chunk_0000000000000000_0000000000_0000000100.npz'
    """

    def __init__(self, work_dir: str | os.PathLike[str]) -> None:
        self.path = Path(work_dir)

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    @property
    def lock_file(self) -> Path:
        """``<work_dir>.lock``, beside the folder."""
        return self.path.with_name(self.path.name + ".lock")

    @contextmanager
    def lock(self) -> Iterator[Path]:
        """Hold the folder's lock for the block: another process asking for it gets
        :class:`~negsample.RunLocked` at once. Re-entrant within a thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with hold_lock(self.lock_file) as p:
            yield p

    # -- the manifest ------------------------------------------------------------------------
    def read_manifest(self, log: Callable[[str], None] | None = None) -> dict[str, Any] | None:
        """The manifest, or ``None`` when it is missing or unreadable (then named in the
        log: it is rebuilt, which is safe since each chunk carries its own settings hash)."""
        man = self.path / MANIFEST
        if not man.is_file():
            return None
        try:
            old = json.loads(man.read_text(encoding="utf-8"))
            if not isinstance(old, dict) or not isinstance(old.get("hash"), str):
                raise InputError("no settings hash in it")
            return old
        except (ValueError, UnicodeDecodeError) as exc:
            if log is not None:
                log(f"{man}: unreadable ({exc}); rebuilt (chunks are checked one by one)")
            return None

    def prepare(
        self, h: str, settings: Mapping[str, Any], log: Callable[[str], None] | None
    ) -> None:
        """Make the folder ready for the run whose settings hash is ``h`` (hold
        :meth:`lock` around the call): temporaries of a killed run removed, the manifest
        checked (a run with other settings is refused with :class:`SettingsMismatch`) or
        written, chunk files named for other settings removed (all counted in ``log``)."""
        self.path.mkdir(parents=True, exist_ok=True)
        stale = clear_hidden(self.path)
        if stale and log is not None:
            log(f"removed {stale} temporary files left in {self.path} by an interrupted run")
        old = self.read_manifest(log)
        if old is not None and old["hash"] != h:
            differ = _differing(old.get("settings"), settings)
            raise SettingsMismatch(
                f"{self.path} holds a run with other settings (hash {old['hash'][:12]}, now "
                f"{h[:12]}{'; they differ in ' + differ if differ else ''}); rerun with "
                "--fresh (or delete that folder) to start over, or write to another output path"
            )
        if old is None:
            write_json(
                self.path / MANIFEST, {"hash": h, "settings": settings}, indent=1, default=str
            )
        prefix = f"chunk_{h[:16]}_"
        foreign = [p for p in self.path.glob("chunk_*.npz") if not p.name.startswith(prefix)]
        for p in foreign:
            p.unlink(missing_ok=True)
        if foreign and log is not None:
            log(f"removed {len(foreign)} chunk files made with other settings from {self.path}")

    # -- chunks ------------------------------------------------------------------------------
    def chunk_file(self, h: str, a: int, b: int) -> Path:
        """The file of the finished chunk of queries ``a:b`` of the run ``h``."""
        return self.path / f"chunk_{h[:16]}_{a:010d}_{b:010d}.npz"

    def save_chunk(self, h: str, a: int, b: int, part: Negatives) -> None:
        """Save the result of queries ``a:b`` of the run ``h``, atomically, stamped with
        ``h`` inside."""
        with atomic_file(self.chunk_file(h, a, b)) as f:
            np.savez(
                f,
                ids=part.ids,
                scores=part.scores,
                query_index=part.query_index,
                anchor_ids=part.anchor_ids,
                stats=np.array(json.dumps(part.stats.as_dict())),
                settings_hash=np.array(h),
            )

    def load_chunk(self, h: str, a: int, b: int) -> Negatives | Rejected | None:
        """The saved chunk ``a:b`` of the run ``h``; ``None`` when there is none, or why
        the file there is not used: ``"foreign"`` (it holds another settings hash) or
        ``"damaged"`` (unreadable). Neither is ever trusted."""
        path = self.chunk_file(h, a, b)
        if not path.is_file():
            return None
        try:
            with np.load(path) as z:
                if "settings_hash" not in z.files or str(z["settings_hash"]) != h:
                    return "foreign"
                stats = MiningStats(**json.loads(str(z["stats"])))
                return Negatives(z["ids"], z["scores"], z["query_index"], z["anchor_ids"], stats)
        except Exception:
            return "damaged"

    def finished(self, h: str, chunks: Sequence[tuple[int, int]]) -> Finished:
        """Load every finished chunk of ``chunks`` (``(first, end)`` query ranges) of the
        run ``h``; the files that cannot be trusted are removed and counted."""
        parts: dict[int, Negatives] = {}
        rejected = {"foreign": 0, "damaged": 0}
        for i, (a, b) in enumerate(chunks):
            got = self.load_chunk(h, a, b)
            if isinstance(got, Negatives):
                parts[i] = got
            elif got is not None:
                rejected[got] += 1
                self.chunk_file(h, a, b).unlink(missing_ok=True)
        return Finished(parts, rejected["foreign"], rejected["damaged"])

    def count_chunks(self) -> int:
        """Chunk files in the folder now (of any run)."""
        return len(list(self.path.glob("chunk_*.npz"))) if self.path.is_dir() else 0

    def remove(self) -> None:
        """Delete the work folder, under its lock: a folder that another live run holds is
        never deleted (:class:`~negsample.RunLocked` is raised instead)."""
        if not self.path.exists():
            return
        with self.lock():
            shutil.rmtree(self.path, ignore_errors=True)


def _differing(old: Any, new: Mapping[str, Any]) -> str:
    """The settings whose values differ (``inputs.queries``, ``index``...), named."""
    if not isinstance(old, dict):
        return ""
    new = json.loads(json.dumps(new, default=str))
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            keys += [f"{k}.{j}" for j in sorted(set(a) | set(b)) if a.get(j) != b.get(j)]
        else:
            keys.append(k)
    return ", ".join(keys)

"""The paths a command names, checked against each other before any work is done.

Every output must be writable (its folder exists or can be made, no file stands where a
folder is needed). :func:`check_places` then checks every path a command names against
every other, in one pass: an output, a cache or the run's own lock file and work folder
(together: the *written* places) may not be an input file or lie in an input folder (the
data folder, the embeddings folder, a local model folder), an output folder may not hold
an input, two written places may not be the same path or lie one inside the other (two
caches may: the judge cache sits in the embedding cache folder by default), and no path
may be named like a temporary file that an interrupted write of an output left (those are
removed by the next run). Paths are compared with ``os.path.samefile`` when both exist,
through symlinks and relative paths otherwise; every refusal is one line naming both
options and both paths.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .._files import remove_stale, stale_pattern
from ..errors import InputError

__all__ = [
    "Place",
    "check_output_dir",
    "check_output_file",
    "check_places",
    "made_parents",
    "refuse_inputs",
    "remove_stale_tmp",
    "same_path",
]


def _nearest_existing(p: Path) -> Path:
    p = Path(os.path.abspath(p))
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _check_folder(folder: Path, option: str, path: Path) -> None:
    """``folder`` (where ``path`` goes) exists as a writable folder or can be made."""
    anc = _nearest_existing(folder)
    if not anc.is_dir():
        raise NotADirectoryError(
            f"{option} {path}: {anc} is a file, so no folder can be made there"
        )
    if not os.access(anc, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {path}: cannot write in {anc} (permission denied)")


def check_output_file(path: str | os.PathLike[str], option: str) -> None:
    """Raise a one-line error unless ``path`` can be written as a file."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{option} {p}: is a folder; give a file name")
    _check_folder(p.parent, option, p)


def check_output_dir(path: str | os.PathLike[str], option: str) -> None:
    """Raise a one-line error unless ``path`` is, or can be made as, a writable folder."""
    p = Path(path)
    if os.path.lexists(p) and not p.is_dir():
        raise NotADirectoryError(f"{option} {p}: is a file; give a folder")
    _check_folder(p, option, p)


def same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """``a`` and ``b`` are the same file: ``os.path.samefile`` when both exist (symlinks,
    hard links), else their resolved absolute paths are equal."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def _inside(path: Path, folder: Path) -> bool:
    p, f = os.path.realpath(path), os.path.realpath(folder)
    return p == f or p.startswith(f.rstrip(os.sep) + os.sep)


def refuse_inputs(
    outputs: Mapping[str, Path],
    inputs: Sequence[Path],
    input_dirs: Sequence[Path] = (),
) -> None:
    """Refuse any output that is an input file, lies in an input folder (a model folder),
    or is the same file as another output.

    Raises
    ------
    InputError
        naming the option, the output and the input.
    """
    for opt, out in outputs.items():
        for inp in inputs:
            if same_path(out, inp):
                raise InputError(
                    f"{opt} {out} is the input file {inp}: refusing to overwrite an input"
                )
        for d in input_dirs:
            if _inside(out, d):
                raise InputError(
                    f"{opt} {out} is inside the input folder {d}: refusing to write into it"
                )
    items = list(outputs.items())
    for i, (o1, p1) in enumerate(items):
        for o2, p2 in items[i + 1 :]:
            if same_path(p1, p2):
                raise InputError(f"{o1} and {o2} are the same file {p1}")


Role = Literal["input", "output", "cache", "work"]


@dataclass(frozen=True)
class Place:
    """A path a command names, and what the command does with it.

    Parameters
    ----------
    option : str
        how the user named it, for messages (``"--out"``, ``"--data"``, ``"the run's work
        folder"``).
    path : pathlib.Path
        the path as given (compared through symlinks and relative paths).
    role : {"input", "output", "cache", "work"}
        read; written as a result; written as a cache (kept between runs); written and
        removed by the run itself (its lock file and work folder).
    folder : bool
        a folder rather than a file.
    part_of : str or None
        the ``option`` of an output folder this file belongs to (``report --out-dir``'s
        ``summary.md``): not refused for lying in it.
    leftovers : bool
        an interrupted write of this output leaves ``.<name>.XXXXXXXX.tmp`` beside it,
        which the next run removes: no other path may be named so.
    """

    option: str
    path: Path
    role: Role = "input"
    folder: bool = False
    part_of: str | None = None
    leftovers: bool = False

    @property
    def written(self) -> bool:
        return self.role != "input"

    def __str__(self) -> str:
        return f"{self.option} {self.path}"


def _same(a: Place, b: Place) -> bool:
    return same_path(a.path, b.path)


def _what(p: Place) -> str:
    return "folder" if p.folder else "file"


def _leftover_of(output: Place, other: Place) -> bool:
    """``other`` is named like a temporary of an interrupted write of ``output``."""
    if not output.leftovers:
        return False
    o, q = os.path.realpath(output.path), os.path.realpath(other.path)
    pattern = stale_pattern(os.path.basename(o))
    return os.path.dirname(o) == os.path.dirname(q) and bool(pattern.match(os.path.basename(q)))


def _check_written_vs_inputs(w: Place, inputs: Sequence[Place]) -> None:
    for i in inputs:
        if _same(w, i):
            raise InputError(
                f"{w} is {i.option}'s {_what(i)} {i.path}: refusing to overwrite an input"
            )
    around = [i for i in inputs if i.folder and _inside(w.path, i.path)]
    if around:  # the innermost folder names it best (the embeddings, not the data)
        i = max(around, key=lambda i: len(os.path.realpath(i.path)))
        raise InputError(f"{w} is inside {i.option}'s folder {i.path}: refusing to write into it")
    for i in inputs:
        if w.folder and _inside(i.path, w.path):
            raise InputError(
                f"{w} holds {i.option}'s {_what(i)} {i.path}: refusing to write over an input"
            )
        if _leftover_of(w, i):
            raise InputError(
                f"{i} is named like a temporary file of an interrupted write of {w}, which "
                "the run removes: rename it"
            )


def _check_written_pair(a: Place, b: Place) -> None:
    if _same(a, b):
        kind = _what(a) if a.folder == b.folder else "path"
        raise InputError(f"{a} and {b} are the same {kind}")
    if a.role == "cache" and b.role == "cache":
        return  # caches may nest (the judge cache in the embedding cache folder)
    for inner, outer in ((a, b), (b, a)):
        if outer.folder and inner.part_of != outer.option and _inside(inner.path, outer.path):
            why = (
                "which the run removes when it ends"
                if outer.role == "work"
                else "outputs, caches and the run's work folder may not overlap"
            )
            raise InputError(f"{inner} is inside {outer}: {why}")
        if _leftover_of(outer, inner):
            raise InputError(
                f"{inner} is named like a temporary file of an interrupted write of {outer}, "
                "which the run removes: rename it"
            )


def check_places(places: Sequence[Place]) -> None:
    """Check every path of a command against every other (see the module docstring):
    first that each output and cache can be written, then every pair.

    Raises
    ------
    InputError
        naming both options and both paths.
    OSError
        (``IsADirectoryError``, ``NotADirectoryError``, ``PermissionError``) for an output
        that cannot be written.
    """
    for p in places:
        if p.role in ("output", "cache"):
            (check_output_dir if p.folder else check_output_file)(p.path, p.option)
    # the files of an output folder after the folder: a refusal names the folder
    written = sorted((p for p in places if p.written), key=lambda p: p.part_of is not None)
    inputs = [p for p in places if not p.written]
    for w in written:
        _check_written_vs_inputs(w, inputs)
    for k, a in enumerate(written):
        for b in written[k + 1 :]:
            _check_written_pair(a, b)


def remove_stale_tmp(path: str | os.PathLike[str]) -> int:
    """Remove the temporaries that an interrupted atomic write of ``path`` left beside it
    (``.<name>.XXXXXXXX.tmp``, as :class:`~negsample.io.writers.atomic_path` names its
    files, and the folder of a ``hf`` dataset's ``save_to_disk``); returns how many. Call
    it only while holding the output's lock (:func:`negsample._files.remove_stale`)."""
    return remove_stale(path)


@contextmanager
def made_parents(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Make ``folder`` (and missing parents) for the block; those it made are removed
    again at the end if they are still empty (a failed run leaves no empty folders)."""
    f = Path(os.path.abspath(folder))
    made: list[Path] = []
    q = f
    while not os.path.lexists(q) and q != q.parent:
        made.append(q)
        q = q.parent
    f.mkdir(parents=True, exist_ok=True)
    try:
        yield f
    finally:
        for d in made:  # deepest first
            try:
                d.rmdir()
            except OSError:
                break

"""Output paths of the command line, checked before any work is done.

An output must be writable (its folder exists or can be made, no file stands where a
folder is needed), must not be an input (a corpus, an embeddings file, a run file, a model
folder...: compared with ``os.path.samefile`` when both exist, through symlinks and
relative paths otherwise), and two outputs must not be the same file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from .._files import remove_stale

__all__ = [
    "check_output_dir",
    "check_output_file",
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
    ValueError
        naming the option, the output and the input.
    """
    for opt, out in outputs.items():
        for inp in inputs:
            if same_path(out, inp):
                raise ValueError(
                    f"{opt} {out} is the input file {inp}: refusing to overwrite an input"
                )
        for d in input_dirs:
            if _inside(out, d):
                raise ValueError(
                    f"{opt} {out} is inside the input folder {d}: refusing to write into it"
                )
    items = list(outputs.items())
    for i, (o1, p1) in enumerate(items):
        for o2, p2 in items[i + 1 :]:
            if same_path(p1, p2):
                raise ValueError(f"{o1} and {o2} are the same file {p1}")


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

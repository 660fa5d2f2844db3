"""``load_index``: open a saved index of any type (kept apart from ``base`` so that the
protocol module never imports its implementations)."""

from __future__ import annotations

import os
from typing import Any

from .base import Index, read_meta

__all__ = ["load_index"]


def load_index(path: str | os.PathLike[str], **kwargs: Any) -> Index:
    """Load an index written by ``Index.save``, whatever its type."""
    meta = read_meta(path)
    kind = meta.get("type")
    if kind == "NumpyIndex":
        from .numpy_index import NumpyIndex

        return NumpyIndex.load(path, **kwargs)
    if kind == "FaissIndex":
        from .faiss_index import FaissIndex

        return FaissIndex.load(path, **kwargs)
    if kind == "TorchIndex":
        from .torch_index import TorchIndex

        return TorchIndex.load(path, **kwargs)
    raise ValueError(f"{path}/meta.json names an unknown index type {kind!r}")

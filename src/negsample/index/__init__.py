"""Vector indexes: the ``Index`` protocol, an exact numpy index and a FAISS index."""

from .base import METRICS, BaseIndex, Index
from .faiss_index import GPU_MAX_K, FaissIndex
from .loading import load_index
from .numpy_index import NumpyIndex

__all__ = [
    "GPU_MAX_K",
    "METRICS",
    "BaseIndex",
    "FaissIndex",
    "Index",
    "NumpyIndex",
    "load_index",
]

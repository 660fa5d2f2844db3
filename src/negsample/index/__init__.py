"""Vector indexes: the ``Index`` protocol, an exact numpy index and a FAISS index."""

from .base import METRICS, Index, load_index
from .faiss_index import GPU_MAX_K, FaissIndex
from .numpy_index import NumpyIndex

__all__ = ["GPU_MAX_K", "METRICS", "FaissIndex", "Index", "NumpyIndex", "load_index"]

"""Vector indexes: the ``Index`` protocol, an exact numpy index, a FAISS index and an exact
torch index (GPU or CPU)."""

from .base import METRICS, BaseIndex, Index
from .faiss_index import GPU_MAX_K, FaissIndex
from .loading import load_index
from .numpy_index import NumpyIndex
from .torch_index import TorchIndex

__all__ = [
    "GPU_MAX_K",
    "METRICS",
    "BaseIndex",
    "FaissIndex",
    "Index",
    "NumpyIndex",
    "TorchIndex",
    "load_index",
]

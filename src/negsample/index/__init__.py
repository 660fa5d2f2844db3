"""Vector indexes: the ``Index`` protocol, an exact numpy index, a FAISS index and an exact
torch index (GPU or CPU), and the registry of index kinds that spec strings name
(:mod:`.registry`). Importing an index module registers its kind."""

from .base import METRICS, BaseIndex, Index
from .faiss_index import GPU_MAX_K, FaissIndex
from .numpy_index import NumpyIndex
from .registry import (
    IndexKind,
    IndexSpec,
    available_indexes,
    build_index,
    load_index,
    parse_index_spec,
    register_index,
)
from .torch_index import TorchIndex

__all__ = [
    "GPU_MAX_K",
    "METRICS",
    "BaseIndex",
    "FaissIndex",
    "Index",
    "IndexKind",
    "IndexSpec",
    "NumpyIndex",
    "TorchIndex",
    "available_indexes",
    "build_index",
    "load_index",
    "parse_index_spec",
    "register_index",
]

"""negsample: hard-negative sampling for dense retrievers.

>>> import negsample as ns
>>> index = ns.NumpyIndex(corpus_emb)                       # doctest: +SKIP
>>> negs = ns.mine(query_emb, index, positives, sampler=ns.TopKSampler(k=200), n=7, seed=0)  # doctest: +SKIP
"""

import logging as _logging

from . import sources  # noqa: F401  (registers the bm25 and hybrid index kinds)
from ._types import Candidates, MiningStats, Negatives, SearchResult
from .datasets import SyntheticRetrieval, make_synthetic
from .errors import InputError, RunFailed
from .evaluation import (
    HiddenSplit,
    NegativeQuality,
    ProtocolRow,
    ProtocolSummary,
    hidden_positive_protocol,
    hide_positives,
    negative_quality,
    summarize,
    summary_table,
)
from .filters import Filters
from .fusion import reciprocal_rank_fusion
from .index import (
    BaseIndex,
    FaissIndex,
    Index,
    IndexSpec,
    NumpyIndex,
    TorchIndex,
    available_indexes,
    build_index,
    load_index,
    parse_index_spec,
    register_index,
)
from .index.bm25 import BM25Index
from .io.data import BeirDataset, DataError, load_beir
from .io.embeddings import verify_embeddings
from .io.encoding import (
    DatasetEmbeddings,
    align_embeddings,
    encode,
    encode_dataset,
    load_embeddings,
)
from .io.runs import RunCandidates, read_trec_run
from .io.writers import WriteReport, write_negatives
from .mining import mine
from .pipeline.dataset import MinedDataset, mine_dataset
from .pipeline.report import SamplerReport, sampler_report
from .pipeline.resume import RunIncomplete, RunLocked, mine_resumable
from .samplers import (
    BaseSampler,
    RandomSampler,
    ReSa2Sampler,
    Sampler,
    SamplerBatch,
    SimANSSampler,
    Stream,
    TopKSampler,
    TriSampler,
    available_samplers,
    get_sampler,
    register,
    sampler_from_string,
)

__version__ = "0.1.0"

# Diagnostics go to the standard "negsample" logger (modules log to "negsample.<module>").
# As a library, negsample adds no handler of its own beyond a NullHandler; the command
# line installs one on stderr. Progress bars stay tqdm.
_logging.getLogger("negsample").addHandler(_logging.NullHandler())

__all__ = [
    "BM25Index",
    "BaseIndex",
    "BaseSampler",
    "BeirDataset",
    "Candidates",
    "DataError",
    "DatasetEmbeddings",
    "FaissIndex",
    "Filters",
    "HiddenSplit",
    "Index",
    "IndexSpec",
    "InputError",
    "MinedDataset",
    "MiningStats",
    "NegativeQuality",
    "Negatives",
    "NumpyIndex",
    "ProtocolRow",
    "ProtocolSummary",
    "RandomSampler",
    "ReSa2Sampler",
    "RunCandidates",
    "RunFailed",
    "RunIncomplete",
    "RunLocked",
    "Sampler",
    "SamplerBatch",
    "SamplerReport",
    "SearchResult",
    "SimANSSampler",
    "Stream",
    "SyntheticRetrieval",
    "TopKSampler",
    "TorchIndex",
    "TriSampler",
    "WriteReport",
    "align_embeddings",
    "available_indexes",
    "available_samplers",
    "build_index",
    "encode",
    "encode_dataset",
    "get_sampler",
    "hidden_positive_protocol",
    "hide_positives",
    "load_beir",
    "load_embeddings",
    "load_index",
    "make_synthetic",
    "mine",
    "mine_dataset",
    "mine_resumable",
    "negative_quality",
    "parse_index_spec",
    "read_trec_run",
    "reciprocal_rank_fusion",
    "register",
    "register_index",
    "sampler_from_string",
    "sampler_report",
    "summarize",
    "summary_table",
    "verify_embeddings",
    "write_negatives",
]

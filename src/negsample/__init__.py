"""negsample: hard-negative sampling for dense retrievers.

>>> import negsample as ns
>>> index = ns.NumpyIndex(corpus_emb)                       # doctest: +SKIP
>>> negs = ns.mine(query_emb, index, positives, sampler=ns.TopKSampler(k=200), n=7, seed=0)  # doctest: +SKIP
"""

from ._types import Candidates, MiningStats, Negatives, SearchResult
from .datasets import SyntheticRetrieval, make_synthetic
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
from .index import FaissIndex, Index, NumpyIndex, load_index
from .mining import mine
from .samplers import (
    BaseSampler,
    RandomSampler,
    ReSa2Sampler,
    Sampler,
    SamplerBatch,
    SimANSSampler,
    TopKSampler,
    TriSampler,
    available_samplers,
    get_sampler,
    register,
    sampler_from_string,
)

__version__ = "0.1.0"

__all__ = [
    "BaseSampler",
    "Candidates",
    "FaissIndex",
    "Filters",
    "HiddenSplit",
    "Index",
    "MiningStats",
    "NegativeQuality",
    "Negatives",
    "NumpyIndex",
    "ProtocolRow",
    "ProtocolSummary",
    "RandomSampler",
    "ReSa2Sampler",
    "Sampler",
    "SamplerBatch",
    "SearchResult",
    "SimANSSampler",
    "SyntheticRetrieval",
    "TopKSampler",
    "TriSampler",
    "available_samplers",
    "get_sampler",
    "hidden_positive_protocol",
    "hide_positives",
    "load_index",
    "make_synthetic",
    "mine",
    "negative_quality",
    "register",
    "sampler_from_string",
    "summarize",
    "summary_table",
]

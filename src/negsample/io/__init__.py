"""Input and output: BEIR datasets, encoding with a cache, TREC run files, training-file writers."""

from .data import BeirDataset, DataError, load_beir
from .embeddings import SpotCheck, align_embeddings, load_embeddings, verify_embeddings
from .encoding import DatasetEmbeddings, encode, encode_dataset
from .runs import RunCandidates, read_trec_run
from .writers import FORMATS, WriteReport, write_negatives

__all__ = [
    "FORMATS",
    "BeirDataset",
    "DataError",
    "DatasetEmbeddings",
    "RunCandidates",
    "SpotCheck",
    "WriteReport",
    "align_embeddings",
    "encode",
    "encode_dataset",
    "load_beir",
    "load_embeddings",
    "read_trec_run",
    "verify_embeddings",
    "write_negatives",
]

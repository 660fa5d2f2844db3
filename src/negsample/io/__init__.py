"""Input and output: BEIR datasets, encoding with a cache, TREC run files, training-file writers."""

from .data import BeirDataset, DataError, load_beir
from .encoding import DatasetEmbeddings, align_embeddings, encode, encode_dataset, load_embeddings
from .runs import RunCandidates, read_trec_run
from .writers import FORMATS, WriteReport, write_negatives

__all__ = [
    "FORMATS",
    "BeirDataset",
    "DataError",
    "DatasetEmbeddings",
    "RunCandidates",
    "WriteReport",
    "align_embeddings",
    "encode",
    "encode_dataset",
    "load_beir",
    "load_embeddings",
    "read_trec_run",
    "write_negatives",
]

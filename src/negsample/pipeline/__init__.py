"""From a dataset to negatives: resumable mining of a split (``mine_dataset``,
``mine_resumable``) and sampler reports on labelled data."""

from .dataset import MinedDataset, build_index, mine_dataset
from .report import SamplerReport, sampler_report
from .resume import RunIncomplete, mine_resumable, remove_work_dir, settings_hash

__all__ = [
    "MinedDataset",
    "RunIncomplete",
    "SamplerReport",
    "build_index",
    "mine_dataset",
    "mine_resumable",
    "remove_work_dir",
    "sampler_report",
    "settings_hash",
]

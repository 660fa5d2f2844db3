"""From a dataset to negatives: resumable mining of a split (``mine_dataset``,
``mine_resumable``) and sampler reports on labelled data.

The resumable machinery, each piece in one place: the settings builder
(:func:`run_settings`), the run store (:class:`RunStore`: work folder, manifest, chunk
files, lock), and the chunk loop (:func:`run_chunks`) with its executor seam
(:class:`ChunkExecutor`, :class:`LocalExecutor`; the Ray runner implements it too).
"""

from .dataset import MinedDataset, build_index, mine_dataset
from .executor import ChunkExecutor, ChunkJob, LocalExecutor, RunIncomplete, run_chunks
from .report import SamplerReport, sampler_report
from .resume import mine_resumable, remove_work_dir
from .settings import RunSettings, default_chunk_size, run_settings, settings_hash
from .store import RunStore, SettingsMismatch

__all__ = [
    "ChunkExecutor",
    "ChunkJob",
    "LocalExecutor",
    "MinedDataset",
    "RunIncomplete",
    "RunSettings",
    "RunStore",
    "SamplerReport",
    "SettingsMismatch",
    "build_index",
    "default_chunk_size",
    "mine_dataset",
    "mine_resumable",
    "remove_work_dir",
    "run_chunks",
    "run_settings",
    "sampler_report",
    "settings_hash",
]

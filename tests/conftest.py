from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# the library's caches (embeddings, fingerprints, judgements) go to a folder of the test
# run, never to the user's ~/.cache/negsample
if "NEGSAMPLE_CACHE" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="negsample-test-cache-")
    os.environ["NEGSAMPLE_CACHE"] = _CACHE
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

settings.register_profile(
    "default",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("ci", parent=settings.get_profile("default"), max_examples=40)
settings.register_profile("fast", parent=settings.get_profile("default"), max_examples=15)
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

SHARED = Path(
    os.environ.get("NEGSAMPLE_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data")
)


def shared_dataset(name: str) -> Path:
    """Path of a dataset in ../shared/data, or skip the test with the reason."""
    path = SHARED / name
    if not (path / "corpus.jsonl").is_file():
        pytest.skip(f"real-data test: {path} not found (set NEGSAMPLE_SHARED_DATA)")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def faiss_gpu_available() -> bool:
    try:
        import faiss
    except ImportError:
        return False
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def torch_cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``gpu`` tests need a CUDA GPU that faiss-gpu or torch can use (each test checks the
    library it needs itself); torch is imported only when such a test is collected."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if gpu_items and not (faiss_gpu_available() or torch_cuda_available()):
        for item in gpu_items:
            item.add_marker(
                pytest.mark.skip(reason="needs a CUDA GPU (faiss-gpu or a CUDA build of torch)")
            )

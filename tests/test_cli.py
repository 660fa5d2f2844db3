from __future__ import annotations

import pytest

from negsample.cli import main


def test_demo_runs_every_sampler(capsys: pytest.CaptureFixture[str]) -> None:
    import negsample as ns

    rc = main(["demo", "--docs", "3000", "--queries", "60", "--dim", "16"])
    out = capsys.readouterr()
    assert rc == 0
    for name in ns.available_samplers():
        cls = type(ns.get_sampler(name)).__name__
        assert cls in out.out
    assert "FN rate" in out.out and "synthetic set" in out.err


def test_demo_bad_input_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["demo", "--docs", "100", "--queries", "60"])
    assert rc == 2
    assert "negsample: error: n_docs=100 is too small" in capsys.readouterr().err

"""``negsample mine`` as a library function: ``run_mine(MineOptions(...))`` writes what the
command writes, logs through the callback given, and refuses bad options when they are
made (before any work)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from negsample.cli import main
from negsample.errors import InputError
from negsample.pipeline.command import MineOptions, MineResult, denoise_draws, run_mine
from negsample.pipeline.options import DataOptions, DenoiseOptions, RayOptions
from tests.beir_helpers import write_beir


def test_run_mine_writes_what_the_command_writes(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "beir")
    emb = str(root / "embeddings")
    cli, lib = tmp_path / "cli.jsonl", tmp_path / "lib.jsonl"
    argv = ["mine", "--data", str(root), "--embeddings", emb, "--sampler", "simans(k=40)"]
    assert main([*argv, "--n", "3", "--seed", "5", "--scores", "--out", str(cli), "--quiet"]) == 0
    lines: list[str] = []
    res = run_mine(
        MineOptions(
            data=DataOptions(data=str(root), embeddings=emb),
            out=lib,
            sampler="simans(k=40)",
            n=3,
            seed=5,
            scores=True,
            stats_json=str(tmp_path / "s.json"),
        ),
        log=lines.append,
    )
    assert isinstance(res, MineResult) and res.out == lib
    assert lib.read_bytes() == cli.read_bytes()
    assert res.write.rows == len(lib.read_text().splitlines())
    assert json.loads((tmp_path / "s.json").read_text()) == json.loads(json.dumps(res.info))
    assert any(x.startswith("mining with SimANSSampler(") for x in lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "beir",
        "cli.jsonl",
        "lib.jsonl",
        "s.json",
    ]


def test_options_refused_when_made(tmp_path: Path) -> None:
    data = DataOptions(data=str(tmp_path), embeddings="e")
    with pytest.raises(InputError, match="leave out --embeddings and --model"):
        MineOptions(data=data, out="o", run="r.trec")
    with pytest.raises(InputError, match="need --ray"):
        RayOptions(workers=2)
    with pytest.raises(InputError, match="--max-chunks is not available with --ray"):
        MineOptions(data=data, out="o", max_chunks=1, ray=RayOptions(address="auto"))
    with pytest.raises(InputError, match="--judge-url and --judge-model go together"):
        DenoiseOptions(judge_url="http://localhost:8000/v1")
    with pytest.raises(InputError, match="no host"):
        DenoiseOptions(judge_url="https://:8000/v1", judge_model="m")


def test_denoise_draws() -> None:
    import negsample as ns

    n_mine, s = denoise_draws(ns.TopKSampler(k=50, on_shortfall="drop"), n=7, oversample=3,
                              n_corpus=1000)  # fmt: skip
    assert (n_mine, s.on_shortfall) == (21, "pad")
    assert denoise_draws(ns.TopKSampler(k=10), n=7, oversample=3, n_corpus=1000)[0] == 10
    assert denoise_draws(ns.RandomSampler(), n=7, oversample=2, n_corpus=9)[0] == 8

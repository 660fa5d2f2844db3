"""The same bytes out of every command before and after a refactor.

``tests/golden/outputs.json`` holds digests of what ``negsample mine`` (every format, every
built-in sampler, filters, a run file), ``negsample report`` and the Python API wrote on a
seeded BEIR folder when the file was made. A change that alters any output, by one byte,
fails here; a deliberate change of output regenerates the file
(``NEGSAMPLE_REGENERATE_GOLDEN=1 pytest tests/test_golden_outputs.py``) in the commit that
explains it.

Outputs without scores are compared byte for byte. Outputs with scores are compared after
rounding every float to 5 decimals (the last bits of a float32 inner product may differ on
another CPU's BLAS kernels; the ids, texts and layout may not).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import negsample as ns
from negsample.cli import main
from tests.beir_helpers import write_beir

GOLDEN = Path(__file__).parent / "golden" / "outputs.json"
REGENERATE = bool(os.environ.get("NEGSAMPLE_REGENERATE_GOLDEN"))

_FLOAT = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?|-?\d+[eE][-+]?\d+")


def _round_floats(text: str) -> str:
    return _FLOAT.sub(lambda m: f"{float(m.group()):.5f}", text)


def _digest_bytes(data: bytes, rounded: bool) -> str:
    if rounded:
        data = _round_floats(data.decode("utf-8")).encode()
    return hashlib.sha256(data).hexdigest()


def _digest_rows(rows: Any, rounded: bool) -> str:
    text = json.dumps(rows, sort_keys=True, default=lambda v: np.asarray(v).tolist())
    return _digest_bytes(text.encode(), rounded)


def _digest_output(path: Path, fmt: str, rounded: bool) -> dict[str, str]:
    if fmt == "hf":
        import datasets

        return {"rows": _digest_rows(datasets.load_from_disk(str(path)).to_list(), rounded)}
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return {"rows": _digest_rows(pq.read_table(path).to_pylist(), rounded)}
    if fmt == "pylate-kd":
        import pyarrow.parquet as pq

        out = {"README.md": _digest_bytes((path / "README.md").read_bytes(), False)}
        for sub in ("train", "queries", "documents"):
            rows = pq.read_table(path / f"{sub}.parquet").to_pylist()
            out[sub] = _digest_rows(rows, rounded)
        return out
    out = {"file": _digest_bytes(path.read_bytes(), rounded)}
    if fmt == "tevatron":
        from negsample.io.writers import tevatron_corpus_path

        out["corpus"] = _digest_bytes(tevatron_corpus_path(path).read_bytes(), rounded)
    return out


@pytest.fixture(scope="module")
def beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_beir(tmp_path_factory.mktemp("golden") / "beir", n_docs=600, n_queries=30)
    # a TREC run (candidates from elsewhere): the exact top 60 of every query
    ds = ns.load_beir(root, "train")
    emb = ns.load_embeddings(root / "embeddings", ds)
    res = ns.NumpyIndex(emb.corpus).search(emb.queries, 60)
    with open(root / "run.trec", "w", encoding="utf-8") as f:
        for qi, qid in enumerate(ds.query_ids):
            for r, (d, s) in enumerate(zip(res.ids[qi], res.scores[qi], strict=True)):
                f.write(f"{qid} Q0 {ds.corpus_ids[d]} {r + 1} {s:.6f} dense\n")
    return root


SAMPLERS = {
    "topk": "TopKSampler(k=60, range_min=2)",
    "random": "RandomSampler()",
    "simans": "SimANSSampler(k=60, temperature=0.05)",
    "tri": "TriSampler(k=60, m=30, temperature=0.05)",
    "resa2": "ReSa2Sampler(k1=80, k1_prime=40, k2=12)",
}

# (name, sampler key, format, extra options)
MINE_CASES: list[tuple[str, str, str, list[str]]] = [
    *[
        (f"{fmt}", "topk", fmt, [])
        for fmt in (
            "st-triplet",
            "st-ntuple",
            "labeled-pair",
            "labeled-list",
            "flagembedding",
            "tevatron",
            "parquet",
            "hf",
        )
    ],
    *[
        (f"{fmt}-scores", "topk", fmt, ["--scores"])
        for fmt in ("labeled-pair", "labeled-list", "flagembedding", "tevatron", "parquet")
    ],
    *[(f"sampler-{key}", key, "st-ntuple", []) for key in SAMPLERS if key != "topk"],
    ("resa2-flag-scores", "resa2", "flagembedding", ["--scores"]),
    ("hf-labeled-list", "simans", "hf", ["--hf-layout", "labeled-list", "--scores"]),
    (
        "filters",
        "topk",
        "flagembedding",
        ["--relative-margin", "0.05", "--range-max", "40", "--min-score", "-0.5", "--scores"],
    ),
    ("seed-7", "simans", "st-triplet", ["--seed", "7"]),
    ("faiss-flat", "tri", "st-ntuple", ["--index", "Flat"]),
    ("run-file", "simans", "flagembedding", ["--run", "RUN", "--scores"]),
    ("on-shortfall-fill", "topk", "st-ntuple", []),
    ("pylate-kd-scores", "simans", "pylate-kd", ["--scores"]),
]


def _mine_argv(beir: Path, out: Path, sampler_key: str, fmt: str, extra: list[str]) -> list[str]:
    sampler = SAMPLERS[sampler_key]
    extra = [str(beir / "run.trec") if e == "RUN" else e for e in extra]
    source = [] if "--run" in extra else ["--embeddings", str(beir / "embeddings")]
    return [
        "mine",
        "--data",
        str(beir),
        *source,
        "--sampler",
        sampler,
        "--n",
        "5",
        "--quiet",
        "--format",
        fmt,
        "--out",
        str(out),
        *extra,
    ]


def _golden() -> dict[str, Any]:
    if not GOLDEN.is_file():
        return {}
    data: dict[str, Any] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return data


def _check(name: str, got: Any) -> None:
    if REGENERATE:
        data = _golden()
        data[name] = got
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return
    want = _golden().get(name)
    assert want is not None, f"no golden digest for {name!r}: regenerate {GOLDEN}"
    assert got == want, f"{name}: the output changed"


@pytest.mark.parametrize(("name", "sampler", "fmt", "extra"), MINE_CASES, ids=lambda v: str(v))
def test_mine_writes_the_same_bytes(
    beir: Path, tmp_path: Path, name: str, sampler: str, fmt: str, extra: list[str]
) -> None:
    if name == "on-shortfall-fill":
        sampler_spec = "TopKSampler(k=8, on_shortfall='fill')"
        argv = _mine_argv(beir, tmp_path / "out", "topk", fmt, extra)
        argv[argv.index("--sampler") + 1] = sampler_spec
    else:
        argv = _mine_argv(beir, tmp_path / "out", sampler, fmt, extra)
    out = tmp_path / "out"
    stats = tmp_path / "stats.json"
    assert main([*argv, "--stats-json", str(stats)]) == 0
    rounded = "--scores" in extra
    digest = _digest_output(out, fmt, rounded)
    mining = json.loads(stats.read_text())["mining"]
    counts = {k: v for k, v in mining.items() if k not in ("timings", "seed")}
    _check(f"mine/{name}", {"output": digest, "counts": counts})


def test_report_writes_the_same_figures(beir: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    argv = [
        "report",
        "--data",
        str(beir),
        "--split",
        "test",
        "--embeddings",
        str(beir / "embeddings"),
        "--sampler",
        SAMPLERS["topk"],
        "--sampler",
        SAMPLERS["resa2"],
        "--seeds",
        "0",
        "1",
        "--n",
        "4",
        "--quiet",
        "--out-dir",
        str(out),
    ]
    pytest.importorskip("matplotlib")
    assert main(argv) == 0
    rep = json.loads((out / "report.json").read_text())

    def strip(v: Any) -> Any:
        if isinstance(v, dict):
            return {
                k: strip(x)
                for k, x in v.items()
                if "time" not in k and "second" not in k and k not in ("dataset", "embeddings")
            }
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v

    _check("report", _digest_rows(strip(rep), rounded=True))


def _api_cases() -> dict[str, Callable[[Any], Any]]:
    def mine_each(d: Any) -> Any:
        s = ns.TriSampler(k=80, m=40, positive_anchor="each", temperature=0.05)
        return ns.mine(d.queries, ns.NumpyIndex(d.corpus), d.positives, sampler=s, n=6, seed=3)

    def mine_filters(d: Any) -> Any:
        f = ns.Filters(range_min=1, absolute_margin=0.02, anchor="max")
        return ns.mine(
            d.queries,
            ns.NumpyIndex(d.corpus, metric="cosine"),
            d.positives,
            sampler=ns.SimANSSampler(k=100, temperature=0.05),
            n=6,
            seed=11,
            filters=f,
        )

    def sample_given(d: Any) -> Any:
        res = ns.NumpyIndex(d.corpus).search(d.queries, 50)
        return ns.TopKSampler(k=40, on_shortfall="fill").sample(
            res.ids, res.scores, d.positives, n=6, seed=5
        )

    def mine_resa2(d: Any) -> Any:
        return ns.mine(
            d.queries,
            ns.NumpyIndex(d.corpus),
            d.positives,
            sampler=ns.ReSa2Sampler(k1=120, k1_prime=60, k2=20),
            n=7,
            seed=2,
        )

    def mine_random(d: Any) -> Any:
        return ns.mine(
            d.queries, ns.NumpyIndex(d.corpus), d.positives, sampler=ns.RandomSampler(), n=9
        )

    return {
        "mine-tri-each": mine_each,
        "mine-filters-cosine": mine_filters,
        "sample-given": sample_given,
        "mine-resa2": mine_resa2,
        "mine-random": mine_random,
    }


@pytest.mark.parametrize("case", sorted(_api_cases()))
def test_api_gives_the_same_negatives(case: str) -> None:
    d = ns.make_synthetic(n_docs=3_000, n_queries=80, dim=24, seed=4, max_positives=3)
    negs = _api_cases()[case](d)
    st = negs.stats.as_dict()
    st = {k: v for k, v in st.items() if k not in ("timings", "seed")}
    got = {
        "ids": hashlib.sha256(np.ascontiguousarray(negs.ids).tobytes()).hexdigest(),
        "query_index": hashlib.sha256(np.ascontiguousarray(negs.query_index).tobytes()).hexdigest(),
        "anchor_ids": hashlib.sha256(np.ascontiguousarray(negs.anchor_ids).tobytes()).hexdigest(),
        "scores": _digest_rows(np.round(negs.scores.astype(np.float64), 5).tolist(), False),
        "stats": st,
    }
    _check(f"api/{case}", got)

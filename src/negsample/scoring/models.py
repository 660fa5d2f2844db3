"""Local teacher models as scorers: a sentence-transformers ``CrossEncoder`` (a reranker)
and a teacher bi-encoder (``SentenceTransformer``), fed by the same tokenise-ahead feeder
as :func:`~negsample.encode` (:mod:`negsample.io.feeder`), on the devices and in the
precision of the one policy (:mod:`negsample._device`). torch and sentence-transformers
are imported when a scorer is built, never when :mod:`negsample.scoring` is imported."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._device import check_precision, resolve_devices, resolve_precision
from .._optional import require
from ..errors import InputError, InputTypeError
from ..io._encoder import TextEncoder
from ..io._pool import DevicePool
from ..io.feeder import (
    FeedStats,
    TokenFeeder,
    batch_shape,
    can_feed,
    cross_encoder_forward,
)
from .base import ScoringStats

__all__ = ["CrossEncoderScorer", "EmbeddingScorer"]

FloatArray = npt.NDArray[np.float32]
_ACTIVATIONS = ("logits", "model")
_SIMILARITIES = ("cosine", "dot")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _devices(device: Any, devices: Sequence[str] | None) -> list[str]:
    """The devices of a scorer by the one device policy (:mod:`negsample._device`):
    ``devices`` when given, else ``device`` (``None``: every visible GPU, else MPS, else
    the CPU)."""
    if devices is not None:
        if isinstance(devices, str) or not len(devices):
            raise InputError("devices must name at least one device")
        return resolve_devices(list(devices))
    return resolve_devices(device)


def _precision(precision: Any, fp16: bool | None, devices: Sequence[str]) -> str:
    """The precision vocabulary (:mod:`negsample._device`), with the older ``fp16=``
    flag read as ``"float16"`` / ``"float32"``."""
    if fp16 is not None:
        legacy = "float16" if fp16 else "float32"
        checked = check_precision(precision)
        if checked is not None and checked != legacy:
            raise InputError(f"fp16={fp16} contradicts precision={precision!r}: pass one")
        return legacy
    return resolve_precision(precision, devices)


def _check_pairs(pairs: Sequence[tuple[str, str]]) -> list[list[str]]:
    out = []
    for i, p in enumerate(pairs):
        if len(p) != 2 or not isinstance(p[0], str) or not isinstance(p[1], str):
            raise InputTypeError(f"pair {i}: expected (query text, document text), got {p!r:.80}")
        out.append([p[0], p[1]])
    return out


class _PoolMixin:
    _pool: Any

    def close(self) -> None:
        """Stop the multi-process pool, if one was started."""
        if getattr(self, "_pool", None) is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _load(make: Any, model: Any, what: str, prefix: str) -> tuple[Any, str]:
    """``(model, name)``: a path or name loaded by ``make(path)`` (an OSError named as a
    missing model), or a model object used as given."""
    if isinstance(model, str | os.PathLike):
        path = str(model)
        try:
            return make(path), f"{prefix}:{path}"
        except OSError as exc:
            raise FileNotFoundError(f"cannot load the {what} {path!r}: {exc}") from exc
    return model, f"{prefix}:{type(model).__name__}"


def _cast(model: Any, precision: str) -> None:
    """Cast the weights to ``precision``. Always: a folder with float16 weights loads in
    float16 (recent transformers keep the stored dtype), which the CPU runs slowly and
    less exactly."""
    torch = require("torch", "teacher scoring")
    model.to(getattr(torch, precision))
    model.eval()


def _load_cross_encoder(
    model: Any, device: str, max_length: int | None, trust_remote_code: bool
) -> tuple[Any, str]:
    st = require("sentence_transformers", "cross-encoder scoring")
    return _load(
        lambda path: st.CrossEncoder(
            path,
            device=device,
            max_length=max_length,
            local_files_only=_offline(),
            trust_remote_code=trust_remote_code,
        ),
        model,
        "CrossEncoder",
        "cross-encoder",
    )


class _CrossRunner:
    """A cross-encoder on one device, scoring groups of pairs (in decreasing length) with
    the feeder (sentence-transformers >= 6) or its own ``predict`` (older)."""

    def __init__(
        self,
        ce: Any,
        *,
        device: str,
        batch_size: int,
        batch_tokens: int | None,
        activation: str,
        profile: bool = False,
    ) -> None:
        self.ce = ce
        self.batch_size = batch_size
        self.activation = activation
        self.stats = FeedStats()
        self.feeder: TokenFeeder | None = None
        if can_feed(ce):
            fn = None if activation == "logits" else getattr(ce, "activation_fn", None)
            tokens, rows = batch_shape(ce, device, batch_size, batch_tokens)
            self.feeder = TokenFeeder(
                ce,
                cross_encoder_forward(ce, fn),
                device=device,
                pairs=True,
                batch_tokens=tokens,
                max_rows=rows,
                batch_size=batch_size,
                profile=profile,
                stats=self.stats,
            )
        else:
            self.stats.mode = "library"

    def stream(self, groups: Iterable[Sequence[Any]]) -> Iterator[FloatArray]:
        if self.feeder is not None:
            yield from self.feeder.stream(groups)
            return
        torch = require("torch", "cross-encoder scoring")
        identity = torch.nn.Identity()
        for pairs in groups:
            out = self.ce.predict(
                [list(p) for p in pairs],
                batch_size=self.batch_size,
                show_progress_bar=False,
                activation_fn=identity if self.activation == "logits" else None,
                convert_to_numpy=True,
            )
            self.stats.add(batches=math.ceil(len(pairs) / self.batch_size), items=len(pairs))
            yield np.asarray(out, dtype=np.float32).reshape(-1)


def worker_cross_encoder(
    model: Any,
    precision: str,
    batch_size: int,
    batch_tokens: int | None,
    activation: str,
    max_length: int | None,
    trust_remote_code: bool,
    *,
    device: str,
) -> _CrossRunner:
    """The cross-encoder of one pool process (module-level: pickled by reference)."""
    ce, _ = _load_cross_encoder(model, device, max_length, trust_remote_code)
    ce.to(device)
    _cast(ce, precision)
    return _CrossRunner(
        ce, device=device, batch_size=batch_size, batch_tokens=batch_tokens, activation=activation
    )


def _by_length(pairs: Sequence[Sequence[str]]) -> npt.NDArray[np.int64]:
    """Pairs by decreasing characters (query + document), ties in input order."""
    n = np.fromiter((len(a) + len(b) for a, b in pairs), dtype=np.int64, count=len(pairs))
    return np.argsort(-n, kind="stable").astype(np.int64)


class CrossEncoderScorer(_PoolMixin):
    """Score (query, document) pairs with a sentence-transformers ``CrossEncoder``.

    The pairs of a call are tokenised ahead of the model in a background thread and cut
    into batches of similar token counts (:mod:`negsample.io.feeder`); the scores stay on
    the device until the call's last batch.

    Parameters
    ----------
    model : a local folder or a model name (or a loaded ``CrossEncoder``). With
        ``HF_HUB_OFFLINE=1`` in the environment only local files are read.
    batch_size : the memory bound of a batch, in pairs of the full ``max_length``: a batch
        holds at most ``batch_size x max_length`` padded tokens (short pairs: more of them).
    batch_tokens : padded tokens per batch instead.
    device : ``None``/``"auto"`` (every visible GPU, else MPS, else the CPU), ``"cpu"``,
        ``"cuda"`` (every GPU), ``"cuda:1"``, ``"mps"``, or a list (docs/devices.md).
    devices : a list of devices, as ``device=[...]`` (kept for older code; wins when
        given). Several devices are a pool of processes, one per device, started at the
        first call.
    precision : ``"float32"``, ``"float16"``, ``"bfloat16"`` (or ``fp32``, ``fp16``,
        ``half``, ``bf16``); ``None``/``"auto"``: float16 on a GPU, float32 on the CPU.
    fp16 : the older flag: ``True`` is ``precision="float16"``, ``False`` ``"float32"``.
    activation : ``"logits"`` (default): the raw, unbounded logit of the classifier, the
        scale FlagEmbedding writes for distillation; ``"model"``: the model's own activation
        (usually a sigmoid, in (0, 1)), which is what sentence-transformers'
        ``mine_hard_negatives(cross_encoder=...)`` compares margins on. Margins are in the
        units of the scores: choose them for the activation.
    max_length : truncate pairs to this many tokens (default: the model's).
    show_progress : kept for compatibility (the calls are not split into progress steps).

    The model must have one output label (a relevance score). Scores of a pair do not
    depend on which other pairs it is batched with, up to floating-point rounding of the
    padded batch. ``stats.requests`` counts forward batches; ``feed_stats`` says where
    the time went (:class:`~negsample.io.feeder.FeedStats`).

    Examples
    --------
    >>> from negsample.scoring import CrossEncoderScorer
    >>> ce = CrossEncoderScorer("cross-encoder/ms-marco-MiniLM-L6-v2")  # doctest: +SKIP
    >>> ce.score([("what lowers LDL?", "Oats lower LDL cholesterol.")])  # doctest: +SKIP
    array([7.21], dtype=float32)
    """

    def __init__(
        self,
        model: Any,
        *,
        batch_size: int = 64,
        batch_tokens: int | None = None,
        device: Any = None,
        devices: Sequence[str] | None = None,
        precision: str | None = None,
        fp16: bool | None = None,
        activation: str = "logits",
        max_length: int | None = None,
        show_progress: bool = False,
        trust_remote_code: bool = False,
    ) -> None:
        _check_batch(batch_size, batch_tokens)
        if activation not in _ACTIVATIONS:
            raise InputError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
        devs = _devices(device, devices)
        self.precision = _precision(precision, fp16, devs)
        pool = len(devs) > 1
        ce, self.name = _load_cross_encoder(
            model, "cpu" if pool else devs[0], max_length, trust_remote_code
        )
        if getattr(ce, "num_labels", 1) != 1:
            raise InputError(
                f"{self.name} has {ce.num_labels} output labels; a scorer needs a model with one "
                "(a relevance score)"
            )
        self._pool: DevicePool | None = None
        self._pool_args: tuple[Any, ...] | None = None
        self._runner: _CrossRunner | None = None
        if pool:
            src = str(model) if isinstance(model, str | os.PathLike) else ce
            self._pool_args = (
                src,
                self.precision,
                batch_size,
                batch_tokens,
                activation,
                max_length,
                trust_remote_code,
            )
            self.feed_stats = FeedStats(mode="pool")
        else:
            _cast(ce, self.precision)
            self._runner = _CrossRunner(
                ce,
                device=devs[0],
                batch_size=batch_size,
                batch_tokens=batch_tokens,
                activation=activation,
            )
            self.feed_stats = self._runner.stats
        self._model = ce
        self._devices = devs
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.activation = activation
        self.show_progress = show_progress
        self.fp16 = self.precision == "float16"
        self.device = devs[0] if len(devs) == 1 else ",".join(devs)
        self.stats = ScoringStats()

    def __repr__(self) -> str:
        return (
            f"CrossEncoderScorer({self.name!r}, batch_size={self.batch_size}, "
            f"device={self.device!r}, precision={self.precision!r}, "
            f"activation={self.activation!r})"
        )

    def score(self, pairs: Sequence[tuple[str, str]]) -> FloatArray:
        """float32 ``(len(pairs),)``: one score per (query text, document text) pair."""
        t0 = time.perf_counter()
        inputs = _check_pairs(pairs)
        if not inputs:
            return np.empty(0, np.float32)
        order = _by_length(inputs)
        group = [inputs[i] for i in order]
        batches = self.feed_stats.batches
        if self._runner is not None:
            out = next(iter(self._runner.stream([group])))
        else:
            if self._pool is None:
                assert self._pool_args is not None
                self._pool = DevicePool(worker_cross_encoder, self._pool_args, self._devices)
            out = next(iter(self._pool.stream([group])))
        scores = np.empty(len(inputs), dtype=np.float32)
        scores[order] = np.asarray(out, dtype=np.float32).reshape(-1)
        if out.shape[0] != len(inputs):
            raise RuntimeError(f"{self.name} returned {out.shape[0]} scores for {len(inputs)}")
        made = self.feed_stats.batches - batches
        self.stats.add(
            pairs=len(inputs),
            requests=made if self._runner is not None else min(len(self._devices), len(inputs)),
            seconds=time.perf_counter() - t0,
        )
        return scores


def _check_batch(batch_size: Any, batch_tokens: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
    if batch_tokens is not None and (
        isinstance(batch_tokens, bool) or not isinstance(batch_tokens, int) or batch_tokens < 1
    ):
        raise InputError(f"batch_tokens must be a positive int or None, got {batch_tokens!r}")


class EmbeddingScorer(_PoolMixin):
    """Score pairs with a teacher bi-encoder: cosine (default) or dot product of the query's
    and the document's sentence-transformers embeddings.

    Parameters
    ----------
    model : a local folder or a model name (or a loaded ``SentenceTransformer``);
        ``HF_HUB_OFFLINE=1`` is respected.
    similarity : ``"cosine"`` or ``"dot"``.
    query_prompt, document_prompt : text put before each query / document (e5's
        ``"query: "``, BGE's instruction...), or
    query_prompt_name, document_prompt_name : the name of a prompt saved with the model.
    batch_size, batch_tokens, device, devices, precision, fp16, show_progress : as for
        :class:`CrossEncoderScorer`; the texts are fed as :func:`~negsample.encode` feeds
        them (several devices: one pool of processes per side, queries and documents).

    Each distinct text of a call is encoded once.
    """

    def __init__(
        self,
        model: Any,
        *,
        similarity: str = "cosine",
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        query_prompt_name: str | None = None,
        document_prompt_name: str | None = None,
        batch_size: int = 64,
        batch_tokens: int | None = None,
        device: Any = None,
        devices: Sequence[str] | None = None,
        precision: str | None = None,
        fp16: bool | None = None,
        show_progress: bool = False,
        trust_remote_code: bool = False,
    ) -> None:
        if similarity not in _SIMILARITIES:
            raise InputError(f"similarity must be one of {_SIMILARITIES}, got {similarity!r}")
        _check_batch(batch_size, batch_tokens)
        if query_prompt is not None and query_prompt_name is not None:
            raise InputError("pass query_prompt or query_prompt_name, not both")
        if document_prompt is not None and document_prompt_name is not None:
            raise InputError("pass document_prompt or document_prompt_name, not both")
        st = require("sentence_transformers", "teacher bi-encoder scoring")
        devs = _devices(device, devices)
        self.precision = _precision(precision, fp16, devs)
        pool = len(devs) > 1
        m, self.name = _load(
            lambda path: st.SentenceTransformer(
                path,
                device="cpu" if pool else devs[0],
                local_files_only=_offline(),
                trust_remote_code=trust_remote_code,
            ),
            model,
            "bi-encoder",
            "bi-encoder",
        )
        for name in (query_prompt_name, document_prompt_name):
            if name is not None and name not in (getattr(m, "prompts", None) or {}):
                raise InputError(f"{self.name} has no prompt named {name!r}")
        if not pool:
            _cast(m, self.precision)
        src = str(model) if pool and isinstance(model, str | os.PathLike) else m
        common: dict[str, Any] = {
            "devices": devs,
            "precision": self.precision,
            "batch_size": batch_size,
            "batch_tokens": batch_tokens,
            "normalize": similarity == "cosine",
            "max_seq_length": None,
        }
        self._sides = {
            "query": (src, query_prompt, query_prompt_name),
            "document": (src, document_prompt, document_prompt_name),
        }
        self._common = common
        self._encoders: dict[str, TextEncoder] = {}
        self._pool = None
        self._model = m
        self.similarity = similarity
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        self.query_prompt_name = query_prompt_name
        self.document_prompt_name = document_prompt_name
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.show_progress = show_progress
        self.fp16 = self.precision == "float16"
        self.device = devs[0] if len(devs) == 1 else ",".join(devs)
        self.stats = ScoringStats()

    def __repr__(self) -> str:
        return (
            f"EmbeddingScorer({self.name!r}, similarity={self.similarity!r}, "
            f"batch_size={self.batch_size}, device={self.device!r})"
        )

    def close(self) -> None:
        """Stop the pools of processes, if any were started."""
        for enc in self._encoders.values():
            enc.close()
        self._encoders = {}

    def _encode(self, side: str, texts: list[str]) -> tuple[FloatArray, int]:
        enc = self._encoders.get(side)
        if enc is None:
            src, prompt, prompt_name = self._sides[side]
            enc = TextEncoder(src, prompt=prompt, prompt_name=prompt_name, **self._common)
            self._encoders[side] = enc
        order = np.argsort(-np.fromiter(map(len, texts), np.int64, len(texts)), kind="stable")
        before = enc.stats.batches
        v = next(iter(enc.stream([[texts[i] for i in order]])))
        out = np.empty_like(v)
        out[order] = v
        return out, enc.stats.batches - before

    def score(self, pairs: Sequence[tuple[str, str]]) -> FloatArray:
        """float32 ``(len(pairs),)``: the similarity of each (query, document) pair."""
        t0 = time.perf_counter()
        inputs = _check_pairs(pairs)
        if not inputs:
            return np.empty(0, np.float32)
        q_texts = list(dict.fromkeys(p[0] for p in inputs))
        d_texts = list(dict.fromkeys(p[1] for p in inputs))
        qv, qb = self._encode("query", q_texts)
        dv, db = self._encode("document", d_texts)
        q_row = {t: i for i, t in enumerate(q_texts)}
        d_row = {t: i for i, t in enumerate(d_texts)}
        qi = np.fromiter((q_row[p[0]] for p in inputs), np.int64, len(inputs))
        di = np.fromiter((d_row[p[1]] for p in inputs), np.int64, len(inputs))
        scores = np.einsum("ij,ij->i", qv[qi], dv[di]).astype(np.float32)
        self.stats.add(pairs=len(inputs), requests=qb + db, seconds=time.perf_counter() - t0)
        return scores

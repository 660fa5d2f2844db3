"""Local teacher models as scorers: a sentence-transformers ``CrossEncoder`` (a reranker)
and a teacher bi-encoder (``SentenceTransformer``). torch and sentence-transformers are
imported when a scorer is built, never when :mod:`negsample.scoring` is imported."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._optional import require
from .base import ScoringStats

__all__ = ["CrossEncoderScorer", "EmbeddingScorer"]

FloatArray = npt.NDArray[np.float32]
_ACTIVATIONS = ("logits", "model")
_SIMILARITIES = ("cosine", "dot")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _resolve_devices(
    torch: Any, device: str | None, devices: Sequence[str] | None
) -> tuple[str, list[str] | None]:
    """The device the model is loaded on, and the devices of a multi-process pool (None:
    no pool). By default every visible CUDA device: a pool when there are several."""
    if devices is not None:
        devs = [str(d) for d in devices]
        if not devs:
            raise ValueError("devices must name at least one device")
        return (device or devs[0]), (devs if len(devs) > 1 else None)
    if device is not None:
        return device, None
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        return "cuda:0", ([f"cuda:{i}" for i in range(n)] if n > 1 else None)
    return "cpu", None


def _check_pairs(pairs: Sequence[tuple[str, str]]) -> list[list[str]]:
    out = []
    for i, p in enumerate(pairs):
        if len(p) != 2 or not isinstance(p[0], str) or not isinstance(p[1], str):
            raise TypeError(f"pair {i}: expected (query text, document text), got {p!r:.80}")
        out.append([p[0], p[1]])
    return out


class _PoolMixin:
    _pool: Any
    _model: Any

    def close(self) -> None:
        """Stop the multi-process pool, if one was started."""
        if getattr(self, "_pool", None) is not None:
            self._model.stop_multi_process_pool(self._pool)
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


def _set_precision(model: Any, fp16: bool | None, device: str) -> bool:
    """Half precision when ``fp16`` (``None``: on CUDA), float32 otherwise; returns which.
    Always cast: a folder with float16 weights loads in float16 (recent transformers keep
    the stored dtype), which the CPU runs slowly and less exactly."""
    use_fp16 = fp16 if fp16 is not None else str(device).startswith("cuda")
    if use_fp16:
        model.half()
    else:
        model.float()
    return bool(use_fp16)


class CrossEncoderScorer(_PoolMixin):
    """Score (query, document) pairs with a sentence-transformers ``CrossEncoder``.

    Parameters
    ----------
    model : a local folder or a model name (or a loaded ``CrossEncoder``). With
        ``HF_HUB_OFFLINE=1`` in the environment only local files are read.
    batch_size : pairs per forward pass.
    device : the device to load on (default ``"cuda:0"`` when CUDA is visible, else
        ``"cpu"``).
    devices : several devices scored in parallel through sentence-transformers'
        multi-process pool (``CrossEncoder.start_multi_process_pool``). Default: every
        visible CUDA device when there are two or more, else a single process.
    fp16 : half-precision weights; default on when the model runs on CUDA.
    activation : ``"logits"`` (default): the raw, unbounded logit of the classifier, the
        scale FlagEmbedding writes for distillation; ``"model"``: the model's own activation
        (usually a sigmoid, in (0, 1)), which is what sentence-transformers'
        ``mine_hard_negatives(cross_encoder=...)`` compares margins on. Margins are in the
        units of the scores: choose them for the activation.
    max_length : truncate pairs to this many tokens (default: the model's).
    show_progress : a progress bar per call.

    The model must have one output label (a relevance score). Scores of a pair do not
    depend on which other pairs it is batched with, up to floating-point rounding of the
    padded batch.

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
        device: str | None = None,
        devices: Sequence[str] | None = None,
        fp16: bool | None = None,
        activation: str = "logits",
        max_length: int | None = None,
        show_progress: bool = False,
        trust_remote_code: bool = False,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
        torch = require("torch", "cross-encoder scoring")
        st = require("sentence_transformers", "cross-encoder scoring")
        dev, pool_devices = _resolve_devices(torch, device, devices)
        ce, self.name = _load(
            lambda path: st.CrossEncoder(
                path,
                device=dev,
                max_length=max_length,
                local_files_only=_offline(),
                trust_remote_code=trust_remote_code,
            ),
            model,
            "CrossEncoder",
            "cross-encoder",
        )
        if getattr(ce, "num_labels", 1) != 1:
            raise ValueError(
                f"{self.name} has {ce.num_labels} output labels; a scorer needs a model with one "
                "(a relevance score)"
            )
        use_fp16 = _set_precision(ce, fp16, dev)
        self._model = ce
        self._torch = torch
        self._identity = torch.nn.Identity()
        self._pool = None
        self._pool_devices = pool_devices
        self.batch_size = batch_size
        self.activation = activation
        self.show_progress = show_progress
        self.fp16 = use_fp16
        self.device = dev
        self.stats = ScoringStats()

    def __repr__(self) -> str:
        return (
            f"CrossEncoderScorer({self.name!r}, batch_size={self.batch_size}, "
            f"device={self.device!r}, fp16={self.fp16}, activation={self.activation!r})"
        )

    def score(self, pairs: Sequence[tuple[str, str]]) -> FloatArray:
        """float32 ``(len(pairs),)``: one score per (query text, document text) pair."""
        t0 = time.perf_counter()
        inputs = _check_pairs(pairs)
        if not inputs:
            return np.empty(0, np.float32)
        if self._pool_devices is not None and self._pool is None:
            self._pool = self._model.start_multi_process_pool(target_devices=self._pool_devices)
        out = self._model.predict(
            inputs,
            batch_size=self.batch_size,
            show_progress_bar=self.show_progress,
            activation_fn=self._identity if self.activation == "logits" else None,
            convert_to_numpy=True,
            pool=self._pool,
        )
        scores = np.asarray(out, dtype=np.float32).reshape(-1)
        if scores.shape[0] != len(inputs):
            raise RuntimeError(f"{self.name} returned {scores.shape[0]} scores for {len(inputs)}")
        self.stats.add(
            pairs=len(inputs),
            requests=math.ceil(len(inputs) / self.batch_size),
            seconds=time.perf_counter() - t0,
        )
        return scores


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
    batch_size, device, devices, fp16, show_progress : as for :class:`CrossEncoderScorer`.

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
        device: str | None = None,
        devices: Sequence[str] | None = None,
        fp16: bool | None = None,
        show_progress: bool = False,
        trust_remote_code: bool = False,
    ) -> None:
        if similarity not in _SIMILARITIES:
            raise ValueError(f"similarity must be one of {_SIMILARITIES}, got {similarity!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if query_prompt is not None and query_prompt_name is not None:
            raise ValueError("pass query_prompt or query_prompt_name, not both")
        if document_prompt is not None and document_prompt_name is not None:
            raise ValueError("pass document_prompt or document_prompt_name, not both")
        torch = require("torch", "teacher bi-encoder scoring")
        st = require("sentence_transformers", "teacher bi-encoder scoring")
        dev, pool_devices = _resolve_devices(torch, device, devices)
        m, self.name = _load(
            lambda path: st.SentenceTransformer(
                path,
                device=dev,
                local_files_only=_offline(),
                trust_remote_code=trust_remote_code,
            ),
            model,
            "bi-encoder",
            "bi-encoder",
        )
        for name in (query_prompt_name, document_prompt_name):
            if name is not None and name not in (getattr(m, "prompts", None) or {}):
                raise ValueError(f"{self.name} has no prompt named {name!r}")
        use_fp16 = _set_precision(m, fp16, dev)
        self._model = m
        self._pool = None
        self._pool_devices = pool_devices
        self.similarity = similarity
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        self.query_prompt_name = query_prompt_name
        self.document_prompt_name = document_prompt_name
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.fp16 = use_fp16
        self.device = dev
        self.stats = ScoringStats()

    def __repr__(self) -> str:
        return (
            f"EmbeddingScorer({self.name!r}, similarity={self.similarity!r}, "
            f"batch_size={self.batch_size}, device={self.device!r})"
        )

    def _encode(self, texts: list[str], prompt: str | None, prompt_name: str | None) -> FloatArray:
        if self._pool_devices is not None and self._pool is None:
            self._pool = self._model.start_multi_process_pool(target_devices=self._pool_devices)
        out = self._model.encode(
            texts,
            prompt=prompt,
            prompt_name=prompt_name,
            batch_size=self.batch_size,
            show_progress_bar=self.show_progress,
            convert_to_numpy=True,
            normalize_embeddings=self.similarity == "cosine",
            pool=self._pool,
        )
        return np.asarray(out, dtype=np.float32)

    def score(self, pairs: Sequence[tuple[str, str]]) -> FloatArray:
        """float32 ``(len(pairs),)``: the similarity of each (query, document) pair."""
        t0 = time.perf_counter()
        inputs = _check_pairs(pairs)
        if not inputs:
            return np.empty(0, np.float32)
        q_texts = list(dict.fromkeys(p[0] for p in inputs))
        d_texts = list(dict.fromkeys(p[1] for p in inputs))
        qv = self._encode(q_texts, self.query_prompt, self.query_prompt_name)
        dv = self._encode(d_texts, self.document_prompt, self.document_prompt_name)
        q_row = {t: i for i, t in enumerate(q_texts)}
        d_row = {t: i for i, t in enumerate(d_texts)}
        qi = np.fromiter((q_row[p[0]] for p in inputs), np.int64, len(inputs))
        di = np.fromiter((d_row[p[1]] for p in inputs), np.int64, len(inputs))
        scores = np.einsum("ij,ij->i", qv[qi], dv[di]).astype(np.float32)
        self.stats.add(
            pairs=len(inputs),
            requests=math.ceil(len(q_texts) / self.batch_size)
            + math.ceil(len(d_texts) / self.batch_size),
            seconds=time.perf_counter() - t0,
        )
        return scores

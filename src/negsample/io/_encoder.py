"""The model side of :func:`~negsample.encode`: a sentence-transformers model on one device
fed by :class:`~negsample.io.feeder.TokenFeeder`, or one such process per device
(:class:`~negsample.io._pool.DevicePool`)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._optional import require
from ._pool import DevicePool
from .feeder import (
    FeedStats,
    TokenFeeder,
    batch_shape,
    can_feed,
    resolve_prompt,
    sentence_forward,
)

__all__ = ["TextEncoder", "load_model"]

FloatArray = npt.NDArray[np.float32]


@functools.lru_cache(maxsize=2)
def load_model(path: str, device: str | None, precision: str = "float32") -> Any:
    """A ``SentenceTransformer`` from ``path`` on ``device``, cast to ``precision`` (kept:
    consecutive calls with the same arguments share it)."""
    st = require("sentence_transformers", "encoding texts")
    try:
        model = st.SentenceTransformer(path, device=device)
    except OSError as exc:
        raise FileNotFoundError(
            f"cannot load the sentence-transformers model {path!r}: {exc}"
        ) from exc
    # always cast: a folder whose weights are stored in float16 loads in float16 (recent
    # transformers keep the stored dtype), and would run in it on the CPU too
    torch = require("torch", "encoding texts")
    model = model.to(getattr(torch, precision))
    model.eval()
    # the cached model is shared by every call: remember its own default truncation
    model._negsample_max_seq_length = model.max_seq_length
    return model


def place(model: Any, device: str, precision: str) -> Any:
    """A loaded model object moved to ``device`` and cast to ``precision``, in eval mode."""
    torch = require("torch", "running a model")
    model = model.to(device).to(getattr(torch, precision))
    model.eval()
    return model


class TextEncoder:
    """Texts to float32 rows with one model per device: :meth:`stream` maps groups of
    texts (in decreasing length) to their vectors, the next groups tokenised meanwhile.

    ``path`` is a model folder or name (loaded by ``loader``, :func:`load_model` by
    default) or a loaded ``SentenceTransformer`` (moved and cast). ``devices`` of more than
    one entry start a :class:`DevicePool` (one process each; a model object is pickled to
    them); ``stats`` (single device) says where the time went.
    """

    def __init__(
        self,
        path: Any,
        *,
        devices: Sequence[str],
        precision: str,
        batch_size: int,
        batch_tokens: int | None,
        normalize: bool,
        max_seq_length: int | None,
        prompt: str | None,
        prompt_name: str | None,
        profile: bool = False,
        loader: Any = None,
    ) -> None:
        self.normalize = normalize
        self.stats = FeedStats()
        self.pool: DevicePool | None = None
        self.feeder: TokenFeeder | None = None
        settings = (path, precision, batch_size, batch_tokens, normalize, max_seq_length)
        if len(devices) > 1:
            self.stats.mode = "pool"
            self.pool = DevicePool(worker_encoder, (*settings, prompt, prompt_name), devices)
            return
        device = str(devices[0])
        if isinstance(path, str):
            self.model = (loader or load_model)(path, device, precision)
        else:
            self.model = place(path, device, precision)
        if max_seq_length is None:  # the model's default, whatever an earlier call set
            max_seq_length = getattr(self.model, "_negsample_max_seq_length", None)
        if max_seq_length is not None:
            self.model.max_seq_length = int(max_seq_length)
        self.prompt = resolve_prompt(self.model, prompt, prompt_name)
        self.batch_size = batch_size
        if can_feed(self.model):
            tokens, rows = batch_shape(self.model, device, batch_size, batch_tokens)
            self.feeder = TokenFeeder(
                self.model,
                sentence_forward(self.model, normalize=normalize),
                device=device,
                prompt=self.prompt,
                batch_tokens=tokens,
                max_rows=rows,
                batch_size=batch_size,
                profile=profile,
                stats=self.stats,
            )
        else:  # sentence-transformers < 6: its own encode, a group per call
            self.stats.mode = "library"

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def stream(self, groups: Iterable[Sequence[str]]) -> Iterator[FloatArray]:
        """The vectors of each group (float32 ``(len(group), dim)``), in order."""
        if self.pool is not None:
            yield from self.pool.stream(groups)
        elif self.feeder is not None:
            yield from self.feeder.stream(groups)
        else:
            for texts in groups:
                yield self._library(list(texts))

    def __call__(self, texts: Sequence[str]) -> FloatArray:
        """The vectors of one group."""
        return next(iter(self.stream([texts])))

    def _library(self, texts: list[str]) -> FloatArray:
        kw: dict[str, Any] = {"prompt": self.prompt} if self.prompt is not None else {}
        v = np.asarray(
            self.model.encode(
                texts,
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=False,
                **kw,
            ),
            dtype=np.float32,
        )
        if self.normalize:
            v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), np.float32(1e-12))
        return v


def worker_encoder(
    path: Any,
    precision: str,
    batch_size: int,
    batch_tokens: int | None,
    normalize: bool,
    max_seq_length: int | None,
    prompt: str | None,
    prompt_name: str | None,
    *,
    device: str,
) -> TextEncoder:
    """The encoder of one pool process (module-level: pickled by reference)."""
    return TextEncoder(
        path,
        devices=[device],
        precision=precision,
        batch_size=batch_size,
        batch_tokens=batch_tokens,
        normalize=normalize,
        max_seq_length=max_seq_length,
        prompt=prompt,
        prompt_name=prompt_name,
    )

"""Feeding a sentence-transformers model as fast as the machine allows: inputs tokenised
ahead in a background thread, batched by a token budget, copied without blocking, and the
outputs kept on the device until a whole group (a shard of texts, a call's pairs) is done.

Used by :func:`~negsample.encode` and by the teacher scorers
(:class:`~negsample.scoring.CrossEncoderScorer`, :class:`~negsample.scoring.EmbeddingScorer`).

How a group of inputs (already in order of decreasing characters) is fed:

1. A background thread tokenises it ``chunk`` inputs at a time with the model's fast
   tokenizer (the Rust ``encode_batch``: parallel over the cores, without the GIL), with
   the model's truncation and no padding, and sorts each chunk by token count.
2. It cuts batches of consecutive rows holding at most ``batch_tokens`` padded tokens
   (rows x the longest row), pads them (the tokenizer's pad id and side), and pins them
   in page-locked memory when the model is on CUDA.
3. The calling thread copies each batch with ``non_blocking=True``, runs the model, and
   writes its float32 outputs into one device tensor at the inputs' rows; the only
   device-to-host copy (and synchronisation) is one per group.

Before the first batch, the tokenisation is checked against the model's own
``preprocess`` on a sample of the inputs (the longest, the shortest and some between):
every tensor must be equal (keys, dtypes, values). A model where they differ (a chat
template, another processor, ...) is fed the model's own ``preprocess`` output instead,
in the same background thread, ``batch_size`` inputs per batch (``mode="preprocess"``),
and the reason is kept in :attr:`FeedStats.reason`.
"""

from __future__ import annotations

import copy
import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from .._optional import require
from ..errors import InputError

__all__ = ["FeedStats", "TokenFeeder", "cross_encoder_forward", "sentence_forward"]

IntArray = npt.NDArray[np.int64]
#: Inputs tokenised per ``encode_batch`` call of the background thread.
DEFAULT_CHUNK = 2048
#: Batches prepared ahead of the model (bounds the host memory of the feeder).
DEFAULT_PREFETCH = 8
#: Largest ``model_max_length`` taken as a real limit (tokenizers without one say 1e30).
_NO_LIMIT = 1_000_000
#: Inputs of the sample checked against the model's own preprocessing.
_SAMPLE = 8


@dataclass
class FeedStats:
    """Where the time of a feeder went, summed over its calls (seconds; counts).

    ``tokenize`` (the Rust tokenizer, parallel, without the GIL), ``convert`` (reading its
    tokens back into arrays, with the GIL) and ``collate`` (padding and pinning) run in
    the background thread (in ``mode="preprocess"``, ``tokenize`` is the model's own
    ``preprocess``);
    ``wait`` (the model waiting for a batch: the host is the bound when it is large),
    ``copy`` (host-to-device copies issued), ``model`` (the forward passes issued; on a
    GPU their launch cost, on the CPU their compute) and ``sync`` (the one copy of each
    group's outputs to the host, which waits for the device to finish) in the calling
    thread. ``gpu`` is the device time of the forward passes (CUDA events) when
    profiling. ``padded`` / ``tokens``: padded against real tokens.
    """

    mode: str = ""
    reason: str = ""
    groups: int = 0
    items: int = 0
    batches: int = 0
    tokens: int = 0
    padded: int = 0
    tokenize: float = 0.0
    convert: float = 0.0
    collate: float = 0.0
    wait: float = 0.0
    copy: float = 0.0
    model: float = 0.0
    sync: float = 0.0
    gpu: float = 0.0
    wall: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **kw: float) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}


def resolve_prompt(model: Any, prompt: str | None, prompt_name: str | None) -> str | None:
    """The prompt sentence-transformers' ``encode`` would use: ``prompt``, else the
    model's prompt named ``prompt_name``, else its default prompt (if any)."""
    prompts = getattr(model, "prompts", None) or {}
    if prompt is not None:
        return prompt
    if prompt_name is not None:
        if prompt_name not in prompts:
            raise InputError(
                f"prompt_name {prompt_name!r} is not a prompt of the model (it has: "
                f"{sorted(prompts)})"
            )
        return str(prompts[prompt_name])
    default = getattr(model, "default_prompt_name", None)
    return None if default is None else prompts.get(default)


def sentence_forward(model: Any, *, normalize: bool) -> Callable[[dict[str, Any]], Any]:
    """The forward pass of a ``SentenceTransformer``: float32 sentence embeddings,
    truncated to the model's ``truncate_dim`` and L2-normalised (in float32) when asked."""
    torch = require("torch", "encoding texts")
    dim = getattr(model, "truncate_dim", None)

    def forward(features: dict[str, Any]) -> Any:
        emb = model(features)["sentence_embedding"].float()
        if dim is not None:
            emb = emb[..., :dim]
        if normalize:
            emb = torch.nn.functional.normalize(emb, p=2.0, dim=1, eps=1e-12)
        return emb

    return forward


def cross_encoder_forward(model: Any, activation: Any) -> Callable[[dict[str, Any]], Any]:
    """The forward pass of a ``CrossEncoder`` (sentence-transformers >= 6): its scores in
    float32, ``activation`` applied when given, one score per pair."""

    def forward(features: dict[str, Any]) -> Any:
        s = model(features)["scores"].float()
        if activation is not None:
            s = activation(s)
        return s.reshape(s.shape[0], -1)[:, 0] if s.ndim > 1 else s

    return forward


@dataclass
class _Chunk:
    """One chunk of tokenised inputs, unpadded: ``flat[key]`` holds every input's tokens
    end to end, input ``i`` at ``starts[i]`` for ``lens[i]`` tokens."""

    lens: IntArray
    starts: IntArray
    flat: dict[str, IntArray]


def can_feed(model: Any) -> bool:
    """Whether the feeder can drive ``model``: sentence-transformers >= 6 (a
    ``preprocess`` method that returns the forward pass's input)."""
    return callable(getattr(model, "preprocess", None))


class TokenFeeder:
    """Tokenise ahead, batch by a token budget, and run a model over groups of inputs.

    Parameters
    ----------
    model : a sentence-transformers model (>= 6) with ``preprocess`` and ``tokenizer``.
    forward : ``forward(features) -> tensor`` of float32 rows, one per input.
    device : the device the model is on (``"cpu"``, ``"cuda:0"``, ``"mps"``).
    pairs : the inputs are (query, document) pairs (a cross-encoder), else texts.
    prompt : prepended to every text (to the query of a pair).
    batch_tokens : padded tokens per batch (rows x the longest row's tokens).
    max_rows : at most this many rows a batch as well (``None``: the token budget alone).
    batch_size : inputs per batch where the model's own ``preprocess`` feeds it.
    chunk : inputs tokenised per call in the background thread.
    prefetch : batches prepared ahead.
    profile : time the forward passes on a CUDA device with events (``stats.gpu``).
    """

    def __init__(
        self,
        model: Any,
        forward: Callable[[dict[str, Any]], Any],
        *,
        device: str,
        pairs: bool = False,
        prompt: str | None = None,
        batch_tokens: int,
        batch_size: int,
        max_rows: int | None = None,
        chunk: int = DEFAULT_CHUNK,
        prefetch: int = DEFAULT_PREFETCH,
        profile: bool = False,
        stats: FeedStats | None = None,
    ) -> None:
        self._torch = require("torch", "running a model")
        self.model = model
        self.forward = forward
        self.device = str(device)
        self.pairs = pairs
        self.prompt = prompt
        self.batch_tokens = int(batch_tokens)
        self.max_rows = None if max_rows is None else max(1, int(max_rows))
        self.batch_size = int(batch_size)
        self.chunk = int(chunk)
        self.prefetch = int(prefetch)
        self.profile = profile and self.device.startswith("cuda")
        self.pin = self.device.startswith("cuda")
        self.stats = stats if stats is not None else FeedStats()
        self._mode: str | None = None  # "tokenizer" or "preprocess", decided on the first chunk
        self._extra: dict[str, Any] = {}
        self._dtypes: dict[str, Any] = {}
        self._tok: Any = None
        self._pad: dict[str, int] = {}
        self._left = False
        # single texts whose type ids are all 0: the tokenizer's template gives every text
        # the same ones (they depend on the sequence, A or B, not on the text), so they
        # are made here instead of read back token by token
        self._zero_types = False

    # -- the fast tokenizer ---------------------------------------------------------------
    def _setup_tokenizer(self) -> str:
        """Build a private copy of the model's Rust tokenizer with the model's truncation
        and no padding; ``""`` when ready, else why not."""
        hf = getattr(self.model, "tokenizer", None)
        backend = getattr(hf, "backend_tokenizer", None)
        if backend is None:
            return "the model has no fast (Rust) tokenizer"
        tok = copy.deepcopy(backend)
        limit = getattr(hf, "model_max_length", None)
        if isinstance(limit, int) and 0 < limit <= _NO_LIMIT:
            side = getattr(hf, "truncation_side", "right")
            tok.enable_truncation(limit, stride=0, strategy="longest_first", direction=side)
        else:
            tok.no_truncation()
        tok.no_padding()
        pad_id = getattr(hf, "pad_token_id", None)
        self._pad = {
            "input_ids": int(pad_id) if pad_id is not None else 0,
            "token_type_ids": int(getattr(hf, "pad_token_type_id", 0) or 0),
            "attention_mask": 0,
        }
        self._left = getattr(hf, "padding_side", "right") == "left"
        self._tok = tok
        return ""

    def _prepared(self, items: Sequence[Any]) -> list[Any]:
        p = self.prompt or ""
        if self.pairs:
            return [(p + str(a), str(b)) for a, b in items]
        return [p + t for t in items] if p else list(items)

    def _tokenize(self, items: Sequence[Any]) -> _Chunk:
        """Tokenise ``items`` (Rust, parallel, without the GIL), then read the tokens back
        into flat arrays (Python, with the GIL): timed as ``tokenize`` and ``convert``."""
        t0 = time.perf_counter()
        encs = self._tok.encode_batch(self._prepared(items), add_special_tokens=True)
        t1 = time.perf_counter()
        lens = np.fromiter(map(len, encs), dtype=np.int64, count=len(encs))
        total = int(lens.sum())
        chain = itertools.chain.from_iterable
        flat = {"input_ids": np.fromiter(chain(e.ids for e in encs), np.int64, total)}
        if self._mode is None or ("token_type_ids" in self._dtypes and not self._zero_types):
            flat["token_type_ids"] = np.fromiter(chain(e.type_ids for e in encs), np.int64, total)
        starts = np.zeros(len(encs), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        self.stats.add(tokenize=t1 - t0, convert=time.perf_counter() - t1)
        return _Chunk(lens, starts, flat)

    def _collate(self, parts: list[tuple[_Chunk, IntArray]]) -> tuple[dict[str, Any], int, int]:
        """Padded tensors for the rows of ``parts`` (in order): ``(features, tokens,
        padded)``."""
        torch = self._torch
        lens = np.concatenate([c.lens[r] for c, r in parts])
        width = int(lens.max())
        rows = lens.size
        real = np.arange(width)[None, :] < lens[:, None]  # right-padded positions
        where = (np.arange(width)[None, :] >= (width - lens)[:, None]) if self._left else real
        feats: dict[str, Any] = {}
        for key in self._dtypes or ("input_ids", "token_type_ids", "attention_mask"):
            if key == "attention_mask":
                arr = where.astype(np.int64)
            elif key == "token_type_ids" and self._zero_types:
                arr = np.full((rows, width), self._pad.get(key, 0), dtype=np.int64)
                arr[where] = 0
            else:
                chunks = []
                for c, r in parts:
                    n = c.lens[r]
                    first = np.repeat(c.starts[r] - np.cumsum(n) + n, n)
                    chunks.append(c.flat[key][first + np.arange(int(n.sum()))])
                arr = np.full((rows, width), self._pad.get(key, 0), dtype=np.int64)
                arr[where] = np.concatenate(chunks)
            t = torch.from_numpy(arr)
            dtype = self._dtypes.get(key)
            if dtype is not None and t.dtype != dtype:
                t = t.to(dtype)
            feats[key] = t
        feats.update(self._extra)
        return feats, int(lens.sum()), rows * width

    def _verify(self, items: Sequence[Any], chunk: _Chunk, order: IntArray) -> str:
        """Compare the fast tokenisation of a sample of ``items`` with the model's own
        ``preprocess``; ``""`` when equal, else the difference."""
        torch = self._torch
        m = order.size
        pick = np.unique(
            np.concatenate(
                [
                    order[:_SAMPLE],
                    order[-_SAMPLE:],
                    order[np.linspace(0, m - 1, _SAMPLE).astype(int)],
                ]
            )
        )
        sample = [items[int(i)] for i in pick]
        try:
            ref = self._reference(sample)
        except Exception as exc:  # the model's own preprocessing failed: let it say so
            return f"the model's preprocess raised {type(exc).__name__}: {exc}"
        tensors = {k: v for k, v in ref.items() if isinstance(v, torch.Tensor)}
        keys = set(tensors)
        if not keys or not keys <= {"input_ids", "token_type_ids", "attention_mask"}:
            return f"the model's preprocess gives {sorted(ref)}"
        self._dtypes = {
            k: tensors[k].dtype
            for k in ("input_ids", "token_type_ids", "attention_mask")
            if k in keys
        }
        self._extra = {k: v for k, v in ref.items() if k not in keys}
        mine, _, _ = self._collate([(chunk, pick.astype(np.int64))])
        for k, v in tensors.items():
            if mine[k].shape != v.shape or mine[k].dtype != v.dtype or not torch.equal(mine[k], v):
                return f"{k} differs from the model's preprocess on a sample"
        types = chunk.flat.get("token_type_ids")
        self._zero_types = not self.pairs and types is not None and not types.any()
        return ""

    def _reference(self, items: Sequence[Any]) -> dict[str, Any]:
        inputs = [list(p) for p in items] if self.pairs else list(items)
        if self.prompt is None:
            return dict(self.model.preprocess(inputs))
        return dict(self.model.preprocess(inputs, prompt=self.prompt))

    # -- the background thread --------------------------------------------------------------
    def _pinned(self, feats: dict[str, Any]) -> dict[str, Any]:
        if not self.pin:
            return feats
        torch = self._torch
        return {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in feats.items()}

    def _group_batches(self, items: Sequence[Any]) -> Iterator[tuple[Any, dict[str, Any]]]:
        first = None
        if self._mode is None:
            why = self._setup_tokenizer()
            if not why and len(items):
                head = items[: self.chunk]
                first = self._tokenize(head)
                o = np.argsort(-first.lens, kind="stable")
                why = self._verify(head, first, o)
            if why or len(items):
                self._mode = "preprocess" if why else "tokenizer"
                self.stats.mode, self.stats.reason = self._mode, why
        if self._mode == "tokenizer":
            yield from self._token_batches(items, first)
        else:
            yield from self._preprocess_batches(items)

    def _token_batches(
        self, items: Sequence[Any], first: _Chunk | None = None
    ) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Token-budget batches of ``items``; ``first``: its first chunk, tokenised already."""
        n = len(items)
        budget = self.batch_tokens
        chunks: list[_Chunk] = []
        b_lens = np.empty(0, np.int64)  # the buffer: rows tokenised, not yet batched
        b_pos = np.empty(0, np.int64)
        b_src = np.empty(0, np.int64)
        b_row = np.empty(0, np.int64)
        for c0 in range(0, n, self.chunk):
            c = (
                first
                if c0 == 0 and first is not None
                else self._tokenize(items[c0 : c0 + self.chunk])
            )
            o = np.argsort(-c.lens, kind="stable").astype(np.int64)
            chunks.append(c)
            b_lens = np.concatenate([b_lens, c.lens[o]])
            b_pos = np.concatenate([b_pos, c0 + o])
            b_src = np.concatenate([b_src, np.full(o.size, len(chunks) - 1, np.int64)])
            b_row = np.concatenate([b_row, o])
            final = c0 + self.chunk >= n
            while b_lens.size:
                cm = np.maximum.accumulate(b_lens)
                fit = np.arange(1, b_lens.size + 1) * cm <= budget
                r = max(1, int(fit.sum()))
                if self.max_rows is not None:
                    r = min(r, self.max_rows)
                if r == b_lens.size and not final:
                    break  # not a full batch yet: tokenise more first
                t0 = time.perf_counter()
                src, rows = b_src[:r], b_row[:r]
                parts = [(chunks[s], rows[src == s]) for s in np.unique(src)]
                feats, tokens, padded = self._collate(parts)
                feats = self._pinned(feats)
                pos = self._pinned({"rows": self._torch.from_numpy(b_pos[:r].copy())})["rows"]
                self.stats.add(collate=time.perf_counter() - t0, tokens=tokens, padded=padded)
                yield pos, feats
                b_lens, b_pos, b_src, b_row = b_lens[r:], b_pos[r:], b_src[r:], b_row[r:]
            if b_src.size:  # free the chunks no row refers to any more
                for s in range(int(b_src.min())):
                    chunks[s] = _EMPTY_CHUNK
            else:
                chunks = [_EMPTY_CHUNK] * len(chunks)

    def _preprocess_batches(self, items: Sequence[Any]) -> Iterator[tuple[Any, dict[str, Any]]]:
        torch = self._torch
        for s in range(0, len(items), self.batch_size):
            t0 = time.perf_counter()
            feats = self._reference(items[s : s + self.batch_size])
            t1 = time.perf_counter()
            feats = self._pinned(feats)
            mask = feats.get("attention_mask")
            tokens = int(mask.sum()) if isinstance(mask, torch.Tensor) else 0
            padded = int(mask.numel()) if isinstance(mask, torch.Tensor) else 0
            self.stats.add(
                tokenize=t1 - t0, collate=time.perf_counter() - t1, tokens=tokens, padded=padded
            )
            pos = torch.arange(s, min(s + self.batch_size, len(items)), dtype=torch.int64)
            yield (pos.pin_memory() if self.pin else pos), feats

    def _produce(
        self, groups: Iterator[Sequence[Any]], q: queue.Queue[Any], stop: threading.Event
    ) -> None:
        def put(msg: Any) -> bool:
            while not stop.is_set():
                try:
                    q.put(msg, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for items in groups:
                for pos, feats in self._group_batches(items):
                    if not put(("batch", len(items), pos, feats)):
                        return
                if not put(("end", len(items))):
                    return
            put(("done",))
        except BaseException as exc:  # handed to the calling thread, which raises it
            put(("error", exc))

    # -- the calling thread ---------------------------------------------------------------
    def stream(self, groups: Iterable[Sequence[Any]]) -> Iterator[npt.NDArray[np.float32]]:
        """For each group of inputs, the model's float32 outputs in the group's order
        (``(len(group), ...)``), while the next groups are tokenised."""
        torch = self._torch
        dev = torch.device(self.device)
        q: queue.Queue[Any] = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        worker = threading.Thread(
            target=self._produce, args=(iter(groups), q, stop), name="negsample-feeder", daemon=True
        )
        t_start = time.perf_counter()
        worker.start()
        out: Any = None
        events: list[tuple[Any, Any]] = []
        try:
            while True:
                t0 = time.perf_counter()
                msg = q.get()
                self.stats.add(wait=time.perf_counter() - t0)
                if msg[0] == "batch":
                    _, n, pos, feats = msg
                    t0 = time.perf_counter()
                    feats = {
                        k: v.to(dev, non_blocking=True) if isinstance(v, torch.Tensor) else v
                        for k, v in feats.items()
                    }
                    rows = pos.to(dev, non_blocking=True)
                    t1 = time.perf_counter()
                    with torch.inference_mode():
                        ev = None
                        if self.profile:
                            ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
                            ev[0].record()
                        y = self.forward(feats)
                        if ev is not None:
                            ev[1].record()
                            events.append((ev[0], ev[1]))
                        if out is None:
                            out = torch.empty((n, *y.shape[1:]), dtype=torch.float32, device=dev)
                        out.index_copy_(0, rows, y.to(torch.float32))
                    self.stats.add(
                        copy=t1 - t0, model=time.perf_counter() - t1, batches=1, items=len(pos)
                    )
                elif msg[0] == "end":
                    t0 = time.perf_counter()
                    if out is None:  # an empty group
                        res = np.empty((0,), dtype=np.float32)
                    else:
                        res = out.cpu().numpy()
                    out = None
                    self.stats.add(sync=time.perf_counter() - t0, groups=1)
                    yield res
                elif msg[0] == "error":
                    raise msg[1]
                else:
                    break
        finally:
            stop.set()
            worker.join(timeout=10)
            if events:
                torch.cuda.synchronize(dev)
                self.stats.add(gpu=sum(a.elapsed_time(b) for a, b in events) / 1000)
            self.stats.add(wall=time.perf_counter() - t_start)


_EMPTY_CHUNK = _Chunk(np.empty(0, np.int64), np.empty(0, np.int64), {})


def default_batch_tokens(model: Any, batch_size: int) -> int:
    """``batch_size`` inputs at the model's full length: a batch of the feeder never needs
    more memory than ``batch_size`` inputs of the longest kind (short inputs: more rows)."""
    hf = getattr(model, "tokenizer", None)
    limit = getattr(hf, "model_max_length", None)
    if not isinstance(limit, int) or not 0 < limit <= _NO_LIMIT:
        limit = 512
    return int(batch_size) * int(limit)


def batch_shape(
    model: Any, device: str, batch_size: int, batch_tokens: int | None
) -> tuple[int, int | None]:
    """The feeder's ``(batch_tokens, max_rows)`` for a model on ``device``.

    A budget given is used alone. By default the budget is :func:`default_batch_tokens`;
    on a GPU short inputs fill a batch with more rows (fewer, fuller launches), while on
    the CPU a batch also holds at most ``batch_size`` rows: there a wider batch of short
    inputs runs slower, not faster (its activations leave the caches;
    ``benchmarks/bench_encode.py --device cpu``)."""
    if batch_tokens is not None:
        return int(batch_tokens), None
    rows = int(batch_size) if str(device).startswith("cpu") else None
    return default_batch_tokens(model, batch_size), rows

"""Exact search with torch on any device (CUDA, MPS, CPU): the GPU index that needs no faiss.

The corpus is held on the device(s) in float16, bfloat16 or float32, sharded over several
GPUs when asked, and searched by a blocked matrix product and top-``k`` whose merge across
corpus blocks and shards is exact (ties broken by the smaller id). Precision, stated once:

- the stored corpus rows are the input rows (normalised in float32 for cosine) rounded to
  ``dtype``; queries and the vectors given to :meth:`TorchIndex.score` are rounded to
  ``dtype`` too, so that search and ``score`` multiply the same numbers;
- a score is the sum of the ``dim`` products of two ``dtype`` vectors accumulated in
  float32 and returned as float32 (a product of two float16 or bfloat16 numbers is exact
  in float32, so only the summation rounds). On CUDA, float16/bfloat16 blocks are
  multiplied by cuBLAS with a float32 output (``torch.mm(..., out_dtype=torch.float32)``,
  torch >= 2.8); where that is missing (older torch, CPU, MPS) the block is upcast to
  float32 and multiplied there: the same products, slower. Scores are never rounded to
  float16 before the top-``k``.
- :meth:`TorchIndex.score` and :meth:`TorchIndex.sq_norms` multiply element-wise and sum
  by a fixed pairwise tree: each value depends on its two vectors alone, bit for bit,
  whatever the batch and the device.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._device import PRECISION_NAMES, PRECISIONS, resolve_precision
from .._device import resolve_devices as _resolve_devices
from .._optional import require
from .._types import SearchResult
from .._validate import as_matrix
from ..errors import InputError, InputTypeError
from . import _torch_topk as topk
from .base import (
    DEFAULT_SEARCH_BLOCK,
    BaseIndex,
    check_ids,
    check_k,
    check_metric,
    check_score_args,
    prepare_queries,
    read_meta,
    write_dir_atomic,
)
from .numpy_index import _unpack

__all__ = ["DTYPES", "TorchIndex", "resolve_devices"]

#: Storage dtypes of a :class:`TorchIndex` corpus (the one precision vocabulary).
DTYPES = PRECISIONS
#: Queries per search call in ``mine()``: GPUs reach full speed with large blocks.
GPU_SEARCH_BLOCK = 16384
CPU_SEARCH_BLOCK = DEFAULT_SEARCH_BLOCK  # as every CPU index
#: Default memory budget (MiB) per device for one block of scores and its top-k temporaries.
GPU_BUDGET_MB = 2048
CPU_BUDGET_MB = 256
_BYTES_PER_SCORE = 12  # float32 score + bool mask + top-k temporaries, per (query, row)
_UPLOAD_FLOATS = 1 << 23  # float32 values converted at a time when the corpus is uploaded
_PAIR_FLOATS = 1 << 23  # float32 products held at a time by score() on the CPU (32 MiB)
_PAIR_FLOATS_GPU = 1 << 26  # and on a GPU (256 MiB: fewer, larger kernels)


def _torch() -> Any:
    return require("torch", "TorchIndex")


def _dtype_name(dtype: Any, devices: Sequence[str]) -> str:
    """The storage dtype by the one precision vocabulary (``None``/``"auto"``: float16 on
    a GPU, float32 on the CPU)."""
    try:
        return resolve_precision(dtype, devices)
    except ValueError:
        raise InputError(
            f"dtype must be one of {DTYPES} (or {', '.join(PRECISION_NAMES[3:])}, 'auto', "
            f"None), got {dtype!r}"
        ) from None


def resolve_devices(device: Any = "auto", devices: Sequence[str] | None = None) -> list[str]:
    """The devices a corpus is placed on, one shard each, by the one device policy
    (:func:`negsample._device.resolve_devices`): ``devices`` (e.g. ``["cuda:0",
    "cuda:2"]``) wins when given; otherwise ``device``: ``"auto"`` and ``"cuda"`` are every
    visible GPU, else (``"auto"``) MPS, else the CPU; ``"cuda:N"``, ``"mps"`` and
    ``"cpu"`` are that device.

    Raises
    ------
    ValueError
        naming the device when torch cannot use it (no CUDA build, no such GPU...).
    """
    if devices is not None:
        if isinstance(devices, str) or not len(devices):
            raise InputError(f"devices must be a non-empty list of device names, got {devices!r}")
        out = _resolve_devices(list(devices))
        if len(set(out)) != len(out):
            raise InputError(f"devices lists a device twice: {list(devices)!r}")
        return out
    if not isinstance(device, str):
        raise InputTypeError(f"device must be a string such as 'cuda' or 'cpu', got {device!r}")
    return _resolve_devices(device)


@dataclass
class _Shard:
    device: str
    offset: int  # global id of the shard's first row
    data: Any  # torch tensor (rows, dim) in the storage dtype, on ``device``
    fp32_out: bool = False  # torch.mm(..., out_dtype=torch.float32) works here

    @property
    def n(self) -> int:
        return int(self.data.shape[0])


class TorchIndex(BaseIndex):
    """Exact inner-product (or cosine) search with torch, on a GPU or the CPU.

    The corpus is copied onto the device(s) in ``dtype`` (from numpy, a memory-mapped
    ``.npy`` read block by block, or a torch tensor) and searched by blocked matrix
    products: memory is the corpus plus one block of ``search_block x block_rows`` float32
    scores, sized by ``memory_budget_mb``, never a query-by-corpus matrix. The top-``k`` is
    exact: merged across corpus blocks and shards by (score, then smaller id). See the
    module docstring for the precision of the scores.

    Parameters
    ----------
    vectors : array (n, dim) float16/32/64 (numpy, memory-mapped ``.npy``), or a torch
        tensor (float16/bfloat16/float32/float64, any device).
    metric : ``"ip"`` (inner product) or ``"cosine"`` (rows normalised in float32 before
        they are rounded to ``dtype``; queries normalised at search).
    device : ``"auto"`` (every visible GPU, the corpus sharded over them, else MPS, else
        CPU), ``"cpu"``, ``"cuda"`` (every visible GPU), ``"cuda:N"`` or ``"mps"``
        (docs/devices.md).
    dtype : ``"float16"``, ``"bfloat16"`` or ``"float32"`` (or ``fp16``, ``half``,
        ``bf16``, ``fp32``, a torch dtype); ``None``/``"auto"``: float16 on a GPU, float32
        on the CPU (half-precision products are slow on CPUs).
    devices : the devices to shard over (``["cuda:0", "cuda:1"]``), instead of ``device``.
    search_block : queries per search call in :func:`~negsample.mine` and rows per matrix
        product; ``None``: 16384 on a GPU, 1024 on the CPU.
    memory_budget_mb : MiB per device for one block of scores and its top-``k``
        temporaries; sets the corpus rows scored at a time. ``None``: 2048 on a GPU, 256
        on the CPU.
    check : refuse corpus rows holding NaN or infinities (or overflowing float16), naming
        the row.

    Examples
    --------
    >>> import numpy as np, negsample as ns
    >>> corpus = np.eye(4, dtype=np.float32)
    >>> index = ns.TorchIndex(corpus, metric="cosine", device="cpu")
    >>> index.search(corpus[:1], k=2).ids
    array([[0, 1]])
    """

    def __init__(
        self,
        vectors: Any,
        *,
        metric: str = "ip",
        device: str = "auto",
        dtype: Any = None,
        devices: Sequence[str] | None = None,
        search_block: int | None = None,
        memory_budget_mb: float | None = None,
        check: bool = True,
        _normalized: bool = False,
    ) -> None:
        torch = _torch()
        self.metric = check_metric(metric)
        names = resolve_devices(device, devices)
        self.devices = tuple(names)
        on_gpu = names[0] != "cpu"
        self.dtype = _dtype_name(dtype, names)
        self._tdtype = getattr(torch, self.dtype)
        if search_block is None:
            search_block = GPU_SEARCH_BLOCK if on_gpu else CPU_SEARCH_BLOCK
        if isinstance(search_block, bool) or not isinstance(search_block, int | np.integer):
            raise InputError(f"search_block must be a positive integer, got {search_block!r}")
        if search_block < 1:
            raise InputError(f"search_block must be a positive integer, got {search_block!r}")
        self._search_block = int(search_block)
        if memory_budget_mb is None:
            memory_budget_mb = GPU_BUDGET_MB if on_gpu else CPU_BUDGET_MB
        number = int | float | np.integer | np.floating
        if (
            isinstance(memory_budget_mb, bool)
            or not isinstance(memory_budget_mb, number)
            or not memory_budget_mb > 0
        ):
            raise InputError(
                f"memory_budget_mb must be a positive number, got {memory_budget_mb!r}"
            )
        self.memory_budget_mb = float(memory_budget_mb)
        per_row = self._search_block * _BYTES_PER_SCORE
        self.block_rows = max(256, int(self.memory_budget_mb * 2**20) // per_row // 256 * 256)
        n, dim, read = _row_source(vectors)
        if n == 0:
            raise InputError("corpus has no rows")
        self._dim = dim
        self._ntotal = n
        bounds = np.linspace(0, n, len(names) + 1).round().astype(np.int64)
        self._shards: list[_Shard] = []
        for dev, a, b in zip(names, bounds[:-1], bounds[1:], strict=True):
            if b > a:
                data = self._upload(read, int(a), int(b), dev, check, _normalized)
                self._shards.append(_Shard(dev, int(a), data, self._probe_fp32_out(dev)))

    # -- construction ---------------------------------------------------------------------
    def _upload(
        self,
        read: Callable[[int, int], Any],
        start: int,
        stop: int,
        device: str,
        check: bool,
        normalized: bool,
    ) -> Any:
        """Rows ``start:stop`` onto ``device`` in the storage dtype, block by block (the
        host never holds more than one block, and never a float32 copy of the corpus)."""
        torch = _torch()
        out = torch.empty((stop - start, self._dim), dtype=self._tdtype, device=device)
        step = max(1, _UPLOAD_FLOATS // self._dim)
        for s in range(start, stop, step):
            e = min(s + step, stop)
            raw = read(s, e).to(device)
            x = raw.float()
            if check:  # as negsample._validate.check_finite: NaN, the cast, the norms
                _check_rows(torch, raw, s, "contains NaN or an infinite value")
                _check_rows(torch, x, s, "holds a value beyond float32's range (it becomes "
                            "infinite once cast to float32); rescale the vectors")  # fmt: skip
                _check_rows(torch, (x * x).sum(dim=1, keepdim=True), s, "has a squared norm "
                            "beyond float32's range: its inner products overflow float32; "
                            "rescale the vectors")  # fmt: skip
            if self.metric == "cosine" and not normalized:
                norms = torch.linalg.vector_norm(x, dim=1)
                zero = norms == 0
                if bool(zero.any()):
                    row = s + int(torch.nonzero(zero)[0, 0])
                    raise InputError(f"corpus row {row} has norm 0 (cosine)")
                x = x / norms[:, None]
            y = x.to(self._tdtype)
            if check and self.dtype == "float16":
                _check_rows(
                    torch,
                    y,
                    s,
                    "overflows float16 (a value beyond +/-65504); use dtype='bfloat16' or 'float32'",
                )
            out[s - start : e - start] = y
        return out

    def _probe_fp32_out(self, device: str) -> bool:
        """Whether this torch multiplies ``dtype`` matrices into a float32 result on
        ``device`` (``torch.mm(..., out_dtype=torch.float32)``); decided once, so that
        every search of the same shape takes the same path."""
        torch = _torch()
        if self.dtype == "float32" or not device.startswith("cuda"):
            return False
        a = torch.ones((2, 3), dtype=self._tdtype, device=device)
        try:
            r = torch.mm(a, a.t(), out_dtype=torch.float32)
        except (RuntimeError, TypeError, NotImplementedError):
            return False
        return bool(r.dtype == torch.float32)

    # -- protocol ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        dev = self.devices[0] if len(self.devices) == 1 else list(self.devices)
        return (
            f"TorchIndex(ntotal={self.ntotal}, dim={self.dim}, metric={self.metric!r}, "
            f"device={dev!r}, dtype={self.dtype!r})"
        )

    @property
    def ntotal(self) -> int:
        return self._ntotal

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def exact(self) -> bool:
        return True

    @property
    def searches_on_host(self) -> bool:
        return self.devices[0] == "cpu"

    def _mm(self, q: Any, block: Any, fp32_out: bool, out: Any = None) -> Any:
        """float32 ``(rows, m)`` scores of ``q`` ``(rows, dim)`` against ``block``
        ``(m, dim)``, both in the storage dtype; written into ``out`` (a reused buffer)
        where the product takes one."""
        torch = _torch()
        if self.dtype == "float32":
            return torch.mm(q, block.t(), out=out)
        if fp32_out:
            return torch.mm(q, block.t(), out_dtype=torch.float32)
        return torch.mm(q.float(), block.float().t(), out=out)

    def search(self, queries: Any, k: int) -> SearchResult:
        """Exact top-``k`` ``(n, k)``: float32 scores best first, int64 ids, ties broken by
        the smaller id; ``-1`` / ``-inf`` past the corpus size.

        Queries are normalised for cosine and rounded to ``dtype``. A query's result
        depends only on the query and its row in the call (fixed matrix-product shapes,
        an exact merge), never on the other queries.
        """
        k = check_k(k)
        q = prepare_queries(queries, self.dim, self.metric)
        n = q.shape[0]
        if len(self._shards) == 1:
            parts = [self._search_shard(self._shards[0], q, k)]
        else:
            with ThreadPoolExecutor(max_workers=len(self._shards)) as pool:
                parts = list(pool.map(lambda s: self._search_shard(s, q, k), self._shards))
        keys = np.concatenate([p[0] for p in parts], axis=1)
        self._last_topk_stats = {
            name: sum(p[1].get(name, 0) for p in parts)
            for name in ("blocks", "pruned", "grouped", "rescored")
        }
        kk = min(k, self.ntotal)
        if keys.shape[1] > kk:
            keys = np.partition(keys, keys.shape[1] - kk, axis=1)[:, keys.shape[1] - kk :]
        keys = np.sort(keys, axis=1)[:, ::-1]
        out_s = np.full((n, k), -np.inf, dtype=np.float32)
        out_i = np.full((n, k), -1, dtype=np.int64)
        out_s[:, :kk], out_i[:, :kk] = _unpack(keys)
        return SearchResult(out_s, out_i)

    def _search_shard(
        self, shard: _Shard, q: np.ndarray, k: int
    ) -> tuple[npt.NDArray[np.int64], dict[str, int]]:
        """Packed (score, id) keys ``(n, min(k, shard.n))`` of the shard's top-``k``, and
        the counts of the grouped top-``k`` (:func:`._torch_topk.grouped_topk`)."""
        torch = _torch()
        n = q.shape[0]
        kk = min(k, shard.n)
        out = np.empty((n, kk), dtype=np.int64)
        path, g = topk.PATH, topk.GROUP
        if path not in topk.PATHS:
            raise InputError(f"_torch_topk.PATH must be one of {topk.PATHS}, got {path!r}")
        spans = [
            (cs, min(self.block_rows, shard.n - cs)) for cs in range(0, shard.n, self.block_rows)
        ]
        stats: dict[str, int] = {}
        with torch.inference_mode():
            buf = None  # one score block reused (where the product takes out=)
            if self.dtype == "float32" or not shard.fp32_out:
                size = min(n, self._search_block) * min(self.block_rows, shard.n)
                buf = torch.empty(size, dtype=torch.float32, device=shard.device)
            for qs in range(0, n, self._search_block):
                # a fresh (aligned) copy: BLAS may take another path for other alignments
                qt = _tensor(torch, q[qs : qs + self._search_block])
                qt = qt.to(shard.device, dtype=self._tdtype, copy=True)

                def score(i: int, qt: Any = qt) -> Any:
                    cs, m = spans[i]
                    res = None if buf is None else buf[: qt.shape[0] * m].view(qt.shape[0], m)
                    return self._mm(qt, shard.data[cs : cs + m], shard.fp32_out, res)

                if path == "grouped":
                    glob = [(shard.offset + cs, m) for cs, m in spans]
                    keys, st = topk.grouped_topk(torch, score, glob, kk, g)
                    for name, v in st.items():
                        stats[name] = stats.get(name, 0) + v
                elif path == "lazy":
                    acc = topk.LazyTopK(torch, kk)
                    for i, (cs, _) in enumerate(spans):
                        acc.add(score(i), shard.offset + cs)
                    keys = acc.result()
                else:  # "every-block": the first path
                    keys = None
                    for i, (cs, _) in enumerate(spans):
                        keys = topk.merge_block(torch, keys, score(i), kk, shard.offset + cs)
                out[qs : qs + qt.shape[0]] = keys.cpu().numpy()
        return out, stats

    def score(self, vectors: Any, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """``s(v_i, d_ids[i, j])`` ``(b, m)`` float32, NaN where an id is ``-1``: rows
        gathered on their device, ``vectors`` rounded to ``dtype``, products summed in
        float32 by a fixed pairwise tree (one value per pair, identical whatever the batch
        or the device)."""
        torch = _torch()
        v, idx = check_score_args(vectors, ids, self.ntotal, self.dim)
        out = np.full(idx.shape, np.nan, dtype=np.float32)
        if not idx.size:
            return out
        with torch.inference_mode():
            if len(self._shards) == 1:
                self._score_rows(torch, self._shards[0], v, idx, out)
            else:
                for shard in self._shards:
                    self._score_pairs(torch, shard, v, idx, out)
        return out

    def _score_rows(self, torch: Any, shard: _Shard, v: Any, idx: Any, out: Any) -> None:
        """One shard: blocks of rows, each ``(r, m, dim)`` gathered and multiplied by its
        row's vector (broadcast)."""
        m = idx.shape[1]
        floats = _PAIR_FLOATS if shard.device == "cpu" else _PAIR_FLOATS_GPU
        step = max(1, floats // (m * self.dim))
        vt = _tensor(torch, v).to(shard.device).to(self._tdtype)
        for s in range(0, idx.shape[0], step):
            part = idx[s : s + step]
            local = torch.from_numpy(np.maximum(part, 0)).to(shard.device)
            d = shard.data[local].float()
            vals = _tree_sum(d * vt[s : s + step].float()[:, None, :]).cpu().numpy()
            vals[part < 0] = np.nan
            out[s : s + step] = vals

    def _score_pairs(self, torch: Any, shard: _Shard, v: Any, idx: Any, out: Any) -> None:
        """Several shards: the (row, id) pairs whose id this shard holds, a bounded number
        at a time (the same products and tree as :meth:`_score_rows`)."""
        r, c = np.nonzero((idx >= shard.offset) & (idx < shard.offset + shard.n))
        if not r.size:
            return
        floats = _PAIR_FLOATS if shard.device == "cpu" else _PAIR_FLOATS_GPU
        step = max(1, floats // self.dim)
        vt = _tensor(torch, v).to(shard.device).to(self._tdtype)
        for s in range(0, r.size, step):
            rows = torch.from_numpy(r[s : s + step]).to(shard.device)
            local = torch.from_numpy(idx[r[s : s + step], c[s : s + step]] - shard.offset)
            d = shard.data[local.to(shard.device)].float()
            vals = _tree_sum(d * vt[rows].float())
            out[r[s : s + step], c[s : s + step]] = vals.cpu().numpy()

    def _compute_sq_norms(self) -> npt.NDArray[np.float32]:
        torch = _torch()
        out = np.empty(self.ntotal, np.float32)
        step = max(1, _PAIR_FLOATS // self.dim)
        with torch.inference_mode():
            for shard in self._shards:
                for s in range(0, shard.n, step):
                    x = shard.data[s : s + step].float()
                    a = shard.offset + s
                    out[a : a + x.shape[0]] = _tree_sum(x * x).cpu().numpy()
        return out

    def vectors(self, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Stored rows for ``ids`` (any shape) as float32 ``(*ids.shape, dim)`` (normalised
        for cosine, rounded to ``dtype``); zeros where an id is ``-1``."""
        torch = _torch()
        idx = check_ids(ids, self.ntotal)
        flat = idx.reshape(-1)
        out = np.zeros((flat.size, self.dim), dtype=np.float32)
        with torch.inference_mode():
            for shard in self._shards:
                sel = np.flatnonzero((flat >= shard.offset) & (flat < shard.offset + shard.n))
                if sel.size:
                    local = torch.from_numpy(flat[sel] - shard.offset).to(shard.device)
                    out[sel] = shard.data[local].float().cpu().numpy()
        return out.reshape(*idx.shape, self.dim)

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``path/vectors.npy`` (the stored rows: float16, float32, or bfloat16 bits
        as int16) and ``path/meta.json``, atomically."""
        torch = _torch()
        np_dtype = {"float16": np.float16, "float32": np.float32, "bfloat16": np.int16}[self.dtype]

        def write(tmp: Path) -> None:
            arr = np.lib.format.open_memmap(
                tmp / "vectors.npy", mode="w+", dtype=np_dtype, shape=(self.ntotal, self.dim)
            )
            step = max(1, _UPLOAD_FLOATS // self.dim)
            for shard in self._shards:
                for s in range(0, shard.n, step):
                    x = shard.data[s : s + step]
                    if self.dtype == "bfloat16":
                        x = x.view(torch.int16)
                    a = shard.offset + s
                    arr[a : a + x.shape[0]] = x.cpu().numpy()
            arr.flush()
            del arr
            meta = {
                "type": "TorchIndex",
                "metric": self.metric,
                "dim": self.dim,
                "ntotal": self.ntotal,
                "dtype": self.dtype,
                "search_block": self.search_block,
            }
            (tmp / "meta.json").write_text(json.dumps(meta))

        write_dir_atomic(path, write)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str = "auto",
        dtype: Any = None,
        **kwargs: Any,
    ) -> TorchIndex:
        """Open an index written by :meth:`save` on ``device`` (``dtype`` default: the
        saved one). The saved rows are uploaded as they are (not normalised again), so the
        loaded index returns the very same results."""
        meta = read_meta(path)
        arr = np.load(Path(path) / "vectors.npy", mmap_mode="r")
        saved = str(meta.get("dtype", "float32"))
        if arr.shape != (meta.get("ntotal"), meta.get("dim")):
            raise InputError(
                f"{path}/vectors.npy has shape {arr.shape}, meta.json says "
                f"({meta.get('ntotal')}, {meta.get('dim')})"
            )
        source: Any = _Bfloat16Bits(arr) if saved == "bfloat16" else arr
        kwargs.setdefault("check", False)
        kwargs.setdefault("search_block", meta.get("search_block"))
        return cls(
            source,
            metric=meta["metric"],
            device=device,
            dtype=saved if dtype is None else dtype,
            _normalized=True,
            **kwargs,
        )

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this index's results in a resumable run's settings: the
        storage dtype, the kind of device, and a digest of the stored rows (streamed to
        the host block by block, as :meth:`save` writes them)."""
        from .._digest import RowDigest

        torch = _torch()
        np_dtype = {"float16": np.float16, "float32": np.float32, "bfloat16": np.int16}[self.dtype]
        d = RowDigest(np_dtype, (self.ntotal, self.dim))
        step = max(1, _UPLOAD_FLOATS // self.dim)
        for shard in self._shards:
            for s in range(0, shard.n, step):
                x = shard.data[s : s + step]
                d.update((x.view(torch.int16) if self.dtype == "bfloat16" else x).cpu().numpy())
        return {
            "dtype": self.dtype,
            "device": self.devices[0].split(":")[0],
            "content": d.hexdigest(),
        }


# -- helpers ----------------------------------------------------------------------------------
class _Bfloat16Bits:
    """A saved bfloat16 corpus: int16 bits on disk, read as bfloat16 tensors."""

    def __init__(self, bits: np.ndarray) -> None:
        self.bits = bits
        self.shape = bits.shape


def _tensor(torch: Any, a: np.ndarray) -> Any:
    """A CPU tensor over ``a`` (copied when ``a`` is read-only, e.g. a memory map)."""
    a = np.ascontiguousarray(a)
    if not a.flags.writeable:
        a = a.copy()
    return torch.from_numpy(a)


def _row_source(vectors: Any) -> tuple[int, int, Callable[[int, int], Any]]:
    """``(n, dim, read)`` where ``read(a, b)`` returns rows ``a:b`` as a CPU or device
    tensor in the input's own float dtype (validated like every corpus)."""
    torch = _torch()
    if isinstance(vectors, _Bfloat16Bits):
        bits = vectors.bits
        return (
            int(bits.shape[0]),
            int(bits.shape[1]),
            lambda a, b: _tensor(torch, bits[a:b]).view(torch.bfloat16),
        )
    if isinstance(vectors, torch.Tensor):
        t = vectors.detach()
        if t.ndim != 2:
            raise InputError(f"corpus must be a 2-D array (n, dim), got shape {tuple(t.shape)}")
        if t.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            raise InputTypeError(
                f"corpus must hold float16, bfloat16, float32 or float64 vectors, got {t.dtype}"
            )
        if t.shape[1] == 0:
            raise InputError("corpus has dimension 0")
        return int(t.shape[0]), int(t.shape[1]), lambda a, b: t[a:b]
    arr = as_matrix(vectors, "corpus", check=False)
    return int(arr.shape[0]), int(arr.shape[1]), lambda a, b: _tensor(torch, arr[a:b])


def _check_rows(torch: Any, x: Any, start: int, what: str) -> None:
    """Raise naming the first row of ``x`` (global row ``start + i``) that is not finite."""
    bad = ~torch.isfinite(x).all(dim=1)
    if bool(bad.any()):
        row = start + int(torch.nonzero(bad)[0, 0])
        if what.startswith("contains"):
            kind = "NaN" if bool(torch.isnan(x[row - start]).any()) else "an infinite value"
            what = f"contains {kind}"
        raise InputError(f"corpus row {row} {what}")


def _tree_sum(x: Any) -> Any:
    """Sum over the last axis by a fixed pairwise tree of element-wise float32 additions
    (halves added, an odd last column carried up): the result for a row depends on that
    row alone, never on a reduction kernel whose order could change with the batch, the
    device or the thread count."""
    torch = _torch()
    while x.shape[-1] > 1:
        w = x.shape[-1]
        h = w // 2
        y = x[..., :h] + x[..., h : 2 * h]
        x = torch.cat([y, x[..., 2 * h :]], dim=-1) if w % 2 else y
    return x[..., 0]


# -- the registry entry: "torch", "torch:DEVICE", "torch:DEVICE:DTYPE", "torch:DTYPE" ---------
def _parse_torch(args: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, Any]]:
    parts = list(args)
    dtype = parts.pop() if parts and parts[-1].lower() in PRECISION_NAMES else None
    device = ":".join(parts) or "auto"
    return (device, *([dtype] if dtype else [])), {"device": device, "dtype": dtype}


def _build_torch(vectors: Any, spec: Any, *, metric: str, **options: Any) -> TorchIndex:
    try:
        return TorchIndex(vectors, metric=metric, **options)
    except ValueError as exc:
        if "device" not in str(exc) and "dtype" not in str(exc):
            raise
        raise InputError(f"index {str(spec)!r} (torch[:DEVICE[:DTYPE]]): {exc}") from exc


def _register() -> None:
    from .registry import register_index

    register_index(
        "torch",
        build=_build_torch,
        load=TorchIndex.load,
        cls=TorchIndex,
        exact=True,
        parse=_parse_torch,
        corpus_block=lambda index: int(index.block_rows),
        syntax="torch[:DEVICE[:DTYPE]]",
    )


_register()

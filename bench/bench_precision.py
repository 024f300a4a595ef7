"""Encoder throughput against plain `SentenceTransformer.encode` (fp32, batch 32), and its faithfulness.

Why: the runtime's precision (bf16 on CPUs with native bf16) must buy speed without moving the vectors.
In one process, on the same SciFact passages (title + ". " + abstract, truncated at the model's maximum):
  baseline  SentenceTransformer.encode, fp32, batch 32;
  ours      bertsearch.models.Encoder().encode, in the precision select_runtime picks.
The two are timed back to back, alternating which goes first, `--rounds` times; the ratio is the median of
the per-round ratios, so background load hits both alike. Ours' first call is timed apart: on CPU bf16 it
includes torch.compile (once per process). Faithfulness: cosine of each passage's vector to fp32's.

Usage:
    python bench/bench_precision.py --passages 1000
Prints one JSON object and writes bench/results/precision.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from bertsearch.models.encoder import Encoder

RESULTS = Path(__file__).resolve().parent / "results"
SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact" / "corpus.jsonl.gz"


def load_passages(corpus: Path, limit: int) -> list[str]:
    """The first `limit` documents of a BEIR corpus as the indexer would see them: title + ". " + text."""
    texts = []
    with gzip.open(corpus, "rt", encoding="utf-8") if corpus.suffix == ".gz" else corpus.open() as lines:
        for line in lines:
            record = json.loads(line)
            texts.append(f"{record['title']}. {record['text']}" if record.get("title") else record["text"])
            if len(texts) == limit:
                break
    return texts


def timed(encode, texts: list[str]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    vectors = encode(texts)
    return time.perf_counter() - started, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=1000, help="how many corpus documents to encode")
    parser.add_argument("--rounds", type=int, default=2, help="timed baseline/ours pairs")
    parser.add_argument("--corpus", type=Path, default=SCIFACT, help="BEIR corpus.jsonl(.gz)")
    args = parser.parse_args()
    texts = load_passages(args.corpus, args.passages)

    ours = Encoder()
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(ours.info.path, device="cpu", local_files_only=True)

    def baseline(batch: list[str]) -> np.ndarray:
        with torch.inference_mode():
            return reference.encode(batch, batch_size=32, normalize_embeddings=True, show_progress_bar=False)

    baseline(texts[:32])
    first_call_seconds, _ = timed(ours.encode, texts)
    baseline_seconds, ours_seconds = [], []
    for round_number in range(args.rounds):
        runs = [("baseline", baseline), ("ours", ours.encode)]
        for name, encode in runs if round_number % 2 == 0 else runs[::-1]:
            seconds, vectors = timed(encode, texts)
            (baseline_seconds if name == "baseline" else ours_seconds).append(seconds)
            if name == "baseline":
                baseline_vectors = vectors
            else:
                ours_vectors = vectors

    cosine = (baseline_vectors * ours_vectors).sum(axis=1) / (
        np.linalg.norm(baseline_vectors, axis=1) * np.linalg.norm(ours_vectors, axis=1)
    )
    report = {
        "passages": len(texts),
        "device": ours.runtime.device,
        "precision": ours.runtime.precision,
        "torch_threads": torch.get_num_threads(),
        "baseline_passages_per_s": round(len(texts) / min(baseline_seconds), 1),
        "ours_passages_per_s": round(len(texts) / min(ours_seconds), 1),
        "speedup": round(statistics.median(b / o for b, o in zip(baseline_seconds, ours_seconds)), 2),
        "speedup_per_round": [round(b / o, 2) for b, o in zip(baseline_seconds, ours_seconds)],
        "ours_first_call_seconds": round(first_call_seconds, 1),
        "cosine_min": round(float(cosine.min()), 6),
        "cosine_mean": round(float(cosine.mean()), 6),
        "command": f"python bench/bench_precision.py --passages {args.passages} --rounds {args.rounds}",
        "cpu_count": os.cpu_count(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "precision.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

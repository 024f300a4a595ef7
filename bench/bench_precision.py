"""Every encoding path this CPU can run, against plain `SentenceTransformer.encode` (fp32, batch 32): speed and
faithfulness.

Why: indexing takes the fastest path that stays faithful (`bertsearch.device.encoding_path`): torch bf16 on CPUs
with bf16 matrix units, ONNX Runtime int8 on the others. This measures each path on the same passages so the choice
per CPU family rests on figures:
  baseline   SentenceTransformer.encode, fp32, batch 32;
  torch fp32 / torch bf16   bertsearch.models.Encoder (length-sorted token-budget batches; bf16 compiled);
  onnx fp32 / onnx int8     the model's ONNX forms (fused attention and LayerNorm; int8: MatMul weights per
                            channel, activations per batch), on all cores.
Per round every side encodes the passages once, the order rotating round by round so background load hits all
alike; a path's speed-up is the median of its per-round ratios to the baseline of the same round. Faithfulness:
the cosine of each passage's vector to the baseline's, and the fixed-sample check (`faithfulness.check_path`)
that decides whether indexing may take the path. `ATEN_CPU_CAPABILITY=avx2` (set by the caller) caps torch's
kernels at AVX2; ONNX Runtime has no such switch.

Usage:
    python bench/bench_precision.py --dataset ../shared/datasets/scifact --passages 1000 --rounds 2
Prints one JSON object and writes bench/results/precision.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bertsearch.beir import load_beir, read_corpus
from bertsearch.device import EncodingPath, Runtime, cpu_features
from bertsearch.models.encoder import Encoder
from bertsearch.models.faithfulness import check_path, cosines

RESULTS = Path(__file__).resolve().parent / "results"
PATHS = ("torch fp32", "torch bf16", "onnx fp32", "onnx int8")


@dataclass(frozen=True)
class Encodes:
    """A path's encode function where a TextEncoder is expected (the check calls only `encode`)."""

    encode: Callable[[list[str]], np.ndarray]


def path_encoder(name: str, fp32: Encoder) -> Callable[[list[str]], np.ndarray]:
    """The encode function of the path `name` ("engine precision"), on every core."""
    engine, precision = name.split()
    if engine == "torch":
        return fp32.encode if precision == "fp32" else Encoder(fp32.info.path, Runtime("cpu", precision)).encode
    from bertsearch.models.fast_encoding import indexing_encoder
    from bertsearch.models.onnx_export import export_encoder
    from bertsearch.models.onnx_runtime import ENCODER, all_cores, open_encoder

    if precision == "int8":
        return indexing_encoder(fp32, None, EncodingPath("onnx", "cpu", "int8")).encode
    assert export_encoder(fp32)
    form = open_encoder(fp32.info.fingerprint, ENCODER, all_cores(), fp32.tokenizer)
    assert form is not None
    return form.encode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="BEIR folder whose corpus is encoded")
    parser.add_argument("--passages", type=int, default=1000, help="how many corpus documents to encode")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated paths to measure")
    args = parser.parse_args()
    records = read_corpus(load_beir(args.dataset).corpus_path, args.passages)
    texts = [f"{r['title']}. {r['text']}" if r["title"] else r["text"] for r in records]

    fp32 = Encoder(runtime=Runtime("cpu", "fp32"))
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(fp32.info.path, device="cpu", local_files_only=True)

    def baseline(batch: list[str]) -> np.ndarray:
        with torch.inference_mode():
            return reference.encode(batch, batch_size=32, normalize_embeddings=True, show_progress_bar=False)

    names = [name.strip() for name in args.paths.split(",")]
    sides: dict[str, Callable[[list[str]], np.ndarray]] = {"baseline": baseline}
    checks = {}
    first_call = {}
    for name in names:
        sides[name] = path_encoder(name, fp32)
        checks[name] = check_path(Encodes(sides[name]), fp32, name).to_json()
        started = time.perf_counter()
        sides[name](texts)  # the first call compiles (torch bf16) or warms the session up
        first_call[name] = round(time.perf_counter() - started, 1)

    seconds: dict[str, list[float]] = {side: [] for side in sides}
    vectors: dict[str, np.ndarray] = {}
    order = list(sides)
    for round_number in range(args.rounds):
        for side in order[round_number % len(order):] + order[:round_number % len(order)]:
            started = time.perf_counter()
            vectors[side] = sides[side](texts)
            seconds[side].append(time.perf_counter() - started)

    report = {
        "cpu": {**cpu_features().report(), "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY", "")},
        "passages": len(texts),
        "rounds": args.rounds,
        "baseline_passages_per_s": round(len(texts) / statistics.median(seconds["baseline"]), 1),
        "paths": {
            name: {
                "passages_per_s": round(len(texts) / statistics.median(seconds[name]), 1),
                "speedup": round(statistics.median(b / o for b, o in zip(seconds["baseline"], seconds[name])), 2),
                "first_call_seconds": first_call[name],
                "cosine_to_baseline": {"min": round(float(cosines(vectors[name], vectors["baseline"]).min()), 6),
                                       "mean": round(float(cosines(vectors[name], vectors["baseline"]).mean()), 6)},
                "sample_check": checks[name],
            }
            for name in names
        },
        "command": ("ATEN_CPU_CAPABILITY=" + os.environ["ATEN_CPU_CAPABILITY"] + " "
                    if os.environ.get("ATEN_CPU_CAPABILITY") else "")
        + f"python bench/bench_precision.py --dataset {args.dataset} --passages {args.passages} --rounds {args.rounds}"
        + (f" --paths '{args.paths}'" if args.paths != ",".join(PATHS) else ""),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "precision.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

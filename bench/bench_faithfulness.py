"""How far from fp32 may an index's vectors be before search moves? The bound behind `faithfulness.MIN_PATH_COSINE`.

Why: a fast encoding path (bf16, int8) is taken only if its vectors of a fixed sample stay within a cosine bound of
fp32's; the issue's requirement is that no pipeline's nDCG@10 moves by more than 0.005. This measures both sides:

- perturbed copies of an fp32 index: every passage vector turned to exactly cosine `c` with itself (towards a
  random direction orthogonal to it), for each level `c` in `--levels` and `--seeds` random draws, then every
  pipeline evaluated, so the nDCG@10 change is known as a function of the cosine every vector keeps (and how
  much of it is the noise of near-ties that any change reorders);
- real indexes written by other paths (`--path NAME=DIR`): their nDCG@10 change, the cosine of each of their
  passage vectors to the fp32 index's (min, 0.1% quantile, mean), and the sample check's figures recorded in them.
Queries are encoded the same way for every index (the model's ONNX form, fp32), as one-off commands do.

Usage (the indexes from `bertsearch eval`, one per path, e.g. BERTSEARCH_PRECISION=fp32 / default / int8):
    python bench/bench_faithfulness.py --dataset ../shared/datasets/scifact --reference IDX_FP32 \
        --path bf16=IDX_BF16 --path int8=IDX_INT8
Writes bench/results/faithfulness.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

import numpy as np

from bertsearch.beir import load_beir
from bertsearch.evaluation import evaluate
from bertsearch.models.loading import load_query_encoder
from bertsearch.search import Searcher
from bertsearch.settings import read_encodings
from bertsearch.stores import open_store
from bertsearch.stores.embedded.vectors import remove_vector_files

RESULTS = Path(__file__).resolve().parent / "results"
PIPELINES = ("dense", "bm25", "hybrid")
DATABASE = "store.sqlite3"


def read_vectors(index_dir: Path) -> tuple[list[tuple[str, int]], list[int], np.ndarray]:
    """Every passage's (doc_id, position), row id and vector, in row-id order."""
    with sqlite3.connect(f"file:{index_dir / DATABASE}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT id, doc_id, position, vector FROM passages ORDER BY id").fetchall()
    vectors = np.stack([np.frombuffer(row[3], dtype=np.float32) for row in rows])
    return [(row[1], row[2]) for row in rows], [row[0] for row in rows], vectors


def turned(vectors: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """Each unit vector moved to cosine exactly `cosine` with itself, towards a random orthogonal direction."""
    noise = rng.standard_normal(vectors.shape)
    noise -= np.sum(noise * vectors, axis=1, keepdims=True) * vectors
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return (cosine * vectors + np.sqrt(1.0 - cosine**2) * noise).astype(np.float32)


def perturbed_copy(reference: Path, target: Path, row_ids: list[int], vectors: np.ndarray) -> Path:
    """A copy of the index at `reference` whose passage vectors are `vectors` (its FAISS file rebuilt on open)."""
    shutil.copytree(reference, target)
    with sqlite3.connect(target / DATABASE) as db:
        db.executemany("UPDATE passages SET vector = ? WHERE id = ?",
                       [(vector.tobytes(), row) for row, vector in zip(row_ids, vectors)])
    remove_vector_files(target)
    return target


def relevance(index_dir: Path, dataset, encoder) -> dict[str, float]:  # noqa: ANN001 - BeirDataset, QueryEncoder
    with open_store(index_dir) as store:
        scores = evaluate(Searcher(store, encoder), dataset, PIPELINES)
    return {mode: round(metrics["nDCG@10"], 4) for mode, metrics in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="BEIR folder the indexes hold")
    parser.add_argument("--split", default="test")
    parser.add_argument("--reference", type=Path, required=True, help="an index encoded in fp32")
    parser.add_argument("--path", action="append", default=[], help="NAME=DIR: an index written by another path")
    parser.add_argument("--levels", default="0.999,0.995,0.99,0.985,0.98,0.97,0.95",
                        help="cosines every perturbed vector keeps")
    parser.add_argument("--seed", type=int, default=0, help="the first seed of the random directions")
    parser.add_argument("--seeds", type=int, default=3, help="perturbed copies per level")
    args = parser.parse_args()
    dataset = load_beir(args.dataset, args.split)
    with open_store(args.reference) as store:
        settings = store.settings
    encoder = load_query_encoder(settings.model_path, settings.model_fingerprint)
    reference = relevance(args.reference, dataset, encoder)
    keys, row_ids, vectors = read_vectors(args.reference)
    position = {key: i for i, key in enumerate(keys)}

    paths = {}
    for spec in args.path:
        name, _, folder = spec.partition("=")
        their_keys, _, theirs = read_vectors(Path(folder))
        matched = np.array([position[key] for key in their_keys])
        found = np.sum(theirs.astype(np.float64) * vectors[matched].astype(np.float64), axis=1)
        scores = relevance(Path(folder), dataset, encoder)
        paths[name] = {
            "recorded": [record.__dict__ for record in read_encodings(Path(folder))],
            "corpus_cosine": {"min": round(float(found.min()), 6), "q0.001": round(float(np.quantile(found, 0.001)), 6),
                              "mean": round(float(found.mean()), 6)},
            "nDCG@10": scores,
            "delta": {mode: round(scores[mode] - reference[mode], 4) for mode in PIPELINES},
        }

    work = Path(tempfile.mkdtemp(prefix="bertsearch-faithfulness-"))
    levels = {}
    for text in args.levels.split(","):
        cosine = float(text)
        runs = []
        for seed in range(args.seed, args.seed + args.seeds):
            copy = perturbed_copy(args.reference, work / f"{text}-{seed}", row_ids,
                                  turned(vectors, cosine, np.random.default_rng(seed)))
            scores = relevance(copy, dataset, encoder)
            runs.append({mode: round(scores[mode] - reference[mode], 4) for mode in PIPELINES})
            shutil.rmtree(copy)
        levels[text] = {"delta_per_seed": runs,
                        "worst_abs_delta": {mode: max(abs(run[mode]) for run in runs) for mode in PIPELINES}}
    shutil.rmtree(work, ignore_errors=True)

    report = {
        "dataset": f"{dataset.name} ({args.split}, {len(dataset.queries)} queries, {len(keys)} passages)",
        "reference_nDCG@10": reference,
        "paths": paths,
        "perturbed": levels,
        "command": f"python bench/bench_faithfulness.py --dataset {args.dataset} --reference {args.reference}"
        + "".join(f" --path {spec}" for spec in args.path) + f" --levels {args.levels} --seeds {args.seeds}",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "faithfulness.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

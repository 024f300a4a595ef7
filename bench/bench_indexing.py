"""Indexing throughput of `bertsearch index` against plain `SentenceTransformer.encode`, and its faithfulness.

In one run, on the same passages (the corpus chunked exactly as the index chunks it):
  baseline  SentenceTransformer.encode, fp32, batch 32 — encoding alone;
  ours      the whole indexing pipeline (read, hash, chunk, encode, write SQLite + FAISS) into a new index.
The ratio is baseline seconds / ours seconds. Faithfulness: the baseline's fp32 vectors are written into a
second index with the same passages, and nDCG@10 of both indexes is measured with ir-measures.

Usage:
    python bench/bench_indexing.py --dataset ../shared/datasets/scifact [--limit-docs N]
Prints one JSON object and writes bench/results/indexing.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bertsearch.beir import load_beir
from bertsearch.device import cpu_features
from bertsearch.evaluation import evaluate
from bertsearch.models.loading import default_model_path
from bertsearch.search import Searcher
from bertsearch.settings import IndexSettings, read_encodings
from bertsearch.stores import StoreLocation, create_store
from bertsearch.stores.base import EncodedDocument
from bertsearch.types import Document
from bertsearch.indexer.chunking import chunk_document
from bertsearch.indexer.pipeline import Indexer, content_hash, open_index_for_writing
from bertsearch.indexer.readers import iter_documents

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="BEIR folder (corpus, queries, qrels)")
    parser.add_argument("--limit-docs", type=int, default=0, help="index only the first N documents (0: all)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating ours/baseline pairs")
    args = parser.parse_args()
    dataset = load_beir(args.dataset, "test")
    work = Path(tempfile.mkdtemp(prefix="bertsearch-bench-"))
    corpus = work / "corpus.jsonl"
    with corpus.open("w", encoding="utf-8") as out:
        for i, item in enumerate(iter_documents([dataset.corpus_path])):
            if args.limit_docs and i >= args.limit_docs:
                break
            if isinstance(item, Document):
                out.write(json.dumps({"_id": item.doc_id, "title": item.title, "text": item.text}) + "\n")
    documents = [d for d in iter_documents([corpus]) if isinstance(d, Document)]

    # Ours: the real pipeline, end to end, into a fresh index (model load and the path's one-off check excluded,
    # as the baseline's model load is), on the encoding path this machine gets (`device.encoding_path`).
    # Baseline: the same passages through plain SentenceTransformer.encode, fp32, batch 32.
    # The two alternate `--rounds` times; the speed-up is the median of the per-round ratios.
    from sentence_transformers import SentenceTransformer

    from bertsearch.models.fast_encoding import indexing_encoder

    baseline_model = SentenceTransformer(str(default_model_path()), device="cpu")
    baseline_model.encode(["warm-up"] * 8)
    ours_seconds, baseline_seconds, ratios = [], [], []
    for round_number in range(args.rounds):
        ours_location = StoreLocation(index_dir=work / f"ours-{round_number}")
        store, encoder, chunking = open_index_for_writing(ours_location)
        fast = indexing_encoder(encoder, ours_location.index_dir)
        fast.encode(["warm-up"] * 8)
        passages = [chunk_document(d, encoder.tokenizer, chunking.max_tokens, chunking.overlap_tokens)
                    for d in documents]
        texts = [p.encoder_input() for doc_passages in passages for p in doc_passages]

        def run_ours() -> None:
            started = time.perf_counter()
            with store:
                summary = Indexer(store, fast, chunking).index([corpus])
            ours_seconds.append(time.perf_counter() - started)
            assert len(texts) == summary.passages_encoded

        def run_baseline() -> None:
            nonlocal baseline_vectors
            started = time.perf_counter()
            with torch.inference_mode():
                baseline_vectors = baseline_model.encode(texts, batch_size=32, normalize_embeddings=True)
            baseline_seconds.append(time.perf_counter() - started)

        baseline_vectors = None
        for run in (run_ours, run_baseline) if round_number % 2 == 0 else (run_baseline, run_ours):
            run()
        ratios.append(baseline_seconds[-1] / ours_seconds[-1])
    ours_dir = work / f"ours-{args.rounds - 1}"
    path = read_encodings(ours_dir)[-1]

    # The fp32 reference index: same passages, baseline vectors.
    reference_dir = work / "fp32"
    settings = IndexSettings(model_path=encoder.info.path, model_fingerprint=encoder.info.fingerprint,
                             dimensions=encoder.info.dimensions, chunking=chunking)
    offset = 0
    with create_store(reference_dir, settings) as reference:
        batch = []
        for document, doc_passages in zip(documents, passages):
            vectors = baseline_vectors[offset : offset + len(doc_passages)]
            offset += len(doc_passages)
            batch.append(EncodedDocument(document, content_hash(document), doc_passages, vectors))
        reference.write(batch)

    relevance = {}
    for name, folder in (("ours", ours_dir), ("fp32", reference_dir)):
        from bertsearch.stores import open_store

        with open_store(folder) as opened:
            scores = evaluate(Searcher(opened, encoder), dataset, ("dense", "bm25", "hybrid"))
        relevance[name] = {mode: round(metrics["nDCG@10"], 4) for mode, metrics in scores.items()}

    report = {
        "documents": len(documents),
        "passages": len(texts),
        "path": path.path,
        "path_check": {"min_cosine": path.min_cosine, "mean_cosine": path.mean_cosine, "bound": path.bound},
        "cpu": cpu_features().report(),
        "torch_threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "baseline_seconds": [round(x, 1) for x in baseline_seconds],
        "baseline_passages_per_s": round(len(texts) / statistics.median(baseline_seconds), 1),
        "ours_seconds": [round(x, 1) for x in ours_seconds],
        "ours_passages_per_s": round(len(texts) / statistics.median(ours_seconds), 1),
        "speedup": round(statistics.median(ratios), 2),
        "nDCG@10": relevance,
        "nDCG@10_delta": {mode: round(relevance["ours"][mode] - relevance["fp32"][mode], 4)
                          for mode in relevance["ours"]},
        "command": "python bench/bench_indexing.py --dataset " + str(args.dataset)
        + (f" --limit-docs {args.limit_docs}" if args.limit_docs else "") + f" --rounds {args.rounds}"
        + (f" (BERTSEARCH_PRECISION={os.environ['BERTSEARCH_PRECISION']})" if os.environ.get("BERTSEARCH_PRECISION")
           else ""),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "indexing.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

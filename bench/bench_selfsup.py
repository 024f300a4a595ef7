"""Self-supervised reranking: does the check on pseudo-queries predict what real queries show?

For each collection: index its corpus, train with the README's command on that index alone
(`bertsearch train-reranker --index-dir IDX --self-supervised --output R`, timed), then rerank the top 20 of the
first stage (hybrid and dense) for the collection's real judged queries, which training never sees. Reports per
first stage: nDCG@10 alone, reranked as the reranker's own check says (a refused reranker is not used, so it
changes nothing), the check's predicted gain next to the real gain, and the same for the reranker alone
(weight 1); then the steps trained and the minutes taken. Writes bench/results/selfsup.json (one entry per
collection, replaced on each run).

Usage (each collection is one run, under the CPU lock):
    python bench/bench_selfsup.py --collection scifact --work /tmp/selfsup-bench
    python bench/bench_selfsup.py --collection scifact-train-split --work /tmp/selfsup-bench

Collections:
    scifact              SciFact's 5,183 abstracts and its 300 test claims.
    scifact-train-split  A stand-in for a second public collection (none with a clear licence was reachable
                         offline): SciFact's train claims whose cited abstracts are cited by no test claim, over
                         those abstracts and the first uncited abstracts of the corpus, 2,000 in all.
    PATH                 Any BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench_rerank import ranked_run

from bertsearch.beir import load_beir, open_text, read_qrels
from bertsearch.evaluation import score_run
from bertsearch.models.cross_encoder import CrossEncoder
from bertsearch.rerank import DEFAULT_RERANK_DEPTH, read_metadata
from bertsearch.search import open_searcher
from bertsearch.types import passage_text

RESULTS = Path(__file__).resolve().parent / "results"
SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"
SPLIT_DOCUMENTS = 2000


def scifact_train_split(source: Path, target: Path) -> Path:
    """The stand-in collection (see the module's docstring) as a BEIR folder at `target`."""
    if (target / "qrels" / "test.tsv").is_file():
        return target
    test_docs = {d for docs in read_qrels(source / "qrels" / "test.tsv").values() for d in docs}
    train = read_qrels(source / "qrels" / "train.tsv")
    kept = {q: docs for q, docs in train.items() if not set(docs) & test_docs}
    cited = {d for docs in kept.values() for d in docs}
    every_cited = test_docs | {d for docs in train.values() for d in docs}
    records = []
    with open_text(source / "corpus.jsonl.gz") as handle:
        for line in handle:
            record = json.loads(line)
            if record["_id"] in cited:
                records.append(record)
    with open_text(source / "corpus.jsonl.gz") as handle:
        for line in handle:
            if len(records) >= SPLIT_DOCUMENTS:
                break
            record = json.loads(line)
            if record["_id"] not in every_cited:
                records.append(record)
    (target / "qrels").mkdir(parents=True, exist_ok=True)
    with (target / "corpus.jsonl").open("w") as out:
        for record in records:
            out.write(json.dumps({"_id": record["_id"], "title": record["title"], "text": record["text"]}) + "\n")
    with open_text(source / "queries.jsonl.gz") as handle, (target / "queries.jsonl").open("w") as out:
        for line in handle:
            record = json.loads(line)
            if record["_id"] in kept:
                out.write(json.dumps({"_id": record["_id"], "text": record["text"]}) + "\n")
    with (target / "qrels" / "test.tsv").open("w") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for query_id, docs in kept.items():
            for doc_id, score in docs.items():
                out.write(f"{query_id}\t{doc_id}\t{score}\n")
    return target


def bertsearch(*args: str) -> None:
    """Run the `bertsearch` command installed beside this Python."""
    command = shutil.which("bertsearch", path=str(Path(sys.executable).parent)) or "bertsearch"
    subprocess.run([command, *args], check=True)


def real_effect(index_dir: Path, reranker: Path, dataset_dir: Path, depth: int) -> dict:
    """First stage vs. reranked on the collection's real queries, next to what the check predicted."""
    dataset = load_beir(dataset_dir, "test")
    metadata = read_metadata(reranker)
    check = metadata.check
    assert check is not None, "a self-supervised reranker is always checked"
    used = check.blend_weight if check.helps else 0.0  # refused: not used, the first stage stands
    scorer = CrossEncoder(reranker, metadata.max_length, None, metadata.scale, metadata.bias)
    searcher = open_searcher(index_dir, engine="torch")
    report: dict = {"queries": len(dataset.queries), "weight_used": used}
    with searcher.store:
        for mode in ("hybrid", "dense"):
            candidates, scores = {}, {}
            for query_id, text in dataset.queries.items():
                hits = searcher.search(text, k=100, mode=mode, rerank=False).hits
                candidates[query_id] = [h.doc_id for h in hits]
                scores[query_id] = scorer.score(text, [passage_text(h.title, h.passage) for h in hits[:depth]])

            def ndcg(weight: float | None, candidates: dict = candidates, scores: dict = scores) -> float:
                return round(score_run(dataset.qrels, ranked_run(candidates, scores, depth, weight))["nDCG@10"], 4)

            first, reranked, alone = ndcg(None), ndcg(used) if used else ndcg(None), ndcg(1.0)
            report[mode] = {"first_stage": first, "reranked": reranked, "real_gain": round(reranked - first, 4),
                            "rerank_only": alone, "real_gain_rerank_only": round(alone - first, 4)}
    report["check"] = {**check.__dict__, "predicted_gain": round(check.blend - check.first_stage, 4),
                       "predicted_gain_rerank_only": round(check.rerank_only - check.first_stage, 4)}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collection", required=True, help="scifact, scifact-train-split, or a BEIR folder")
    parser.add_argument("--work", type=Path, required=True, help="Folder for the index and the reranker.")
    parser.add_argument("--scifact", type=Path, default=SCIFACT)
    parser.add_argument("--depth", type=int, default=DEFAULT_RERANK_DEPTH)
    parser.add_argument("--skip-training", action="store_true", help="Measure the reranker already in --work.")
    parser.add_argument("train_args", nargs="*", help="Extra train-reranker options, after `--`.")
    args = parser.parse_args()

    name = args.collection
    if name == "scifact":
        dataset_dir = args.scifact
    elif name == "scifact-train-split":
        dataset_dir = scifact_train_split(args.scifact, args.work / name)
    else:
        dataset_dir, name = Path(name), Path(name).name
    index_dir, reranker = args.work / f"{name}-index", args.work / f"{name}-reranker"
    corpus = next(p for p in (dataset_dir / "corpus.jsonl", dataset_dir / "corpus.jsonl.gz") if p.is_file())
    started = time.perf_counter()
    bertsearch("index", str(corpus), "--index-dir", str(index_dir))
    indexing_minutes = (time.perf_counter() - started) / 60
    command = ["train-reranker", "--index-dir", str(index_dir), "--self-supervised", "--output", str(reranker),
               *args.train_args]
    started = time.perf_counter()
    if not args.skip_training:
        bertsearch(*command)
    training_minutes = (time.perf_counter() - started) / 60
    report = real_effect(index_dir, reranker, dataset_dir, args.depth)
    metadata = read_metadata(reranker)
    report.update({
        "collection": name,
        "command": "bertsearch " + " ".join(command),
        "steps": metadata.steps,
        "steps_run": metadata.validation.get("stopped_early_at") or metadata.training.get("total_steps"),
        "training_minutes": round(metadata.training["seconds"] / 60, 1) if args.skip_training else
        round(training_minutes, 1),
        "indexing_minutes": round(indexing_minutes, 1),
        "device": f"{metadata.training.get('device')} {metadata.training.get('precision')}",
    })
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "selfsup.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[name] = report
    path.write_text(json.dumps(results, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

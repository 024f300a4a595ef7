"""Indexing beside another busy process: does each `bertsearch index` keep its share of the cores?

Why: torch runs its matrix work on OpenMP threads, and OpenMP threads that finish a parallel region spin for a
while before they sleep. Alone that saves a wake-up; beside another process doing the same, each spinning thread
takes a core the other needs, and both slow down far more than by half.

Each round, per variant (an environment to run the indexer in):
  alone    one `bertsearch index` of the first `--docs` SciFact documents into a new index;
  beside   two such runs at once, each into its own new index.
Throughput is passages / encoding seconds (the summary's own timing, which leaves out start-up). Reported per
variant: the median passages/s alone and beside, and `kept` = beside / alone (fair sharing of two cores keeps
about 0.5; the target is >= 0.4). Variants alternate within each round so slow spells fall on all alike.

Usage:
    python bench/bench_sharing.py --dataset ../shared/datasets/scifact --docs 1000 --rounds 2 \
        --variant default= --variant spinning=OMP_WAIT_POLICY=ACTIVE --variant fp32=BERTSEARCH_PRECISION=fp32
Writes bench/results/sharing.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bertsearch.beir import load_beir, open_text
from bertsearch.device import cpu_features

RESULTS = Path(__file__).resolve().parent / "results"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "BERTSEARCH_QUERY_LOG": "off"}


def write_slice(dataset: Path, docs: int, target: Path) -> Path:
    """The first `docs` documents of the corpus as a BEIR JSONL file the indexer reads."""
    with open_text(load_beir(dataset, "test").corpus_path) as lines, target.open("w", encoding="utf-8") as out:
        out.writelines(line for _, line in zip(range(docs), lines))
    return target


def start_index(corpus: Path, index_dir: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    shutil.rmtree(index_dir, ignore_errors=True)
    return subprocess.Popen([sys.executable, "-m", "bertsearch.cli.main", "index", str(corpus), "--index-dir",
                             str(index_dir), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **OFFLINE, **env}, cwd=cwd)


def throughput(process: subprocess.Popen) -> float:
    """Passages per second of encoding and writing, from the run's own summary."""
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"index failed ({process.returncode}): {err.strip()[-500:]}")
    summary = json.loads(out)
    return summary["passages_encoded"] / summary["seconds"]


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, assignments = text.partition("=")
    env = {}
    for assignment in filter(None, assignments.split(",")):
        key, _, value = assignment.partition("=")
        env[key] = value
    return name, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="BEIR folder; its corpus is indexed")
    parser.add_argument("--docs", type=int, default=1000, help="documents per indexing run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=VAR=VALUE[,VAR=VALUE...]: an environment to index in (NAME= for as installed)")
    args = parser.parse_args()
    variants = [parse_variant(text) for text in (args.variant or ["default="])]
    work = Path(tempfile.mkdtemp(prefix="bertsearch-sharing-"))
    corpus = write_slice(args.dataset, args.docs, work / "corpus.jsonl")
    alone: dict[str, list[float]] = {name: [] for name, _ in variants}
    beside: dict[str, list[float]] = {name: [] for name, _ in variants}
    for round_number in range(args.rounds):
        order = variants if round_number % 2 == 0 else variants[::-1]
        for name, env in order:
            alone[name].append(throughput(start_index(corpus, work / "a", env, work)))
            pair = [start_index(corpus, work / side, env, work) for side in ("b", "c")]
            beside[name].extend(throughput(process) for process in pair)
            print(f"round {round_number + 1} {name}: alone {alone[name][-1]:.1f}/s, beside "
                  f"{beside[name][-2]:.1f} + {beside[name][-1]:.1f}/s", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    report = {
        "cpu": cpu_features().report(),
        "docs": args.docs,
        "rounds": args.rounds,
        "variants": {
            name: {"env": env,
                   "alone_passages_per_s": round(statistics.median(alone[name]), 1),
                   "beside_passages_per_s": round(statistics.median(beside[name]), 1),
                   "kept": round(statistics.median(beside[name]) / statistics.median(alone[name]), 2),
                   "runs": {"alone": [round(x, 1) for x in alone[name]], "beside": [round(x, 1) for x in beside[name]]}}
            for name, env in variants},
        "command": "python bench/bench_sharing.py --dataset " + str(args.dataset) + f" --docs {args.docs} --rounds "
        f"{args.rounds}" + "".join(f" --variant {text}" for text in args.variant),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sharing.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

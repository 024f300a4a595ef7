"""Re-run the relevance figures the docs state and fail if one has drifted beyond the recorded tolerance.

Usage:
    python bench/check_relevance.py ../shared/datasets/scifact [--index-dir DIR] \\
        [--reranker qrels=DIR] [--reranker self-supervised=DIR] [--expected bench/expected/scifact.json]

Each pipeline in the expected file (bench/expected/scifact.json: dense, bm25, hybrid) is measured by
`bertsearch eval DATASET --index-dir DIR --json`, run by this interpreter; the index is built by that command in a
temporary folder unless `--index-dir` names one. The +rerank pipelines are checked for each reranker folder given
(`NAME=DIR`, NAME a key of the file's "rerankers", the folder trained by its "train_command"); the others are
listed as not checked. Prints one line per measure and exits 1 if any differs from its expected value by more
than the file's tolerance (or is missing), 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

EXPECTED = Path(__file__).resolve().parent / "expected" / "scifact.json"

Figures = dict[str, dict[str, float]]  # pipeline → measure → value


@dataclass(frozen=True)
class Comparison:
    """One expected figure against its measured value (None when the run did not report it)."""

    pipeline: str
    measure: str
    expected: float
    measured: float | None
    tolerance: float

    @property
    def drifted(self) -> bool:
        return self.measured is None or abs(self.measured - self.expected) > self.tolerance

    def line(self) -> str:
        measured = "missing" if self.measured is None else f"{self.measured:.4f}"
        delta = "" if self.measured is None else f" ({self.measured - self.expected:+.4f})"
        verdict = "DRIFT" if self.drifted else "ok"
        return (f"{verdict:<5}  {self.pipeline:<14} {self.measure:<8} expected {self.expected:.3f}  "
                f"measured {measured}{delta}")


def compare(expected: Figures, measured: Figures, tolerance: float) -> list[Comparison]:
    """Every expected figure against the measured one of the same pipeline and measure."""
    return [Comparison(pipeline, measure, value, measured.get(pipeline, {}).get(measure), tolerance)
            for pipeline, measures in expected.items() for measure, value in measures.items()]


def run_eval(dataset: Path, index_dir: Path, pipelines: list[str], reranker: Path | None) -> Figures:
    """`bertsearch eval ... --json` as a user runs it (progress goes to stderr, shown as it comes)."""
    command = [sys.executable, "-m", "bertsearch.cli.main", "eval", str(dataset), "--index-dir", str(index_dir),
               "--pipelines", ",".join(pipelines), "--json"]
    if reranker is not None:
        command += ["--reranker", str(reranker)]
    print("$ bertsearch " + " ".join(command[3:]), flush=True)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bertsearch eval failed with exit code {done.returncode}")
    return json.loads(done.stdout)


def parse_rerankers(values: list[str], known: dict[str, object]) -> dict[str, Path]:
    rerankers = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep or name not in known:
            raise SystemExit(f"--reranker takes NAME=DIR, NAME one of {', '.join(known)}; got {value!r}")
        rerankers[name] = Path(folder)
    return rerankers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="the BEIR folder of the dataset (e.g. SciFact)")
    parser.add_argument("--index-dir", type=Path, help="an index folder to (re)use [default: a temporary one]")
    parser.add_argument("--reranker", action="append", default=[], metavar="NAME=DIR",
                        help="a reranker folder to check the +rerank figures of")
    parser.add_argument("--expected", type=Path, default=EXPECTED)
    args = parser.parse_args()

    expected = json.loads(args.expected.read_text(encoding="utf-8"))
    tolerance = float(expected["tolerance"])
    rerankers = parse_rerankers(args.reranker, expected["rerankers"])
    with tempfile.TemporaryDirectory(prefix="check-relevance-") as scratch:
        index_dir = args.index_dir or Path(scratch) / "index"
        comparisons = compare(expected["pipelines"],
                              run_eval(args.dataset, index_dir, list(expected["pipelines"]), None), tolerance)
        for name, folder in rerankers.items():
            recorded = expected["rerankers"][name]["pipelines"]
            first_stages = [pipeline.partition("+")[0] for pipeline in recorded]
            measured = run_eval(args.dataset, index_dir, first_stages, folder)
            comparisons += compare({f"{pipeline} ({name})": figures for pipeline, figures in recorded.items()},
                                   {f"{pipeline} ({name})": figures for pipeline, figures in measured.items()},
                                   tolerance)

    print(f"{args.expected.name}: tolerance {tolerance}, measured {expected['measured']} on {expected['machine']}")
    for comparison in comparisons:
        print(comparison.line())
    for name in expected["rerankers"]:
        if name not in rerankers:
            print(f"not checked: the +rerank figures of the {name} reranker (give --reranker {name}=DIR)")
    drifted = [c for c in comparisons if c.drifted]
    print(f"{len(drifted)} of {len(comparisons)} figures drifted beyond {tolerance}" if drifted
          else f"all {len(comparisons)} figures within {tolerance}")
    sys.exit(1 if drifted else 0)


if __name__ == "__main__":
    main()

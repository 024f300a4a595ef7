"""The command line as a user runs it: whole processes, timed in one sitting against the torch path.

Usage:
    bertsearch index ../shared/datasets/scifact/corpus.jsonl.gz --index-dir /tmp/scifact-idx
    python bench/bench_cli.py --index-dir /tmp/scifact-idx --queries ../shared/datasets/scifact/queries.jsonl.gz \
        [--reranker DIR] [--baseline-python /path/to/other/venv/bin/python]

Each command runs `--runs` times (after one warm-up) on every side, the sides alternating run by run so that the
machine's slow spells fall on all of them alike:
- `onnx`: this code as installed (queries on the models' ONNX forms);
- `torch`: this code with BERTSEARCH_ENGINE=torch (queries load torch, as before the ONNX forms existed);
- `baseline`: another install's interpreter (`--baseline-python`, e.g. a venv of an older commit's worktree).
Commands: `--version`, `query` in each mode, `query` reranking the top 20 with `--reranker`, and `query --url`
against a warm `bertsearch serve` of the same index. Queries cycle through the dataset's first `--runs` queries.
Reported: wall time p50/p95 and peak RSS (of the process, from wait4) per command and side, the ratio of p50s
against the `torch` side (and the baseline), and the one-off cost of writing the ONNX forms (a fresh cache).

Writes bench/results/cli.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "BERTSEARCH_QUERY_LOG": "off"}
SERVER_START_TIMEOUT = 300.0


@dataclass
class Side:
    """One way of running the command line: an interpreter and extra environment."""

    name: str
    python: str
    env: dict[str, str] = field(default_factory=dict)

    def command(self, args: list[str]) -> list[str]:
        return [self.python, "-m", "bertsearch.cli.main", *args]


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)
    peak_rss_mb: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        return {"p50_s": round(float(np.percentile(self.seconds, 50)), 3),
                "p95_s": round(float(np.percentile(self.seconds, 95)), 3),
                "peak_rss_mb": round(float(np.max(self.peak_rss_mb)), 1), "runs": len(self.seconds)}


def run_once(side: Side, args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall time (s) and peak RSS (MB) of one whole process, started from outside the repository."""
    env = {**os.environ, **OFFLINE, **side.env}
    started = time.perf_counter()
    process = subprocess.Popen(side.command(args), cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(side.command(args))} failed ({process.returncode}):\n{stderr}")
    return seconds, usage.ru_maxrss / 1024


def read_queries(path: Path, limit: int) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line, _ in zip(handle, range(limit))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(side: Side, index_dir: Path, cwd: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(side.command(["serve", "--index-dir", str(index_dir), "--port", str(port),
                                             "--query-log", "off"]),
                               cwd=cwd, env={**os.environ, **OFFLINE, **side.env}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("bertsearch serve exited before answering")
        try:
            with urllib.request.urlopen(url + "/api/health", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit(f"bertsearch serve did not answer within {SERVER_START_TIMEOUT:.0f} s")


def export_cost(python: str, index_dir: Path, reranker: Path | None, cwd: Path) -> dict[str, float]:
    """Seconds to write the ONNX forms once, each in a process of its own with an empty cache (torch loaded first,
    as `bertsearch index` and `train-reranker` have it loaded when they write them)."""
    script = """
import json, sys, time
from pathlib import Path
from bertsearch.models.encoder import Encoder
from bertsearch.models.onnx_export import export_encoder
from bertsearch.rerank import prepare_query_reranker
encoder = Encoder()
started = time.perf_counter(); assert export_encoder(encoder); encoder_s = time.perf_counter() - started
reranker_s = None
if sys.argv[1]:
    started = time.perf_counter(); prepare_query_reranker(Path(sys.argv[1])); reranker_s = time.perf_counter() - started
print(json.dumps({"encoder_s": round(encoder_s, 2), "reranker_s": reranker_s and round(reranker_s, 2)}))
"""
    with tempfile.TemporaryDirectory(prefix="bench-cli-cache-") as cache:
        result = subprocess.run([python, "-c", script, str(reranker or "")], cwd=cwd, capture_output=True, text=True,
                                env={**os.environ, **OFFLINE, "BERTSEARCH_CACHE_DIR": cache}, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True, help="BEIR queries.jsonl[.gz]")
    parser.add_argument("--reranker", type=Path, help="A reranker folder, to time `query` reranking the top 20.")
    parser.add_argument("--baseline-python", help="The interpreter of another install to compare with.")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    index_dir = args.index_dir.resolve()
    queries = read_queries(args.queries, args.runs)
    sides = [Side("onnx", sys.executable), Side("torch", sys.executable, {"BERTSEARCH_ENGINE": "torch"})]
    if args.baseline_python:
        sides.append(Side("baseline", args.baseline_python))
    cwd = Path(tempfile.mkdtemp(prefix="bench-cli-"))  # outside the repository: `python -m` imports the install
    commands: dict[str, tuple[list[Side], object]] = {
        "--version": (sides, lambda i: ["--version"]),
        **{f"query --mode {mode}": (sides, lambda i, mode=mode: ["query", queries[i], "--index-dir", str(index_dir),
                                                                  "--mode", mode])
           for mode in ("bm25", "dense", "hybrid")},
    }
    if args.reranker:
        commands["query, reranking the top 20"] = (sides, lambda i: [
            "query", queries[i], "--index-dir", str(index_dir), "--reranker", str(args.reranker.resolve()),
            "--rerank-depth", "20", "--force"])
    server, url = start_server(sides[0], index_dir, cwd)
    try:
        commands["query --url (a warm server)"] = (sides[:1], lambda i: ["query", queries[i], "--url", url])
        for _ in range(3):  # the server's own warm-up
            run_once(sides[0], ["query", queries[0], "--url", url], cwd)
        timings: dict[str, dict[str, Timing]] = {}
        for name, (command_sides, make_args) in commands.items():
            timings[name] = {side.name: Timing() for side in command_sides}
            for side in command_sides:
                run_once(side, make_args(0), cwd)  # warm-up: page cache, the ONNX forms written if missing
            for i in range(args.runs):
                for side in command_sides if i % 2 == 0 else reversed(command_sides):
                    seconds, rss = run_once(side, make_args(i % len(queries)), cwd)
                    timings[name][side.name].seconds.append(seconds)
                    timings[name][side.name].peak_rss_mb.append(rss)
            print(f"{name}: " + ", ".join(f"{s} {t.summary()['p50_s']:.3f} s" for s, t in timings[name].items()),
                  file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(cwd, ignore_errors=True)

    report = {
        "index_dir": str(index_dir),
        "runs": args.runs,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "commands": {name: {side: t.summary() for side, t in by_side.items()} for name, by_side in timings.items()},
        "writing_the_onnx_forms_once": export_cost(sys.executable, index_dir, args.reranker, Path(tempfile.gettempdir())),
    }
    for by_side in report["commands"].values():
        onnx = by_side["onnx"]["p50_s"]
        for other in ("torch", "baseline"):
            if other in by_side:
                by_side[f"{other}_over_onnx_p50"] = round(by_side[other]["p50_s"] / onnx, 2)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    columns = [side.name for side in sides]
    print("\n| command | " + " | ".join(f"{c} p50 / p95" for c in columns) + " | peak RSS (onnx) |")
    print("|---|" + "---|" * (len(columns) + 1))
    for name, by_side in report["commands"].items():
        cells = [f"{by_side[c]['p50_s']:.2f} / {by_side[c]['p95_s']:.2f} s" if c in by_side else "—" for c in columns]
        print(f"| `{name}` | " + " | ".join(cells) + f" | {by_side['onnx']['peak_rss_mb']:.0f} MB |")


if __name__ == "__main__":
    main()

"""Load test of `bertsearch serve`: N concurrent clients on 127.0.0.1 for a bounded time, in one run.

Usage:
    bertsearch index ../shared/datasets/scifact/corpus.jsonl.gz --index-dir /tmp/scifact-idx
    python bench/bench_server.py --index-dir /tmp/scifact-idx --queries ../shared/datasets/scifact/queries.jsonl.gz

Starts the real server on a free loopback port, warms it up, then runs each client count in turn (default: 1,
then 8) for `--seconds` each: every client sends one search at a time over its own keep-alive connection,
cycling through the queries. Prints one JSON object (and writes bench/results/server.json): per client count the
requests, throughput, p50/p95/p99 latency, errors, and the server's mean query batch size; plus the ratio of
p95 at the largest client count to p95 with one client (target: under 2), and the machine's load average.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
START_TIMEOUT = 300.0


def read_queries(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(connection: http.client.HTTPConnection, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    payload = json.dumps(body).encode() if body is not None else None
    connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, json.loads(response.read() or b"{}")


def start_server(index_dir: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with open(log, "w") as output:
        process = subprocess.Popen([sys.executable, "-m", "bertsearch.cli.main", "serve", "--index-dir", str(index_dir),
                                    "--port", str(port)], stdout=output, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bertsearch serve exited:\n{log.read_text()}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            if call(connection, "GET", "/api/health")[0] == 200:
                connection.close()
                return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit(f"bertsearch serve did not start within {START_TIMEOUT:.0f} s:\n{log.read_text()}")


def run_clients(port: int, queries: list[str], clients: int, seconds: float, mode: str, k: int) -> dict:
    """`clients` threads searching back to back until `seconds` pass; latencies of the requests that finished."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop_at = time.monotonic() + seconds

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        position = number * 37
        while time.monotonic() < stop_at:
            query = queries[position % len(queries)]
            position += 1
            started = time.perf_counter()
            try:
                status, _ = call(connection, "POST", "/api/search", {"query": query, "k": k, "mode": mode})
            except (OSError, http.client.HTTPException, ValueError):
                status = 0
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            if status == 200:
                latencies[number].append((time.perf_counter() - started) * 1000)
            else:
                errors[number] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    samples = np.array([ms for per_client in latencies for ms in per_client])
    p50, p95, p99 = (float(v) for v in np.percentile(samples, [50, 95, 99])) if samples.size else (0.0, 0.0, 0.0)
    return {"clients": clients, "requests": int(samples.size), "errors": sum(errors),
            "throughput_per_s": round(samples.size / elapsed, 1),
            "p50_ms": round(p50, 1), "p95_ms": round(p95, 1), "p99_ms": round(p99, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True, help="BEIR queries.jsonl[.gz]")
    parser.add_argument("--clients", default="1,8", help="comma-separated client counts, run in this order")
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of each client count")
    parser.add_argument("--mode", default="dense", choices=("dense", "bm25", "hybrid"))
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    queries = read_queries(args.queries)
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="bench-server-")) / "serve.log"
    load_before = os.getloadavg()
    process = start_server(args.index_dir, port, log)
    try:
        run_clients(port, queries, 1, 3.0, args.mode, args.k)  # warm-up, not reported
        phases = []
        for clients in (int(c) for c in args.clients.split(",")):
            before = call(http.client.HTTPConnection("127.0.0.1", port, timeout=10), "GET", "/api/ready")[1]
            phase = run_clients(port, queries, clients, args.seconds, args.mode, args.k)
            after = call(http.client.HTTPConnection("127.0.0.1", port, timeout=10), "GET", "/api/ready")[1]
            batches = after["query_batches"] - before["query_batches"]
            phase["mean_query_batch"] = round((after["queries_encoded"] - before["queries_encoded"]) / batches, 2) \
                if batches else None
            phases.append(phase)
            print(json.dumps(phase), file=sys.stderr)
    finally:
        process.terminate()
        process.wait(timeout=60)
    single = next((p for p in phases if p["clients"] == 1), None)
    most = max(phases, key=lambda p: p["clients"])
    report = {
        "index_dir": str(args.index_dir), "mode": args.mode, "k": args.k, "seconds_per_phase": args.seconds,
        "cpu_count": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()], "phases": phases,
        "p95_ratio": round(most["p95_ms"] / single["p95_ms"], 2) if single and single["p95_ms"] else None,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "server.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

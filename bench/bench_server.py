"""Load test of `bertsearch serve`: N concurrent clients on 127.0.0.1 for a bounded time, in one run.

Usage:
    bertsearch index ../shared/datasets/scifact/corpus.jsonl.gz --index-dir /tmp/scifact-idx
    python bench/bench_server.py --index-dir /tmp/scifact-idx --queries ../shared/datasets/scifact/queries.jsonl.gz

Starts the real server on a free loopback port, warms it up, then runs each client count in turn (default: 1,
then 8) for `--seconds` each, `--rounds` times: every client sends one search at a time over its own keep-alive
connection, cycling through the queries. Prints one JSON object (and writes bench/results/server.json): per client
count, pooled over the rounds, the requests, throughput, p50/p95/p99 latency, errors, the server's mean query
batch size, the share of the time its inference worker was busy, the CPU time per request (server and clients,
Linux only) and the mean latency it implies once the cores are saturated, and p50/p95 of each stage the server
timed (from the responses' timings_ms) and of the time outside its search; plus the ratio of p95 at the largest
client count to p95 with one client (target: under 2), pooled and per round, and the machine's load average.
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
from dataclasses import dataclass, field
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


@dataclass
class Phase:
    """What one or more runs with the same number of clients measured; runs of a count are pooled."""

    clients: int
    latencies_ms: list[float] = field(default_factory=list)
    timings: list[dict] = field(default_factory=list)  # the server's own timings_ms, per response
    errors: int = 0
    seconds: float = 0.0
    queries_encoded: int = 0
    query_batches: int = 0
    worker_busy_seconds: float = 0.0
    server_cpu_seconds: float | None = None  # None where /proc is missing
    client_cpu_seconds: float = 0.0

    def add(self, other: "Phase") -> None:
        self.latencies_ms += other.latencies_ms
        self.timings += other.timings
        self.errors += other.errors
        self.seconds += other.seconds
        self.queries_encoded += other.queries_encoded
        self.query_batches += other.query_batches
        self.worker_busy_seconds += other.worker_busy_seconds
        if other.server_cpu_seconds is not None:
            self.server_cpu_seconds = (self.server_cpu_seconds or 0.0) + other.server_cpu_seconds
        self.client_cpu_seconds += other.client_cpu_seconds

    def summary(self) -> dict:
        samples = np.array(self.latencies_ms)
        p50, p95, p99 = (float(v) for v in np.percentile(samples, [50, 95, 99])) if samples.size else (0.0, 0.0, 0.0)
        return {"clients": self.clients, "requests": int(samples.size), "errors": self.errors,
                "throughput_per_s": round(samples.size / self.seconds, 1) if self.seconds else 0.0,
                "p50_ms": round(p50, 1), "p95_ms": round(p95, 1), "p99_ms": round(p99, 1),
                "mean_query_batch": round(self.queries_encoded / self.query_batches, 2) if self.query_batches else None,
                "worker_busy": round(self.worker_busy_seconds / self.seconds, 3) if self.seconds else None,
                "mean_ms": round(float(samples.mean()), 1) if samples.size else 0.0, **self.cpu_summary(samples.size),
                "server_stages_ms": stage_percentiles(samples, self.timings)}

    def cpu_summary(self, requests: int) -> dict:
        """CPU ms per request, of the server and of the clients (both share the machine's cores), the share of
        all cores they kept busy, and `saturated_mean_ms`: the mean latency that `clients` closed-loop clients
        cannot beat at that CPU cost per request (Little's law: clients / throughput, with throughput at most
        cores / CPU per request). Batching more per forward pass lowers it; scheduling cannot."""
        if self.server_cpu_seconds is None or not requests or not self.seconds:
            return {}
        cores = os.cpu_count() or 1
        server_ms = self.server_cpu_seconds * 1000 / requests
        client_ms = self.client_cpu_seconds * 1000 / requests
        return {"cpu_ms_per_request": {"server": round(server_ms, 2), "clients": round(client_ms, 2)},
                "cpu_busy": round((self.server_cpu_seconds + self.client_cpu_seconds) / (self.seconds * cores), 3),
                "saturated_mean_ms": round(self.clients * (server_ms + client_ms) / cores, 1)}


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far, from /proc; None where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14, 15


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def run_clients(port: int, server_pid: int, queries: list[str], clients: int, seconds: float, mode: str,
                k: int) -> Phase:
    """`clients` threads searching back to back until `seconds` pass; latencies of the requests that finished."""
    per_client = [Phase(clients) for _ in range(clients)]
    stop_at = time.monotonic() + seconds

    def client(number: int) -> None:
        mine = per_client[number]
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        position = number * 37
        while time.monotonic() < stop_at:
            query = queries[position % len(queries)]
            position += 1
            started = time.perf_counter()
            try:
                status, body = call(connection, "POST", "/api/search", {"query": query, "k": k, "mode": mode})
            except (OSError, http.client.HTTPException, ValueError):
                status = 0
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            if status == 200:
                mine.latencies_ms.append((time.perf_counter() - started) * 1000)
                mine.timings.append(body["timings_ms"])
            else:
                mine.errors += 1
        connection.close()

    before = call(http.client.HTTPConnection("127.0.0.1", port, timeout=10), "GET", "/api/ready")[1]
    server_cpu_before, client_cpu_before = process_cpu_seconds(server_pid), own_cpu_seconds()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase = Phase(clients, seconds=time.perf_counter() - started,
                  client_cpu_seconds=own_cpu_seconds() - client_cpu_before)
    server_cpu_after = process_cpu_seconds(server_pid)
    if server_cpu_before is not None and server_cpu_after is not None:
        phase.server_cpu_seconds = server_cpu_after - server_cpu_before
    after = call(http.client.HTTPConnection("127.0.0.1", port, timeout=10), "GET", "/api/ready")[1]
    phase.queries_encoded = after["queries_encoded"] - before["queries_encoded"]
    phase.query_batches = after["query_batches"] - before["query_batches"]
    phase.worker_busy_seconds = after["worker_busy_seconds"] - before["worker_busy_seconds"]
    for mine in per_client:
        phase.add(mine)
    return phase


def stage_percentiles(latencies: np.ndarray, timings: list[dict]) -> dict[str, list[float]]:
    """[p50, p95] of each stage the server timed (waits for the model included in `encode`), and of the time
    outside its search: HTTP, the framework, JSON, and waiting for a thread or the GIL."""
    if not timings:
        return {}
    columns = {name: np.array([t.get(name, 0.0) for t in timings]) for name in sorted({n for t in timings for n in t})}
    columns["outside_search"] = latencies - columns["total"]
    return {name: [round(float(v), 1) for v in np.percentile(values, [50, 95])] for name, values in columns.items()}


def p95_ratio(phases: dict[int, dict]) -> float | None:
    """p95 at the largest client count over p95 with one client."""
    if 1 not in phases or not phases[1]["p95_ms"]:
        return None
    return round(phases[max(phases)]["p95_ms"] / phases[1]["p95_ms"], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True, help="BEIR queries.jsonl[.gz]")
    parser.add_argument("--clients", default="1,8", help="comma-separated client counts, run in this order")
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of each client count, per round")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the client counts this many times in turn; each count's runs are pooled, so a "
                             "noisy machine's slow spells fall on every count alike")
    parser.add_argument("--mode", default="dense", choices=("dense", "bm25", "hybrid"))
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    queries = read_queries(args.queries)
    counts = [int(c) for c in args.clients.split(",")]
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="bench-server-")) / "serve.log"
    load_before = os.getloadavg()
    process = start_server(args.index_dir, port, log)
    pooled = {clients: Phase(clients) for clients in counts}
    rounds: list[dict[int, dict]] = []
    try:
        run_clients(port, process.pid, queries, 1, 3.0, args.mode, args.k)  # warm-up, not reported
        for _ in range(args.rounds):
            this_round = {}
            for clients in counts:
                phase = run_clients(port, process.pid, queries, clients, args.seconds, args.mode, args.k)
                pooled[clients].add(phase)
                this_round[clients] = phase.summary()
                print(json.dumps(this_round[clients]), file=sys.stderr)
            rounds.append(this_round)
    finally:
        process.terminate()
        process.wait(timeout=60)
    phases = {clients: phase.summary() for clients, phase in pooled.items()}
    report = {
        "index_dir": str(args.index_dir), "mode": args.mode, "k": args.k, "seconds_per_phase": args.seconds,
        "rounds": args.rounds, "cpu_count": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()], "phases": list(phases.values()),
        "p95_ratio": p95_ratio(phases), "p95_ratio_per_round": [p95_ratio(r) for r in rounds],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "server.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

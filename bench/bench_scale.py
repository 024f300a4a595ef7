"""The embedded store at 100k, 300k and 1M passages: writing, the ANN build, disk, opening, latency, memory, recall.

Encoding a million passages on a CPU takes hours, so the passages are made from SciFact's, encoded once for real:
each new passage is the sentences of one SciFact passage (from a random sentence in its first third to its end)
followed by two sentences of another, titled like the first; its vector is the normalised
a * v(first) + (1 - a) * v(other) + noise, a uniform in [0.7, 0.95], noise Gaussian of norm ~0.2. BM25 thus sees
SciFact's words in real proportions and the vectors cluster as SciFact's do. Four passages make a document. They are
written through `EmbeddedStore.write`, 1,024 passages per transaction, as `bertsearch index` writes them. The queries
are SciFact's 300 test queries, encoded by the index's model.

Each step is one command (run each under the CPU lock; `grow` to 1M is split in two):
    python bench/bench_scale.py prepare --scifact ../shared/datasets/scifact   # index SciFact, encode the queries
    python bench/bench_scale.py grow --to 100000       # add passages up to this many, then close (the ANN is built)
    python bench/bench_scale.py measure --size 100000  # rebuild the ANN from SQLite, open, latency, RSS, recall
    python bench/bench_scale.py report                 # bench/results/scale.json and docs/scale.png

Latencies are in-process through `Searcher` with each query's vector given (encoding it is not the store's cost and
does not grow with the index), after five warm-up queries per mode, on one FAISS thread, page cache warm.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WORK = Path(os.environ.get("BERTSEARCH_SCALE_WORK", "/tmp/scale"))
RESULTS = Path(__file__).resolve().parent / "results"
PLOT = Path(__file__).resolve().parents[1] / "docs" / "scale.png"
PASSAGES_PER_DOCUMENT = 4
WRITE_BATCH = 1024
PROBES = (8, 16, 32, 64, 128, 256)


def source_dir() -> Path:
    return WORK / "scifact-idx"


def store_dir() -> Path:
    return WORK / "store"


def load_sources() -> tuple[list[str], list[list[str]], np.ndarray]:
    """SciFact's passages as indexed: titles, sentences and vectors (cached in WORK/sources.npz)."""
    from bertsearch.indexer.chunking import split_sentences

    cache = WORK / "sources.npz"
    if not cache.exists():
        import sqlite3

        db = sqlite3.connect(source_dir() / "store.sqlite3")
        rows = db.execute("SELECT title, text, vector FROM passages ORDER BY id").fetchall()
        db.close()
        vectors = np.stack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
        np.savez(cache, titles=np.array([r[0] for r in rows], dtype=object),
                 texts=np.array([r[1] for r in rows], dtype=object), vectors=vectors)
    data = np.load(cache, allow_pickle=True)
    sentences = [[text[a:b] for a, b in split_sentences(text)] or [text] for text in data["texts"]]
    return list(data["titles"]), sentences, data["vectors"]


def synthetic_documents(first_passage: int, count: int, sources: tuple[list[str], list[list[str]], np.ndarray]):  # noqa: ANN201
    """Documents of PASSAGES_PER_DOCUMENT passages numbered from `first_passage` on (a multiple of it), the same
    for the same numbers on every run."""
    from bertsearch.stores.base import EncodedDocument
    from bertsearch.types import Document, Passage

    titles, sentences, vectors = sources
    rng = np.random.default_rng(first_passage)
    main = rng.integers(0, len(titles), size=count)
    other = rng.integers(0, len(titles), size=count)
    weight = rng.uniform(0.7, 0.95, size=(count, 1)).astype(np.float32)
    noise = rng.normal(scale=0.2 / np.sqrt(vectors.shape[1]), size=(count, vectors.shape[1])).astype(np.float32)
    mixed = weight * vectors[main] + (1 - weight) * vectors[other] + noise
    mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
    starts = rng.random(size=count)
    picks = rng.random(size=(count, 2))
    texts = []
    for i in range(count):
        own, extra = sentences[main[i]], sentences[other[i]]
        start = int(starts[i] * len(own) / 3)
        texts.append(" ".join([*own[start:], *(extra[int(p * len(extra))] for p in picks[i])]))
    batch = []
    for offset in range(0, count, PASSAGES_PER_DOCUMENT):
        doc_id = f"s{(first_passage + offset) // PASSAGES_PER_DOCUMENT}"
        title = titles[main[offset]]
        chunk = texts[offset : offset + PASSAGES_PER_DOCUMENT]
        document = Document(doc_id=doc_id, text="\n\n".join(chunk), title=title, source=f"/synthetic/{doc_id}.txt")
        passages = [Passage(doc_id=doc_id, position=j, text=t, title=title) for j, t in enumerate(chunk)]
        batch.append(EncodedDocument(document, doc_id, passages, mixed[offset : offset + len(chunk)]))
    return batch


def prepare(scifact: Path) -> None:
    """Index SciFact with `bertsearch index` (real chunking and encoding) and encode its test queries."""
    from bertsearch.beir import load_beir
    from bertsearch.models.loading import load_query_encoder
    from bertsearch.settings import read_settings

    WORK.mkdir(parents=True, exist_ok=True)
    if not (source_dir() / "store.sqlite3").exists():
        subprocess.run([sys.executable, "-m", "bertsearch.cli.main", "index", str(scifact / "corpus.jsonl.gz"),
                        "--index-dir", str(source_dir())], check=True)
    settings = read_settings(source_dir())
    encoder = load_query_encoder(settings.model_path, settings.model_fingerprint)
    queries = load_beir(scifact, "test").queries
    texts = list(queries.values())
    np.savez(WORK / "queries.npz", texts=np.array(texts, dtype=object),
             vectors=np.stack([encoder.encode_query(t) for t in texts]))
    load_sources()
    print(f"{len(texts)} queries encoded; sources cached in {WORK}")


def grow(target: int) -> dict:
    """Add synthetic passages to the store until it holds `target`, then close it (which builds and saves the ANN)."""
    from bertsearch.settings import read_settings
    from bertsearch.stores import create_store, open_store
    from bertsearch.stores.base import StoreStats

    sources = load_sources()
    folder = store_dir()
    if (folder / "store.sqlite3").exists():
        store = open_store(folder)
    else:
        store = create_store(folder, read_settings(source_dir()))
    stats: StoreStats = store.stats()
    have = stats.passages
    writing = 0.0
    for start in range(have, target, WRITE_BATCH):
        batch = synthetic_documents(start, min(WRITE_BATCH, target - start), sources)
        began = time.perf_counter()
        store.write(batch)
        writing += time.perf_counter() - began
    began = time.perf_counter()
    store.close()
    closing = time.perf_counter() - began
    step = {"from": have, "to": target, "write_s": round(writing, 1),
            "passages_per_s": round((target - have) / writing) if writing else None, "close_s": round(closing, 1)}
    record(target, {"grow": step})
    print(json.dumps(step))
    return step


def read_all_vectors(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    import sqlite3

    db = sqlite3.connect(f"file:{folder / 'store.sqlite3'}?mode=ro", uri=True)
    ids, parts = [], []
    cursor = db.execute("SELECT id, vector FROM passages ORDER BY id")
    while rows := cursor.fetchmany(50_000):
        ids.append(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
        parts.append(np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1))
    db.close()
    return np.concatenate(ids), np.concatenate(parts)


def measure(size: int) -> dict:
    """Rebuild the vector index from SQLite (timed), then a fresh process's open and latencies, and recall."""
    import faiss

    from bertsearch.stores import open_store
    from bertsearch.stores.embedded import VECTORS_NAME, VECTORS_STATE_NAME

    folder = store_dir()
    queries = np.load(WORK / "queries.npz", allow_pickle=True)["vectors"].astype(np.float32)
    for name in (VECTORS_NAME, VECTORS_STATE_NAME):
        (folder / name).unlink(missing_ok=True)
    store = open_store(folder)
    assert store.stats().passages == size, f"the store holds {store.stats().passages} passages, not {size}"
    began = time.perf_counter()
    store.dense_search(queries[0], 10)  # builds the index from SQLite
    built = time.perf_counter() - began
    began = time.perf_counter()
    store.acquire_write_lock()
    store.close()  # saves it
    saved = time.perf_counter() - began
    files = {f.name: f.stat().st_size for f in sorted(folder.iterdir()) if f.is_file() and f.stat().st_size}
    worker = subprocess.run([sys.executable, __file__, "worker"], capture_output=True, text=True, check=True)
    timing = json.loads(worker.stdout)

    ids, matrix = read_all_vectors(folder)
    exact = faiss.IndexFlatIP(matrix.shape[1])
    exact.add(matrix)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    _, truth = exact.search(queries, 10)
    truth_ids = ids[truth]
    faiss.omp_set_num_threads(1)
    exact_ms = []
    for q in queries[:100]:
        started = time.perf_counter()
        exact.search(q[None], 10)
        exact_ms.append((time.perf_counter() - started) * 1000)
    del exact, matrix
    index = faiss.read_index(str(folder / VECTORS_NAME), faiss.IO_FLAG_MMAP)
    state = json.loads((folder / VECTORS_STATE_NAME).read_text())["index"]
    probes = {}
    if isinstance(index, faiss.IndexIVF):
        for nprobe in [p for p in PROBES if p <= index.nlist] + [state["probes"]]:
            params = faiss.SearchParametersIVF(nprobe=nprobe)
            found, samples = [], []
            for q, want in zip(queries, truth_ids):
                started = time.perf_counter()
                _, got = index.search(q[None], 10, params=params)
                samples.append((time.perf_counter() - started) * 1000)
                found.append(len(set(got[0].tolist()) & set(want.tolist())) / 10)
            probes[str(nprobe)] = {"recall_at_10": round(float(np.mean(found)), 4),
                                   "faiss_p50_ms": round(float(np.percentile(samples, 50)), 2)}
    store = open_store(folder)
    recall = float(np.mean([len({p for p, _ in store._vectors.search(store._db, store._generation(), q, 10)}
                                & set(want.tolist())) / 10 for q, want in zip(queries, truth_ids)]))
    store.close()
    result = {"passages": size, "vector_index": state, "ann_build_s": round(built, 1), "ann_save_s": round(saved, 1),
              "files_bytes": files, "bytes_on_disk": sum(files.values()), **timing,
              "recall_at_10": round(recall, 4), "exact_faiss_p50_ms": round(float(np.percentile(exact_ms, 50)), 2),
              "probes": probes}
    record(size, {"measure": result})
    print(json.dumps(result, indent=2))
    return result


def worker() -> None:
    """In a fresh process, as a CLI query: open the store and answer one dense and one BM25 query; then the
    latency of every mode over all queries, and this process's peak RSS."""
    began = time.perf_counter()
    import faiss  # noqa: F401 - imported by the first dense query; timed apart

    from bertsearch.search import Searcher
    from bertsearch.stores import open_store

    imported = time.perf_counter() - began
    data = np.load(WORK / "queries.npz", allow_pickle=True)
    texts, vectors = list(data["texts"]), data["vectors"].astype(np.float32)
    began = time.perf_counter()
    store = open_store(store_dir())
    opened = time.perf_counter() - began
    store.dense_search(vectors[0], 10)
    first_dense = time.perf_counter() - began
    began = time.perf_counter()
    store.keyword_search(texts[0], 10)
    first_bm25 = time.perf_counter() - began
    searcher = Searcher(store, encoder=lambda: None)  # type: ignore[arg-type, return-value] - vectors are given
    latency = {}
    for mode in ("dense", "bm25", "hybrid"):
        def run(i: int) -> None:
            pending = searcher.start(texts[i], 10, mode)
            searcher.finish(pending, vectors[i] if pending.needs_vector else None)

        for i in range(5):
            run(i)
        samples = []
        for i in range(len(texts)):
            started = time.perf_counter()
            run(i)
            samples.append((time.perf_counter() - started) * 1000)
        latency[mode] = {"p50_ms": round(float(np.percentile(samples, 50)), 2),
                         "p95_ms": round(float(np.percentile(samples, 95)), 2)}
    store.close()
    print(json.dumps({"import_s": round(imported, 3), "open_s": round(opened, 3),
                      "open_and_first_dense_s": round(first_dense, 3), "first_bm25_s": round(first_bm25, 3),
                      "latency": latency, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


def compare_indexes(size: int) -> dict:
    """FAISS indexes the store could use, built in memory from its vectors: build time, size, p50 on one thread
    and recall@10 against exact search (HNSW at efSearch 64 and 128)."""
    import faiss

    from bertsearch.stores.embedded.vectors import ivf_lists, ivf_probes

    queries = np.load(WORK / "queries.npz", allow_pickle=True)["vectors"].astype(np.float32)
    _, matrix = read_all_vectors(store_dir())
    assert len(matrix) == size, f"the store holds {len(matrix)} passages, not {size}"
    dims, lists = matrix.shape[1], ivf_lists(size)
    sample = matrix[np.random.default_rng(0).choice(size, size=min(size, lists * 40), replace=False)]
    candidates = {
        "exact": lambda: faiss.IndexFlatIP(dims),
        "ivf": lambda: faiss.IndexIVFFlat(faiss.IndexFlatIP(dims), dims, lists, faiss.METRIC_INNER_PRODUCT),
        "ivf-sq8": lambda: faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dims), dims, lists,
                                                         faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT),
        "hnsw32": lambda: faiss.IndexHNSWFlat(dims, 32, faiss.METRIC_INNER_PRODUCT),
    }
    truth = None
    found: dict = {}
    for name, make in candidates.items():
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        began = time.perf_counter()
        index = make()
        if not index.is_trained:
            index.train(sample)
        index.add(matrix)
        built = time.perf_counter() - began
        faiss.omp_set_num_threads(1)
        settings = [None]
        if name.startswith("ivf"):
            settings = [("nprobe", ivf_probes(lists))]
        elif name.startswith("hnsw"):
            settings = [("efSearch", 64), ("efSearch", 128)]
        for setting in settings:
            if setting is not None:
                faiss.ParameterSpace().set_index_parameter(index, *setting)
            samples, results = [], []
            for q in queries:
                started = time.perf_counter()
                _, got = index.search(q[None], 10)
                samples.append((time.perf_counter() - started) * 1000)
                results.append(got[0])
            if truth is None:
                truth = results
            label = name if setting is None or name.startswith("ivf") else f"{name} {setting[0]}={setting[1]}"
            found[label] = {
                "build_s": round(built, 1), "bytes": int(faiss.serialize_index(index).size) if name != "hnsw32"
                else int(index.ntotal * (dims * 4 + 32 * 2 * 4)),
                "p50_ms": round(float(np.percentile(samples, 50)), 2),
                "recall_at_10": round(float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(results, truth)])), 4),
            }
            print(label, json.dumps(found[label]), flush=True)
        del index
    record(size, {"indexes": found})
    return found


def bm25s_folder(size: int) -> Path:
    return WORK / f"bm25s-{size}"


def bm25s_tokens(texts: list[str], return_ids: bool = True):  # noqa: ANN201 - bm25s's Tokenized or lists of words
    """Words as FTS5 takes them here: lower-cased, stopwords dropped, Porter-stemmed."""
    import bm25s
    import Stemmer

    from bertsearch.text import STOPWORDS

    return bm25s.tokenize(texts, lower=True, stopwords=sorted(STOPWORDS), stemmer=Stemmer.Stemmer("porter"),
                          return_ids=return_ids, show_progress=False)


def measure_bm25s(size: int) -> dict:
    """The alternative to FTS5: a sparse-matrix BM25 (bm25s) derived from SQLite's passages like the FAISS file.
    Built and saved here (timed), then opened memory-mapped and queried in a fresh process."""
    import sqlite3

    import bm25s

    db = sqlite3.connect(f"file:{store_dir() / 'store.sqlite3'}?mode=ro", uri=True)
    began = time.perf_counter()
    rows = db.execute("SELECT id, title, text FROM passages ORDER BY id").fetchall()
    db.close()
    assert len(rows) == size, f"the store holds {len(rows)} passages, not {size}"
    read = time.perf_counter() - began
    began = time.perf_counter()
    tokens = bm25s_tokens([f"{title} {text}" for _, title, text in rows])
    tokenized = time.perf_counter() - began
    began = time.perf_counter()
    retriever = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    retriever.index(tokens, show_progress=False)
    indexed = time.perf_counter() - began
    folder = bm25s_folder(size)
    shutil.rmtree(folder, ignore_errors=True)
    retriever.save(str(folder))
    np.save(folder / "passage_ids.npy", np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
    del rows, tokens, retriever
    worker = subprocess.run([sys.executable, __file__, "bm25s-worker", "--size", str(size)], capture_output=True,
                            text=True, check=True)
    agreement = bm25s_agreement(size)
    result = {"read_s": round(read, 1), "tokenize_s": round(tokenized, 1), "index_s": round(indexed, 1),
              "overlap_at_10_with_fts5": agreement,
              "bytes_on_disk": sum(f.stat().st_size for f in folder.iterdir()), **json.loads(worker.stdout)}
    record(size, {"bm25s": result})
    print(json.dumps(result, indent=2))
    return result


def bm25s_agreement(size: int) -> float:
    """How many of FTS5's top 10 passages bm25s also ranks in its top 10, over the queries (1.0: the same)."""
    import bm25s

    from bertsearch.stores import open_store

    texts = list(np.load(WORK / "queries.npz", allow_pickle=True)["texts"])
    retriever = bm25s.BM25.load(str(bm25s_folder(size)), mmap=True)
    ids = np.load(bm25s_folder(size) / "passage_ids.npy")
    shared = []
    with open_store(store_dir()) as store:
        for text in texts:
            fts5 = {(h.doc_id, h.position) for h in store.keyword_search(text, 10, texts=False)}
            words = bm25s_tokens([text], return_ids=False)[0]
            top = np.argsort(-retriever.get_scores(words))[:10] if words else []
            rows = store._reader().execute(
                f"SELECT doc_id, position FROM passages WHERE id IN ({','.join(str(int(ids[i])) for i in top)})")
            shared.append(len(fts5 & set(rows.fetchall())) / max(1, len(fts5)))
    return round(float(np.mean(shared)), 4)


def bm25s_worker(size: int) -> None:
    """In a fresh process: open the bm25s index memory-mapped, then top-30 and top-300 latency (what bm25 and
    hybrid ask of BM25) and peak RSS."""
    import bm25s

    texts = list(np.load(WORK / "queries.npz", allow_pickle=True)["texts"])
    began = time.perf_counter()
    retriever = bm25s.BM25.load(str(bm25s_folder(size)), mmap=True)
    ids = np.load(bm25s_folder(size) / "passage_ids.npy", mmap_mode="r")
    opened = time.perf_counter() - began
    latency = {}
    for k in (30, 300):
        def run(text: str) -> None:
            words = bm25s_tokens([text], return_ids=False)[0]
            scores = retriever.get_scores(words) if words else np.zeros(size, dtype=np.float32)
            top = np.argpartition(-scores, k)[:k]
            ids[top[np.argsort(-scores[top])]]

        for text in texts[:5]:
            run(text)
        samples = []
        for text in texts:
            started = time.perf_counter()
            run(text)
            samples.append((time.perf_counter() - started) * 1000)
        latency[f"top{k}"] = {"p50_ms": round(float(np.percentile(samples, 50)), 2),
                              "p95_ms": round(float(np.percentile(samples, 95)), 2)}
    print(json.dumps({"open_s": round(opened, 3), "latency": latency,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


def record(size: int, entry: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "scale.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault(str(size), {}).update(entry)
    path.write_text(json.dumps(data, indent=2))


def report() -> None:
    """The plot of p50 latency and peak RSS against passages, from bench/results/scale.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads((RESULTS / "scale.json").read_text())
    sizes = sorted(int(s) for s, entry in data.items() if "measure" in entry)
    measured = [data[str(s)]["measure"] for s in sizes]
    figure, (latency, memory) = plt.subplots(1, 2, figsize=(9, 3.6))
    for mode, marker in (("dense", "o"), ("bm25", "s"), ("hybrid", "^")):
        latency.plot(sizes, [m["latency"][mode]["p50_ms"] for m in measured], marker=marker, label=mode)
    latency.set(xscale="log", yscale="log", xlabel="passages", ylabel="p50 latency (ms)", title="Query latency (p50)")
    latency.legend()
    memory.plot(sizes, [m["peak_rss_mb"] for m in measured], marker="o", color="tab:purple")
    memory.set(xscale="log", xlabel="passages", ylabel="peak RSS (MB)", title="Peak RSS while querying")
    memory.set_ylim(bottom=0)
    for axes in (latency, memory):
        axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    PLOT.parent.mkdir(exist_ok=True)
    figure.savefig(PLOT, dpi=110)
    print(f"wrote {PLOT}")
    print(markdown_table(data))


def markdown_table(data: dict) -> str:
    """The figures of every measured size as a Markdown table (docs/scale.md)."""
    sizes = sorted(int(s) for s, entry in data.items() if "measure" in entry)
    rows: list[tuple[str, list[str]]] = []

    def add(label: str, value) -> None:  # noqa: ANN001 - a function of one size's entry
        cells = []
        for size in sizes:
            try:
                cells.append(str(value(data[str(size)])))
            except (KeyError, TypeError):
                cells.append("–")
        rows.append((label, cells))

    add("vector index", lambda e: " ".join(f"{v}" for v in e["measure"]["vector_index"].values()))
    add("write (passages/s)", lambda e: f"{e['grow']['passages_per_s']:,}")
    add("ANN build from SQLite (s)", lambda e: e["measure"]["ann_build_s"])
    add("files on disk (GB)", lambda e: f"{e['measure']['bytes_on_disk'] / 1e9:.2f}")
    add("open + first dense query, fresh process (s)", lambda e: e["measure"]["open_and_first_dense_s"])
    add("first BM25 query, fresh process (s)", lambda e: e["measure"]["first_bm25_s"])
    add("peak RSS while querying (MB)", lambda e: e["measure"]["peak_rss_mb"])
    for mode in ("dense", "bm25", "hybrid"):
        add(f"{mode} p50 / p95 (ms)",
            lambda e, m=mode: f"{e['measure']['latency'][m]['p50_ms']} / {e['measure']['latency'][m]['p95_ms']}")
    add("dense recall@10 vs exact", lambda e: e["measure"]["recall_at_10"])
    add("exact search alone, p50 (ms)", lambda e: e["measure"]["exact_faiss_p50_ms"])
    add("bm25s top-300 p50 / p95 (ms)",
        lambda e: f"{e['bm25s']['latency']['top300']['p50_ms']} / {e['bm25s']['latency']['top300']['p95_ms']}")
    add("bm25s build (s), open (s), RSS (MB)", lambda e: f"{e['bm25s']['tokenize_s'] + e['bm25s']['index_s']:.0f}, "
        f"{e['bm25s']['open_s']}, {e['bm25s']['peak_rss_mb']}")
    add("bm25s top-10 overlap with FTS5", lambda e: e["bm25s"]["overlap_at_10_with_fts5"])
    lines = ["| passages | " + " | ".join(f"{s:,}" for s in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("prepare").add_argument("--scifact", type=Path, required=True)
    commands.add_parser("grow").add_argument("--to", type=int, required=True)
    commands.add_parser("measure").add_argument("--size", type=int, required=True)
    commands.add_parser("worker")
    commands.add_parser("compare").add_argument("--size", type=int, required=True)
    commands.add_parser("bm25s").add_argument("--size", type=int, required=True)
    commands.add_parser("bm25s-worker").add_argument("--size", type=int, required=True)
    commands.add_parser("report")
    commands.add_parser("clean")
    args = parser.parse_args()
    run = {
        "prepare": lambda: prepare(args.scifact),
        "grow": lambda: grow(args.to),
        "measure": lambda: measure(args.size),
        "worker": worker,
        "compare": lambda: compare_indexes(args.size),
        "bm25s": lambda: measure_bm25s(args.size),
        "bm25s-worker": lambda: bm25s_worker(args.size),
        "report": report,
        "clean": lambda: shutil.rmtree(store_dir(), ignore_errors=True),
    }
    run[args.command]()


if __name__ == "__main__":
    main()

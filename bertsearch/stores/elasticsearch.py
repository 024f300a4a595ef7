"""The Elasticsearch store: passages, vectors (HNSW kNN) and BM25 on a cluster, behind an alias.

Layout: an alias `<name>` points at one concrete index `<name>-<UTC timestamp>`, so a rebuild (`stage` a new
index, fill it, `publish`) swaps in atomically while searches keep running. The index holds two kinds of
Elasticsearch documents:

- one per passage, `_id` = `<doc_id>#<position>`: title and text (BM25), source and metadata (filters), vector;
- one per document, `_id` = `<doc_id>#document`: the whole text, title, source, metadata and content hash,
  for `get_document` and `stored_documents`. It has no vector and no indexed text, so searches never see it,
  and a document with no passages is still remembered.

The model fingerprint and chunking live in the mapping's `_meta`, and an index built otherwise is refused.

Elasticsearch has no multi-document transactions, so `write` orders its steps to make a crash harmless: new
passages and deletion of stale ones first, the document record (with the content hash) last. A crash in
between leaves the old hash (or none), so the next indexing run rewrites the document, and the two converge.
"""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence, TypeVar

import numpy as np
from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    ConnectionError,
    ConnectionTimeout,
    Elasticsearch,
    SSLError,
    TransportError,
    helpers,
)

from bertsearch.errors import BackendError, BertsearchError, IndexMismatchError, IndexNotFoundError
from bertsearch.settings import IndexSettings
from bertsearch.stores.base import EncodedDocument, SearchFilter, Store, StoredDocument, StoreStats
from bertsearch.text import query_terms
from bertsearch.types import Document, PassageHit

T = TypeVar("T")

# `settings.backend_options["vector_index_type"]`: "hnsw" keeps float32 vectors (exact scores, 4 bytes a
# dimension); "int8_hnsw" quantises them (~4x less memory for the graph, slightly approximate scores).
VECTOR_INDEX_TYPES = ("hnsw", "int8_hnsw")
DEFAULT_VECTOR_INDEX_TYPE = "hnsw"
# Elasticsearch caps both `k`/`num_candidates` of a kNN search and `size` of a query at 10,000.
MAX_RESULTS = 10_000
MIN_CANDIDATES = 100
BULK_CHUNK = 500
SCAN_PAGE = 1_000
# Documents per stale-passage query: each adds two clauses, well below the cluster's clause limit.
STALE_QUERY_DOCUMENTS = 256
MAX_BACKOFF = 30.0
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
PASSAGE_FIELDS = ["doc_id", "position", "title", "text", "source"]
DOCUMENT_SUFFIX = "#document"


@dataclass(frozen=True)
class ElasticsearchConnection:
    """How to reach a cluster. Credentials may come inside `url` (http://user:password@host:9200) instead.

    Neither `password` nor `api_key` appears in the repr or in any error message.
    """

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    verify_certs: bool = True
    request_timeout: float = 30.0

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError(
                f"Elasticsearch URL must look like http(s)://host:port, got {_without_credentials(self.url)!r}"
            )
        if parts.username is not None:
            # Keep the URL itself credential-free, so printing it is always safe.
            object.__setattr__(self, "url", _without_credentials(self.url))
            if self.username is None and self.api_key is None:
                object.__setattr__(self, "username", urllib.parse.unquote(parts.username))
                object.__setattr__(self, "password", urllib.parse.unquote(parts.password or ""))

    def client(self) -> Elasticsearch:
        """A client that does not retry by itself: the store retries with backoff."""
        options: dict[str, Any] = {"request_timeout": self.request_timeout, "max_retries": 0, "retry_on_timeout": False}
        if self.api_key:
            options["api_key"] = self.api_key
        elif self.username is not None:
            options["basic_auth"] = (self.username, self.password or "")
        if self.url.startswith("https://"):
            options["verify_certs"] = self.verify_certs
            if self.ca_certs:
                options["ca_certs"] = self.ca_certs
        return Elasticsearch(self.url, **options)


class ElasticsearchStore(Store):
    """Passages with vectors and BM25 in an Elasticsearch index reached through the alias `name`."""

    def __init__(
        self,
        connection: ElasticsearchConnection,
        name: str,
        settings: IndexSettings | None = None,
        *,
        staged: bool = False,
        max_retries: int = 3,
        initial_backoff: float = 0.5,
    ) -> None:
        """Open the index `name`; with `settings`, create it if missing.

        Without `settings` a missing index is IndexNotFoundError. With `settings`, an existing index built with
        another model or chunking is IndexMismatchError. With `staged=True` (and `settings`) a new index is
        built beside the live one; searches through `name` see it only after `publish()`.
        Requests failing with 429, 5xx or a connection error are retried `max_retries` times, waiting
        `initial_backoff` seconds and doubling.
        """
        self.connection = connection
        self.name = _checked_index_name(name)
        self.max_retries = max_retries
        self.initial_backoff = initial_backoff
        self._client = connection.client()
        if staged:
            if settings is None:
                raise ValueError("a staged index needs settings")
            self.index, self.analyzer = self._create_index(settings, alias=None)
            self.settings = settings
            self._target = self.index
            return
        self._target = self.name
        try:
            self.index, self.settings, self.analyzer = self._read_index()
        except IndexNotFoundError:
            if settings is None:
                raise
            self.index, self.analyzer = self._create_index(settings, alias=self.name)
            self.settings = settings
        else:
            if settings is not None:
                self.settings.check_compatible(settings.model_fingerprint, settings.chunking)

    @classmethod
    def create(
        cls, connection: ElasticsearchConnection, name: str, settings: IndexSettings, **options: Any
    ) -> ElasticsearchStore:
        """The index `name`, created with `settings` if missing; refused if it exists with other settings."""
        return cls(connection, name, settings, **options)

    @classmethod
    def open(cls, connection: ElasticsearchConnection, name: str, **options: Any) -> ElasticsearchStore:
        """The existing index `name` with the settings recorded in it; IndexNotFoundError if there is none."""
        return cls(connection, name, None, **options)

    @classmethod
    def stage(
        cls, connection: ElasticsearchConnection, name: str, settings: IndexSettings, **options: Any
    ) -> ElasticsearchStore:
        """A new, empty index for `name` (e.g. for another model), invisible to searches until `publish()`."""
        return cls(connection, name, settings, staged=True, **options)

    def publish(self) -> list[str]:
        """Point the alias at this index and delete the indices it pointed at, in one atomic `_aliases` call.

        Returns the deleted indices. Searches through the alias switch over without a gap.
        """
        if self._target == self.name:
            return []
        resolved = self._call(self._client.indices.resolve_index, name=self.name)
        if resolved["indices"]:
            raise BackendError(
                f"{self.name!r} at {self.connection.url} is an index, not an alias: delete or rename it first"
            )
        previous = sorted(index for alias in resolved["aliases"] for index in alias["indices"])
        actions: list[dict[str, Any]] = [{"add": {"index": self.index, "alias": self.name}}]
        actions += [{"remove_index": {"index": index}} for index in previous]
        self._call(self._client.indices.update_aliases, actions=actions)
        self._target = self.name
        return previous

    # -- writing ---------------------------------------------------------------------------------

    def stored_documents(self) -> dict[str, StoredDocument]:
        def collect() -> dict[str, StoredDocument]:
            hits = self._scan({"term": {"kind": "document"}}, ["doc_id", "content_hash", "source"])
            return {
                hit["_source"]["doc_id"]: StoredDocument(
                    content_hash=hit["_source"]["content_hash"], source=hit["_source"]["source"]
                )
                for hit in hits
            }

        return self._call(collect)

    def write(self, batch: Sequence[EncodedDocument]) -> None:
        if not batch:
            return
        dims = self.settings.dimensions
        for item in batch:
            shape = np.shape(item.vectors)
            if shape[0] != len(item.passages) or (shape[0] and shape[1:] != (dims,)):
                raise ValueError(
                    f"{item.document.doc_id}: {len(item.passages)} passages need as many {dims}-d vectors, got {shape}"
                )
        stale = self._stale_passage_ids(batch)
        failed = self._bulk([action for item in batch for action in _passage_actions(item)] + _delete_actions(stale))
        # Last, so a document counts as stored (by its hash) only once all its passages are.
        failed |= self._bulk([_document_action(item) for item in batch if item.document.doc_id not in failed])
        self._refresh()
        _raise_for_failures("write", failed)

    def delete(self, doc_ids: Sequence[str]) -> None:
        unique = list(dict.fromkeys(doc_ids))
        if not unique:
            return
        failed: dict[str, str] = {}
        for start in range(0, len(unique), SCAN_PAGE):
            chunk = unique[start : start + SCAN_PAGE]
            query = {"bool": {"filter": [{"term": {"kind": "passage"}}, {"terms": {"doc_id": chunk}}]}}
            passage_ids = self._call(self._scan_ids, query)
            failed |= self._bulk(_delete_actions(passage_ids))
            # The document record goes last: until then `stored_documents` still lists it for a retry.
            failed |= self._bulk(_delete_actions(doc_id + DOCUMENT_SUFFIX for doc_id in chunk if doc_id not in failed))
        self._refresh()
        _raise_for_failures("delete", failed)

    def close(self) -> None:
        self._client.close()

    # -- reading ---------------------------------------------------------------------------------

    def dense_search(self, vector: np.ndarray, k: int, filter: SearchFilter | None = None) -> list[PassageHit]:
        if k <= 0:
            return []
        k = min(k, MAX_RESULTS)
        knn: dict[str, Any] = {
            "field": "vector",
            "query_vector": np.asarray(vector, dtype=np.float32).ravel().tolist(),
            "k": k,
            # More candidates per shard than k raise HNSW recall; 2k (at least 100) is cheap at this scale.
            "num_candidates": min(MAX_RESULTS, max(MIN_CANDIDATES, 2 * k)),
        }
        clauses = _filter_clauses(filter)
        if clauses:
            # A kNN filter is applied during the graph search, so k matching passages still come back.
            knn["filter"] = clauses
        response = self._call(self._client.search, index=self._target, knn=knn, size=k, source=PASSAGE_FIELDS)
        # Cosine `_score` is (1 + cos) / 2; report the inner product of unit vectors, as the embedded store does.
        return [_passage_hit(hit, 2.0 * hit["_score"] - 1.0) for hit in response["hits"]["hits"]]

    def keyword_search(self, query: str, k: int, filter: SearchFilter | None = None) -> list[PassageHit]:
        terms = query_terms(query)
        if not terms or k <= 0:
            return []
        # combined_fields (BM25F) scores title and text as one field, adding up term counts and lengths, as
        # the embedded store's FTS5 bm25() does over its two columns; summing two per-field BM25s would not.
        match = {"combined_fields": {"query": " ".join(terms), "fields": ["title", "text"]}}
        search = {"bool": {"must": [match], "filter": [{"term": {"kind": "passage"}}, *_filter_clauses(filter)]}}
        response = self._call(
            self._client.search, index=self._target, query=search, size=min(k, MAX_RESULTS), source=PASSAGE_FIELDS
        )
        return [_passage_hit(hit, hit["_score"]) for hit in response["hits"]["hits"]]

    def get_document(self, doc_id: str) -> Document | None:
        response = self._call(
            self._client.options(ignore_status=404).get, index=self._target, id=doc_id + DOCUMENT_SUFFIX
        )
        if "error" in response.body:
            raise self._index_not_found()
        if not response.body.get("found"):
            return None
        source = response["_source"]
        return Document(
            doc_id=source["doc_id"],
            text=source["document_text"],
            title=source["document_title"],
            source=source["source"],
            metadata=source.get("metadata") or {},
        )

    def stats(self) -> StoreStats:
        documents = self._call(self._client.count, index=self._target, query={"term": {"kind": "document"}})["count"]
        passages = self._call(self._client.count, index=self._target, query={"term": {"kind": "passage"}})["count"]
        store = self._call(self._client.indices.stats, index=self._target, metric="store")
        return StoreStats(
            documents=documents,
            passages=passages,
            backend="elasticsearch",
            details={
                "url": self.connection.url,
                "alias": self.name,
                "index": self.index,
                "analyzer": self.analyzer,
                "vector_index": _vector_index_type(self.settings),
                "bytes_on_disk": store["_all"]["primaries"]["store"]["size_in_bytes"],
            },
        )

    # -- internals -------------------------------------------------------------------------------

    def _read_index(self) -> tuple[str, IndexSettings, str]:
        """The concrete index behind `name`, the settings recorded in its `_meta`, and its text analyzer."""
        mappings = self._call(self._client.indices.get_mapping, index=self.name).body
        if len(mappings) != 1:
            raise BackendError(
                f"{self.name!r} at {self.connection.url} points at several indices: {', '.join(sorted(mappings))}"
            )
        ((index, body),) = mappings.items()
        mapping = body.get("mappings", {})
        recorded = mapping.get("_meta", {}).get("bertsearch")
        if recorded is None:
            raise IndexMismatchError(
                f"Elasticsearch index {index!r} was not made by bertsearch (no settings in its _meta)"
            )
        try:
            settings = IndexSettings.from_json(recorded)
        except (TypeError, ValueError) as exc:
            raise IndexMismatchError(f"unreadable bertsearch settings in the _meta of {index!r}: {exc}") from None
        analyzer = mapping.get("properties", {}).get("text", {}).get("analyzer", "standard")
        return index, settings, analyzer

    def _create_index(self, settings: IndexSettings, alias: str | None) -> tuple[str, str]:
        """A new concrete index (behind `alias` if given) and its analyzer: `english` if the node has it."""
        index = f"{self.name}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S-%f}"
        body: dict[str, Any] = {
            # One shard holds millions of passages; auto-expanded replicas keep a single node green.
            "settings": {"number_of_shards": 1, "auto_expand_replicas": "0-1"},
            "aliases": {alias: {}} if alias is not None else {},
        }
        try:
            self._call(self._client.indices.create, index=index, mappings=_mapping(settings, "english"), **body)
            return index, "english"
        except BackendError as exc:
            # Distributions without the analysis-common module (e.g. integ-test-zip) lack `english`.
            if "analyzer [english]" not in str(exc):
                raise
        self._call(self._client.indices.create, index=index, mappings=_mapping(settings, "standard"), **body)
        return index, "standard"

    def _stale_passage_ids(self, batch: Sequence[EncodedDocument]) -> list[str]:
        """Passages stored beyond each document's new passage count, which the rewrite would not overwrite."""
        clauses = [
            {
                "bool": {
                    "filter": [
                        {"term": {"doc_id": item.document.doc_id}},
                        {"range": {"position": {"gte": len(item.passages)}}},
                    ]
                }
            }
            for item in batch
        ]
        stale: list[str] = []
        for start in range(0, len(clauses), STALE_QUERY_DOCUMENTS):
            query = {
                "bool": {
                    "filter": [{"term": {"kind": "passage"}}],
                    "should": clauses[start : start + STALE_QUERY_DOCUMENTS],
                    "minimum_should_match": 1,
                }
            }
            stale += self._call(self._scan_ids, query)
        return stale

    def _scan(self, query: dict[str, Any], source: list[str] | bool) -> Iterable[dict[str, Any]]:
        return helpers.scan(self._client, index=self._target, query={"query": query, "_source": source}, size=SCAN_PAGE)

    def _scan_ids(self, query: dict[str, Any]) -> list[str]:
        return [hit["_id"] for hit in self._scan(query, False)]

    def _bulk(self, actions: list[dict[str, Any]]) -> dict[str, str]:
        """Run `actions`; the documents whose actions failed, each with the first reason."""
        if not actions:
            return {}

        def run() -> dict[str, str]:
            failures: dict[str, str] = {}
            for ok, item in helpers.streaming_bulk(
                self._client,
                actions,
                index=self._target,
                chunk_size=BULK_CHUNK,
                raise_on_error=False,
                max_retries=self.max_retries,  # of items rejected with 429
                initial_backoff=self.initial_backoff,
                max_backoff=MAX_BACKOFF,
            ):
                ((operation, result),) = item.items()
                if ok or (operation == "delete" and result.get("status") == 404):
                    continue
                failures.setdefault(result["_id"].rpartition("#")[0], _reason(result.get("error")))
            return failures

        return self._call(run)

    def _refresh(self) -> None:
        """Make what was just written searchable before `write` returns."""
        self._call(self._client.indices.refresh, index=self._target)

    def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`function(...)`, retried with exponential backoff on transient failures, other failures mapped."""
        attempt = 0
        while True:
            try:
                return function(*args, **kwargs)
            except (ApiError, TransportError, helpers.ScanError) as exc:
                if attempt >= self.max_retries or not _is_transient(exc):
                    raise self._error(exc) from exc
            time.sleep(min(self.initial_backoff * 2**attempt, MAX_BACKOFF))
            attempt += 1

    def _error(self, exc: Exception) -> BertsearchError:
        """One line naming the cluster and what to fix; never credentials, which the URL no longer holds."""
        url = self.connection.url
        if isinstance(exc, AuthenticationException):
            return BackendError(
                f"Elasticsearch at {url} rejected the credentials (401): check the username and password or API key"
            )
        if isinstance(exc, AuthorizationException):
            return BackendError(f"Elasticsearch at {url} denied access to {self.name!r} (403): {_reason(exc.body)}")
        if isinstance(exc, ApiError):
            if exc.meta.status == 404 and _error_type(exc.body) == "index_not_found_exception":
                return self._index_not_found()
            return BackendError(f"Elasticsearch at {url} failed ({exc.meta.status}): {_reason(exc.body)}")
        if isinstance(exc, SSLError):
            return BackendError(
                f"TLS failure talking to Elasticsearch at {url}: check ca_certs and verify_certs ({exc.message})"
            )
        if isinstance(exc, ConnectionTimeout):
            return BackendError(f"Elasticsearch at {url} did not answer within {self.connection.request_timeout:g} s")
        if isinstance(exc, ConnectionError):
            return BackendError(f"cannot reach Elasticsearch at {url}: is it running, and is the URL right?")
        return BackendError(f"Elasticsearch at {url} failed: {exc}")

    def _index_not_found(self) -> IndexNotFoundError:
        return IndexNotFoundError(
            f"no Elasticsearch index {self.name!r} at {self.connection.url} (index documents into it first)"
        )


def _mapping(settings: IndexSettings, analyzer: str) -> dict[str, Any]:
    """Strict mapping (a misspelt field fails loudly) with the index's settings in `_meta`."""
    stored_only = {"type": "text", "index": False}
    return {
        "dynamic": "strict",
        "_meta": {"bertsearch": settings.to_json()},
        # Vectors are never read back and would double the index on disk; rebuilding re-encodes from text.
        "_source": {"excludes": ["vector"]},
        "properties": {
            "kind": {"type": "keyword"},
            "doc_id": {"type": "keyword"},
            "position": {"type": "integer"},
            "title": {"type": "text", "analyzer": analyzer},
            "text": {"type": "text", "analyzer": analyzer},
            "source": {"type": "keyword"},
            # Any keys, each filterable by exact value; long values stay in _source but are not indexed.
            "metadata": {"type": "flattened", "ignore_above": 1024},
            "content_hash": {"type": "keyword", "index": False},
            "document_title": stored_only,
            "document_text": stored_only,
            "vector": {
                "type": "dense_vector",
                "dims": settings.dimensions,
                "index": True,
                # Ranks like dot_product on the encoder's unit vectors, but a vector a rounding error off unit
                # length is scored instead of refused.
                "similarity": "cosine",
                "index_options": {"type": _vector_index_type(settings)},
            },
        },
    }


def _vector_index_type(settings: IndexSettings) -> str:
    kind = settings.backend_options.get("vector_index_type", DEFAULT_VECTOR_INDEX_TYPE)
    if kind not in VECTOR_INDEX_TYPES:
        raise BackendError(f"vector_index_type must be one of {', '.join(VECTOR_INDEX_TYPES)}, got {kind!r}")
    return kind


def _passage_actions(item: EncodedDocument) -> list[dict[str, Any]]:
    document = item.document
    vectors = np.asarray(item.vectors, dtype=np.float32)
    return [
        {
            "_op_type": "index",
            "_id": passage.passage_id,
            "_source": {
                "kind": "passage",
                "doc_id": document.doc_id,
                "position": passage.position,
                "title": passage.title,
                "text": passage.text,
                "source": document.source,
                "metadata": document.metadata,
                "vector": vectors[i].tolist(),
            },
        }
        for i, passage in enumerate(item.passages)
    ]


def _document_action(item: EncodedDocument) -> dict[str, Any]:
    document = item.document
    return {
        "_op_type": "index",
        "_id": document.doc_id + DOCUMENT_SUFFIX,
        "_source": {
            "kind": "document",
            "doc_id": document.doc_id,
            "source": document.source,
            "metadata": document.metadata,
            "content_hash": item.content_hash,
            "document_title": document.title,
            "document_text": document.text,
        },
    }


def _delete_actions(ids: Iterable[str]) -> list[dict[str, Any]]:
    return [{"_op_type": "delete", "_id": passage_id} for passage_id in ids]


def _filter_clauses(filter: SearchFilter | None) -> list[dict[str, Any]]:
    if filter is None or filter.is_empty():
        return []
    clauses: list[dict[str, Any]] = []
    if filter.source_prefix:
        clauses.append({"prefix": {"source": filter.source_prefix}})
    for key, value in filter.metadata.items():
        clauses.append({"term": {f"metadata.{key}": value}})
    return clauses


def _passage_hit(hit: dict[str, Any], score: float) -> PassageHit:
    source = hit["_source"]
    return PassageHit(
        doc_id=source["doc_id"],
        position=source["position"],
        score=float(score),
        text=source["text"],
        title=source["title"],
        source=source["source"],
    )


def _raise_for_failures(operation: str, failed: dict[str, str]) -> None:
    if failed:
        names = ", ".join(sorted(failed)[:10]) + (f" and {len(failed) - 10} more" if len(failed) > 10 else "")
        raise BackendError(
            f"Elasticsearch could not {operation} {len(failed)} document(s): {names} ({next(iter(failed.values()))})"
        )


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, ApiError):
        return exc.meta.status in TRANSIENT_STATUSES
    return isinstance(exc, (ConnectionError, ConnectionTimeout)) and not isinstance(exc, SSLError)


def _error_type(body: object) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("type", "")) if isinstance(error, dict) else ""


def _reason(body: object) -> str:
    """The most specific reason in an Elasticsearch error body."""
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        causes = error.get("root_cause") or []
        cause = causes[0] if causes and isinstance(causes[0], dict) else error
        caused_by = error.get("caused_by")
        if isinstance(caused_by, dict) and caused_by.get("reason") and cause is error:
            cause = caused_by
        return f"{cause.get('type', 'error')}: {cause.get('reason', '')}"
    return str(error)


def _checked_index_name(name: str) -> str:
    """Elasticsearch index names are lowercase and avoid a few characters; say so before the cluster does."""
    if (
        not name
        or name != name.lower()
        or name[0] in "-_+."
        or any(c in name for c in '\\/*?"<>| ,#:')
        or len(name) > 200
    ):
        raise BackendError(
            f"invalid Elasticsearch index name {name!r}: use up to 200 lowercase letters, digits, '-', '_' or '.'"
        )
    return name


def _without_credentials(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))

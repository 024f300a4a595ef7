"""The Elasticsearch store: passages, vectors (HNSW kNN) and BM25 on a cluster, behind an alias.

Layout: an alias `<name>` points at one concrete index `<name>-<UTC timestamp>`, so a rebuild (`stage` a new
index, fill it, `publish`) swaps in atomically while searches keep running. A staged index that was never
published (the rebuild was killed) is resumed by the next `stage` with the same settings and deleted by one
with other settings. The index holds two kinds of Elasticsearch documents:

- one per passage, `_id` = `<doc_id>#<position>`: title and text, their terms (BM25), source and metadata
  (filters), vector;
- one per document, `_id` = `<doc_id>#document`: the whole text, title, source, metadata and content hash,
  for `get_document` and `stored_documents`. It has no vector and no indexed text, so searches never see it,
  and a document with no passages is still remembered.

(A doc_id too long for an `_id` is replaced there by its SHA-256; the `doc_id` field always holds the real one.)

BM25 runs on terms bertsearch makes itself with the embedded store's tokenizer (SQLite FTS5, Porter-stemmed;
see `bertsearch.text.porter_terms`), indexed with the `standard` analyzer, which leaves them as they are: the
same terms on both backends and on every distribution, including the minimal integ-test one, which has no
stemmer at all.

The model fingerprint and chunking live in the mapping's `_meta`, and an index built otherwise is refused.

Elasticsearch has no multi-document transactions, so `write` orders its steps to make a crash harmless: new
passages and deletion of stale ones first, the document record (with the content hash) last. A crash in
between leaves the old hash (or none), so the next indexing run rewrites the document, and the two converge.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

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

from bertsearch.errors import BackendError, BertsearchError, IndexMismatchError, IndexNotFoundError, PartialWriteError
from bertsearch.settings import IndexSettings
from bertsearch.stores import VECTOR_INDEX_TYPES
from bertsearch.stores.base import EncodedDocument, SearchFilter, Store, StoredDocument, StoreStats
from bertsearch.text import FTS5_TOKENIZER, porter_terms, query_terms
from bertsearch.types import Document, PassageHit

T = TypeVar("T")

# How a new index is laid out, recorded in its `_meta` with the model settings. One primary shard holds
# millions of passages; `replicas: None` auto-expands 0-1, so a single node stays green and a second one
# gets a copy. Changing the vector index type or the shard count takes a rebuild.
LAYOUT_DEFAULTS: dict[str, Any] = {"vector_index_type": "hnsw", "shards": 1, "replicas": None}
# Elasticsearch caps both `k`/`num_candidates` of a kNN search and `size` of a query at 10,000.
MAX_RESULTS = 10_000
MIN_CANDIDATES = 100
BULK_CHUNK = 500
SCAN_PAGE = 1_000
# Documents per stale-passage query: each adds two clauses, well below the cluster's clause limit.
STALE_QUERY_DOCUMENTS = 256
MAX_BACKOFF = 30.0
# Elasticsearch refuses an `_id` over 512 bytes for the whole bulk request; longer ones are hashed.
MAX_ID_BYTES = 512
# Documents per passage-count request of `passage_counts`.
COUNT_QUERY_DOCUMENTS = 1_000
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
PASSAGE_FIELDS = ["doc_id", "position", "title", "text", "source"]
DOCUMENT_PART = "document"  # `_id` of a document record: `<doc_id>#document`


@dataclass(frozen=True)
class ElasticsearchConnection:
    """How to reach a cluster: `url` names one node or load balancer, or several nodes comma-separated, between
    which the client fails over. Credentials may come inside a URL (http://user:password@host:9200) instead.

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
        nodes = [node.strip() for node in self.url.split(",")]
        for node in nodes:
            parts = urllib.parse.urlsplit(node)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise BackendError(
                    f"Elasticsearch URL must look like http(s)://host:port, got {_without_credentials(node)!r}"
                )
            if parts.username is not None and self.username is None and self.api_key is None:
                object.__setattr__(self, "username", urllib.parse.unquote(parts.username))
                object.__setattr__(self, "password", urllib.parse.unquote(parts.password or ""))
        # Keep the URL itself credential-free, so printing it is always safe.
        object.__setattr__(self, "url", ",".join(_without_credentials(node) for node in nodes))
        schemes = {urllib.parse.urlsplit(node).scheme for node in nodes}
        if len(schemes) > 1:
            raise BackendError(f"Elasticsearch URLs mix http and https: {self.url!r}")
        if self.ca_certs:
            if schemes != {"https"}:
                raise BackendError(f"a CA certificate only applies to https:// URLs, not {self.url!r}")
            if not os.path.isfile(self.ca_certs):
                raise BackendError(f"CA certificate file {self.ca_certs!r} does not exist")

    @property
    def nodes(self) -> list[str]:
        return self.url.split(",")

    def client(self) -> Elasticsearch:
        """A client that does not retry by itself, except on another node after a connection error: the store
        retries with backoff."""
        options: dict[str, Any] = {
            "request_timeout": self.request_timeout,
            "max_retries": len(self.nodes) - 1,
            "retry_on_status": (),
            "retry_on_timeout": False,
        }
        if self.api_key:
            options["api_key"] = self.api_key
        elif self.username is not None:
            options["basic_auth"] = (self.username, self.password or "")
        if self.url.startswith("https://"):
            options["verify_certs"] = self.verify_certs
            # The user turned verification off on purpose: no warning on every request.
            options["ssl_show_warn"] = self.verify_certs
            if self.ca_certs:
                options["ca_certs"] = self.ca_certs
        return Elasticsearch(self.nodes, **options)


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
        another model or chunking is IndexMismatchError. With `staged=True` (and `settings`) an index is
        built beside the live one; searches through `name` see it only after `publish()`.
        `settings.backend_options` may set the layout of a new index (see LAYOUT_DEFAULTS); `self.settings`
        always holds all of it.
        Requests failing with 429, 5xx or a connection error are retried `max_retries` times, waiting
        `initial_backoff` seconds and doubling.
        """
        self.connection = connection
        self.name = _checked_index_name(name)
        self.max_retries = max_retries
        self.initial_backoff = initial_backoff
        self.resumed = False
        self._client = connection.client()
        if settings is not None:
            settings = with_layout_defaults(settings)
        if staged:
            if settings is None:
                raise ValueError("a staged index needs settings")
            self.settings = settings
            self.index, self.resumed = self._stage_index(settings)
            self._target = self.index
            return
        self._target = self.name
        try:
            self.index, self.settings = self._read_index(self.name)
        except IndexNotFoundError:
            if settings is None:
                raise
            created = self._create_index(settings, alias=self.name)
            if created is not None:
                self.index, self.settings = created, settings
                return
            # Another writer (a partition of the same corpus, say) created it a moment ago: share theirs.
            self.index, self.settings = self._read_index(self.name)
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
        """An index for `name` (e.g. for another model), invisible to searches until `publish()`.

        A staged index left by an interrupted build with the same settings is resumed (`resumed` is True): what
        it holds counts as written. Staged indices of `name` with other settings are deleted.
        """
        return cls(connection, name, settings, staged=True, **options)

    def publish(self) -> list[str]:
        """Point the alias at this index and delete the indices it pointed at, in one atomic `_aliases` call.

        Returns the deleted indices. Searches through the alias switch over without a gap.
        """
        if self._target == self.name:
            return []
        # A concurrent rebuild may have deleted this index, and a write after that recreated it unmapped.
        _, settings = self._read_index(self.index)
        if not _same_build(settings, self.settings):
            raise BackendError(f"staged index {self.index!r} changed during the build; run the rebuild again")
        previous = self._live_indices()
        actions: list[dict[str, Any]] = [{"add": {"index": self.index, "alias": self.name}}]
        actions += [{"remove_index": {"index": index}} for index in previous]
        self._call(self._client.indices.update_aliases, actions=actions)
        for index in previous:  # vectors a killed run stashed for the old index
            self._call(self._client.options(ignore_status=404).indices.delete, index=f"{index}-stash")
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
        stale = self._stale_passage_deletions(batch)
        passages = [passage for item in batch for passage in item.passages]
        terms = iter(zip(porter_terms([p.title for p in passages]), porter_terms([p.text for p in passages])))
        failed = self._bulk([action for item in batch for action in _passage_actions(item, terms)] + stale)
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
            failed |= self._bulk(self._call(self._scan_deletions, query))
            # The document record goes last: until then `stored_documents` still lists it for a retry.
            failed |= self._bulk([_delete_action(doc_id, _document_id(doc_id)) for doc_id in chunk if doc_id not in failed])
        self._refresh()
        _raise_for_failures("delete", failed)

    def stash_vectors(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Into the index `<index>-stash` beside this one, made on first use: one document per key, the vector in
        its `_source` (this index's own leave vectors out of theirs)."""
        if not keys:
            return
        stash = self._stash_index()
        if not self._call(self._client.indices.exists, index=stash):
            self._call(self._client.options(ignore_status=400).indices.create, index=stash,
                       settings={"number_of_shards": 1, "auto_expand_replicas": "0-1"},
                       mappings={"dynamic": "strict", "properties": {"vector": {"type": "float", "index": False,
                                                                                "doc_values": False}}})
        rows = np.asarray(vectors, dtype=np.float32)
        actions = [{"_op_type": "index", "_index": stash, "_id": key, "_source": {"vector": rows[i].tolist()}}
                   for i, key in enumerate(keys)]
        _, errors = self._call(helpers.bulk, self._client, actions, raise_on_error=False, chunk_size=BULK_CHUNK)
        if errors:
            raise BackendError(f"Elasticsearch refused {len(errors)} stashed vector(s) in {stash!r}: "
                               f"{_reason(next(iter(errors[0].values())).get('error'))}")

    def stashed_vectors(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        stash = self._stash_index()
        unique = list(dict.fromkeys(keys))
        if not unique or not self._call(self._client.indices.exists, index=stash):
            return {}
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(unique), SCAN_PAGE):
            response = self._call(self._client.mget, index=stash, ids=unique[start : start + SCAN_PAGE])
            found.update((doc["_id"], np.asarray(doc["_source"]["vector"], dtype=np.float32))
                         for doc in response["docs"] if doc.get("found"))
        return found

    def clear_stash(self, keys: Sequence[str] | None = None) -> None:
        if keys is None:
            self._call(self._client.options(ignore_status=404).indices.delete, index=self._stash_index())
            return
        actions = [{"_op_type": "delete", "_index": self._stash_index(), "_id": key} for key in dict.fromkeys(keys)]
        self._call(helpers.bulk, self._client, actions, raise_on_error=False, chunk_size=BULK_CHUNK)

    def close(self) -> None:
        self._client.close()

    # -- reading ---------------------------------------------------------------------------------

    def dense_search(self, vector: np.ndarray, k: int, filter: SearchFilter | None = None,
                     texts: bool = True) -> list[PassageHit]:
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
        response = self._search(knn=knn, size=k, source=_hit_fields(texts))
        self._follow_alias(response["hits"]["hits"])
        # Cosine `_score` is (1 + cos) / 2; report the inner product of unit vectors, as the embedded store does.
        return [_passage_hit(hit, 2.0 * hit["_score"] - 1.0) for hit in response["hits"]["hits"]]

    def keyword_search(self, query: str, k: int, filter: SearchFilter | None = None,
                       texts: bool = True) -> list[PassageHit]:
        terms = porter_terms([" ".join(query_terms(query))])[0]
        if not terms or k <= 0:
            return []
        # combined_fields (BM25F) scores title and text as one field, adding up term counts and lengths, as
        # the embedded store's FTS5 bm25() does over its two columns; summing two per-field BM25s would not.
        match = {"combined_fields": {"query": terms, "fields": ["title_terms", "text_terms"]}}
        search = {"bool": {"must": [match], "filter": [{"term": {"kind": "passage"}}, *_filter_clauses(filter)]}}
        response = self._search(query=search, size=min(k, MAX_RESULTS), source=_hit_fields(texts))
        self._follow_alias(response["hits"]["hits"])
        return [_passage_hit(hit, hit["_score"]) for hit in response["hits"]["hits"]]

    def with_texts(self, hits: Sequence[PassageHit]) -> list[PassageHit]:
        if not hits:
            return []
        ids = [_elasticsearch_id(hit.doc_id, str(hit.position)) for hit in hits]
        response = self._call(self._mget, ids)
        found = {(doc["_source"]["doc_id"], doc["_source"]["position"]): doc
                 for doc in response["docs"] if doc.get("found")}
        return [_passage_hit(found[key], hit.score) for hit in hits if (key := (hit.doc_id, hit.position)) in found]

    def get_document(self, doc_id: str) -> Document | None:
        response = self._call(
            self._client.options(ignore_status=404).get, index=self._target, id=_document_id(doc_id)
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

    def passage_counts(self, doc_ids: Sequence[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        unique = list(dict.fromkeys(doc_ids))
        for start in range(0, len(unique), COUNT_QUERY_DOCUMENTS):
            chunk = unique[start : start + COUNT_QUERY_DOCUMENTS]
            by_document = {
                "terms": {"field": "doc_id", "include": chunk, "size": len(chunk)},
                "aggs": {kind: {"filter": {"term": {"kind": kind}}} for kind in ("document", "passage")},
            }
            response = self._search(query={"terms": {"doc_id": chunk}}, size=0, aggs={"by_document": by_document})
            for bucket in response["aggregations"]["by_document"]["buckets"]:
                if bucket["document"]["doc_count"]:
                    counts[bucket["key"]] = bucket["passage"]["doc_count"]
        return counts

    def stats(self) -> StoreStats:
        documents, passages = (self._count({"term": {"kind": kind}}) for kind in ("document", "passage"))
        store = self._call(self._client.indices.stats, index=self._target, metric="store")
        return StoreStats(
            documents=documents,
            passages=passages,
            backend="elasticsearch",
            details={
                "url": self.connection.url,
                "alias": self.name,
                "index": self.index,
                "text_analysis": f"{FTS5_TOKENIZER} (SQLite FTS5, by bertsearch)",
                "vector_index": _vector_index_type(self.settings.backend_options),
                "shards": self.settings.backend_options["shards"],
                "replicas": self.settings.backend_options["replicas"],
                "bytes_on_disk": store["_all"]["primaries"]["store"]["size_in_bytes"],
            },
        )

    # -- internals -------------------------------------------------------------------------------

    def _stash_index(self) -> str:
        """Where `stash_vectors` keeps vectors for the concrete index written (a rebuild's staged one has its own)."""
        return f"{self.index}-stash"

    def _follow_alias(self, hits: list[dict[str, Any]]) -> None:
        """Notice a `--rebuild` that swapped the alias since this store opened it (e.g. under a running server).

        A new index built with the same model and chunking (in any layout) is followed. One built otherwise holds
        vectors this process's model cannot query: that is refused, asking for a restart, rather than answered
        with results from mismatched vectors.
        """
        swapped = {hit["_index"] for hit in hits} - {self.index}
        if self._target != self.name or not swapped:
            return
        index, settings = self._read_index(self.name)
        try:
            settings.check_compatible(self.settings.model_fingerprint, self.settings.chunking)
        except IndexMismatchError as exc:
            raise IndexMismatchError(
                f"Elasticsearch index {self.name!r} was rebuilt with another model or other settings while this "
                "process was running; restart it to search the new index"
            ) from exc
        self.index, self.settings = index, settings

    def _read_index(self, name: str) -> tuple[str, IndexSettings]:
        """The concrete index `name` is or points at, and the settings recorded in its `_meta`."""
        mappings = self._call(self._client.indices.get_mapping, index=name).body
        if len(mappings) != 1:
            raise BackendError(
                f"{name!r} at {self.connection.url} points at several indices: {', '.join(sorted(mappings))}"
            )
        ((index, body),) = mappings.items()
        return index, _recorded_settings(index, body.get("mappings", {}))

    def _live_indices(self) -> list[str]:
        """The indices the alias points at (none before the first publish); refused if `name` is an index."""
        try:
            resolved = self._call(self._client.indices.resolve_index, name=self.name)
        except IndexNotFoundError:
            return []
        if resolved["indices"]:
            raise BackendError(
                f"{self.name!r} at {self.connection.url} is an index, not an alias: delete or rename it first"
            )
        return sorted(index for alias in resolved["aliases"] for index in alias["indices"])

    def _stage_index(self, settings: IndexSettings) -> tuple[str, bool]:
        """A staged index for `settings`: an unpublished one built with them, else a new one. Returns the index
        and whether it was resumed. Unpublished indices built otherwise are deleted."""
        live = set(self._live_indices())
        own = re.compile(re.escape(self.name) + r"-\d{8}-\d{6}-\d{6}")
        mappings = self._call(self._client.indices.get_mapping, index=f"{self.name}-*").body
        resumed: str | None = None
        for index in sorted(mappings, reverse=True):  # newest first
            if index in live or not own.fullmatch(index):
                continue
            try:
                recorded = _recorded_settings(index, mappings[index].get("mappings", {}))
            except IndexMismatchError:
                continue  # not made by bertsearch: not ours to delete
            if resumed is None and _same_build(recorded, settings):
                resumed = index
            else:
                self._call(self._client.indices.delete, index=index)
        if resumed is not None:
            return resumed, True
        return self._create_index(settings, alias=None), False

    def _create_index(self, settings: IndexSettings, alias: str | None) -> str | None:
        """A new concrete index, behind `alias` if given; None if another writer created `alias` first.

        The index is the alias's write index, and an alias has at most one: of several writers creating it at
        once, the cluster lets exactly one succeed, and the others then open that one.
        """
        index = f"{self.name}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S-%f}"
        layout = settings.backend_options
        replicas = {"auto_expand_replicas": "0-1"} if layout["replicas"] is None else {
            "number_of_replicas": layout["replicas"]
        }

        def create() -> str | None:
            try:
                self._client.indices.create(
                    index=index,
                    mappings=_mapping(settings),
                    settings={"number_of_shards": layout["shards"], **replicas},
                    aliases={alias: {"is_write_index": True}} if alias is not None else {},
                )
            except ApiError as exc:
                kind = _error_type(exc.body)
                if kind == "resource_already_exists_exception":  # a retried request whose first try succeeded
                    return index
                if kind == "illegal_state_exception" and alias is not None:  # "more than one write index"
                    return None
                raise
            return index

        return self._call(create)

    def _stale_passage_deletions(self, batch: Sequence[EncodedDocument]) -> list[Action]:
        """Deletions of the passages stored beyond each document's new passage count, which the rewrite would
        not overwrite."""
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
        stale: list[Action] = []
        for start in range(0, len(clauses), STALE_QUERY_DOCUMENTS):
            query = {
                "bool": {
                    "filter": [{"term": {"kind": "passage"}}],
                    "should": clauses[start : start + STALE_QUERY_DOCUMENTS],
                    "minimum_should_match": 1,
                }
            }
            stale += self._call(self._scan_deletions, query)
        return stale

    def _search(self, **request: Any) -> Any:
        """A search of the whole index: one that some shards failed (a node just died, its copies are moving) is
        an error, retried, rather than a silently partial answer."""
        return self._call(self._client.search, index=self._target, allow_partial_search_results=False, **request)

    def _count(self, query: dict[str, Any]) -> int:
        """Exact count of what `query` matches (the count API would answer from the shards it reached)."""
        return self._search(query=query, size=0, track_total_hits=True)["hits"]["total"]["value"]

    def _mget(self, ids: list[str]) -> Any:
        """The passages `ids`; a passage the cluster failed to read is an error, not a passage missing."""
        response = self._client.mget(index=self._target, ids=ids, source=PASSAGE_FIELDS)
        failed = [doc for doc in response["docs"] if "error" in doc]
        if failed:
            raise IncompleteAnswer(f"could not read passage {failed[0]['_id']!r}: {_reason(failed[0]['error'])}")
        return response

    def _scan(self, query: dict[str, Any], source: list[str] | bool) -> Iterable[dict[str, Any]]:
        return helpers.scan(self._client, index=self._target, query={"query": query, "_source": source}, size=SCAN_PAGE)

    def _scan_deletions(self, query: dict[str, Any]) -> list[Action]:
        """Deletions of the passages `query` matches."""
        return [_delete_action(hit["_source"]["doc_id"], hit["_id"]) for hit in self._scan(query, ["doc_id"])]

    def _bulk(self, actions: list[Action]) -> dict[str, str]:
        """Run `actions`; the documents whose actions failed, each with the first reason."""
        if not actions:
            return {}
        owners = {(action.body["_op_type"], action.body["_id"]): action.doc_id for action in actions}

        def run() -> dict[str, str]:
            failures: dict[str, str] = {}
            for ok, item in helpers.streaming_bulk(
                self._client,
                [action.body for action in actions],
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
                failures.setdefault(owners[operation, result["_id"]], _reason(result.get("error")))
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
            except (ApiError, TransportError, helpers.ScanError, IncompleteAnswer) as exc:
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
            if exc.meta.status == 503 and _error_type(exc.body) == "search_phase_execution_exception":
                # Elasticsearch's own reason goes on to suggest allowing partial results, which bertsearch never does.
                reason = _reason(exc.body).split(". Consider using")[0]
                return BackendError(
                    f"Elasticsearch at {url} cannot search every shard of {self.name!r}, and an answer from the "
                    f"others would be incomplete: are the nodes holding its copies down? (503: {reason})"
                )
            return BackendError(f"Elasticsearch at {url} failed ({exc.meta.status}): {_reason(exc.body)}")
        if isinstance(exc, SSLError):
            return BackendError(
                f"TLS failure talking to Elasticsearch at {url}: check the CA certificate or "
                f"turn verification off ({exc.message})", settings=("es_ca_certs", "es_verify_certs")
            )
        if isinstance(exc, ConnectionTimeout):
            return BackendError(f"Elasticsearch at {url} did not answer within {self.connection.request_timeout:g} s")
        if isinstance(exc, ConnectionError):
            return BackendError(f"cannot reach Elasticsearch at {url}: is it running, and is the URL right?")
        if isinstance(exc, (IncompleteAnswer, helpers.ScanError)):
            return BackendError(f"Elasticsearch at {url} answered only in part, even after retries: {exc}")
        return BackendError(f"Elasticsearch at {url} failed: {exc}")

    def _index_not_found(self) -> IndexNotFoundError:
        return IndexNotFoundError(
            f"no Elasticsearch index {self.name!r} at {self.connection.url} (index documents into it first)"
        )


class IncompleteAnswer(Exception):
    """A response reporting that some shards or items failed: transient on a cluster that is losing a node."""


@dataclass(frozen=True)
class Action:
    """One bulk action and the document it belongs to, to name that document if the action fails."""

    doc_id: str
    body: dict[str, Any]


def with_layout_defaults(settings: IndexSettings) -> IndexSettings:
    """`settings` with every layout option of LAYOUT_DEFAULTS present, checked."""
    layout = {**LAYOUT_DEFAULTS, **settings.backend_options}
    _vector_index_type(layout)
    shards, replicas = layout["shards"], layout["replicas"]
    if not isinstance(shards, int) or shards < 1:
        raise BackendError(f"the number of shards must be at least 1, got {shards!r}")
    if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
        raise BackendError(f"the number of replicas must be at least 0, got {replicas!r}")
    return dataclasses.replace(settings, backend_options=layout)


def _recorded_settings(index: str, mapping: dict[str, Any]) -> IndexSettings:
    """The settings in an index mapping's `_meta` (with layout defaults for indices made before they were
    recorded); IndexMismatchError if bertsearch did not make it, or an older version without term fields did."""
    recorded = mapping.get("_meta", {}).get("bertsearch")
    if recorded is None:
        raise IndexMismatchError(f"Elasticsearch index {index!r} was not made by bertsearch (no settings in its _meta)")
    try:
        settings = with_layout_defaults(IndexSettings.from_json(recorded))
    except (TypeError, ValueError, BackendError) as exc:
        raise IndexMismatchError(f"unreadable bertsearch settings in the _meta of {index!r}: {exc}") from None
    if "text_terms" not in mapping.get("properties", {}):
        raise IndexMismatchError(
            f"Elasticsearch index {index!r} was built by an older bertsearch", differs="format"
        )
    return settings


def _same_build(first: IndexSettings, second: IndexSettings) -> bool:
    """True if indices built with these settings hold the same vectors in the same layout."""
    return (first.model_fingerprint, first.dimensions, first.chunking) == (
        second.model_fingerprint,
        second.dimensions,
        second.chunking,
    ) and all(first.backend_options.get(key) == second.backend_options.get(key) for key in LAYOUT_DEFAULTS)


def _mapping(settings: IndexSettings) -> dict[str, Any]:
    """Strict mapping (a misspelt field fails loudly) with the index's settings in `_meta`."""
    stored_only = {"type": "text", "index": False}
    return {
        "dynamic": "strict",
        "_meta": {"bertsearch": settings.to_json()},
        # Vectors are never read back and would double the index on disk; rebuilding re-encodes from text.
        # Terms are derived from title and text.
        "_source": {"excludes": ["vector", "title_terms", "text_terms"]},
        "properties": {
            "kind": {"type": "keyword"},
            "doc_id": {"type": "keyword"},
            "position": {"type": "integer"},
            "title": {"type": "text", "index": False},
            "text": {"type": "text", "index": False},
            # Already tokenized and stemmed (see porter_terms): `standard` only splits them at the spaces.
            "title_terms": {"type": "text", "analyzer": "standard"},
            "text_terms": {"type": "text", "analyzer": "standard"},
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
                "index_options": {"type": _vector_index_type(settings.backend_options)},
            },
        },
    }


def _vector_index_type(layout: dict[str, Any]) -> str:
    kind = layout.get("vector_index_type", LAYOUT_DEFAULTS["vector_index_type"])
    if kind not in VECTOR_INDEX_TYPES:
        raise BackendError(f"vector_index_type must be one of {', '.join(VECTOR_INDEX_TYPES)}, got {kind!r}")
    return kind


def _passage_actions(item: EncodedDocument, terms: Iterator[tuple[str, str]]) -> list[Action]:
    """Index actions for the passages of `item`; `terms` yields each passage's (title terms, text terms)."""
    document = item.document
    vectors = np.asarray(item.vectors, dtype=np.float32)
    return [
        Action(document.doc_id, {
            "_op_type": "index",
            "_id": _elasticsearch_id(document.doc_id, str(passage.position)),
            "_source": {
                "kind": "passage",
                "doc_id": document.doc_id,
                "position": passage.position,
                "title": passage.title,
                "text": passage.text,
                "title_terms": title_terms,
                "text_terms": text_terms,
                "source": document.source,
                "metadata": document.metadata,
                "vector": vectors[i].tolist(),
            },
        })
        for (i, passage), (title_terms, text_terms) in zip(enumerate(item.passages), terms)
    ]


def _document_action(item: EncodedDocument) -> Action:
    document = item.document
    return Action(document.doc_id, {
        "_op_type": "index",
        "_id": _document_id(document.doc_id),
        "_source": {
            "kind": "document",
            "doc_id": document.doc_id,
            "source": document.source,
            "metadata": document.metadata,
            "content_hash": item.content_hash,
            "document_title": document.title,
            "document_text": document.text,
        },
    })


def _delete_action(doc_id: str, elasticsearch_id: str) -> Action:
    return Action(doc_id, {"_op_type": "delete", "_id": elasticsearch_id})


def _document_id(doc_id: str) -> str:
    return _elasticsearch_id(doc_id, DOCUMENT_PART)


def _elasticsearch_id(doc_id: str, part: str) -> str:
    """`<doc_id>#<part>`, stable across runs; a doc_id too long for an `_id` is replaced by its SHA-256 (the
    `doc_id` field keeps the real one)."""
    elasticsearch_id = f"{doc_id}#{part}"
    if len(elasticsearch_id.encode("utf-8")) <= MAX_ID_BYTES:
        return elasticsearch_id
    return f"sha256:{hashlib.sha256(doc_id.encode('utf-8')).hexdigest()}#{part}"


def _filter_clauses(filter: SearchFilter | None) -> list[dict[str, Any]]:
    if filter is None or filter.is_empty():
        return []
    clauses: list[dict[str, Any]] = []
    if filter.source_prefix:
        clauses.append({"prefix": {"source": filter.source_prefix}})
    for key, value in filter.metadata.items():
        clauses.append({"term": {f"metadata.{key}": value}})
    return clauses


def _hit_fields(texts: bool) -> list[str]:
    """The `_source` fields a search returns: ids alone when the texts are read later (`with_texts`)."""
    return PASSAGE_FIELDS if texts else ["doc_id", "position"]


def _passage_hit(hit: dict[str, Any], score: float) -> PassageHit:
    source = hit["_source"]
    return PassageHit(
        doc_id=source["doc_id"],
        position=source["position"],
        score=float(score),
        text=source.get("text", ""),
        title=source.get("title", ""),
        source=source.get("source", ""),
    )


def _raise_for_failures(operation: str, failed: dict[str, str]) -> None:
    if failed:
        names = ", ".join(sorted(failed)[:10]) + (f" and {len(failed) - 10} more" if len(failed) > 10 else "")
        raise PartialWriteError(
            f"Elasticsearch could not {operation} {len(failed)} document(s): {names} ({next(iter(failed.values()))})",
            failed,
        )


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, (IncompleteAnswer, helpers.ScanError)):
        return True
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
        # A JSON parser's reason ends with a preview of the document's source: not worth printing.
        reason = str(cause.get("reason", "")).split("\n at [Source:")[0]
        return _one_line(f"{cause.get('type', 'error')}: {reason}")
    return _one_line(str(error))


def _one_line(text: str, limit: int = 300) -> str:
    """Error reasons can span lines (parser messages) and run long; the CLI prints them on one line."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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

"""The Elasticsearch store: passages, vectors (HNSW kNN) and BM25 on a cluster, behind an alias (see `aliases`),
laid out as `documents` describes, in an index of the `mapping` schema.

BM25 runs on terms bertsearch makes itself with the embedded store's tokenizer (SQLite FTS5, Porter-stemmed;
see `bertsearch.text.porter_terms`), indexed with the `standard` analyzer, which leaves them as they are: the
same terms on both backends and on every distribution, including the minimal integ-test one, which has no
stemmer at all.

Elasticsearch has no multi-document transactions, so `write` orders its steps to make a crash harmless: new
passages and deletion of stale ones first, the document record (with the content hash) last. A crash in
between leaves the old hash (or none), so the next indexing run rewrites the document, and the two converge.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Iterable, Sequence

import numpy as np
from elasticsearch import helpers

from bertsearch.errors import IndexMismatchError, IndexNotFoundError, PartialWriteError
from bertsearch.settings import IndexSettings
from bertsearch.stores.base import EncodedDocument, SearchFilter, Store, StoredDocument, StoreStats
from bertsearch.stores.elasticsearch import stash
from bertsearch.stores.elasticsearch.aliases import AliasedIndices, checked_index_name
from bertsearch.stores.elasticsearch.client import MAX_BACKOFF, RetryingClient
from bertsearch.stores.elasticsearch.connection import ElasticsearchConnection
from bertsearch.stores.elasticsearch.documents import (PASSAGE_FIELDS, Action, delete_action, document_action,
                                                       document_id, elasticsearch_id, hit_fields, passage_actions,
                                                       passage_hit)
from bertsearch.stores.elasticsearch.errors import IncompleteAnswer, index_not_found, reason
from bertsearch.stores.elasticsearch.mapping import vector_index_type, with_layout_defaults
from bertsearch.stores.elasticsearch.queries import MAX_RESULTS, keyword_query, knn_search
from bertsearch.text import FTS5_TOKENIZER, porter_terms, query_terms
from bertsearch.types import Document, PassageHit

BULK_CHUNK = 500
SCAN_PAGE = 1_000
# Documents per stale-passage query: each adds two clauses, well below the cluster's clause limit.
STALE_QUERY_DOCUMENTS = 256
# Documents per passage-count request of `passage_counts`.
COUNT_QUERY_DOCUMENTS = 1_000


class ElasticsearchStore(Store):
    """Passages with vectors and BM25 in an Elasticsearch index reached through the alias `name`."""

    rebuildable = True

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
        self.name = checked_index_name(name)
        self.resumed = False
        self._retrying = RetryingClient(connection, self.name, max_retries, initial_backoff)
        self._client = self._retrying.client
        self._call = self._retrying.call
        self._aliases = AliasedIndices(self._retrying)
        if settings is not None:
            settings = with_layout_defaults(settings)
        if staged:
            if settings is None:
                raise ValueError("a staged index needs settings")
            self.settings = settings
            self.index, self.resumed = self._aliases.stage_index(settings)
            self._target = self.index
            return
        self._target = self.name
        try:
            self.index, self.settings = self._aliases.read_index(self.name)
        except IndexNotFoundError:
            if settings is None:
                raise
            created = self._aliases.create_index(settings, alias=self.name)
            if created is not None:
                self.index, self.settings = created, settings
                return
            # Another writer (a partition of the same corpus, say) created it a moment ago: share theirs.
            self.index, self.settings = self._aliases.read_index(self.name)
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
        previous = self._aliases.publish(self.index, self.settings)
        for index in previous:  # vectors a killed run stashed for the old index
            self._call(self._client.options(ignore_status=404).indices.delete, index=stash.stash_index(index))
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
        terms = iter(zip(porter_terms([p.title for p in passages]), porter_terms([p.text for p in passages]),
                         strict=True))
        failed = self._bulk([action for item in batch for action in passage_actions(item, terms)] + stale)
        # Last, so a document counts as stored (by its hash) only once all its passages are.
        failed |= self._bulk([document_action(item) for item in batch if item.document.doc_id not in failed])
        self._refresh()
        raise_for_failures("write", failed)

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
            failed |= self._bulk([delete_action(doc_id, document_id(doc_id)) for doc_id in chunk
                                  if doc_id not in failed])
        self._refresh()
        raise_for_failures("delete", failed)

    def stash_vectors(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        stash.stash_vectors(self._retrying, stash.stash_index(self.index), keys, vectors)

    def stashed_vectors(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        return stash.stashed_vectors(self._retrying, stash.stash_index(self.index), keys)

    def clear_stash(self, keys: Sequence[str] | None = None) -> None:
        stash.clear_stash(self._retrying, stash.stash_index(self.index), keys)

    def close(self) -> None:
        self._client.close()

    # -- reading ---------------------------------------------------------------------------------

    def dense_search(self, vector: np.ndarray, k: int, filter: SearchFilter | None = None,
                     texts: bool = True) -> list[PassageHit]:
        if k <= 0:
            return []
        k = min(k, MAX_RESULTS)
        knn = knn_search(vector, k, filter)
        response = self._search(knn=knn, size=k, source=hit_fields(texts))
        self._follow_alias(response["hits"]["hits"])
        # Cosine `_score` is (1 + cos) / 2; report the inner product of unit vectors, as the embedded store does.
        return [passage_hit(hit, 2.0 * hit["_score"] - 1.0) for hit in response["hits"]["hits"]]

    def keyword_search(self, query: str, k: int, filter: SearchFilter | None = None,
                       texts: bool = True) -> list[PassageHit]:
        terms = porter_terms([" ".join(query_terms(query))])[0]
        if not terms or k <= 0:
            return []
        search = keyword_query(terms, filter)
        response = self._search(query=search, size=min(k, MAX_RESULTS), source=hit_fields(texts))
        self._follow_alias(response["hits"]["hits"])
        return [passage_hit(hit, hit["_score"]) for hit in response["hits"]["hits"]]

    def with_texts(self, hits: Sequence[PassageHit]) -> list[PassageHit]:
        if not hits:
            return []
        ids = [elasticsearch_id(hit.doc_id, str(hit.position)) for hit in hits]
        response = self._call(self._mget, ids)
        found = {(doc["_source"]["doc_id"], doc["_source"]["position"]): doc
                 for doc in response["docs"] if doc.get("found")}
        return [passage_hit(found[key], hit.score) for hit in hits if (key := (hit.doc_id, hit.position)) in found]

    def get_document(self, doc_id: str) -> Document | None:
        response = self._call(
            self._client.options(ignore_status=404).get, index=self._target, id=document_id(doc_id)
        )
        if "error" in response.body:
            raise index_not_found(self.connection, self.name)
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
                "vector_index": vector_index_type(self.settings.backend_options),
                "shards": self.settings.backend_options["shards"],
                "replicas": self.settings.backend_options["replicas"],
                "bytes_on_disk": store["_all"]["primaries"]["store"]["size_in_bytes"],
            },
        )

    # -- internals -------------------------------------------------------------------------------

    def _follow_alias(self, hits: list[dict[str, Any]]) -> None:
        """Notice a `--rebuild` that swapped the alias since this store opened it (e.g. under a running server).

        A new index built with the same model and chunking (in any layout) is followed. One built otherwise holds
        vectors this process's model cannot query: that is refused, asking for a restart, rather than answered
        with results from mismatched vectors.
        """
        swapped = {hit["_index"] for hit in hits} - {self.index}
        if self._target != self.name or not swapped:
            return
        index, settings = self._aliases.read_index(self.name)
        try:
            settings.check_compatible(self.settings.model_fingerprint, self.settings.chunking)
        except IndexMismatchError as exc:
            raise IndexMismatchError(
                f"Elasticsearch index {self.name!r} was rebuilt with another model or other settings while this "
                "process was running; restart it to search the new index"
            ) from exc
        self.index, self.settings = index, settings

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
            raise IncompleteAnswer(f"could not read passage {failed[0]['_id']!r}: {reason(failed[0]['error'])}")
        return response

    def _scan(self, query: dict[str, Any], source: list[str] | bool) -> Iterable[dict[str, Any]]:
        return helpers.scan(self._client, index=self._target, query={"query": query, "_source": source}, size=SCAN_PAGE)

    def _scan_deletions(self, query: dict[str, Any]) -> list[Action]:
        """Deletions of the passages `query` matches."""
        return [delete_action(hit["_source"]["doc_id"], hit["_id"]) for hit in self._scan(query, ["doc_id"])]

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
                max_retries=self._retrying.max_retries,  # of items rejected with 429
                initial_backoff=self._retrying.initial_backoff,
                max_backoff=MAX_BACKOFF,
            ):
                ((operation, result),) = item.items()
                if ok or (operation == "delete" and result.get("status") == 404):
                    continue
                failures.setdefault(owners[operation, result["_id"]], reason(result.get("error")))
            return failures

        return self._call(run)

    def _refresh(self) -> None:
        """Make what was just written searchable before `write` returns."""
        self._call(self._client.indices.refresh, index=self._target)


def raise_for_failures(operation: str, failed: dict[str, str]) -> None:
    if failed:
        names = ", ".join(sorted(failed)[:10]) + (f" and {len(failed) - 10} more" if len(failed) > 10 else "")
        raise PartialWriteError(
            f"Elasticsearch could not {operation} {len(failed)} document(s): {names} ({next(iter(failed.values()))})",
            failed,
        )

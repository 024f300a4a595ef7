"""The query log beside an Elasticsearch index: the data stream `bertsearch-queries`, created from an index
template with a strict mapping (`QUERY_EVENT_MAPPING`) and a retention lifecycle. Data streams need no optional
module: the integ-test distribution auto-creates them from the template (it only lacks the `_data_stream`
management API and does not run the lifecycle); a full distribution also applies retention.

It talks to the cluster as the store does (`RetryingClient`): the same connection settings, retries and
one-line errors."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, cast
from collections.abc import Sequence

from elasticsearch import BadRequestError, helpers

from bertsearch.errors import BackendError, IndexNotFoundError
from bertsearch.querylog.base import MAX_EVENTS_READ, QueryLog
from bertsearch.querylog.event import QUERY_EVENT_MAPPING, QueryEvent, utc_iso
from bertsearch.querylog.hashing import QUERY_HASH_KEY_INDEX, new_hash_key
from bertsearch.stores import StoreLocation
from bertsearch.stores.elasticsearch.client import RetryingClient
from bertsearch.stores.elasticsearch.errors import reason

QUERY_LOG_STREAM = "bertsearch-queries"
RETENTION = "90d"
SCAN_PAGE = 1_000


class ElasticsearchQueryLog(QueryLog):
    """Events in an Elasticsearch data stream, set up from an index template on first write.

    The stream is shared by every bertsearch index on the cluster (the dashboards can compare them); `read`
    returns only the events of the index at `location`.
    """

    def __init__(self, location: StoreLocation, stream: str = QUERY_LOG_STREAM, max_retries: int = 3,
                 initial_backoff: float = 0.5) -> None:
        """`max_retries` and `initial_backoff` as for the store (`RetryingClient`)."""
        assert location.elasticsearch is not None
        self.connection = location.elasticsearch
        self.stream = stream
        self.index = location.es_index
        self._retrying = RetryingClient(self.connection, stream, max_retries, initial_backoff)
        self._client = self._retrying.client
        self._template_ready = False

    @classmethod
    def open_at(cls, location: StoreLocation, read_only: bool = False) -> ElasticsearchQueryLog:
        return cls(location)

    def write(self, events: Sequence[QueryEvent]) -> None:
        if not events:
            return
        self._ensure_template()
        actions = [{"_op_type": "create", "_index": self.stream, "_source": e.to_document()} for e in events]
        _, failed = self._retrying.call(helpers.bulk, self._client, actions, raise_on_error=False, stats_only=False)
        errors = cast(list[dict[str, Any]], failed)  # not stats_only: the failed items themselves
        if errors:
            first = next(iter(errors[0].values()))
            raise BackendError(f"Elasticsearch refused {len(errors)} query event(s) in {self.stream!r}: "
                               f"{reason(first.get('error'))}")

    def read(self, since: datetime | None = None, limit: int = MAX_EVENTS_READ) -> list[QueryEvent]:
        query = self._events_of_this_index(utc_iso(since))
        try:
            count = self._retrying.call(self._client.count, index=self.stream, query=query)["count"]
            if count > limit:  # keep the newest `limit`: start from the timestamp of the limit-th newest
                newest = self._retrying.call(self._client.search, index=self.stream, query=query, size=1,
                                             from_=limit - 1, sort=[{"@timestamp": "desc"}], source=["@timestamp"])
                query = self._events_of_this_index(newest["hits"]["hits"][0]["_source"]["@timestamp"])
            events = self._retrying.call(lambda: [
                QueryEvent.from_document(hit["_source"])
                for hit in helpers.scan(self._client, index=self.stream, query={"query": query}, size=SCAN_PAGE)
            ])
        except IndexNotFoundError:  # nothing logged yet
            return []
        events.sort(key=lambda e: e.timestamp)
        return events[-limit:]

    def count(self, since: datetime | None = None) -> int:
        query = self._events_of_this_index(utc_iso(since))
        try:
            return int(self._retrying.call(self._client.count, index=self.stream, query=query)["count"])
        except IndexNotFoundError:
            return 0

    def hash_key(self) -> bytes:
        """This index's document in the hidden index `QUERY_HASH_KEY_INDEX`, created once (`create`, so two
        processes starting together agree on one key): readers of the log need no access to it."""
        keys = RetryingClient(self.connection, QUERY_HASH_KEY_INDEX, self._retrying.max_retries,
                              self._retrying.initial_backoff)
        try:
            key = self._stored_key(keys)
            if key is not None:
                return key
            keys.call(
                keys.client.options(ignore_status=400).indices.create,
                index=QUERY_HASH_KEY_INDEX,
                settings={"number_of_shards": 1, "auto_expand_replicas": "0-1", "hidden": True},
                mappings={"dynamic": "strict", "properties": {"key": {"type": "keyword", "index": False,
                                                                     "doc_values": False}}},
            )
            # 409: another process made it first: use theirs.
            keys.call(keys.client.options(ignore_status=409).create, index=QUERY_HASH_KEY_INDEX, id=self.index,
                      document={"key": base64.b64encode(new_hash_key()).decode()}, refresh=True)
            key = self._stored_key(keys)
            if key is None:
                raise BackendError(f"the query hash key of {self.index!r} in {QUERY_HASH_KEY_INDEX!r} at "
                                   f"{self.connection.url} vanished as it was made")
            return key
        finally:
            keys.close()

    def close(self) -> None:
        self._retrying.close()

    def _stored_key(self, keys: RetryingClient) -> bytes | None:
        response = keys.call(keys.client.options(ignore_status=404).get, index=QUERY_HASH_KEY_INDEX, id=self.index)
        if not response.body.get("found"):
            return None
        return base64.b64decode(response["_source"]["key"])

    def _events_of_this_index(self, start: str | None) -> dict[str, Any]:
        clauses: list[dict[str, Any]] = [{"term": {"index": self.index}}]
        if start is not None:
            clauses.append({"range": {"@timestamp": {"gte": start}}})
        return {"bool": {"filter": clauses}}

    def _ensure_template(self) -> None:
        """An index template that turns `stream` into a data stream with the event mapping; with a retention
        lifecycle where the cluster accepts one (8.11+)."""
        if self._template_ready:
            return
        template: dict[str, Any] = {"mappings": QUERY_EVENT_MAPPING, "settings": {"number_of_shards": 1}}
        body: dict[str, Any] = {"index_patterns": [self.stream], "data_stream": {}, "priority": 500,
                                "_meta": {"description": "bertsearch query events"}}

        def put() -> None:
            try:
                self._client.indices.put_index_template(
                    name=self.stream, template={**template, "lifecycle": {"data_retention": RETENTION}}, **body
                )
            except BadRequestError:
                self._client.indices.put_index_template(name=self.stream, template=template, **body)

        self._retrying.call(put)
        self._template_ready = True

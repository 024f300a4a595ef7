"""Vectors kept aside for passages not written yet (`Store.stash_vectors`): the index `<index>-stash` beside the
concrete index written, made on first use, one document per key with the vector in its `_source` (the
passages' own documents leave vectors out of theirs)."""

from __future__ import annotations

from collections.abc import Sequence

from typing import Any, cast

import numpy as np
from elasticsearch import helpers

from bertsearch.errors import BackendError
from bertsearch.stores.elasticsearch.client import RetryingClient
from bertsearch.stores.elasticsearch.errors import reason

BULK_CHUNK = 500
MGET_PAGE = 1_000


def stash_index(index: str) -> str:
    """Where the vectors for the concrete index `index` are kept (a rebuild's staged index has its own)."""
    return f"{index}-stash"


def stash_vectors(retrying: RetryingClient, stash: str, keys: Sequence[str], vectors: np.ndarray) -> None:
    if not keys:
        return
    client = retrying.client
    if not retrying.call(client.indices.exists, index=stash):
        retrying.call(client.options(ignore_status=400).indices.create, index=stash,
                      settings={"number_of_shards": 1, "auto_expand_replicas": "0-1"},
                      mappings={"dynamic": "strict", "properties": {"vector": {"type": "float", "index": False,
                                                                               "doc_values": False}}})
    rows = np.asarray(vectors, dtype=np.float32)
    actions = [{"_op_type": "index", "_index": stash, "_id": key, "_source": {"vector": rows[i].tolist()}}
               for i, key in enumerate(keys)]
    # with stats_only left false, bulk's second value is the list of failed items
    _, errors = retrying.call(helpers.bulk, client, actions, raise_on_error=False, chunk_size=BULK_CHUNK)
    errors = cast(list[dict[str, Any]], errors)
    if errors:
        raise BackendError(f"Elasticsearch refused {len(errors)} stashed vector(s) in {stash!r}: "
                           f"{reason(next(iter(errors[0].values())).get('error'))}")


def stashed_vectors(retrying: RetryingClient, stash: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
    unique = list(dict.fromkeys(keys))
    if not unique or not retrying.call(retrying.client.indices.exists, index=stash):
        return {}
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(unique), MGET_PAGE):
        response = retrying.call(retrying.client.mget, index=stash, ids=unique[start : start + MGET_PAGE])
        found.update((doc["_id"], np.asarray(doc["_source"]["vector"], dtype=np.float32))
                     for doc in response["docs"] if doc.get("found"))
    return found


def clear_stash(retrying: RetryingClient, stash: str, keys: Sequence[str] | None = None) -> None:
    if keys is None:
        retrying.call(retrying.client.options(ignore_status=404).indices.delete, index=stash)
        return
    actions = [{"_op_type": "delete", "_index": stash, "_id": key} for key in dict.fromkeys(keys)]
    retrying.call(helpers.bulk, retrying.client, actions, raise_on_error=False, chunk_size=BULK_CHUNK)

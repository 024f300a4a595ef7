"""The alias lifecycle: an alias `<name>` points at one concrete index `<name>-<UTC timestamp>`, so a rebuild
(stage a new index, fill it, publish) swaps in atomically while searches keep running. A staged index that was
never published (the rebuild was killed) is resumed by the next stage with the same settings and deleted by one
with other settings."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from elasticsearch import ApiError

from bertsearch.errors import BackendError, IndexMismatchError, IndexNotFoundError
from bertsearch.settings import IndexSettings
from bertsearch.stores.elasticsearch.client import RetryingClient
from bertsearch.stores.elasticsearch.errors import error_type
from bertsearch.stores.elasticsearch.mapping import index_mapping, recorded_settings, same_build


class AliasedIndices:
    """The concrete indices behind the alias `retrying.name`: read, created, staged beside the live one, published."""

    def __init__(self, retrying: RetryingClient) -> None:
        self.name = retrying.name
        self._retrying = retrying
        self._client = retrying.client

    def read_index(self, name: str) -> tuple[str, IndexSettings]:
        """The concrete index `name` is or points at, and the settings recorded in its `_meta`."""
        mappings = self._retrying.call(self._client.indices.get_mapping, index=name).body
        if len(mappings) != 1:
            raise BackendError(
                f"{name!r} at {self._retrying.connection.url} points at several indices: {', '.join(sorted(mappings))}"
            )
        ((index, body),) = mappings.items()
        return index, recorded_settings(index, body.get("mappings", {}))

    def live_indices(self) -> list[str]:
        """The indices the alias points at (none before the first publish); refused if `name` is an index."""
        try:
            resolved = self._retrying.call(self._client.indices.resolve_index, name=self.name)
        except IndexNotFoundError:
            return []
        if resolved["indices"]:
            raise BackendError(
                f"{self.name!r} at {self._retrying.connection.url} is an index, not an alias: delete or rename it first"
            )
        return sorted(index for alias in resolved["aliases"] for index in alias["indices"])

    def stage_index(self, settings: IndexSettings) -> tuple[str, bool]:
        """A staged index for `settings`: an unpublished one built with them, else a new one. Returns the index
        and whether it was resumed. Unpublished indices built otherwise are deleted."""
        live = set(self.live_indices())
        own = re.compile(re.escape(self.name) + r"-\d{8}-\d{6}-\d{6}")
        mappings = self._retrying.call(self._client.indices.get_mapping, index=f"{self.name}-*").body
        resumed: str | None = None
        for index in sorted(mappings, reverse=True):  # newest first
            if index in live or not own.fullmatch(index):
                continue
            try:
                recorded = recorded_settings(index, mappings[index].get("mappings", {}))
            except IndexMismatchError:
                continue  # not made by bertsearch: not ours to delete
            if resumed is None and same_build(recorded, settings):
                resumed = index
            else:
                self._retrying.call(self._client.indices.delete, index=index)
        if resumed is not None:
            return resumed, True
        created = self.create_index(settings, alias=None)
        assert created is not None  # only an alias can have been created first by another writer
        return created, False

    def create_index(self, settings: IndexSettings, alias: str | None) -> str | None:
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
                    mappings=index_mapping(settings),
                    settings={"number_of_shards": layout["shards"], **replicas},
                    aliases={alias: {"is_write_index": True}} if alias is not None else {},
                )
            except ApiError as exc:
                kind = error_type(exc.body)
                if kind == "resource_already_exists_exception":  # a retried request whose first try succeeded
                    return index
                if kind == "illegal_state_exception" and alias is not None:  # "more than one write index"
                    return None
                raise
            return index

        return self._retrying.call(create)

    def publish(self, index: str, settings: IndexSettings) -> list[str]:
        """Point the alias at `index`, staged with `settings`, and delete the indices it pointed at, in one atomic
        `_aliases` call. Returns the deleted indices. Searches through the alias switch over without a gap."""
        # A concurrent rebuild may have deleted this index, and a write after that recreated it unmapped.
        _, recorded = self.read_index(index)
        if not same_build(recorded, settings):
            raise BackendError(f"staged index {index!r} changed during the build; run the rebuild again")
        previous = self.live_indices()
        actions: list[dict[str, Any]] = [{"add": {"index": index, "alias": self.name}}]
        actions += [{"remove_index": {"index": old}} for old in previous]
        self._retrying.call(self._client.indices.update_aliases, actions=actions)
        return previous


def checked_index_name(name: str) -> str:
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

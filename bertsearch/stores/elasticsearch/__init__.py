"""The Elasticsearch backend, one module per concern: `connection` (how to reach a cluster), `client` and
`errors` (retried calls, failures as one line), `mapping` (the index schema and layout), `aliases` (the alias
a rebuild swaps), `documents` and `queries` (how passages are stored and searched), `stash`, and `store`, the
`Store` they make up."""

from bertsearch.stores.elasticsearch.connection import ElasticsearchConnection
from bertsearch.stores.elasticsearch.mapping import LAYOUT_DEFAULTS, with_layout_defaults
from bertsearch.stores.elasticsearch.store import ElasticsearchStore

__all__ = ["LAYOUT_DEFAULTS", "ElasticsearchConnection", "ElasticsearchStore", "with_layout_defaults"]

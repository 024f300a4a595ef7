"""The registry of backends: every backend's classes exist and implement the interfaces, capabilities are the
stores' own, and a location is read from options and the folder's manifest the same way for each."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bertsearch.errors import BackendError, BertsearchError
from bertsearch.querylog import ElasticsearchQueryLog, QueryLog, SqliteQueryLog, open_query_log
from bertsearch.settings import ChunkingSettings, IndexSettings, write_settings
from bertsearch.stores import (
    BACKENDS,
    Store,
    StoreLocation,
    check_stageable,
    find_backend,
    repair_store,
    resolve_location,
)


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_names_a_store_class_and_a_query_log_class(name: str) -> None:
    backend = find_backend(name)
    assert issubclass(backend.store_class(), Store)  # type: ignore[arg-type]
    assert issubclass(backend.query_log_class(), QueryLog)  # type: ignore[arg-type]


def test_an_unknown_backend_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(BertsearchError, match="unknown backend 'solr'; choose one of embedded, elasticsearch"):
        resolve_location(tmp_path, backend="solr")


def test_only_a_rebuildable_store_is_staged_and_only_the_embedded_one_repaired(tmp_path: Path) -> None:
    embedded = resolve_location(tmp_path / "idx")
    elasticsearch = resolve_location(tmp_path / "es", backend="elasticsearch", es_url="http://127.0.0.1:9200")
    with pytest.raises(BertsearchError, match="a rebuild needs the elasticsearch backend"):
        check_stageable(embedded)
    check_stageable(elasticsearch)
    with pytest.raises(BertsearchError, match="only an embedded index is repaired this way"):
        repair_store(elasticsearch)


def test_a_location_comes_from_the_options_else_the_manifest(tmp_path: Path) -> None:
    settings = IndexSettings(model_path="m", model_fingerprint="f" * 16, dimensions=4, chunking=ChunkingSettings(),
                             backend="elasticsearch",
                             backend_options={"url": "http://127.0.0.1:9200", "index": "papers"})
    write_settings(tmp_path, settings)
    recorded = resolve_location(tmp_path)
    assert (recorded.backend, recorded.es_index, recorded.index_name) == ("elasticsearch", "papers", "papers")
    assert recorded.describe() == "Elasticsearch index 'papers' at http://127.0.0.1:9200"
    given = resolve_location(tmp_path, es_url="http://user:pw@127.0.0.1:9201", es_index="reports")
    assert given.elasticsearch is not None and given.elasticsearch.url == "http://127.0.0.1:9201"
    assert (given.es_index, given.elasticsearch.username) == ("reports", "user")
    assert resolve_location(tmp_path, backend="embedded").index_name == str(tmp_path)
    with pytest.raises(BertsearchError, match="needs an Elasticsearch URL"):
        resolve_location(tmp_path / "empty", backend="elasticsearch")


def test_the_query_log_is_the_one_its_backend_names(tmp_path: Path) -> None:
    log = open_query_log(StoreLocation(index_dir=tmp_path))
    assert isinstance(log, SqliteQueryLog) and log.path.parent == tmp_path / "querylog"
    log.close()


def test_the_elasticsearch_query_log_fails_as_the_store_does_without_the_password(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed below, so nothing listens there
    location = resolve_location(tmp_path, backend="elasticsearch", es_url=f"http://elastic:secret-pw@127.0.0.1:{port}")
    assert type(open_query_log(location)) is ElasticsearchQueryLog
    log = ElasticsearchQueryLog(location, max_retries=1, initial_backoff=0.01)
    with pytest.raises(BackendError, match=f"cannot reach Elasticsearch at http://127.0.0.1:{port}") as caught:
        log.count()
    assert "secret-pw" not in str(caught.value)
    log.close()

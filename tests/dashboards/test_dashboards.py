"""The Kibana saved objects: well-formed, self-consistent, and built only on fields the query log mapping has."""

from __future__ import annotations

import importlib.machinery
import json
import re
import types
from pathlib import Path

from bertsearch.dashboards import DASHBOARDS_FILE
from bertsearch.querylog import QUERY_EVENT_MAPPING, QUERY_LOG_STREAM
from tests.test_querylog import flat_fields

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build-dashboards"
KQL_FIELD = re.compile(r"([\w@.]+)\s*(?::|<=?|>=?)")


def saved_objects() -> list[dict]:
    lines = DASHBOARDS_FILE.read_text().splitlines()
    assert lines and all(line.strip() for line in lines)
    return [json.loads(line) for line in lines]


def test_the_file_is_what_the_build_script_writes() -> None:
    loader = importlib.machinery.SourceFileLoader("build_dashboards", str(BUILD_SCRIPT))
    script = types.ModuleType(loader.name)
    script.__file__ = str(BUILD_SCRIPT)
    loader.exec_module(script)
    assert script.TARGET == DASHBOARDS_FILE
    assert script.ndjson() == DASHBOARDS_FILE.read_text(), "out of date: run scripts/build-dashboards"


def test_every_object_is_well_formed_and_every_reference_resolves() -> None:
    objects = saved_objects()
    keys = [(o["type"], o["id"]) for o in objects]
    assert len(set(keys)) == len(keys)
    assert {o["type"] for o in objects} == {"index-pattern", "lens", "dashboard"}
    for obj in objects:
        assert set(obj) >= {"type", "id", "attributes", "references"} and obj["attributes"]["title"]
        for reference in obj["references"]:
            assert (reference["type"], reference["id"]) in keys, reference
    (dashboard,) = [o for o in objects if o["type"] == "dashboard"]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    names = {r["name"] for r in dashboard["references"]}
    assert {f"{p['panelIndex']}:{p['panelRefName']}" for p in panels} == names
    assert len(panels) == len([o for o in objects if o["type"] == "lens"])
    json.loads(dashboard["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])


def test_the_data_view_is_the_query_log_stream() -> None:
    (view,) = [o for o in saved_objects() if o["type"] == "index-pattern"]
    assert view["attributes"]["title"] == QUERY_LOG_STREAM
    assert flat_fields(QUERY_EVENT_MAPPING)[view["attributes"]["timeFieldName"]] == "date"
    for lens in (o for o in saved_objects() if o["type"] == "lens"):
        layers = lens["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
        assert {r["name"] for r in lens["references"]} == {f"indexpattern-datasource-layer-{layer}" for layer in layers}
        assert all(r["id"] == view["id"] for r in lens["references"])


def test_visualizations_use_only_fields_the_mapping_has_with_fitting_types() -> None:
    fields = flat_fields(QUERY_EVENT_MAPPING)
    numeric = {"float", "integer", "long"}
    used: set[str] = set()
    for lens in (o for o in saved_objects() if o["type"] == "lens"):
        state = lens["attributes"]["state"]
        queries = [state["query"]["query"]]
        for layer in state["datasourceStates"]["formBased"]["layers"].values():
            assert sorted(layer["columnOrder"]) == sorted(layer["columns"])
            for column in layer["columns"].values():
                operation, source = column["operationType"], column.get("sourceField")
                queries += [f["input"]["query"] for f in column.get("params", {}).get("filters", [])]
                if operation in ("count", "filters"):
                    continue
                assert source in fields, (lens["id"], source)
                used.add(source)
                if operation in ("percentile", "average", "max", "median", "sum"):
                    assert fields[source] in numeric, (lens["id"], source)
                if operation == "date_histogram":
                    assert fields[source] == "date"
        for query in queries:
            for field in KQL_FIELD.findall(query):
                assert field in fields, (lens["id"], query)
                used.add(field)
    # Each figure the issue asks for is on the dashboards.
    assert {"@timestamp", "mode", "latency_ms.encode", "latency_ms.retrieve", "latency_ms.rerank", "latency_ms.total",
            "zero_results", "query", "reranked", "rerank_top_first_stage_rank", "index_documents"} <= used

"""docker-compose.yml, checked without Docker: the version we test against, loopback ports, health, limits, secrets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ELASTIC_IMAGES = "docker.elastic.co/"
SECRET_NAME = re.compile(r"PASSWORD|API_KEY|SECRET|TOKEN")
INTERPOLATION = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)[^}]*\}")
SIZE = re.compile(r"^(\d+)([kmg]?)b?$", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def version_the_tests_run() -> str:
    """The Elasticsearch version the test suite's node runs (scripts/elasticsearch is not importable)."""
    match = re.search(r'^VERSION = "([^"]+)"', (ROOT / "scripts" / "elasticsearch").read_text(), re.MULTILINE)
    assert match, "scripts/elasticsearch no longer sets VERSION"
    return match.group(1)


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, whether written as a mapping or as a list of KEY=VALUE."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) for item in raw)
    return {key: str(value) for key, value in raw.items()}


def size_in_bytes(text: str) -> int:
    match = SIZE.match(str(text).strip())
    assert match, f"unreadable size {text!r}"
    return int(match.group(1)) * 1024 ** " kmg".index(match.group(2).lower() or " ")


def memory_limit(service: dict[str, Any]) -> int | None:
    limit = service.get("mem_limit") or service.get("deploy", {}).get("resources", {}).get("limits", {}).get("memory")
    return size_in_bytes(limit) if limit else None


def test_elasticsearch_and_kibana_run_the_version_the_tests_run(services: dict[str, dict[str, Any]]) -> None:
    images = {name: services[name]["image"] for name in ("elasticsearch", "kibana", "setup")}
    assert images["elasticsearch"] == f"{ELASTIC_IMAGES}elasticsearch/elasticsearch:{version_the_tests_run()}"
    assert images["kibana"] == f"{ELASTIC_IMAGES}kibana/kibana:{version_the_tests_run()}"
    assert images["setup"] == images["elasticsearch"]


def test_ports_are_published_on_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    published = [(name, str(port)) for name, service in services.items() for port in service.get("ports", [])]
    assert {name for name, _ in published} == {"elasticsearch", "kibana"}
    for name, port in published:
        assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"


def test_servers_have_health_checks_that_dependents_wait_for(services: dict[str, dict[str, Any]]) -> None:
    for name in ("elasticsearch", "kibana"):
        check = services[name]["healthcheck"]
        assert check["test"][0] == "CMD-SHELL" and "curl" in check["test"][1], name
        assert check["retries"] > 0 and check["interval"]
    for name in ("setup", "kibana", "bertsearch"):
        assert services[name]["depends_on"]["elasticsearch"]["condition"] == "service_healthy", name
    for name in ("kibana", "bertsearch"):
        assert services[name]["depends_on"]["setup"]["condition"] == "service_completed_successfully", name


def test_data_lives_in_named_volumes(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    mounts = {
        "elasticsearch": "/usr/share/elasticsearch/data",
        "kibana": "/usr/share/kibana/data",
        "bertsearch": environment(services["bertsearch"])["BERTSEARCH_INDEX_DIR"],
    }
    for name, target in mounts.items():
        sources = [volume.split(":")[0] for volume in services[name]["volumes"] if volume.split(":")[1] == target]
        assert len(sources) == 1 and sources[0] in compose["volumes"], f"{name}: {target} is not a named volume"


def test_every_service_has_a_memory_limit_and_elasticsearch_a_fixed_heap_within_it(
    services: dict[str, dict[str, Any]]
) -> None:
    for name, service in services.items():
        assert memory_limit(service), f"{name} has no memory limit"
    options = environment(services["elasticsearch"])["ES_JAVA_OPTS"].split()
    heaps = {option[:4]: size_in_bytes(option[4:]) for option in options if option[:4] in ("-Xms", "-Xmx")}
    # A fixed heap avoids resize pauses; half the container leaves the rest to the file cache HNSW relies on.
    assert heaps.keys() == {"-Xms", "-Xmx"} and heaps["-Xms"] == heaps["-Xmx"]
    assert heaps["-Xmx"] <= memory_limit(services["elasticsearch"]) // 2


def test_security_is_on_and_no_secret_is_written_down(services: dict[str, dict[str, Any]]) -> None:
    assert environment(services["elasticsearch"])["xpack.security.enabled"] == "true"
    secrets = [(name, key, value) for name, service in services.items()
               for key, value in environment(service).items() if SECRET_NAME.search(key)]
    assert {name for name, _, _ in secrets} == {"elasticsearch", "setup", "kibana", "bertsearch"}
    for name, key, value in secrets:
        # Required, from .env or the shell: `${NAME:?message}` refuses to start without it.
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), f"{name}.{key} is not read from the environment"
    assert environment(services["kibana"])["ELASTICSEARCH_USERNAME"] == "kibana_system"
    assert environment(services["bertsearch"])["BERTSEARCH_ES_USERNAME"] == "bertsearch"


def test_env_example_documents_every_variable_and_sets_no_password() -> None:
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    used = set(INTERPOLATION.findall((ROOT / "docker-compose.yml").read_text()))
    assert used <= example.keys(), f"undocumented: {sorted(used - example.keys())}"
    assert all(value == "" for key, value in example.items() if SECRET_NAME.search(key))
    assert ".env" in (ROOT / ".dockerignore").read_text().split(), "the image build must not see .env"


def test_the_bertsearch_image_is_cpu_only_python(services: dict[str, dict[str, Any]]) -> None:
    assert services["bertsearch"]["build"] == "." and services["bertsearch"]["profiles"] == ["cli"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    torch = dockerfile.index("download.pytorch.org/whl/cpu")
    assert torch < dockerfile.index("pip install /src"), "CPU torch must be installed before the project pulls torch"

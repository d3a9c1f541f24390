"""docker-compose.yml, the Collector config, the Dockerfile and the server agree with each other.

No Docker engine runs here, so this checks what would break ``docker compose up``: ports, endpoints,
environment names, pinned images, volumes, and the health check path.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from starlette.testclient import TestClient

from spanledger._server import DEFAULT_PORT, create_app
from spanledger._server.settings import SERVER_ENV
from spanledger._store.dsn import parse as _parse
from tests.integration.server_support import settings

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "spanledger"
PINNED = re.compile(r"^[\w./-]+:\d+(\.\d+)+(-[\w.-]+)?$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "collector-config" / "otel-collector.yaml").read_text())


def _env_default(value: str) -> str:
    """``${VAR:-default}`` → ``default``; ``${VAR:?msg}`` → ``<VAR>``, as compose would substitute."""
    value = re.sub(r"\$\{(\w+):-([^}]*)\}", r"\2", value)
    return re.sub(r"\$\{(\w+):\?[^}]*\}", r"<\1>", value)


def _published(service: dict[str, Any]) -> dict[int, int]:
    out = {}
    for mapping in service.get("ports", []):
        *_, host, container = str(mapping).split(":")
        out[int(container)] = int(host)
    return out


def test_images_are_pinned_and_spanledger_is_built_here(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"clickhouse", "spanledger", "otel-collector"}
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector-contrib:")
    for name in ("clickhouse", "otel-collector"):
        assert PINNED.match(services[name]["image"]), services[name]["image"]
    assert services["spanledger"]["build"] == "."
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert bases and all(PINNED.match(b) for b in bases), bases
    assert '"$(ls /dist/spanledger-*.whl)[serve]"' in dockerfile  # the server's extra is installed
    assert f"EXPOSE {DEFAULT_PORT}" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "test-artifacts", "tests"} <= set(ignored)


def test_serve_command_listens_where_the_collector_sends(compose: dict[str, Any], collector: dict[str, Any]) -> None:
    service = compose["services"]["spanledger"]
    command = service["command"]
    assert command[0] == "serve" and "--no-auth" not in command
    port = int(command[command.index("--port") + 1])
    assert port == DEFAULT_PORT and command[command.index("--host") + 1] == "0.0.0.0"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f'CMD ["serve", "--host", "0.0.0.0", "--port", "{DEFAULT_PORT}"]' in dockerfile
    assert DEFAULT_PORT in _published(service)
    assert _published(service)[DEFAULT_PORT] != DEFAULT_PORT  # the host's 4318 belongs to the Collector
    exporter = collector["exporters"]["otlphttp/spanledger"]
    url = urlsplit(exporter["endpoint"])
    assert (url.scheme, url.hostname, url.port, url.path) == ("http", "spanledger", port, "")
    assert exporter["compression"] in ("gzip", "none") and exporter["encoding"] in ("proto", "json")
    assert collector["service"]["pipelines"]["traces"]["exporters"] == ["otlphttp/spanledger"]
    assert "# otlphttp/other:" in (ROOT / "collector-config" / "otel-collector.yaml").read_text()


def test_collector_receives_on_the_published_otlp_ports(compose: dict[str, Any], collector: dict[str, Any]) -> None:
    published = _published(compose["services"]["otel-collector"])
    protocols = collector["receivers"]["otlp"]["protocols"]
    for protocol, standard in (("grpc", 4317), ("http", 4318)):
        port = int(protocols[protocol]["endpoint"].rsplit(":", 1)[1])
        assert port == standard and published[port] == standard
    pipeline = collector["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    assert set(pipeline["processors"]) <= set(collector["processors"]) and "batch" in pipeline["processors"]
    volume = compose["services"]["otel-collector"]["volumes"][0]
    source, target, _ = volume.split(":")
    assert (ROOT / source).resolve() == ROOT / "collector-config" / "otel-collector.yaml"
    assert target in compose["services"]["otel-collector"]["command"][0]


def test_environment_names_and_tokens_agree(compose: dict[str, Any], collector: dict[str, Any]) -> None:
    server_env = compose["services"]["spanledger"]["environment"]
    sources = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py"))
    for name in server_env:
        assert name.startswith("SPANLEDGER_") and f'"{name}"' in sources, f"{name} is read by nothing"
    assert {"SPANLEDGER_STORE", "SPANLEDGER_ADMIN_TOKEN", "SPANLEDGER_INGEST_TOKEN"} <= set(server_env) & set(
        SERVER_ENV
    )
    header = collector["exporters"]["otlphttp/spanledger"]["headers"]["Authorization"]
    match = re.fullmatch(r"Bearer \$\{env:(\w+)\}", header)
    assert match is not None
    collector_env = compose["services"]["otel-collector"]["environment"]
    assert collector_env[match.group(1)] == server_env["SPANLEDGER_INGEST_TOKEN"]  # the same token
    for token in ("SPANLEDGER_ADMIN_TOKEN", "SPANLEDGER_INGEST_TOKEN"):
        assert ":?" in server_env[token]  # required: compose refuses to start without it


def test_store_points_at_the_clickhouse_service_with_its_credentials(compose: dict[str, Any]) -> None:
    clickhouse = compose["services"]["clickhouse"]
    server_env = compose["services"]["spanledger"]["environment"]
    kind, _, database, kwargs = _parse(_env_default(server_env["SPANLEDGER_STORE"]))
    ch_env = {k: _env_default(str(v)) for k, v in clickhouse["environment"].items()}
    assert (kind, kwargs["host"], kwargs["port"]) == ("http", "clickhouse", 8123)
    assert (database, kwargs["username"], kwargs["password"]) == (
        ch_env["CLICKHOUSE_DB"],
        ch_env["CLICKHOUSE_USER"],
        ch_env["CLICKHOUSE_PASSWORD"],
    )
    assert compose["services"]["spanledger"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"


def test_data_lives_on_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    mounts = {
        (name, m.split(":")[0], m.split(":")[1])
        for name in ("clickhouse", "spanledger")
        for m in compose["services"][name]["volumes"]
    }
    assert ("clickhouse", "clickhouse-data", "/var/lib/clickhouse") in mounts
    spool = compose["services"]["spanledger"]["environment"]["SPANLEDGER_SPOOL_DIR"]
    assert ("spanledger", "spanledger-spool", spool) in mounts
    assert {"clickhouse-data", "spanledger-spool"} <= declared


def test_health_checks_hit_a_real_endpoint(compose: dict[str, Any], store_dsn: str) -> None:
    check = " ".join(compose["services"]["spanledger"]["healthcheck"]["test"])
    url = urlsplit(re.search(r"http://[^']+", check).group(0))  # type: ignore[union-attr]
    assert url.port == DEFAULT_PORT
    app = create_app(settings(store_dsn))
    try:
        health = TestClient(app).get(url.path)  # no token needed
        assert (health.status_code, health.json()["status"], health.json()["store"]) == (200, "ok", "ok")
    finally:
        app.state.exporter.shutdown()
    assert compose["services"]["otel-collector"]["depends_on"]["spanledger"]["condition"] == "service_healthy"


def test_the_serve_extra_has_what_the_server_imports() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=!\[; ]", r, maxsplit=1)[0].lower() for r in extras["serve"]}
    assert {"fastapi", "uvicorn", "jinja2", "opentelemetry-proto", "googleapis-common-protos"} <= names
    test_names = {re.split(r"[<>=!\[; ]", r, maxsplit=1)[0].lower() for r in extras["test"]}
    assert names <= test_names  # the tests run the server

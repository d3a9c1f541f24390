"""Shared fixtures.

chDB allows one data location per process, so the whole test session shares one chDB directory and
every test that stores data gets a fresh, randomly named database in it (dropped afterwards), the
way clickhouse-connect's own integration tests use a server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanledger import Store, UserAttributionProcessor
from tests.support.ch_http import ClickHouseHTTPServer


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one chDB directory this test process may open."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def store_dsn(chdb_dir: Path) -> Iterator[str]:
    """A DSN for a fresh database in the session's chDB directory; the database is dropped afterwards."""
    database = f"t_{uuid.uuid4().hex[:12]}"
    dsn = f"chdb://{chdb_dir}?database={database}"
    yield dsn
    cleanup = Store(dsn, create=False)
    cleanup.command(f"DROP DATABASE IF EXISTS {database} SYNC")


@pytest.fixture
def store(store_dsn: str) -> Store:
    """An open store with the schema created."""
    return Store(store_dsn)


@pytest.fixture
def memory_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(memory_exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A tracer provider with our processor and an in-memory exporter (no global state touched)."""
    tp = TracerProvider()
    tp.add_span_processor(UserAttributionProcessor())
    tp.add_span_processor(SimpleSpanProcessor(memory_exporter))
    yield tp
    tp.shutdown()


@pytest.fixture(autouse=True)
def _no_spanledger_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from the documented defaults whatever the developer's shell exports."""
    for name in list(os.environ):
        if name.startswith("SPANLEDGER_") and name != "SPANLEDGER_TEST_CLICKHOUSE_URL":
            monkeypatch.delenv(name, raising=False)


# --- ClickHouse over HTTP: the loopback fixture (tests/support/ch_http.py) or a real server -------------------

CLICKHOUSE_URL_ENV = "SPANLEDGER_TEST_CLICKHOUSE_URL"
"""``http(s)://user:pass@host:port`` of a real ClickHouse server to run the HTTP tests against instead."""


@pytest.fixture
def ch_server(chdb_dir: Path) -> Iterator[ClickHouseHTTPServer]:
    """A ClickHouse HTTP endpoint on 127.0.0.1 backed by this process's chDB, with fault injection."""
    if os.environ.get(CLICKHOUSE_URL_ENV):
        pytest.skip(f"needs the loopback fixture's fault injection; {CLICKHOUSE_URL_ENV} points at a real server")
    server = ClickHouseHTTPServer(chdb_dir, user="spanledger", password="p@ss word:1").start()
    yield server
    server.close()


@pytest.fixture
def http_store_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    """An ``http://`` DSN for a fresh database on the real server or the fixture; dropped afterwards."""
    database = f"t_{uuid.uuid4().hex[:12]}"
    real = os.environ.get(CLICKHOUSE_URL_ENV)
    server: ClickHouseHTTPServer | None = None
    if real:
        parts = urlsplit(real)
        dsn = urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))
    else:
        server = request.getfixturevalue("ch_server")
        dsn = server.dsn(database, connect_timeout=2, send_receive_timeout=2)
    yield dsn
    if server is not None:
        server.heal()
    cleanup = Store(dsn, create=False)
    cleanup.command(f"DROP DATABASE IF EXISTS {database} SYNC")
    cleanup.close()

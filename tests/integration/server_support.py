"""Shared by the ``spanledger serve`` tests: tokens, a seeded ledger, and a real uvicorn server.

The seed is deterministic: 30 named users in four tenants, calls spread over the last 27 days, an
unpriced model, errors, unattributed calls, and one user seen only 40 days ago.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from spanledger import CostExporter, Store, UserAttributionProcessor, attribute_to
from spanledger._server import ServerSettings, Tokens, create_app

ADMIN_TOKEN = "admin-0123456789abcdef"
INGEST_TOKEN = "ingest-0123456789abcdef"
ACME_TOKEN = "tenant-acme-0123456789"
GLOBEX_TOKEN = "tenant-globex-0123456789"
TOKENS = Tokens(
    admin=(ADMIN_TOKEN,), ingest=(INGEST_TOKEN,), tenants={"acme": (ACME_TOKEN,), "globex": (GLOBEX_TOKEN,)}
)

TENANTS = ("acme", "globex", "initech", "umbrella")
USERS = (
    "alice.chen", "bruno.diaz", "chloe.martin", "dev.patel", "emma.wilson", "farid.haddad", "grace.kim",
    "hugo.laurent", "ines.silva", "jonas.berg", "kaito.sato", "lena.fischer", "mateo.rossi", "nora.olsen",
    "omar.aziz", "priya.nair", "quinn.taylor", "rosa.gomez", "sam.okafor", "tara.singh", "umar.khan",
    "vera.novak", "wei.zhang", "ximena.ruiz", "yusuf.demir", "zoe.adams", "aaron.blake", "bianca.costa",
    "carlos.mendes", "dana.levi",
)  # fmt: skip
MODELS = (
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("anthropic", "claude-3-5-haiku-20241022"),
    ("anthropic", "claude-sonnet-4-20250514"),
)
UNPRICED = ("acme-ai", "acme-llm-large")
OLD_USER = "old.timer"
INJECTION_USER = "o'brien\"; DROP TABLE llm_calls; --"
XSS_USER = "<img src=x onerror=alert(1)>"
FORMULA_USER = '=HYPERLINK("http://evil.example")'
SPECIAL_USERS = {INJECTION_USER: "globex", XSS_USER: "umbrella", FORMULA_USER: "initech"}


def settings(dsn: str, **changes: object) -> ServerSettings:
    return dataclasses.replace(ServerSettings(store=dsn, tokens=TOKENS, capture_content=True), **changes)  # type: ignore[arg-type]


def _span(tracer: object, when: datetime, provider: str, model: str, inp: int, out: int, cached: int, **extra: object):
    start = int(when.timestamp() * 1e9)
    span = tracer.start_span(f"chat {model}", start_time=start)  # type: ignore[attr-defined]
    span.set_attribute("gen_ai.operation.name", "chat")
    span.set_attribute("gen_ai.provider.name", provider)
    span.set_attribute("gen_ai.request.model", model)
    span.set_attribute("gen_ai.usage.input_tokens", inp)
    span.set_attribute("gen_ai.usage.output_tokens", out)
    if cached:
        span.set_attribute("gen_ai.usage.cache_read.input_tokens", cached)
    for key, value in extra.items():
        span.set_attribute(key, value)  # type: ignore[arg-type]
    return span, start


def seed(exporter: CostExporter, now: datetime | None = None) -> datetime:
    """Write the deterministic demo traffic through ``exporter`` and wait until it is stored."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    rng = random.Random(7)
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(UserAttributionProcessor())
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("seed")

    def call(user: str | None, tenant: str | None, when: datetime, provider_model: tuple[str, str], **extra: object):
        with attribute_to(user_id=user, tenant_id=tenant, plan="pro" if rng.random() < 0.4 else "free"):
            inp = rng.randrange(200, 6000)
            span, start = _span(
                tracer, when, *provider_model, inp, rng.randrange(20, 900), rng.choice((0, 0, inp // 2)), **extra
            )
            if rng.random() < 0.06:
                span.set_attribute("error.type", "RateLimitError")
                span.set_status(Status(StatusCode.ERROR, "rate limited"))
            span.end(end_time=start + rng.randrange(200, 4000) * 1_000_000)

    for i, user in enumerate(USERS):
        tenant = TENANTS[i % len(TENANTS)]
        for _ in range(1 + (i * 7) % 11):
            when = now - timedelta(minutes=rng.randrange(5, 27 * 24 * 60))
            call(
                user,
                tenant,
                when,
                rng.choice(MODELS),
                **{"gen_ai.input.messages": f'[{{"role": "user", "content": "Summarise ticket #{i}"}}]'},
                **{"gen_ai.output.messages": '[{"role": "assistant", "content": "Done."}]'},
            )
        if i % 7 == 3:
            call(user, tenant, now - timedelta(hours=rng.randrange(1, 200)), UNPRICED)
    for _ in range(5):
        call(None, "acme", now - timedelta(hours=rng.randrange(1, 300)), MODELS[0])
    call(None, None, now - timedelta(hours=3), MODELS[1])
    call(OLD_USER, "initech", now - timedelta(days=40), MODELS[3])
    for user, tenant in SPECIAL_USERS.items():
        call(user, tenant, now - timedelta(hours=30), MODELS[0])
    provider.shutdown()
    exporter.export(memory.get_finished_spans())
    assert exporter.force_flush(30_000)
    return now


def users_of(tenant: str) -> set[str]:
    """The seeded user ids of one tenant."""
    ids = {u for i, u in enumerate(USERS) if TENANTS[i % len(TENANTS)] == tenant}
    ids |= {u for u, t in SPECIAL_USERS.items() if t == tenant}
    return ids | ({OLD_USER} if tenant == "initech" else set())


@pytest.fixture(scope="module")
def seeded(chdb_dir: Path) -> Iterator[tuple[FastAPI, datetime]]:
    """An app on a freshly seeded database of its own (shared by a module's tests, dropped after)."""
    database = f"t_{uuid.uuid4().hex[:12]}"
    dsn = f"chdb://{chdb_dir}?database={database}"
    app = create_app(settings(dsn))
    now = seed(app.state.exporter)
    yield app, now
    app.state.exporter.shutdown()
    Store(dsn, create=False).command(f"DROP DATABASE IF EXISTS {database} SYNC")


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)

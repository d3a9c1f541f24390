"""Ids with the real ``anthropic`` and ``openai`` clients against the stub provider: pseudonymized ids never reach
the provider, the spool, the store or forwarded spans in clear; the baggage filter keeps them from the provider
and still delivers them to a second local service."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from spanledger import (
    CostExporter,
    IdsStayHome,
    Ledger,
    Pseudonymizer,
    Recorder,
    Store,
    UserAttributionProcessor,
    attribute_to,
)
from spanledger._demo.stub_llm import StubLLMServer

pytestmark = pytest.mark.integration

KEY = "clients-test-key-0123456789"
CLAUDE = "claude-3-5-sonnet-20241022"
MESSAGES = [{"role": "user", "content": "Summarise our quarterly numbers."}]
USAGE = {"input_tokens": 1000, "output_tokens": 100}


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]]

    def do_GET(self) -> None:
        self.server.seen.append({k.lower(): v for k, v in self.headers.items()})  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def own_service() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A second local service of the application's own, recording the headers it gets."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.seen  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


@pytest.fixture
def stub() -> Iterator[StubLLMServer]:
    with StubLLMServer() as server:
        yield server


@pytest.fixture
def global_propagator() -> Iterator[None]:
    saved = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]))
    yield
    propagate.set_global_textmap(saved)


def _client_span(tracer: trace.Tracer, url: str) -> Any:
    """What an HTTP client instrumentation does around a request: a client span naming the server."""
    parsed = httpx.URL(url)
    return tracer.start_as_current_span(
        "GET", kind=SpanKind.CLIENT, attributes={"server.address": parsed.host, "server.port": parsed.port or 80}
    )


def _propagating_openai(stub: StubLLMServer) -> openai.OpenAI:
    """An OpenAI client whose requests carry the context, as an instrumented HTTP client's would."""

    def inject(request: httpx2.Request) -> None:
        propagate.inject(request.headers)

    return openai.OpenAI(
        base_url=stub.openai_base_url,
        api_key="test",
        max_retries=0,
        http_client=httpx2.Client(event_hooks={"request": [inject]}),
    )


def _call_everything(tp: TracerProvider, stub: StubLLMServer, own_url: str) -> None:
    claude = anthropic.Anthropic(
        base_url=stub.anthropic_base_url, api_key="test", max_retries=0, open_telemetry={"tracer_provider": tp}
    )
    gpt = _propagating_openai(stub)
    tracer = tp.get_tracer("app")
    with attribute_to(user_id="erin@example.com", tenant_id="acme", plan="pro"):
        claude.messages.create(model=CLAUDE, max_tokens=64, messages=MESSAGES, extra_body={"stub": USAGE})
        gpt.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_body={"stub": USAGE})
        with _client_span(tracer, own_url), httpx.Client() as http:
            headers: dict[str, str] = {}
            propagate.inject(headers)
            http.get(own_url, headers=headers)


def test_pseudonymized_ids_never_leave_in_clear(
    stub: StubLLMServer,
    own_service: tuple[str, list[dict[str, str]]],
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    global_propagator: None,
) -> None:
    monkeypatch.setenv("SPANLEDGER_ID_KEY", KEY)
    pseudonym = Pseudonymizer(KEY)("erin@example.com")
    forwarded = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(UserAttributionProcessor())
    exporter = CostExporter(store, spool_dir=tmp_path / "spool", forward_to=forwarded, flush_interval_ms=3_600_000)
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    own_url, own_seen = own_service

    _call_everything(tp, stub, own_url)
    # a call no instrumentation sees (the OpenAI client above has none), its id given in clear
    Recorder(pipeline=exporter.pipeline).record(
        provider="openai", model="gpt-4o-mini", input_tokens=1000, output_tokens=100, user_id="erin@example.com"
    )
    tp.force_flush()
    spooled = b"".join(p.read_bytes() for p in (tmp_path / "spool").rglob("*") if p.is_file())
    assert exporter.force_flush(30_000)

    sent = [r.headers.get("baggage", "") for r in stub.requests]
    assert len(sent) == 2 and all(f"userId={pseudonym}" in b for b in sent)  # both clients sent the baggage...
    assert not any("erin" in str(r.headers) or "erin" in str(r.body) for r in stub.requests)  # ...never the id
    assert f"userId={pseudonym}" in own_seen[0]["baggage"]
    assert pseudonym.encode() in spooled and b"erin" not in spooled
    db = store.database
    assert (
        store.query(f"SELECT count() FROM {db}.llm_calls WHERE position(formatRow('TSV', *), 'erin') > 0").result_rows[
            0
        ][0]
        == 0
    )
    spans = forwarded.get_finished_spans()
    assert spans and not any("erin" in str(dict(s.attributes or {})) for s in spans)
    detail = Ledger(store).user(pseudonym)
    assert detail.summary is not None and detail.summary.usage.requests == 2
    # 1000 x $3 + 100 x $15 per million (claude, through the SDK's span) + 1000 x $0.15 + 100 x $0.60 (recorded)
    assert detail.summary.usage.cost == Decimal("0.00471")
    exporter.shutdown()
    tp.shutdown()


def test_the_baggage_filter_keeps_ids_from_the_provider_and_sends_them_home(
    stub: StubLLMServer, own_service: tuple[str, list[dict[str, str]]], global_propagator: None
) -> None:
    tp = TracerProvider()
    tp.add_span_processor(UserAttributionProcessor())
    own_url, own_seen = own_service

    _call_everything(tp, stub, own_url)  # without the filter: the provider gets the ids (what this test guards)
    assert all("userId=erin" in r.headers.get("baggage", "") for r in stub.requests)

    stub.requests.clear()
    own_seen.clear()
    provider = f"127.0.0.1:{httpx.URL(stub.openai_base_url).port}"
    propagate.set_global_textmap(IdsStayHome(third_parties=[provider]))
    _call_everything(tp, stub, own_url)

    assert len(stub.requests) == 2
    for request in stub.requests:
        assert "erin" not in str(request.headers) and "acme" not in request.headers.get("baggage", "")
    assert "traceparent" in stub.requests[0].headers  # the trace context of the SDK's span still goes out
    assert own_seen[0]["baggage"] == "userId=erin%40example.com,tenantId=acme,plan=pro"
    tp.shutdown()

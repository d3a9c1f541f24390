"""End to end: the real ``openai`` and ``anthropic`` clients, the real OpenLLMetry instrumentations, our
processor and exporter, chDB, and the :class:`Ledger` – against the local stub server.

Expected costs are written out by hand from the published per-million-token prices in genai-prices:
gpt-4o-mini $0.15 input, $0.075 cache read, $0.60 output; claude-3-5-sonnet $3 input, $0.30 cache read,
$3.75 cache write, $15 output; text-embedding-3-small $0.02 input.

The Anthropic client is given the test's tracer provider (``open_telemetry={"tracer_provider": tp}``),
which is what it picks up from the global provider in a real application: anthropic>=2 then writes a
span of its own (scope ``com.anthropic.sdk.python``) for the same call as the instrumentation's span.
Tests marked ``no-sdk-spans`` turn that off (``open_telemetry=False``), leaving the instrumentation's span
alone. Every test checks that each call is counted exactly once.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from spanledger import CostExporter, Ledger, Store, UserAttributionProcessor, attribute_to
from spanledger._demo.stub_llm import StubLLMServer

pytestmark = pytest.mark.integration

GPT = "gpt-4o-mini"
CLAUDE = "claude-3-5-sonnet-20241022"
EMBEDDING = "text-embedding-3-small"
MESSAGES = [{"role": "user", "content": "Summarise our quarterly numbers."}]
INSTRUMENTATION_STREAM_BUG = (
    "opentelemetry-instrumentation-anthropic 0.62.4 adds message_start's output_tokens (1) to message_delta's "
    "cumulative total (traceloop/openllmetry PR 4377); anthropic's own span has the right count"
)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any connection outside 127.0.0.1 (e.g. tiktoken fetching encodings)."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network access outside loopback: {address!r}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture(scope="module")
def stub() -> Iterator[StubLLMServer]:
    with StubLLMServer() as server:
        yield server


class _ExporterSlot(SpanExporter):
    """Hands spans to the current test's exporter.

    The instrumentation stays in place for the whole module: ``OpenAIInstrumentor().uninstrument()``
    (0.62.4) does not unwrap ``Completions.create``, so instrumenting again per test would stack wrappers.
    """

    def __init__(self) -> None:
        self.target: SpanExporter | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        assert self.target is not None, "a span ended outside a test"
        return self.target.export(spans)


@pytest.fixture(scope="module")
def tracing() -> Iterator[tuple[TracerProvider, _ExporterSlot]]:
    slot = _ExporterSlot()
    provider = TracerProvider()
    provider.add_span_processor(UserAttributionProcessor())
    provider.add_span_processor(SimpleSpanProcessor(slot))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    AnthropicInstrumentor().instrument(tracer_provider=provider)
    yield provider, slot
    OpenAIInstrumentor().uninstrument()
    AnthropicInstrumentor().uninstrument()
    provider.shutdown()


class Pipeline:
    """The exporter, the ledger and the two clients of one test."""

    def __init__(self, stub: StubLLMServer, store: Store, provider: TracerProvider, *, sdk_spans: bool) -> None:
        self.stub = stub
        self.provider = provider
        self.exporter = CostExporter(store)
        self.ledger = Ledger(store)
        self.openai = openai.OpenAI(base_url=stub.openai_base_url, api_key="test", max_retries=0)
        self.anthropic = anthropic.Anthropic(
            base_url=stub.anthropic_base_url,
            api_key="test",
            max_retries=0,
            open_telemetry={"tracer_provider": provider} if sdk_spans else False,
        )
        self.first_request = len(stub.requests)

    @property
    def requests_sent(self) -> int:
        return len(self.stub.requests) - self.first_request

    def chat(self, stub: dict[str, Any], **kwargs: Any) -> Any:
        return self.openai.chat.completions.create(model=GPT, messages=MESSAGES, extra_body={"stub": stub}, **kwargs)

    def messages(self, stub: dict[str, Any], **kwargs: Any) -> Any:
        return self.anthropic.messages.create(
            model=CLAUDE, max_tokens=256, messages=MESSAGES, extra_body={"stub": stub}, **kwargs
        )

    def flush(self) -> None:
        """Wait until every exported call is in the store (the exporter inserts in the background)."""
        assert self.provider.force_flush()
        assert self.exporter.force_flush()

    def only_row(self, user_id: str) -> Any:
        """The single stored call of ``user_id``."""
        self.flush()
        detail = self.ledger.user(user_id)
        assert len(detail.calls) == 1, [(c.source, c.span_id, c.output_tokens) for c in detail.calls]
        return detail.calls[0]

    def assert_counted_once_each(self) -> None:
        """Every request the stub answered is exactly one stored call."""
        self.flush()
        stored = sum(row.usage.requests for row in self.ledger.users(limit=1000, include_unattributed=True).rows)
        assert stored == self.requests_sent
        assert self.exporter.stats["stored"] == self.requests_sent


@pytest.fixture
def pipeline(
    request: pytest.FixtureRequest, stub: StubLLMServer, store: Store, tracing: tuple[TracerProvider, _ExporterSlot]
) -> Iterator[Pipeline]:
    """Parametrize indirectly with ``False`` for an Anthropic client without its own spans."""
    provider, slot = tracing
    p = Pipeline(stub, store, provider, sdk_spans=getattr(request, "param", True))
    slot.target = p.exporter
    try:
        yield p
    finally:
        slot.target = None
        p.exporter.shutdown()
        p.openai.close()  # pooled connections are closed now, not by a later garbage collection
        p.anthropic.close()


def test_openai_cached_tokens_are_priced_at_the_cache_rate(pipeline: Pipeline) -> None:
    with attribute_to(user_id="alice", tenant_id="acme", plan="pro"):
        response = pipeline.chat(
            {"input_tokens": 1200, "cached_tokens": 1024, "output_tokens": 30, "reasoning_tokens": 12}
        )
    assert response.usage.prompt_tokens_details.cached_tokens == 1024

    row = pipeline.only_row("alice")
    assert (row.model, row.request_model, row.provider) == ("gpt-4o-mini-2024-07-18", GPT, "openai")
    assert (row.input_tokens, row.cache_read_tokens, row.output_tokens) == (1200, 1024, 30)
    assert row.reasoning_tokens == 12  # part of the 30 output tokens, not on top
    # 176 × 0.15 + 1024 × 0.075 + 30 × 0.6 = 121.2 per million
    assert row.cost == Decimal("0.0001212")
    assert (row.tenant_id, row.tags) == ("acme", {"plan": "pro"})
    pipeline.assert_counted_once_each()


def test_openai_streaming_usage_chunk_is_priced(pipeline: Pipeline) -> None:
    with attribute_to(user_id="alice", tenant_id="acme"):
        stream = pipeline.chat(
            {"input_tokens": 2000, "cached_tokens": 1536, "output_tokens": 100},
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    assert chunks[-1].usage.completion_tokens == 100

    row = pipeline.only_row("alice")
    assert (row.input_tokens, row.cache_read_tokens, row.output_tokens) == (2000, 1536, 100)
    # 464 × 0.15 + 1536 × 0.075 + 100 × 0.6 = 244.8 per million
    assert row.cost == Decimal("0.0002448")
    pipeline.assert_counted_once_each()


@pytest.mark.parametrize("pipeline", [True, False], ids=["sdk-spans", "no-sdk-spans"], indirect=True)
def test_anthropic_cache_read_and_write_are_not_double_counted(pipeline: Pipeline) -> None:
    with attribute_to(user_id="bob", tenant_id="acme"):
        message = pipeline.messages(
            {"input_tokens": 3000, "cached_tokens": 2000, "cache_creation_tokens": 500, "output_tokens": 40}
        )
    # Anthropic's own convention: the cache is reported on top of input_tokens
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (500, 2000)
    assert message.usage.cache_creation_input_tokens == 500

    row = pipeline.only_row("bob")
    assert (row.input_tokens, row.cache_read_tokens, row.cache_write_tokens) == (3000, 2000, 500)
    # 500 × 3 + 2000 × 0.30 + 500 × 3.75 + 40 × 15 = 4575 per million (12075 if the cache were counted twice)
    assert row.cost == Decimal("0.004575")
    pipeline.assert_counted_once_each()


@pytest.mark.parametrize(
    "pipeline",
    [
        True,
        pytest.param(False, marks=pytest.mark.xfail(strict=True, reason=INSTRUMENTATION_STREAM_BUG)),
    ],
    ids=["sdk-spans", "no-sdk-spans"],
    indirect=True,
)
def test_anthropic_streaming_is_priced_from_the_final_usage(pipeline: Pipeline) -> None:
    with attribute_to(user_id="carol", tenant_id="globex"):
        events = list(
            pipeline.messages({"input_tokens": 5000, "cached_tokens": 4000, "output_tokens": 200}, stream=True)
        )
    assert events[-2].usage.output_tokens == 200

    row = pipeline.only_row("carol")
    assert (row.input_tokens, row.cache_read_tokens, row.output_tokens) == (5000, 4000, 200)
    # 1000 × 3 + 4000 × 0.30 + 200 × 15 = 7200 per million
    assert row.cost == Decimal("0.0072")
    pipeline.assert_counted_once_each()


@pytest.mark.parametrize(
    "pipeline",
    [
        True,
        pytest.param(False, marks=pytest.mark.xfail(strict=True, reason=INSTRUMENTATION_STREAM_BUG)),
    ],
    ids=["sdk-spans", "no-sdk-spans"],
    indirect=True,
)
def test_anthropic_stream_helper(pipeline: Pipeline) -> None:
    with (
        attribute_to(user_id="carol", tenant_id="globex"),
        pipeline.anthropic.messages.stream(
            model=CLAUDE,
            max_tokens=256,
            messages=MESSAGES,
            extra_body={"stub": {"input_tokens": 1000, "cache_creation_tokens": 1000, "output_tokens": 10}},
        ) as stream,
    ):
        final = stream.get_final_message()
    assert final.usage.output_tokens == 10

    row = pipeline.only_row("carol")
    assert (row.input_tokens, row.cache_write_tokens, row.output_tokens) == (1000, 1000, 10)
    # 1000 × 3.75 + 10 × 15 = 3900 per million
    assert row.cost == Decimal("0.0039")
    pipeline.assert_counted_once_each()


@pytest.mark.parametrize(
    ("api", "pipeline"),
    [("openai", True), ("anthropic", True), ("anthropic", False)],
    ids=["openai", "anthropic-sdk-spans", "anthropic-no-sdk-spans"],
    indirect=["pipeline"],
)
def test_error_response_is_stored_counted_and_attributed(pipeline: Pipeline, api: str) -> None:
    with attribute_to(user_id="dave", tenant_id="globex"):
        if api == "openai":
            with pytest.raises(openai.RateLimitError):
                pipeline.chat({"status": 429})
        else:
            with pytest.raises(anthropic.InternalServerError):
                pipeline.messages({"status": 500})

    pipeline.flush()
    summary = pipeline.ledger.user("dave").summary
    assert summary is not None
    assert (summary.tenant_id, summary.usage.requests, summary.usage.errors) == ("globex", 1, 1)
    assert summary.usage.cost == Decimal(0)
    row = pipeline.only_row("dave")
    assert row.is_error == 1
    assert row.error_type
    pipeline.assert_counted_once_each()


def test_untagged_call_is_stored_as_unattributed(pipeline: Pipeline) -> None:
    pipeline.chat({"input_tokens": 1000, "output_tokens": 100})

    pipeline.flush()
    (row,) = pipeline.ledger.users(include_unattributed=True).rows
    assert (row.user_id, row.tenant_id, row.label) == ("", "", "(unattributed)")
    # 1000 × 0.15 + 100 × 0.6 = 210 per million
    assert (row.usage.requests, row.usage.cost) == (1, Decimal("0.00021"))
    assert pipeline.ledger.user("").summary is not None
    pipeline.assert_counted_once_each()


def test_propagate_false_keeps_ids_out_of_request_headers(pipeline: Pipeline) -> None:
    usage = {"input_tokens": 1000, "output_tokens": 100}
    with attribute_to(user_id="erin", tenant_id="acme", plan="pro"):
        pipeline.messages(usage)
    sent_with_baggage = pipeline.stub.requests[-1].headers
    with attribute_to(user_id="frank", tenant_id="acme", plan="pro", propagate=False):
        pipeline.messages(usage)
    sent_without = pipeline.stub.requests[-1].headers
    pipeline.flush()

    assert sent_with_baggage["baggage"] == "userId=erin,tenantId=acme,plan=pro"
    assert "baggage" not in sent_without
    assert "traceparent" in sent_without
    # both calls are attributed all the same: 1000 × 3 + 100 × 15 = 4500 per million each
    for user in ("erin", "frank"):
        summary = pipeline.ledger.user(user).summary
        assert summary is not None
        assert (summary.tenant_id, summary.usage.requests, summary.usage.cost) == ("acme", 1, Decimal("0.0045"))
        assert pipeline.only_row(user).tags == {"plan": "pro"}
    pipeline.assert_counted_once_each()


def test_costs_per_user_and_tenant_across_clients(pipeline: Pipeline) -> None:
    """Several users in two tenants through both clients; every total is exact."""
    with attribute_to(user_id="alice", tenant_id="acme", plan="pro"):
        pipeline.chat({"input_tokens": 1200, "cached_tokens": 1024, "output_tokens": 30})  # 0.0001212
        list(
            pipeline.chat(
                {"input_tokens": 2000, "cached_tokens": 1536, "output_tokens": 100},
                stream=True,
                stream_options={"include_usage": True},
            )
        )  # 0.0002448
    with attribute_to(user_id="bob", tenant_id="acme", plan="free"):
        pipeline.messages(
            {"input_tokens": 3000, "cached_tokens": 2000, "cache_creation_tokens": 500, "output_tokens": 40}
        )  # 0.004575
        with pytest.raises(openai.RateLimitError):
            pipeline.chat({"status": 429})  # 0
    with attribute_to(user_id="carol", tenant_id="globex", plan="pro"):
        pipeline.messages({"input_tokens": 5000, "cached_tokens": 4000, "output_tokens": 200})  # 0.0072
        pipeline.messages({"input_tokens": 1000, "cache_creation_tokens": 1000, "output_tokens": 10})  # 0.0039
    with attribute_to(user_id="dave", tenant_id="globex"):
        pipeline.openai.embeddings.create(
            model=EMBEDDING, input="quarterly numbers", extra_body={"stub": {"input_tokens": 5000}}
        )  # 5000 × 0.02 = 100 per million
        with pytest.raises(anthropic.APIStatusError):
            pipeline.messages({"status": 529})  # 0
    pipeline.chat({"input_tokens": 1000, "output_tokens": 100})  # untagged: 0.00021
    pipeline.flush()

    users = {(r.tenant_id, r.user_id): r.usage for r in pipeline.ledger.users(include_unattributed=True).rows}
    assert {key: (u.requests, u.errors, u.cost) for key, u in users.items()} == {
        ("acme", "alice"): (2, 0, Decimal("0.000366")),
        ("acme", "bob"): (2, 1, Decimal("0.004575")),
        ("globex", "carol"): (2, 0, Decimal("0.0111")),
        ("globex", "dave"): (2, 1, Decimal("0.0001")),
        ("", ""): (1, 0, Decimal("0.00021")),
    }
    assert users[("globex", "carol")].output_tokens == 210
    assert users[("acme", "bob")].cache_write_tokens == 500

    tenants = {
        r.tenant_id: (r.usage.requests, r.usage.cost, r.active_users)
        for r in pipeline.ledger.tenants(include_no_tenant=True).rows
    }
    assert tenants == {
        "acme": (4, Decimal("0.004941"), 2),
        "globex": (4, Decimal("0.0112"), 2),
        "": (1, Decimal("0.00021"), 0),
    }

    alice = pipeline.ledger.user("alice")
    assert alice.summary is not None and alice.summary.usage.cost == Decimal("0.000366")
    assert [(m.provider, m.model, m.usage.requests) for m in alice.models] == [("openai", "gpt-4o-mini-2024-07-18", 2)]
    carol = pipeline.ledger.user("carol")
    assert [(m.provider, m.model, m.usage.cost) for m in carol.models] == [("anthropic", CLAUDE, Decimal("0.0111"))]
    pro = {
        (r.tenant_id, r.user_id): r.usage.cost
        for r in pipeline.ledger.users(tags={"plan": "pro"}, include_unattributed=True).rows
    }
    assert pro == {("acme", "alice"): Decimal("0.000366"), ("globex", "carol"): Decimal("0.0111")}
    assert pipeline.requests_sent == 9
    pipeline.assert_counted_once_each()


def test_calls_inside_an_application_span_are_counted_once(pipeline: Pipeline) -> None:
    """As in a web app: every call runs under the request's server span, so both Anthropic spans share a trace."""
    tracer = pipeline.provider.get_tracer("app")
    with tracer.start_as_current_span("POST /summarise"), attribute_to(user_id="gina", tenant_id="acme"):
        pipeline.messages({"input_tokens": 2000, "cached_tokens": 1000, "output_tokens": 100})
        with pytest.raises(anthropic.RateLimitError):
            pipeline.messages({"status": 429})
        pipeline.chat({"input_tokens": 1000, "output_tokens": 100})

    pipeline.flush()
    summary = pipeline.ledger.user("gina").summary
    assert summary is not None
    # 1000 × 3 + 1000 × 0.30 + 100 × 15 = 4800, plus 1000 × 0.15 + 100 × 0.6 = 210 per million
    assert (summary.usage.requests, summary.usage.errors, summary.usage.cost) == (3, 1, Decimal("0.00501"))
    assert summary.usage.traces == 1
    assert pipeline.exporter.stats["skipped:not_llm"] == 1
    pipeline.assert_counted_once_each()

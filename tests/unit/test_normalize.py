"""Span → LLMCall for every convention in CONVENTIONS.md §2, built from hand-made spans."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

from spanledger import LLMCall, Pricer
from spanledger._capture.normalize import SKIP_NESTED, SKIP_NOT_LLM, Normalizer, clean_id

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
NOW_NS = int(NOW.timestamp()) * 10**9
START_NS = NOW_NS - 5 * 10**9 + 123_456_789  # 4.876543211 s before NOW
_ids = itertools.count(1)


def make_span(
    name: str,
    attributes: dict[str, Any],
    *,
    status: Status | None = None,
    events: tuple[Event, ...] = (),
    start_ns: int = START_NS,
    duration_ns: int = 1_500_000_000,
) -> ReadableSpan:
    """A finished span as an SDK exporter receives it."""
    n = next(_ids)
    return ReadableSpan(
        name=name,
        context=SpanContext(trace_id=0xABC0 + n, span_id=0x10 + n, is_remote=False, trace_flags=TraceFlags(1)),
        parent=SpanContext(trace_id=0xABC0 + n, span_id=0x9000 + n, is_remote=False),
        resource=Resource({"service.name": "checkout"}),
        attributes=attributes,
        events=events,
        status=status or Status(StatusCode.UNSET),
        start_time=start_ns,
        end_time=start_ns + duration_ns,
    )


def normalize(name: str, attributes: dict[str, Any], **kwargs: Any) -> LLMCall:
    outcome = Normalizer().normalize(make_span(name, attributes, **kwargs), NOW_NS)
    assert isinstance(outcome, LLMCall), outcome
    return outcome


def usage(call: LLMCall) -> tuple[int, int, int, int, int]:
    return (
        call.input_tokens,
        call.output_tokens,
        call.cache_read_tokens,
        call.cache_write_tokens,
        call.reasoning_tokens,
    )


# --- one realistic span per convention -------------------------------------------------------------

CONVENTION_CASES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    (
        "otel-genai current names",
        "chat gpt-4o-mini",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 30,
            "gen_ai.usage.cache_read.input_tokens": 1024,
            "gen_ai.usage.cache_creation.input_tokens": 100,
            "gen_ai.usage.reasoning.output_tokens": 12,
            "gen_ai.response.id": "chatcmpl-1",
        },
        {
            "provider": "openai",
            "model": "gpt-4o-mini-2024-07-18",
            "request_model": "gpt-4o-mini",
            "operation": "chat",
            "usage": (1200, 30, 1024, 100, 12),
            "source": "otel-genai",
            "response_id": "chatcmpl-1",
        },
    ),
    (
        "otel-genai deprecated names",
        "openai.chat",
        {
            "gen_ai.system": "OpenAI",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.prompt_tokens": 900,
            "gen_ai.usage.completion_tokens": 80,
        },
        {
            "provider": "openai",
            "model": "gpt-4o",
            "request_model": "gpt-4o",
            "operation": "",
            "usage": (900, 80, 0, 0, 0),
            "source": "openllmetry",
        },
    ),
    (
        "old OpenLLMetry",
        "anthropic.chat",
        {
            "gen_ai.system": "Anthropic",
            "llm.request.type": "chat",
            "gen_ai.request.model": "claude-3-5-haiku-latest",
            "gen_ai.response.model": "claude-3-5-haiku-20241022",
            "gen_ai.usage.prompt_tokens": 5000,
            "gen_ai.usage.completion_tokens": 200,
            "gen_ai.usage.cache_read_input_tokens": 3000,
            "gen_ai.usage.cache_creation_input_tokens": 1000,
            "gen_ai.usage.reasoning_tokens": 7,
            "llm.usage.total_tokens": 5200,
        },
        {
            "provider": "anthropic",
            "model": "claude-3-5-haiku-20241022",
            "request_model": "claude-3-5-haiku-latest",
            "operation": "chat",
            "usage": (5000, 200, 3000, 1000, 7),
            "source": "openllmetry",
        },
    ),
    (
        "OpenInference LLM span",
        "ChatOpenAI",
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "openai",
            "llm.system": "openai",
            "llm.model_name": "gpt-4o-2024-08-06",
            "llm.token_count.prompt": 500,
            "llm.token_count.completion": 40,
            "llm.token_count.total": 540,
            "llm.token_count.prompt_details.cache_read": 200,
            "llm.token_count.prompt_details.cache_write": 50,
            "llm.token_count.completion_details.reasoning": 5,
        },
        {
            "provider": "openai",
            "model": "gpt-4o-2024-08-06",
            "request_model": "gpt-4o-2024-08-06",
            "operation": "llm",
            "usage": (500, 40, 200, 50, 5),
            "source": "openinference",
        },
    ),
    (
        "OpenInference embedding span",
        "OpenAIEmbeddings",
        {
            "openinference.span.kind": "EMBEDDING",
            "llm.system": "openai",
            "embedding.model_name": "text-embedding-3-small",
            "llm.model_name": "text-embedding-3-small",
            "llm.token_count.prompt": 64,
        },
        {
            "provider": "openai",
            "model": "text-embedding-3-small",
            "request_model": "text-embedding-3-small",
            "operation": "embedding",
            "usage": (64, 0, 0, 0, 0),
            "source": "openinference",
        },
    ),
    (
        "OpenLIT",
        "chat gpt-4o-mini",
        {
            "telemetry.sdk.name": "openlit",
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.input_tokens": 300,
            "gen_ai.usage.output_tokens": 25,
            "gen_ai.usage.cost": 0.00006,  # OpenLIT's own float estimate: ignored
        },
        {
            "provider": "openai",
            "model": "gpt-4o-mini-2024-07-18",
            "request_model": "gpt-4o-mini",
            "operation": "chat",
            "usage": (300, 25, 0, 0, 0),
            "source": "otel-genai",
        },
    ),
    (
        "Vercel AI SDK v5 doGenerate",
        "ai.generateText.doGenerate",
        {
            "operation.name": "ai.generateText.doGenerate checkout",
            "ai.operationId": "ai.generateText.doGenerate",
            "ai.model.provider": "openai.chat",
            "ai.model.id": "gpt-4o-mini",
            "ai.response.model": "gpt-4o-mini-2024-07-18",
            "ai.usage.inputTokens": 700,
            "ai.usage.outputTokens": 60,
            "ai.usage.cachedInputTokens": 512,
            "ai.usage.reasoningTokens": 20,
            "ai.response.id": "resp-9",
        },
        {
            "provider": "openai",
            "model": "gpt-4o-mini-2024-07-18",
            "request_model": "gpt-4o-mini",
            "operation": "generateText",
            "usage": (700, 60, 512, 0, 20),
            "source": "vercel-ai",
            "response_id": "resp-9",
        },
    ),
    (
        "Vercel AI SDK v4 doStream",
        "ai.streamText.doStream",
        {
            "ai.model.provider": "google.generative-ai",
            "ai.model.id": "gemini-2.5-flash",
            "ai.usage.promptTokens": 111,
            "ai.usage.completionTokens": 22,
        },
        {
            "provider": "google",
            "model": "gemini-2.5-flash",
            "request_model": "gemini-2.5-flash",
            "operation": "streamText",
            "usage": (111, 22, 0, 0, 0),
            "source": "vercel-ai",
        },
    ),
    (
        "Logfire / Pydantic AI model request",
        "chat gpt-4o",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 50,
            "gen_ai.usage.details.cache_read_tokens": 800,
            "gen_ai.usage.details.reasoning_tokens": 9,
            "logfire.span_type": "span",
            "logfire.msg": "chat gpt-4o",
        },
        {
            "provider": "openai",
            "model": "gpt-4o-2024-08-06",
            "request_model": "gpt-4o",
            "operation": "chat",
            "usage": (1000, 50, 800, 0, 9),
            "source": "otel-genai",
        },
    ),
]


@pytest.mark.parametrize(
    ("name", "attributes", "expected"), [c[1:] for c in CONVENTION_CASES], ids=[c[0] for c in CONVENTION_CASES]
)
def test_each_convention_is_read(name: str, attributes: dict[str, Any], expected: dict[str, Any]) -> None:
    call = normalize(name, attributes)
    assert call.provider == expected["provider"]
    assert call.model == expected["model"]
    assert call.request_model == expected["request_model"]
    assert call.operation == expected["operation"]
    assert usage(call) == expected["usage"]
    assert call.source == expected["source"]
    assert call.response_id == expected.get("response_id", "")
    assert call.flags == []
    assert call.cost is None  # normalisation never prices


def test_span_identity_timing_and_resource_are_kept() -> None:
    span = make_span("chat", {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1})
    call = Normalizer().normalize(span, NOW_NS)
    assert isinstance(call, LLMCall)
    assert span.context is not None and span.parent is not None
    assert (call.trace_id, call.span_id, call.parent_span_id) == (
        span.context.trace_id,
        span.context.span_id,
        span.parent.span_id,
    )
    assert call.timestamp == datetime(2026, 6, 15, 11, 59, 55, 123456, tzinfo=UTC)
    assert call.duration_us == 1_500_000
    assert call.service_name == "checkout"
    assert (call.user_id, call.user_source, call.tenant_id, call.tags) == ("", "", "", {})
    assert not call.is_error


@pytest.mark.parametrize(
    ("attributes", "model", "request_model"),
    [
        (
            {"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06"},
            "gpt-4o-2024-08-06",
            "gpt-4o",
        ),
        ({"gen_ai.request.model": "gpt-4o"}, "gpt-4o", "gpt-4o"),
        ({"gen_ai.response.model": "gpt-4o-2024-08-06"}, "gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
        ({"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": ""}, "gpt-4o", "gpt-4o"),
        (
            {"ai.model.id": "claude-3-5-haiku-latest", "ai.response.model": "claude-3-5-haiku-20241022"},
            "claude-3-5-haiku-20241022",
            "claude-3-5-haiku-latest",
        ),
    ],
)
def test_response_model_is_preferred_over_request_model(
    attributes: dict[str, Any], model: str, request_model: str
) -> None:
    name = "ai.generateText.doGenerate" if "ai.model.id" in attributes else "chat"
    call = normalize(name, {**attributes, "gen_ai.usage.input_tokens": 10})
    assert (call.model, call.request_model) == (model, request_model)


def test_current_provider_name_wins_over_deprecated_system() -> None:
    call = normalize(
        "chat",
        {"gen_ai.provider.name": "azure.ai.openai", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o"},
    )
    assert call.provider == "azure"


@pytest.mark.parametrize(
    ("raw", "provider"),
    [
        ("OpenAI", "openai"),
        ("anthropic.messages", "anthropic"),
        ("gcp.vertex_ai", "google"),
        ("aws.bedrock", "aws"),
        ("mistral_ai", "mistral"),
        ("self-hosted", "self-hosted"),
    ],
)
def test_provider_spellings_map_to_price_table_ids(raw: str, provider: str) -> None:
    assert normalize("chat", {"gen_ai.system": raw, "gen_ai.request.model": "m"}).provider == provider


# --- what is not a call -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "attributes"),
    [
        (
            "GET /api/orders",
            {"http.request.method": "GET", "url.full": "https://x/api", "http.response.status_code": 200},
        ),
        (
            "POST",
            {"http.request.method": "POST", "server.address": "api.openai.com", "url.path": "/v1/chat/completions"},
        ),
        ("SELECT orders", {"db.system": "postgresql", "db.statement": "SELECT 1"}),
        ("no attributes", {}),
        (
            "RunnableSequence",
            {"openinference.span.kind": "CHAIN", "llm.model_name": "gpt-4o", "llm.token_count.prompt": 9},
        ),
        ("AgentExecutor", {"openinference.span.kind": "AGENT", "llm.token_count.prompt": 900}),
        ("retrieve", {"openinference.span.kind": "RETRIEVER"}),
        (
            "ai.generateText",
            {
                "ai.model.provider": "openai.chat",
                "ai.model.id": "gpt-4o-mini",
                "ai.usage.inputTokens": 700,
                "ai.usage.outputTokens": 60,
            },
        ),
        (
            "agent run",  # Pydantic AI instrumentation v1/v2: the run's total usage, not a call
            {
                "model_name": "gpt-4o",
                "agent_name": "support",
                "gen_ai.agent.name": "support",
                "logfire.msg": "support run",
                "gen_ai.usage.input_tokens": 3000,
                "gen_ai.usage.output_tokens": 300,
            },
        ),
        (
            "invoke_agent support",  # Pydantic AI v3+ and the OTel agent convention
            {
                "model_name": "gpt-4o",
                "gen_ai.agent.name": "support",
                "gen_ai.usage.input_tokens": 3000,
                "gen_ai.usage.output_tokens": 300,
            },
        ),
        (
            "invoke_agent support",
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o"},
        ),
        ("checkout.workflow", {"traceloop.span.kind": "workflow", "traceloop.entity.name": "checkout"}),
    ],
)
def test_non_call_spans_are_skipped(name: str, attributes: dict[str, Any]) -> None:
    assert Normalizer().normalize(make_span(name, attributes), NOW_NS) == SKIP_NOT_LLM


def test_llm_span_nested_in_another_llm_span_is_skipped() -> None:
    attributes = {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 9, "spanledger.nested_llm_span": True}
    assert Normalizer().normalize(make_span("openai.chat", attributes), NOW_NS) == SKIP_NESTED


# --- who the call is for ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "user.id",
        "langfuse.user.id",
        "gen_ai.user",
        "gen_ai.request.user",
        "llm.user",
        "traceloop.association.properties.user_id",
        "ai.telemetry.metadata.userId",
    ],
)
def test_user_from_the_instrumentation_when_no_baggage(key: str) -> None:
    call = normalize("chat", {"gen_ai.request.model": "gpt-4o", key: "u-42"})
    assert (call.user_id, call.user_source) == ("u-42", "span")


def test_user_from_attribution_wins_over_the_instrumentation() -> None:
    call = normalize(
        "chat", {"gen_ai.request.model": "gpt-4o", "enduser.id": "from-baggage", "langfuse.user.id": "from-langfuse"}
    )
    assert (call.user_id, call.user_source) == ("from-baggage", "attribution")


@pytest.mark.parametrize(
    "key",
    [
        "tenant.id",
        "traceloop.association.properties.tenant_id",
        "ai.telemetry.metadata.tenantId",
        "langfuse.trace.metadata.tenant_id",
    ],
)
def test_tenant_and_tags_are_read(key: str) -> None:
    call = normalize(
        "chat",
        {
            "gen_ai.request.model": "gpt-4o",
            key: "acme",
            "spanledger.tag.plan": "pro",
            "spanledger.tag.feature": "summarize",
        },
    )
    assert call.tenant_id == "acme"
    assert call.tags == {"plan": "pro", "feature": "summarize"}


def test_ids_are_cleaned_and_capped() -> None:
    call = normalize("chat", {"gen_ai.request.model": "gpt-4o", "enduser.id": "bob\x00\n", "tenant.id": "t" * 300})
    assert call.user_id == "bob"
    assert call.tenant_id == "t" * 256
    assert "user_id_cleaned" in call.flags and "tenant_id_truncated" in call.flags


def test_non_string_user_id_is_stringified() -> None:
    assert normalize("chat", {"gen_ai.request.model": "gpt-4o", "user.id": 1234}).user_id == "1234"


# --- cache conventions -----------------------------------------------------------------------------------


def test_otel_style_input_that_includes_cache_is_left_alone() -> None:
    call = normalize(
        "chat",
        {
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-3-5-haiku-20241022",
            "gen_ai.usage.input_tokens": 5000,
            "gen_ai.usage.output_tokens": 10,
            "gen_ai.usage.cache_read.input_tokens": 3000,
            "gen_ai.usage.cache_creation.input_tokens": 1000,
        },
    )
    assert usage(call)[:4] == (5000, 10, 3000, 1000)
    assert "input_excluded_cache" not in call.flags


@pytest.mark.parametrize(
    ("read", "write", "expected_input"),
    [(3000, 1000, 5000), (1024, 0, 2024), (0, 2000, 3000)],
)
def test_anthropic_style_input_that_excludes_cache_gets_it_added(read: int, write: int, expected_input: int) -> None:
    call = normalize(
        "anthropic.chat",
        {
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-3-5-haiku-20241022",
            "gen_ai.usage.input_tokens": 1000,  # smaller than the cache tokens: cannot include them
            "gen_ai.usage.output_tokens": 10,
            "gen_ai.usage.cache_read_input_tokens": read,
            "gen_ai.usage.cache_creation_input_tokens": write,
        },
    )
    assert (call.input_tokens, call.cache_read_tokens, call.cache_write_tokens) == (expected_input, read, write)
    assert "input_excluded_cache" in call.flags


def test_vercel_anthropic_before_v6_reports_input_without_cache() -> None:
    call = normalize(
        "ai.generateText.doGenerate",
        {
            "ai.model.provider": "anthropic.messages",
            "ai.model.id": "claude-3-5-haiku-20241022",
            "ai.usage.inputTokens": 1500,  # larger than the cache read, yet excludes it
            "ai.usage.outputTokens": 10,
            "ai.usage.cachedInputTokens": 1000,
        },
    )
    assert (call.input_tokens, call.cache_read_tokens) == (2500, 1000)
    assert "input_excluded_cache" in call.flags


def test_vercel_anthropic_v6_reports_input_with_cache() -> None:
    call = normalize(
        "ai.generateText.doGenerate",
        {
            "ai.model.provider": "anthropic.messages",
            "ai.model.id": "claude-3-5-haiku-20241022",
            "ai.usage.inputTokens": 2500,
            "ai.usage.inputTokenDetails.noCacheTokens": 1500,
            "ai.usage.inputTokenDetails.cacheReadTokens": 1000,
            "ai.usage.outputTokens": 10,
        },
    )
    assert (call.input_tokens, call.cache_read_tokens) == (2500, 1000)
    assert "input_excluded_cache" not in call.flags


def test_vercel_openai_input_includes_cache() -> None:
    call = normalize(
        "ai.generateText.doGenerate",
        {
            "ai.model.provider": "openai.responses",
            "ai.model.id": "gpt-4o-mini",
            "ai.usage.inputTokens": 1500,
            "ai.usage.cachedInputTokens": 1000,
        },
    )
    assert (call.input_tokens, call.cache_read_tokens) == (1500, 1000)
    assert call.flags == []


def test_both_cache_conventions_price_the_same_call_the_same() -> None:
    """1200 input of which 1024 cached, 30 output: reported OTel-style and Anthropic-style."""
    common = {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.output_tokens": 30}
    included = normalize(
        "chat", {**common, "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.cache_read.input_tokens": 1024}
    )
    excluded = normalize(
        "chat", {**common, "gen_ai.usage.input_tokens": 176, "gen_ai.usage.cache_read.input_tokens": 1024}
    )
    pricer = Pricer()
    pricer.price(included)
    pricer.price(excluded)
    assert included.cost == excluded.cost == Decimal("0.0001212")


# --- bad values never crash ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "flag"),
    [
        (-5, "invalid_tokens"),
        ("lots", "invalid_tokens"),
        (12.5, "invalid_tokens"),
        (True, "invalid_tokens"),
        (10**11, "invalid_tokens"),
        ([1, 2], "invalid_tokens"),
        (float("nan"), "invalid_tokens"),
        (float("inf"), "invalid_tokens"),
    ],
)
def test_bad_token_values_are_flagged_and_zeroed(value: object, flag: str) -> None:
    call = normalize(
        "chat", {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": value, "gen_ai.usage.output_tokens": 7}
    )
    assert call.input_tokens == 0
    assert call.output_tokens == 7
    assert f"{flag}:gen_ai.usage.input_tokens" in call.flags


@pytest.mark.parametrize("value", [" 42 ", "42", 42.0])
def test_coercible_token_values_are_kept_and_flagged(value: object) -> None:
    call = normalize("chat", {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.output_tokens": value})
    assert call.output_tokens == 42
    assert call.flags == ["coerced_tokens:gen_ai.usage.output_tokens"]


def test_a_span_with_usage_but_no_model_is_a_call_flagged_no_model() -> None:
    call = normalize("chat", {"gen_ai.system": "openai", "gen_ai.usage.input_tokens": 5})
    assert call.model == ""
    assert "no_model" in call.flags


def test_a_start_time_from_a_broken_clock_is_replaced_by_now() -> None:
    old = int(datetime(2001, 1, 1, tzinfo=UTC).timestamp()) * 10**9
    call = normalize("chat", {"gen_ai.request.model": "gpt-4o"}, start_ns=old)
    assert call.timestamp == NOW
    assert "clock_skew" in call.flags


# --- errors and content ----------------------------------------------------------------------------------


def test_error_status_and_exception_type() -> None:
    exception = Event("exception", {"exception.type": "openai.RateLimitError", "exception.message": "slow down"})
    call = normalize(
        "chat", {"gen_ai.request.model": "gpt-4o"}, status=Status(StatusCode.ERROR, "429"), events=(exception,)
    )
    assert (call.is_error, call.error_type) == (True, "openai.RateLimitError")


def test_error_type_attribute_marks_an_error() -> None:
    call = normalize("chat", {"gen_ai.request.model": "gpt-4o", "error.type": "timeout"})
    assert (call.is_error, call.error_type) == (True, "timeout")


def test_content_is_dropped_by_default_and_capped_when_kept() -> None:
    attributes = {
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.input.messages": "x" * 50,
        "gen_ai.output.messages": "short",
    }
    plain = Normalizer().normalize(make_span("chat", attributes), NOW_NS)
    assert isinstance(plain, LLMCall) and (plain.prompt, plain.completion) == ("", "")
    kept = Normalizer(capture_content=True, max_content_chars=10).normalize(make_span("chat", attributes), NOW_NS)
    assert isinstance(kept, LLMCall)
    assert (kept.prompt, kept.completion) == ("x" * 10, "short")
    assert "content_truncated" in kept.flags


def _clean_id_by_rule(text: str) -> tuple[str, list[str]]:
    """clean_id's documented rule, written out independently of its fast path."""
    flags: list[str] = []
    safe = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    cleaned = "".join(c for c in safe if not (ord(c) < 0x20 or ord(c) == 0x7F)).strip()
    if cleaned != text:
        flags.append("user_id_cleaned")
    if len(cleaned) > 256:
        cleaned = cleaned[:256]
        flags.append("user_id_truncated")
    return cleaned, flags


@given(
    st.one_of(
        st.text(),
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300),
        st.sampled_from(["user_1", " user_1", "user_1 ", "a" * 256, "a" * 257, "u\x7f", "u\t1", "\ud800x"]),
    )
)
def test_clean_id_fast_path_matches_the_rule(text: str) -> None:
    flags: list[str] = []
    assert (clean_id(text, flags, "user_id"), flags) == _clean_id_by_rule(text)

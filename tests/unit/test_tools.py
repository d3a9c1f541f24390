"""Tool spans: recognised in every convention, never an LLM call; tool records through the spool codec."""

from __future__ import annotations

from datetime import timedelta

import pytest

from spanledger._capture.normalize import SKIP_NOT_LLM, Normalizer
from spanledger._ingest import codec
from spanledger._model.call import LLMCall
from spanledger._model.tool import ToolCall
from spanledger.testing import llm_call, span, tool_span

NOW_NS = 1_800_000_000 * 10**9


def normalize(made: object) -> object:
    return Normalizer().normalize(made, NOW_NS)  # type: ignore[arg-type]


@pytest.mark.parametrize("convention", ["otel-genai", "openinference", "openllmetry"])
def test_a_tool_span_of_each_convention_is_a_tool_call_attributed_like_an_llm_call(convention: str) -> None:
    made = tool_span(
        3, tool="search_docs", user="alice", tenant="acme", convention=convention, tags={"plan": "pro"}, error=True
    )
    got = normalize(made)
    assert isinstance(got, ToolCall) and not isinstance(got, LLMCall)
    assert (got.tool_name, got.user_id, got.tenant_id, got.tags, got.source) == (
        "search_docs",
        "alice",
        "acme",
        {"plan": "pro"},
        convention,
    )
    assert (got.is_error, got.error_type, got.duration_us, got.span_id, got.trace_id) == (
        True,
        "error",
        250_000,
        4,
        0xA003,
    )


def test_otel_genai_tool_attributes_and_a_name_taken_from_the_span_name() -> None:
    made = span(
        0,
        name="execute_tool get_weather",
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.type": "function",
            "gen_ai.tool.call.id": "call_abc",
            "error.type": "TimeoutError",
        },
        duration=timedelta(milliseconds=40),
    )
    got = normalize(made)
    assert isinstance(got, ToolCall)
    assert (got.tool_name, got.tool_type, got.tool_call_id, got.is_error, got.error_type, got.duration_us) == (
        "get_weather",
        "function",
        "call_abc",
        True,
        "TimeoutError",
        40_000,
    )
    assert (got.user_id, got.tenant_id, got.flags) == ("", "", [])


def test_vercel_tool_span_and_an_unnamed_tool() -> None:
    vercel = normalize(span(0, name="ai.toolCall", attributes={"ai.toolCall.name": "weather", "ai.toolCall.id": "c1"}))
    assert isinstance(vercel, ToolCall) and (vercel.tool_name, vercel.tool_call_id, vercel.source) == (
        "weather",
        "c1",
        "vercel-ai",
    )
    unnamed = normalize(span(0, name="execute_tool", attributes={"gen_ai.operation.name": "execute_tool"}))
    assert isinstance(unnamed, ToolCall) and (unnamed.tool_name, unnamed.flags) == ("", ["no_tool_name"])


def test_a_tool_name_is_cleaned_like_an_id() -> None:
    got = normalize(tool_span(0, tool=" lookup\x00" + "x" * 300))
    assert isinstance(got, ToolCall)
    assert got.tool_name == ("lookup" + "x" * 300)[:256] and {"tool_name_cleaned", "tool_name_truncated"} <= set(
        got.flags
    )


@pytest.mark.parametrize(
    ("name", "attributes"),
    [
        ("checkout.workflow", {"traceloop.span.kind": "workflow", "traceloop.entity.name": "checkout"}),
        ("retrieve", {"openinference.span.kind": "RETRIEVER"}),
        ("invoke_agent support", {"gen_ai.operation.name": "invoke_agent"}),
        ("GET /", {"http.method": "GET"}),
    ],
)
def test_other_spans_are_still_neither(name: str, attributes: dict[str, object]) -> None:
    assert normalize(span(0, name=name, attributes=attributes)) == SKIP_NOT_LLM


def test_tool_records_round_trip_through_the_spool_codec_and_say_their_kind() -> None:
    calls = [normalize(tool_span(n, tool=f"t{n}", error=n == 1)) for n in range(3)]
    columns = codec.TOOLS.to_columns(calls)
    payload = codec.encode(columns, check=True, kind=codec.TOOLS)
    record = codec.decode_record(payload)
    assert (record.kind, record.check) is not None and record.kind is codec.TOOLS and record.check
    assert codec.TOOLS.from_columns(record.columns) == calls
    assert b'"kind":"tool_calls"' in payload
    # an LLM record says no kind, as every earlier version wrote them, and still reads as calls
    llm = codec.encode(codec.to_columns([llm_call(0)]))
    assert b'"kind"' not in llm and codec.decode_record(llm).kind is codec.CALLS


def test_a_record_of_a_kind_this_version_does_not_know_is_refused() -> None:
    payload = codec.encode(codec.TOOLS.to_columns([normalize(tool_span(0))]), kind=codec.TOOLS)
    with pytest.raises(ValueError, match="kind this version does not know"):
        codec.decode_record(payload.replace(b'"kind":"tool_calls"', b'"kind":"budgets"'))


def test_tool_columns_have_their_bounds() -> None:
    call = normalize(tool_span(0))
    columns = codec.TOOLS.to_columns([call, call])
    columns[codec.TOOLS.names.index("duration_us")][1] = 2**64
    assert codec.TOOLS.out_of_range(columns) == {1: "duration_us"}

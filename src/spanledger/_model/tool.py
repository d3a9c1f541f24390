"""One tool execution, as the ledger stores it — and the one definition of its fields.

Agents run tools between LLM calls (a search, a database query, a function the model asked for). Their spans
(OpenTelemetry GenAI ``execute_tool``, OpenInference ``TOOL``, OpenLLMetry ``tool``, Vercel ``ai.toolCall``)
are stored as :class:`ToolCall` rows in ``tool_calls``, apart from LLM calls: they cost no tokens, and
LLM-call counts and pricing never see them. Each :class:`ToolCall` field carries its ClickHouse type (the table, the spool codec
and the records derive from it). A tool's totals over a window are a :class:`~.rows.ToolRow`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from .call import Column, column


@dataclass(slots=True)
class ToolCall:
    """One tool execution, attributed to a user and tenant like an LLM call."""

    timestamp: datetime = column("DateTime64(6, 'UTC')", "When the tool started (UTC).")
    trace_id: int = column("UInt128", "The trace it belongs to.")
    span_id: int = column("UInt64", "Its span (with the trace id, what identifies the execution).")
    parent_span_id: int = column("UInt64", "The span it ran inside (an agent run, a chain), 0 for none.")
    duration_us: int = column("UInt64", "How long it ran, in microseconds.")
    tool_name: str = column("LowCardinality(String)", 'The tool; "" when the span names none.')
    tool_type: str = column("LowCardinality(String)", "function, extension, datastore … when the span says.")
    tool_call_id: str = column("String", "The model's id for this tool call, when the span carries it.")
    user_id: str = column("String", 'The end user; "" when the span carries none (shown as "(unattributed)").')
    tenant_id: str = column("String", 'The tenant; "" for none.')
    tags: dict[str, str] = column("Map(LowCardinality(String), String)", "Tags (plan, feature …).")
    is_error: bool = column("UInt8", "Whether the tool failed.")
    error_type: str = column("LowCardinality(String)", "The error's type, when it failed.")
    service_name: str = column("LowCardinality(String)", "The service.name of the process that ran it.")
    source: str = column(
        "LowCardinality(String)", "How it was read: otel-genai, openinference, openllmetry, vercel-ai."
    )
    flags: list[str] = column(
        "Array(LowCardinality(String))", "What normalisation had to repair.", default_factory=list
    )


TOOL_COLUMNS: tuple[Column, ...] = tuple(
    Column(f.name, f.metadata["ch"], f.metadata["doc"]) for f in dataclasses.fields(ToolCall)
)
"""The ``tool_calls`` table's columns in insert order: every :class:`ToolCall` field."""

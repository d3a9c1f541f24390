"""One LLM call, as the ledger stores it — and the one definition of its fields.

Each field of :class:`LLMCall` carries its ClickHouse type and one line of meaning in its metadata;
:data:`CALL_COLUMNS` (the raw table's columns, in insert order), the spool codec, the API's call schema, the
CSV columns and the CLI's JSON are all derived from it. Adding a field is one edit here plus a migration
(``ALTER TABLE llm_calls ADD COLUMN``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any


def column(ch_type: str, doc: str, **kwargs: Any) -> Any:
    """A dataclass field that is also a ClickHouse column of ``ch_type``; ``doc`` says what it holds."""
    return dataclasses.field(metadata={"ch": ch_type, "doc": doc}, **kwargs)


_COST = "Nullable(Decimal(18, 12))"


@dataclass(slots=True)
class LLMCall:
    """One priced (or unpriced) LLM call, attributed to a user and tenant.

    Token counts follow the OpenTelemetry GenAI convention whatever the source: ``input_tokens``
    *includes* cache reads and cache writes, ``output_tokens`` includes reasoning tokens.
    """

    timestamp: datetime = column("DateTime64(6, 'UTC')", "When the call started (UTC).")
    trace_id: int = column("UInt128", "The trace it belongs to.")
    span_id: int = column("UInt64", "Its span (with the trace id, what identifies the call).")
    parent_span_id: int = column("UInt64", "The span it ran inside, 0 for none.")
    duration_us: int = column("UInt64", "How long it took, in microseconds.")
    provider: str = column("LowCardinality(String)", "Provider id as genai-prices names it (openai, anthropic …).")
    model: str = column("LowCardinality(String)", "The model that answered (response model, else request model).")
    request_model: str = column("LowCardinality(String)", "The model asked for.")
    operation: str = column("LowCardinality(String)", "chat, embeddings, text_completion …")
    input_tokens: int = column("UInt64", "Input tokens, cache reads and writes included.")
    output_tokens: int = column("UInt64", "Output tokens, reasoning included.")
    cache_read_tokens: int = column("UInt64", "Input tokens read from the provider's prompt cache.")
    cache_write_tokens: int = column("UInt64", "Input tokens written to the provider's prompt cache.")
    reasoning_tokens: int = column("UInt64", "Output tokens spent on reasoning.")
    user_id: str = column("String", 'The end user; "" when the call carries none (shown as "(unattributed)").')
    user_source: str = column(
        "LowCardinality(String)", "attribution (our processor, from baggage), span (the instrumentation) or empty."
    )
    tenant_id: str = column("String", 'The tenant; "" for none.')
    tags: dict[str, str] = column("Map(LowCardinality(String), String)", "Tags (plan, feature …).")
    is_error: bool = column("UInt8", "Whether the call failed.")
    error_type: str = column("LowCardinality(String)", "The error's type, when it failed.")
    response_id: str = column("String", "The provider's response id (or a recorded call's request id).")
    service_name: str = column("LowCardinality(String)", "The service.name of the process that made it.")
    source: str = column(
        "LowCardinality(String)", "How it was read: otel-genai, openllmetry, openinference, vercel-ai, record_call."
    )
    flags: list[str] = column(
        "Array(LowCardinality(String))",
        "What normalisation had to repair, unpriced when no price was found, usage_incomplete when the source "
        "cannot report every kind of token.",
        default_factory=list,
    )
    cost: Decimal | None = column(_COST, "Exact USD; null means unpriced, never free.", default=None)
    input_cost: Decimal | None = column(_COST, "The input tokens' part of the cost (USD).", default=None)
    output_cost: Decimal | None = column(_COST, "The output tokens' part of the cost (USD).", default=None)
    price_source: str = column(
        "LowCardinality(String)",
        "What priced it: genai-prices <version>, or override:<file>#<rule name or number>.",
        default="",
    )
    price_model: str = column("LowCardinality(String)", "The model id the price table matched.", default="")
    prompt: str = column("String", "The prompt, when content capture is on.", default="")
    completion: str = column("String", "The completion, when content capture is on.", default="")


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the raw table, as :class:`LLMCall` defines it."""

    name: str
    ch_type: str
    doc: str


CALL_COLUMNS: tuple[Column, ...] = tuple(
    Column(f.name, f.metadata["ch"], f.metadata["doc"]) for f in dataclasses.fields(LLMCall)
)
"""The raw table's columns in insert order: every :class:`LLMCall` field."""
CALL_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in CALL_COLUMNS)


@dataclass(slots=True)
class StoredCall(LLMCall):
    """A call as read back from the store: an :class:`LLMCall` and when it was inserted."""

    inserted_at: datetime | None = column("DateTime64(3, 'UTC')", "When the store received it.", default=None)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> StoredCall:
        """A row of ``SELECT *`` from the raw table (datetimes made timezone-aware UTC)."""
        values = {name: row[name] for name in _STORED_NAMES if name in row}
        for key in ("timestamp", "inserted_at"):
            values[key] = _utc(values.get(key))
        values["is_error"] = bool(values.get("is_error"))
        values["tags"] = dict(values.get("tags") or {})
        values["flags"] = list(values.get("flags") or [])
        return cls(**values)


_STORED_NAMES = tuple(f.name for f in dataclasses.fields(StoredCall))


def _utc(value: Any) -> Any:
    from datetime import UTC

    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value

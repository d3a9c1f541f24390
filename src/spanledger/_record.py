"""One LLM call, as the ledger stores it: the shape every convention is normalised into."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal


@dataclasses.dataclass(slots=True)
class LLMCall:
    """One priced (or unpriced) LLM call, attributed to a user and tenant.

    Token counts follow the OpenTelemetry GenAI convention whatever the source: ``input_tokens``
    *includes* cache reads and cache writes, ``output_tokens`` includes reasoning tokens.
    """

    timestamp: datetime
    """When the call started (UTC, from the span's start time)."""
    trace_id: int
    span_id: int
    parent_span_id: int
    duration_us: int
    provider: str
    """Provider id as genai-prices names it (``openai``, ``anthropic``, ``google`` …)."""
    model: str
    """The model that answered (response model, else request model)."""
    request_model: str
    operation: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    user_id: str
    """End user; ``""`` when the call carries none (shown as "(unattributed)")."""
    user_source: str
    """``attribution`` (set by our processor from baggage), ``span`` (set by the instrumentation) or ``""``."""
    tenant_id: str
    tags: dict[str, str]
    is_error: bool
    error_type: str
    response_id: str
    service_name: str
    source: str
    """The convention the span was read with: ``otel-genai``, ``openllmetry``, ``openinference``, ``vercel-ai``."""
    flags: list[str] = dataclasses.field(default_factory=list)
    """What normalisation had to repair, and ``unpriced`` when no price was found."""
    cost: Decimal | None = None
    """Exact USD; ``None`` means unpriced, never free."""
    input_cost: Decimal | None = None
    output_cost: Decimal | None = None
    price_source: str = ""
    """Where the price came from: ``genai-prices <version>`` or ``override:<file>``."""
    price_model: str = ""
    """The model id the price table matched."""
    prompt: str = ""
    completion: str = ""

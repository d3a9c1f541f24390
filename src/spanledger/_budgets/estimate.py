"""What a call is expected to cost, held against budgets until the call is priced: a USD amount the app gives,
else the prompt's tokens plus ``max_tokens`` at the model's prices (an upper bound of what the call can cost,
when the prompt was counted right), else a default."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .._config import env_str
from .._errors import ConfigError, InvalidCallError
from .._model.call import LLMCall
from .._pricing.pricer import Pricer
from .model import parse_limit

_log = logging.getLogger(__name__)


class Estimator:
    """Prices estimates with the pipeline's price rules (thread-safe).

    Args:
        default: USD for a call with no estimate and no known model (``SPANLEDGER_BUDGET_DEFAULT_ESTIMATE``, 0).
        price_file: Price rules (the pipeline's).
    """

    def __init__(self, *, default: Decimal | str | None, price_file: str | Path | None) -> None:
        self.default = _default_estimate(default)
        self._pricer = Pricer(price_file=price_file)
        self._lock = threading.Lock()
        self.unpriced = 0

    def estimate(
        self, estimate: Any, provider: str | None, model: str | None, input_tokens: int, max_tokens: int, at: datetime
    ) -> Decimal:
        """The USD to hold for one call.

        Raises:
            InvalidCallError: A negative or non-numeric estimate.
        """
        if estimate is not None:
            try:
                return parse_limit(estimate)
            except ConfigError as exc:
                raise InvalidCallError(
                    str(exc).replace("limit", "estimate").replace("a budget", "an estimate")
                ) from None
        if not model:
            return self.default
        call = estimate_call(provider or "", model, input_tokens, max_tokens, at)
        with self._lock:
            self._pricer.price(call)
            if call.cost is None:
                self.unpriced += 1
        return self.default if call.cost is None else call.cost


def tokens(name: str, value: object) -> int:
    """A token count an app declared (``InvalidCallError`` when it is not a whole number, 0 or more)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidCallError(f"{name} must be a whole number of tokens, 0 or more, got {value!r}")
    return value


def estimate_call(provider: str, model: str, input_tokens: int, max_tokens: int, at: datetime) -> LLMCall:
    """A call as the estimate prices it: the prompt's tokens in, ``max_tokens`` out, nothing cached."""
    return LLMCall(
        timestamp=at, trace_id=0, span_id=0, parent_span_id=0, duration_us=0, provider=provider, model=model,
        request_model=model, operation="chat", input_tokens=input_tokens, output_tokens=max_tokens,
        cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0, user_id="", user_source="", tenant_id="",
        tags={}, is_error=False, error_type="", response_id="", service_name="", source="estimate",
    )  # fmt: skip


def _default_estimate(value: Decimal | str | None) -> Decimal:
    if value is not None:
        return parse_limit(value)
    raw = env_str("SPANLEDGER_BUDGET_DEFAULT_ESTIMATE", None, "0")
    try:
        return parse_limit(raw)
    except (ConfigError, InvalidOperation):
        _log.warning("ignoring SPANLEDGER_BUDGET_DEFAULT_ESTIMATE=%r: not an amount of USD; using 0", raw)
        return Decimal(0)

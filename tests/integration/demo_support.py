"""What a planned demo call costs, computed straight from genai-prices: the independent check on the
pipeline's pricing of the demo's month."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import genai_prices
from genai_prices import Usage

from spanledger._demo.plan import SNAPSHOTS, UNPRICED_MODEL, DemoCall

_PICO = Decimal("1e-12")


def planned_cost(call: DemoCall) -> Decimal:
    """The call's USD cost as the ledger stores it (to 1e-12); 0 for a failed call (no tokens) and for the
    self-hosted model (unpriced: it adds nothing to a total)."""
    if call.failed or call.model == UNPRICED_MODEL:
        return Decimal(0)
    price = genai_prices.calc_price(
        Usage(input_tokens=call.input_tokens, cache_read_tokens=call.cached_tokens, output_tokens=call.output_tokens),
        model_ref=SNAPSHOTS[call.model],
        provider_id="openai",
        genai_request_timestamp=call.at,
    )
    return price.total_price.quantize(_PICO, rounding=ROUND_HALF_EVEN)

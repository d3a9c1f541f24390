"""What billing answers with: markups, statements and their lines, margins, revenue imports, repricings.

Every field carries one line of meaning (``doc``), which the JSON and CSV records and the API's schema
show. Money is ``Decimal``: exact sums, and amounts in cents where :mod:`.rounding` says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from .._model.rows import NO_TENANT_LABEL, UNATTRIBUTED_LABEL, doc
from .rounding import RULE

Scope = Literal["user", "tenant", "plan", "default", "none"]
"""Where a markup comes from, most specific first; ``none`` when no markup applies (0 %)."""
LOOKUP: tuple[tuple[str, str], ...] = (("user", "user_id"), ("tenant", "tenant_id"), ("plan", "tags['plan']"))
"""Where a call's markup is looked up, in order: each scope and the call's column that names its key; then
the default. The one definition of the order (the SQL that labels each call's markup is built from it)."""
SCOPES: tuple[str, ...] = (*(scope for scope, _ in LOOKUP), "default")
"""The scopes a markup can be set for, in the order they are looked up."""
MarginBy = Literal["tenant", "user"]


@dataclass(frozen=True, slots=True)
class Markup:
    """A markup percentage for a user, a tenant, a plan tag, or everyone (``default``)."""

    scope: Scope = doc("user, tenant, plan, default (or none: no markup set, 0 %).")
    key: str = doc('The user id, tenant id or plan; "" for default and none.')
    percent: Decimal = doc("Percent added to the cost: 20 means price = cost × 1.2; -10 is a discount.")
    set_at: datetime | None = doc("When it was set.", default=None)
    note: str = doc("Why it was set.", default="")

    @property
    def label(self) -> str:
        """``tenant acme``, ``user alice``, ``plan pro``, ``default`` or ``none``."""
        return f"{self.scope} {self.key}" if self.scope in ("user", "tenant", "plan") else self.scope


NO_MARKUP = Markup("none", "", Decimal(0))


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One line of a statement: a provider and model's priced calls at one markup, or its unpriced calls."""

    provider: str = doc("The provider.")
    model: str = doc('The model that answered ("" when the call named none).')
    plan: str = doc('The calls\' plan tag, when plan markups split the lines; "" otherwise.')
    priced: bool = doc("False for the line of calls with no known price: their tokens, no cost, never $0.")
    requests: int = doc("LLM calls.")
    input_tokens: int = doc("Input tokens, cache reads and writes included.")
    output_tokens: int = doc("Output tokens, reasoning included.")
    cache_read_tokens: int = doc("Input tokens read from a prompt cache.")
    cache_write_tokens: int = doc("Input tokens written to a prompt cache.")
    reasoning_tokens: int = doc("Output tokens spent on reasoning.")
    cost: Decimal | None = doc("Exact USD cost (sum of the calls' stored costs); null on the unpriced line.")
    markup: str = doc("Which markup applies: user <id>, tenant <id>, plan <plan>, default or none.")
    markup_percent: Decimal | None = doc("The markup in percent; null on the unpriced line.")
    price: Decimal | None = doc("Exact customer price: cost × (100 + markup %) / 100.")
    amount: Decimal | None = doc("The price in cents, as billed: the lines' amounts add up to the total.")


@dataclass(frozen=True, slots=True)
class Statement:
    """What a tenant (or a user) used in a period, at cost and at the customer's price."""

    tenant_id: str | None = doc("The tenant; null for a user's statement across their tenants.")
    user_id: str | None = doc("The user, for a user's statement; null for a tenant's.")
    start: datetime = doc("First instant of the period (UTC).")
    end: datetime = doc("End of the period, exclusive (UTC).")
    lines: list[StatementLine] = doc("Priced lines by cost, then the unpriced ones.")
    requests: int = doc("Every call, priced or not.")
    input_tokens: int = doc("Input tokens of every call.")
    output_tokens: int = doc("Output tokens of every call.")
    cost: Decimal = doc("Exact USD cost of the priced calls: what Ledger.totals gives for the same window.")
    price: Decimal = doc("Exact customer price of the priced calls.")
    amount: Decimal = doc("The price rounded half up to the cent: what the customer owes.")
    unpriced_requests: int = doc("Calls with no known price: on lines of their own, in no amount.")
    unpriced_tokens: int = doc("Input plus output tokens of the unpriced calls.")
    rounding: str = doc("The rounding rule.", default=RULE)

    @property
    def customer(self) -> str:
        """``tenant acme``, ``user alice`` (``(no tenant)`` / ``(unattributed)`` for the empty ids)."""
        if self.user_id is not None:
            return f"user {self.user_id or UNATTRIBUTED_LABEL}"
        return f"tenant {self.tenant_id or NO_TENANT_LABEL}"


@dataclass(frozen=True, slots=True)
class MarginRow:
    """One customer's revenue against what serving them cost in a window."""

    customer_id: str = doc('The tenant or user id ("" for calls without one).')
    revenue: Decimal = doc("Imported revenue whose period starts in the window (USD, exact).")
    cost: Decimal = doc("Exact USD cost of the customer's priced calls in the window.")
    price: Decimal = doc("The cost with the customer's markups: what their statements charge.")
    gross_margin: Decimal = doc("Revenue minus cost.")
    margin_pct: Decimal | None = doc("Gross margin as a percent of revenue (two decimals); null without revenue.")
    requests: int = doc("LLM calls in the window.")
    unpriced_requests: int = doc("Calls with no known price: not in cost, so the margin may be overstated.")

    @property
    def negative(self) -> bool:
        """Whether serving the customer cost more than they paid."""
        return self.gross_margin < 0


@dataclass(frozen=True, slots=True)
class RevenueImport:
    """What importing a revenue file did (or, in a dry run, would do)."""

    file: str = doc("The file's name.")
    shape: str = doc("spanledger (customer_id, period or date, amount, currency) or stripe (invoice lines).")
    lines: int = doc("Revenue lines read.")
    imported: int = doc("Lines stored now.")
    already: int = doc("Lines stored by an earlier import of the same lines: left as they are.")
    amount: Decimal = doc("Sum of the file's amounts (USD).")
    dry_run: bool = doc("Nothing was stored.", default=False)


@dataclass(frozen=True, slots=True)
class RepriceChange:
    """Before and after a repricing for one tenant, or one user within a tenant."""

    tenant_id: str = doc("The tenant.")
    user_id: str | None = doc("The user; null on a tenant's row.")
    calls: int = doc("Calls in the window.")
    changed: int = doc("Calls whose cost changes.")
    newly_priced: int = doc("Calls that had no price and get one.")
    before: Decimal = doc("Cost of the calls before (USD, exact).")
    after: Decimal = doc("Cost of the calls after.")

    @property
    def difference(self) -> Decimal:
        """After minus before."""
        return self.after - self.before


@dataclass(slots=True)
class RepriceReport:
    """What a repricing changes: the same in a dry run as in the real run on the same data."""

    start: datetime = doc("First instant repriced (UTC).")
    end: datetime = doc("End, exclusive.")
    provider: str | None = doc("Only this provider's calls, when given.")
    model: str | None = doc("Only this model's calls, when given.")
    price_file: str = doc('The price file used ("" for the genai-prices catalog alone).')
    dry_run: bool = doc("Nothing was written.")
    calls: int = doc("Calls looked at.", default=0)
    changed: int = doc("Calls whose cost is rewritten.", default=0)
    newly_priced: int = doc("Calls unpriced before that now have a price.", default=0)
    kept: int = doc("Priced calls for which no price is found now: left as they were, never made unpriced.", default=0)
    before: Decimal = doc("Cost of the calls in the window before (USD).", default=Decimal(0))
    after: Decimal = doc("Cost after.", default=Decimal(0))
    tenants: list[RepriceChange] = doc("Tenants with a change, largest difference first.", default_factory=list)
    users: list[RepriceChange] = doc(
        "Users (per tenant) with a change, largest difference first.", default_factory=list
    )
    days: list[str] = doc("UTC days whose rollups are rebuilt.", default_factory=list)
    verified: bool | None = doc("After a real run: rollups checked equal to llm_calls.", default=None)
    seconds: float = field(default=0.0, metadata={"doc": "How long it took."})
    phases: dict[str, float] = field(
        default_factory=dict,
        metadata={"doc": "Seconds spent reading and pricing (read_and_price), rewriting (rewrite), rebuilding."},
    )

    @property
    def difference(self) -> Decimal:
        """After minus before."""
        return self.after - self.before

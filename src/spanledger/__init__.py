"""spanledger: which of our customers costs us the most LLM spend?

Attribute work to users with OpenTelemetry baggage (:class:`attribute_to`), copy it onto spans
(:class:`UserAttributionProcessor`), price and store LLM calls in ClickHouse (:class:`CostExporter`),
and ask who costs what (:class:`Ledger`).
"""

from __future__ import annotations

from ._budgets.alerts import AlertRule, Alerts
from ._budgets.budgets import Budgets
from ._budgets.errors import BudgetError, BudgetExceeded, BudgetUnavailable, RateLimited
from ._budgets.guard import BudgetGuard
from ._budgets.meter import Reservation
from ._budgets.model import Budget
from ._budgets.report import BudgetStatus
from ._capture.attribution import (
    TAG_PREFIX,
    TENANT_ATTRIBUTE,
    USER_ATTRIBUTE,
    UserAttributionProcessor,
    attribute_to,
)
from ._capture.exporter import COST_AMOUNT_ATTRIBUTE, COST_CURRENCY_ATTRIBUTE, CostExporter
from ._capture.record import Recorded, Recorder, record_call
from ._errors import (
    ConfigError,
    InvalidCallError,
    SpanledgerError,
    StoreError,
    StoreLockedError,
    StoreUnavailableError,
)
from ._model.call import LLMCall, StoredCall
from ._model.rows import (
    UNATTRIBUTED_LABEL,
    DailyRow,
    ModelRow,
    Overview,
    Page,
    TenantRow,
    TopUser,
    Totals,
    UserDetail,
    UserRow,
)
from ._model.usage import Usage
from ._pricing.pricer import PriceFileError, Pricer, PriceRule
from ._query.ledger import Ledger
from ._store.store import Store

__version__ = "0.1.0"

__all__ = [
    "COST_AMOUNT_ATTRIBUTE",
    "COST_CURRENCY_ATTRIBUTE",
    "TAG_PREFIX",
    "TENANT_ATTRIBUTE",
    "UNATTRIBUTED_LABEL",
    "USER_ATTRIBUTE",
    "AlertRule",
    "Alerts",
    "Budget",
    "BudgetError",
    "BudgetExceeded",
    "BudgetGuard",
    "BudgetStatus",
    "BudgetUnavailable",
    "Budgets",
    "ConfigError",
    "CostExporter",
    "DailyRow",
    "InvalidCallError",
    "LLMCall",
    "Ledger",
    "ModelRow",
    "Overview",
    "Page",
    "PriceFileError",
    "PriceRule",
    "Pricer",
    "RateLimited",
    "Recorded",
    "Recorder",
    "Reservation",
    "SpanledgerError",
    "Store",
    "StoreError",
    "StoreLockedError",
    "StoreUnavailableError",
    "StoredCall",
    "TenantRow",
    "TopUser",
    "Totals",
    "Usage",
    "UserAttributionProcessor",
    "UserDetail",
    "UserRow",
    "__version__",
    "attribute_to",
    "record_call",
]

"""spanledger: which of our customers costs us the most LLM spend?

Attribute work to users with OpenTelemetry baggage (:class:`attribute_to`), copy it onto spans
(:class:`UserAttributionProcessor`), price and store LLM calls in ClickHouse (:class:`CostExporter`),
and ask who costs what (:class:`Ledger`).

Every name is imported when first used (a module ``__getattr__``, as clickhouse-connect does): ``import
spanledger`` — and so the ``spanledger`` command — does not pay for chDB, genai-prices or the OpenTelemetry
SDK before something needs them.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:  # what type checkers and editors see; at run time, __getattr__ below
    from ._billing.billing import Billing
    from ._billing.model import MarginRow, Markup, RepriceChange, RepriceReport, RevenueImport, Statement, StatementLine
    from ._billing.revenue import RevenueFileError
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
    from ._customers.store import UpsertResult
    from ._errors import (
        ConfigError,
        ImportRejected,
        InvalidCallError,
        SpanledgerError,
        StoreError,
        StoreLockedError,
        StoreUnavailableError,
    )
    from ._model.call import LLMCall, StoredCall
    from ._model.customer import Customer
    from ._model.rows import (
        NO_TENANT_LABEL,
        UNATTRIBUTED_LABEL,
        Bucket,
        CallPage,
        DailyRow,
        ModelRow,
        Overview,
        Page,
        SegmentRow,
        TagChoice,
        TenantDetail,
        TenantRow,
        ToolRow,
        TopUser,
        Totals,
        UserDetail,
        UserRow,
    )
    from ._model.tool import ToolCall
    from ._model.usage import Usage
    from ._pricing.pricer import PriceFileError, Pricer, PriceRates, PriceRule
    from ._privacy.forget import ForgetReport, UnknownIdError
    from ._privacy.propagation import IdsStayHome
    from ._privacy.pseudonym import Pseudonymizer
    from ._privacy.redact import Redactor
    from ._query.ledger import Ledger
    from ._store.store import Store

__version__ = "0.1.0"

_WHERE: dict[str, str] = {
    "._budgets.report": "BudgetStatus",
    "._budgets.model": "Budget",
    "._budgets.meter": "Reservation",
    "._budgets.guard": "BudgetGuard",
    "._budgets.errors": "BudgetError BudgetExceeded BudgetUnavailable RateLimited",
    "._budgets.budgets": "Budgets",
    "._budgets.alerts": "AlertRule Alerts",
    "._model.tool": "ToolCall",
    "._model.customer": "Customer",
    "._customers.store": "UpsertResult",
    "._privacy.redact": "Redactor",
    "._privacy.pseudonym": "Pseudonymizer",
    "._privacy.propagation": "IdsStayHome",
    "._privacy.forget": "ForgetReport UnknownIdError",
    "._billing.revenue": "RevenueFileError",
    "._billing.model": "MarginRow Markup RepriceChange RepriceReport RevenueImport Statement StatementLine",
    "._billing.billing": "Billing",
    "._capture.attribution": "TAG_PREFIX TENANT_ATTRIBUTE USER_ATTRIBUTE UserAttributionProcessor attribute_to",
    "._capture.exporter": "COST_AMOUNT_ATTRIBUTE COST_CURRENCY_ATTRIBUTE CostExporter",
    "._capture.record": "Recorded Recorder record_call",
    "._errors": "ConfigError ImportRejected InvalidCallError SpanledgerError StoreError StoreLockedError StoreUnavailableError",
    "._model.call": "LLMCall StoredCall",
    "._model.rows": (
        "NO_TENANT_LABEL UNATTRIBUTED_LABEL Bucket CallPage DailyRow ModelRow Overview Page SegmentRow TagChoice"
        " TenantDetail TenantRow ToolRow TopUser Totals UserDetail UserRow"
    ),
    "._model.usage": "Usage",
    "._pricing.pricer": "PriceFileError Pricer PriceRates PriceRule",
    "._query.ledger": "Ledger",
    "._store.store": "Store",
}
"""The module each public name is defined in (the same as the imports above, which a unit test checks)."""
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names.split()}


def __getattr__(name: str) -> _typing.Any:
    """A public name, imported on first use and kept (later look-ups do not come here)."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})


__all__ = [
    "COST_AMOUNT_ATTRIBUTE",
    "COST_CURRENCY_ATTRIBUTE",
    "NO_TENANT_LABEL",
    "TAG_PREFIX",
    "TENANT_ATTRIBUTE",
    "UNATTRIBUTED_LABEL",
    "USER_ATTRIBUTE",
    "AlertRule",
    "Alerts",
    "Billing",
    "Bucket",
    "Budget",
    "BudgetError",
    "BudgetExceeded",
    "BudgetGuard",
    "BudgetStatus",
    "BudgetUnavailable",
    "Budgets",
    "CallPage",
    "ConfigError",
    "CostExporter",
    "Customer",
    "DailyRow",
    "ForgetReport",
    "IdsStayHome",
    "ImportRejected",
    "InvalidCallError",
    "LLMCall",
    "Ledger",
    "MarginRow",
    "Markup",
    "ModelRow",
    "Overview",
    "Page",
    "PriceFileError",
    "PriceRates",
    "PriceRule",
    "Pricer",
    "Pseudonymizer",
    "RateLimited",
    "Recorded",
    "Recorder",
    "Redactor",
    "RepriceChange",
    "RepriceReport",
    "Reservation",
    "RevenueFileError",
    "RevenueImport",
    "SegmentRow",
    "SpanledgerError",
    "Statement",
    "StatementLine",
    "Store",
    "StoreError",
    "StoreLockedError",
    "StoreUnavailableError",
    "StoredCall",
    "TagChoice",
    "TenantDetail",
    "TenantRow",
    "ToolCall",
    "ToolRow",
    "TopUser",
    "Totals",
    "UnknownIdError",
    "UpsertResult",
    "Usage",
    "UserAttributionProcessor",
    "UserDetail",
    "UserRow",
    "__version__",
    "attribute_to",
    "record_call",
]

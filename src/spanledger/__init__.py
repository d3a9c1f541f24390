"""spanledger: which of our customers costs us the most LLM spend?

Attribute work to users with OpenTelemetry baggage (:class:`attribute_to`), copy it onto spans
(:class:`UserAttributionProcessor`), price and store LLM calls in ClickHouse (:class:`CostExporter`),
and ask who costs what (:class:`Ledger`).
"""

from __future__ import annotations

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
    UNATTRIBUTED_LABEL,
    DailyRow,
    ModelRow,
    Overview,
    Page,
    TenantRow,
    ToolRow,
    TopUser,
    Totals,
    UserDetail,
    UserRow,
)
from ._model.tool import ToolCall
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
    "ConfigError",
    "CostExporter",
    "Customer",
    "DailyRow",
    "ImportRejected",
    "InvalidCallError",
    "LLMCall",
    "Ledger",
    "ModelRow",
    "Overview",
    "Page",
    "PriceFileError",
    "PriceRule",
    "Pricer",
    "Recorded",
    "Recorder",
    "SpanledgerError",
    "Store",
    "StoreError",
    "StoreLockedError",
    "StoreUnavailableError",
    "StoredCall",
    "TenantRow",
    "ToolCall",
    "ToolRow",
    "TopUser",
    "Totals",
    "UpsertResult",
    "Usage",
    "UserAttributionProcessor",
    "UserDetail",
    "UserRow",
    "__version__",
    "attribute_to",
    "record_call",
]

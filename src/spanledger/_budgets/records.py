"""The JSON / CSV shape of a budget, a report row and an alert, shared by ``spanledger budgets`` / ``alerts`` and
the API (the same field names and kinds as every other record: money an exact decimal string, times ISO-8601
UTC)."""

from __future__ import annotations

import json
from operator import attrgetter
from typing import Any

from .._present.records import Field, Kind, Shape
from .alert_store import StoredAlert
from .model import Budget
from .report import BudgetStatus


def _f(name: str, kind: Kind, doc: str, get: Any = None) -> Field:
    return Field(name, kind, doc, get or attrgetter(name))


def _doc(cls: type, name: str) -> str:
    field = cls.__dataclass_fields__[name]  # type: ignore[attr-defined]
    return str(field.metadata.get("doc", ""))


BUDGET = Shape(
    "Budget",
    (
        _f("id", "str", "The budget's id (stable for a subject and period)."),
        _f("scope", "str", _doc(Budget, "scope")),
        _f("subject", "str", "Who it limits, as people read it."),
        _f("tenant_id", "str", _doc(Budget, "tenant_id")),
        _f("user_id", "str", _doc(Budget, "user_id")),
        _f("tag_key", "str", _doc(Budget, "tag_key")),
        _f("tag_value", "str", _doc(Budget, "tag_value")),
        _f("period", "str", _doc(Budget, "period")),
        _f("limit", "money", _doc(Budget, "limit")),
        _f("hard", "bool", _doc(Budget, "hard")),
        _f("timezone", "str", _doc(Budget, "timezone")),
        _f("starts_at", "time?", _doc(Budget, "starts_at")),
        _f("ends_at", "time?", _doc(Budget, "ends_at")),
        _f(
            "alert_at", "str", "Alert thresholds in percent, comma-separated.", lambda b: ",".join(map(str, b.alert_at))
        ),
        _f("updated_at", "time?", _doc(Budget, "updated_at")),
    ),
)

STATUS = Shape(
    "BudgetStatus",
    (
        _f("budget_id", "str", "The budget.", lambda s: s.budget.id),
        _f("scope", "str", _doc(Budget, "scope"), lambda s: s.budget.scope),
        _f("subject", "str", "Who, as people read it (a default's user by name)."),
        _f("tenant_id", "str", _doc(BudgetStatus, "tenant_id")),
        _f("user_id", "str", _doc(BudgetStatus, "user_id")),
        _f("period", "str", _doc(Budget, "period"), lambda s: s.budget.period),
        _f("timezone", "str", _doc(Budget, "timezone"), lambda s: s.budget.timezone),
        _f("hard", "bool", _doc(Budget, "hard"), lambda s: s.budget.hard),
        _f("period_start", "time?", _doc(BudgetStatus, "period_start")),
        _f("period_end", "time?", _doc(BudgetStatus, "period_end")),
        _f("limit", "money", _doc(Budget, "limit")),
        _f("spent", "money", _doc(BudgetStatus, "spent")),
        _f("remaining", "money", "The limit minus the spend (negative when over)."),
        _f("used_pct", "float", "Spend as a percentage of the limit."),
        _f("projected", "money?", _doc(BudgetStatus, "projected")),
        _f("over", "bool", "Whether the budget is used up (spend at or past the limit)."),
    ),
)


def _message(alert: StoredAlert) -> str:
    try:
        return str(json.loads(alert.body).get("message", ""))
    except ValueError:
        return ""


ALERT = Shape(
    "Alert",
    (
        _f("id", "str", "The alert's id: the same in its webhook body and every delivery attempt."),
        _f("fired_at", "time?", "When it fired."),
        _f("kind", "str", "threshold (of a budget), absolute, spike or test."),
        _f("rule", "str", "The rule: budget:<id>:<percent>, or an absolute or spike rule's text."),
        _f("tenant_id", "str", "The subject's tenant."),
        _f("user_id", "str", "The subject's user (empty for a tenant)."),
        _f("period_start", "time?", "The period it fired for (once per subject, rule and period)."),
        _f("spent", "money", "The spend that fired it."),
        _f("threshold", "money", "The amount it crossed."),
        _f("message", "str", "What happened, as people read it.", _message),
        _f("delivery", "str", "The webhook delivery: pending, delivered, failed, or empty (no webhook)."),
        _f("attempts", "int", "Webhook attempts so far."),
        _f("last_error", "str", "The last failed attempt's error."),
    ),
)

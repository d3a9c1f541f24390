"""Budgets and alerts in the JSON API (``/api/v1/budgets``, ``/api/v1/alerts``), and the server's alert loop.

An admin token reads and writes everything. A tenant token reads only budgets, report rows and alerts within
its own tenant — whatever the parameters say (asking for another tenant is a 403) — and writes nothing. A
user budget counts the user's spend in every tenant, so it is an admin's alone (see ``report.visible_to``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from .._budgets import alert_store
from .._budgets.alerts import Alerts
from .._budgets.model import make_budget
from .._budgets.periods import PERIODS
from .._budgets.records import ALERT, BUDGET, STATUS
from .._budgets.report import report, visible_to
from .._budgets.store import load, remove, save
from .._config import env_bool
from .._errors import ConfigError
from .._present.output import csv_lines
from .._store.store import Store
from . import params
from .api import admin
from .auth import Principal, api_reader
from .schemas import model

_log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["budgets"])
Reader = Annotated[Principal, Depends(api_reader)]
TenantParam = Annotated[
    str | None, Query(max_length=256, description="Only this tenant (a tenant token may only name its own).")
]
BudgetOut = model(BUDGET)
StatusOut = model(STATUS)
AlertOut = model(ALERT)


class BudgetIn(BaseModel):
    """A budget to set: the subject (``user_id``, ``tenant_id``, both, ``tenant_id`` with ``default``, or ``tag``),
    the period and the limit (USD as a string: money is never a float)."""

    user_id: str | None = Field(None, max_length=256)
    tenant_id: str | None = Field(None, max_length=256)
    tag: str | None = Field(None, max_length=513, description="key=value: every user whose calls carry it.")
    default: bool = Field(False, description="With tenant_id: every user of the tenant without a budget.")
    period: str = Field(description=f"One of {', '.join(PERIODS)}.")
    limit: str | int = Field(description='USD, e.g. "25" or "0.50".')
    hard: bool = Field(True, description="Enforced by BudgetGuard (true) or alerts only.")
    timezone: str | None = Field(None, max_length=64, description="IANA time zone (default UTC).")
    starts_at: datetime | None = Field(None, description="A custom period's start.")
    ends_at: datetime | None = Field(None, description="A custom period's end, exclusive.")
    alert_at: list[int] | None = Field(None, max_length=20, description="Alert thresholds in percent (50, 80, 100).")


class BudgetList(BaseModel):
    data: list[BudgetOut]  # type: ignore[valid-type]


class Report(BaseModel):
    over_only: bool
    data: list[StatusOut]  # type: ignore[valid-type]


class AlertList(BaseModel):
    data: list[AlertOut]  # type: ignore[valid-type]


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _tenant(principal: Principal, tenant: str | None) -> str | None:
    """The tenant to limit an answer to: the token's own for a tenant token (another is a 403)."""
    return principal.scope(params.text(tenant, "tenant"))


@router.get("/budgets", response_model=BudgetList, summary="The budgets in force (a tenant token: its tenant's)")
def list_budgets(request: Request, principal: Reader, tenant: TenantParam = None) -> dict[str, Any]:
    scope = _tenant(principal, tenant)
    budgets = [b for b in load(_store(request)) if scope is None or visible_to(b, scope)]
    return {"data": BUDGET.records(budgets)}


@router.put("/budgets", response_model=BudgetOut, summary="Set (or replace) a budget (admin)")
def set_budget(request: Request, principal: Reader, body: BudgetIn) -> dict[str, Any]:
    admin(principal)
    if isinstance(body.limit, bool):
        raise ConfigError("bad limit: a number of USD as a string")
    budget = make_budget(**body.model_dump())  # checked whole before anything is written
    return BUDGET.record(save(_store(request), budget))


@router.delete("/budgets/{budget_id}", response_model=BudgetOut, summary="Remove a budget (admin)")
def delete_budget(
    request: Request, principal: Reader, budget_id: Annotated[str, Path(pattern="^[0-9a-f]{16}$")]
) -> dict[str, Any]:
    admin(principal)
    try:
        return BUDGET.record(remove(_store(request), budget_id))
    except ConfigError:
        raise HTTPException(status_code=404, detail="no such budget") from None


def _report(request: Request, principal: Principal, tenant: str | None, user: str | None, over: bool) -> list[Any]:
    rows = report(_store(request), tenant_id=_tenant(principal, tenant), over_only=over)
    wanted = params.text(user, "user")
    return [r for r in rows if r.user_id == wanted] if wanted is not None else rows


OverParam = Annotated[bool, Query(description="Only subjects at or past their limit.")]
UserParam = Annotated[str | None, Query(max_length=256, description="Only this user's rows.")]


@router.get(
    "/budgets/report",
    response_model=Report,
    summary="Every budgeted subject: spend this period, limit, share used, projection; over-budget first",
)
def budget_report(
    request: Request, principal: Reader, tenant: TenantParam = None, user: UserParam = None, over: OverParam = False
) -> dict[str, Any]:
    return {"over_only": over, "data": STATUS.records(_report(request, principal, tenant, user, over))}


@router.get(
    "/budgets/report.csv",
    summary="The budgets report as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "CSV with a header row."}},
)
def budget_report_csv(
    request: Request, principal: Reader, tenant: TenantParam = None, user: UserParam = None, over: OverParam = False
) -> StreamingResponse:
    rows = _report(request, principal, tenant, user, over)

    def lines() -> Iterator[str]:
        yield from csv_lines(STATUS.records(rows), STATUS.columns)

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="spanledger-budgets.csv"'},
    )


@router.get("/alerts", response_model=AlertList, summary="The most recent alerts and their webhook deliveries")
def list_alerts(
    request: Request,
    principal: Reader,
    tenant: TenantParam = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    found = alert_store.alerts(_store(request), tenant_id=_tenant(principal, tenant), limit=limit)
    return {"data": ALERT.records(found)}


@router.post("/alerts/test", summary="POST a signed test alert to the configured webhook (admin)")
def test_alerts(request: Request, principal: Reader) -> dict[str, Any]:
    admin(principal)
    alerts: Alerts | None = request.app.state.budget_alerts
    if alerts is None or alerts.deliverer is None:
        raise HTTPException(status_code=409, detail="no webhook configured (SPANLEDGER_ALERT_WEBHOOK_URL)")
    status, error = alerts.test()
    return {"url": alerts.deliverer.url, "status": status, "delivered": not error, "error": error or None}


# --- the server's alert loop --------------------------------------------------------------------------------


def attach(app: FastAPI, store: Store) -> None:
    """Make the alert evaluator (webhook and rules from the environment); :func:`start` runs it."""
    app.state.budget_alerts = Alerts(store) if env_bool("SPANLEDGER_ALERTS", None, True) else None


def start(app: FastAPI) -> None:
    """Evaluate alerts every ``SPANLEDGER_ALERT_INTERVAL_S`` (60) while the server runs."""
    alerts: Alerts | None = app.state.budget_alerts
    if alerts is not None:
        alerts.start()


def stop(app: FastAPI) -> None:
    alerts: Alerts | None = app.state.budget_alerts
    if alerts is not None:
        alerts.close()

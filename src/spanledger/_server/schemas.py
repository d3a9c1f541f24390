"""The JSON shapes of the API (and so of its OpenAPI document), built from the ledger's dataclasses."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .._query.ledger import DailyRow, ModelRow, Overview, TenantRow, TopUser, Usage, UserRow


class UsageOut(BaseModel):
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cost: Decimal = Field(description="Exact USD of the priced calls, as a decimal string.")
    unpriced_requests: int = Field(description="Calls whose model has no known price: not free, not in `cost`.")
    unpriced_tokens: int
    avg_latency_ms: float
    traces: int | None = Field(description="Distinct traces (ClickHouse `uniq`); null only when not counted.")
    first_seen: datetime | None
    last_seen: datetime | None


class UserOut(UsageOut):
    user_id: str = Field(description='`""` for calls with no user (shown as "(unattributed)").')
    label: str
    attributed: bool
    tenant_id: str
    distinct_models: int
    top_model: str


class UsersPage(BaseModel):
    data: list[UserOut]
    total: int
    page: int
    limit: int


class TenantOut(UsageOut):
    tenant_id: str
    active_users: int


class TenantsPage(BaseModel):
    data: list[TenantOut]
    total: int
    page: int
    limit: int


class ModelOut(UsageOut):
    provider: str
    model: str


class DailyOut(BaseModel):
    day: date
    key: str = Field(description="The user or tenant id when asked `per` user or tenant.")
    cost: Decimal
    requests: int
    active_users: int = Field(description="Distinct attributed (tenant, user) pairs with calls that day: exact.")


class CallOut(BaseModel):
    """One stored LLM call, complete; ``prompt`` and ``completion`` are empty unless capture was on."""

    model_config = ConfigDict(extra="allow")
    timestamp: datetime
    trace_id: str
    span_id: str
    parent_span_id: str
    duration_us: int
    provider: str
    model: str
    request_model: str
    operation: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    user_id: str
    user_source: str
    tenant_id: str
    tags: dict[str, str]
    is_error: bool
    error_type: str
    response_id: str
    service_name: str
    source: str
    flags: list[str]
    cost: Decimal | None
    input_cost: Decimal | None
    output_cost: Decimal | None
    price_source: str
    price_model: str
    prompt: str
    completion: str


class UserDetailOut(BaseModel):
    user_id: str
    summary: UserOut | None = Field(description="`null` when the user has no calls in the window.")
    models: list[ModelOut]
    daily: list[DailyOut]
    calls: list[CallOut] = Field(description="The 50 most recent calls, newest first.")


class TotalsOut(UsageOut):
    active_users: int = Field(description="Distinct attributed (tenant, user) pairs with calls: exact.")
    tenants: int = Field(description="Tenants with calls, the calls without a tenant counted as one.")


class TopUserOut(BaseModel):
    user_id: str = Field(description='`""` for calls with no user (shown as "(unattributed)").')
    label: str
    attributed: bool
    tenant_id: str
    cost: Decimal
    requests: int
    unpriced_requests: int


class OverviewOut(BaseModel):
    totals: TotalsOut = Field(description="Everything in the window summed (`traces` is not counted: null).")
    unattributed_cost: Decimal = Field(description="Spend of the calls that carried no user id.")
    unattributed_requests: int
    top_users: list[TopUserOut] = Field(description="The costliest users, ranked as `/users` ranks them.")
    top_tenants: list[TenantOut] = Field(description="The costliest tenants (`traces` null).")
    daily: list[DailyOut]


class WhoAmI(BaseModel):
    role: str
    tenant: str | None


def usage_dict(usage: Usage) -> dict[str, Any]:
    return {name: getattr(usage, name) for name in UsageOut.model_fields}


def user_out(row: UserRow) -> UserOut:
    return UserOut(
        **usage_dict(row.usage),
        user_id=row.user_id,
        label=row.label,
        attributed=row.attributed,
        tenant_id=row.tenant_id,
        distinct_models=row.distinct_models,
        top_model=row.top_model,
    )


def tenant_out(row: TenantRow) -> TenantOut:
    return TenantOut(**usage_dict(row.usage), tenant_id=row.tenant_id, active_users=row.active_users)


def model_out(row: ModelRow) -> ModelOut:
    return ModelOut(**usage_dict(row.usage), provider=row.provider, model=row.model)


def daily_out(row: DailyRow) -> DailyOut:
    return DailyOut(day=row.day, key=row.key, cost=row.cost, requests=row.requests, active_users=row.active_users)


def overview_out(ov: Overview) -> OverviewOut:
    t = ov.totals
    return OverviewOut(
        totals=TotalsOut(**usage_dict(t.usage), active_users=t.active_users, tenants=t.tenants),
        unattributed_cost=ov.unattributed_cost,
        unattributed_requests=ov.unattributed_requests,
        top_users=[_top_user_out(u) for u in ov.top_users],
        top_tenants=[tenant_out(r) for r in ov.top_tenants],
        daily=[daily_out(d) for d in ov.daily],
    )


def _top_user_out(u: TopUser) -> TopUserOut:
    return TopUserOut(**{name: getattr(u, name) for name in TopUserOut.model_fields})  # the same names

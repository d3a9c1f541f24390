"""Customer profiles and tool use in the JSON API (``/api/v1``).

Writes (``PUT`` a profile, ``POST /customers:import`` a file) need an admin token; a tenant token reads only
its own tenant's profiles, whatever the parameters say. An import is checked whole: one bad row and nothing is
written (a 422 listing every bad row by line). Names and e-mail addresses are never logged.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.concurrency import run_in_threadpool

from .._customers import store as profiles
from .._customers.profiles import MAX_ROWS, change_of, read_text
from .._errors import ImportRejected
from .._present import records
from .._query.sql import MAX_LIMIT
from . import params
from .api import (
    FromParam,
    LimitParam,
    PageParam,
    Reader,
    TagParam,
    TenantParam,
    ToParam,
    admin,
    ledger,
    user_id_from_path,
)
from .schemas import CustomerOut, ToolOut, WindowOut

router = APIRouter(prefix="/api/v1", tags=["customers"])

MAX_IMPORT_BYTES = 16 * 1024 * 1024
"""The largest file ``POST /customers:import`` takes."""
_FORMATS = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/json-lines": "jsonl",
    "application/x-jsonlines": "jsonl",
}


class ProfileIn(BaseModel):
    """A profile's fields to set; a field left out keeps its stored value, ``null`` or ``""`` clears it."""

    model_config = ConfigDict(extra="forbid")
    display_name: str | None = Field(None, description="The name shown beside the id.")
    email: str | None = Field(None, description="The customer's e-mail address.")
    plan: str | None = Field(None, description="The customer's plan (free, pro …).")
    metadata: dict[str, str | int | float | bool | None] | None = Field(
        None, description="Anything else, as text (replaces the stored map)."
    )


class ImportOut(BaseModel):
    rows: int = Field(description="Rows in the file.")
    created: int = Field(description="Profiles that did not exist.")
    updated: int = Field(description="Profiles the file changed.")
    unchanged: int = Field(description="Profiles the file left as they were (nothing written for them).")


class ProfileWritten(BaseModel):
    result: Literal["created", "updated", "unchanged"]
    customer: CustomerOut  # type: ignore[valid-type]


CustomersPage = create_model(
    "CustomersPage",
    page=(int, ...),
    pages=(int, ...),
    limit=(int, ...),
    total=(int, Field(description="Profiles on all pages.")),
    data=(list[CustomerOut], ...),  # type: ignore[valid-type]
)
ToolsPage = create_model(
    "ToolsPage",
    window=(WindowOut, ...),
    per_user=(bool, Field(description="One row per tenant, user and tool (else per tool).")),
    page=(int, ...),
    pages=(int, ...),
    limit=(int, ...),
    total=(int, Field(description="Rows on all pages.")),
    data=(list[ToolOut], ...),  # type: ignore[valid-type]
)

UserIdPath = Annotated[str, Path(max_length=256, description="The user id, as their calls carry it.")]
TenantOfUser = Annotated[
    str | None, Query(max_length=256, description="The user's tenant (none: a user whose calls carry no tenant).")
]


_LINE = re.compile(r"^line (\d+): ")


def _rejected(errors: list[str]) -> JSONResponse:
    """422 with every problem, in the shape of the API's other validation errors (``loc`` names the line of a
    file); the messages hold ids, never a name or an e-mail."""
    detail = []
    for error in errors:
        line = _LINE.match(error)
        loc: list[str | int] = ["body", int(line.group(1))] if line else ["body"]
        detail.append({"loc": loc, "msg": error, "type": "value_error"})
    return JSONResponse({"detail": detail}, status_code=422)


def _write(request: Request, user_id: str, tenant_id: str, body: ProfileIn) -> Any:
    try:
        change = change_of(body.model_dump(exclude_unset=True), user_id=user_id, tenant_id=tenant_id)
    except ImportRejected as exc:
        return _rejected(exc.errors)
    store = ledger(request).store
    result = profiles.upsert(store, [change])
    written = "created" if result.created else "updated" if result.updated else "unchanged"
    found = profiles.get(store, user_id, tenant_id=tenant_id)
    return {"result": written, "customer": records.CUSTOMER.record(found)}


@router.get("/customers", response_model=CustomersPage, summary="Customer profiles, by tenant and user id")
def customers(
    request: Request,
    principal: Reader,
    tenant: TenantParam = None,
    search: Annotated[str | None, Query(max_length=256, description="Ids, names or e-mails containing it.")] = None,
    kind: Annotated[Literal["user", "tenant"] | None, Query(description="Only users' or tenants' profiles.")] = None,
    page: PageParam = 1,
    limit: LimitParam = 50,
) -> dict[str, Any]:
    found = profiles.listing(
        ledger(request).store,
        tenant_id=principal.scope(params.text(tenant, "tenant")),
        search=params.text(search, "search"),
        kind=kind,
        page=page,
        limit=limit,
    )
    return records.page_record(found, records.CUSTOMER)


_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "description": "A CSV file (a header line first) or JSON Lines: one profile a row.",
        "content": {"text/csv": {"schema": {"type": "string"}}, "application/x-ndjson": {"schema": {"type": "string"}}},
    }
}


@router.post(
    "/customers:import",
    response_model=ImportOut,
    summary="Import profiles from a CSV or JSON Lines body, whole or not at all (admin)",
    responses={422: {"description": "Bad rows (every one, by line); nothing was written."}},
    openapi_extra=_IMPORT_BODY,
)
async def import_customers(request: Request, principal: Reader) -> Any:
    admin(principal)
    media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media not in _FORMATS:
        raise HTTPException(415, f"send text/csv or application/x-ndjson, not {media or '(none)'}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_IMPORT_BYTES:
            raise HTTPException(413, f"a profile file is at most {MAX_IMPORT_BYTES} bytes ({MAX_ROWS:,} rows)")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _rejected(["the body is not UTF-8 text"])
    try:
        changes = read_text(text, format=_FORMATS[media])
    except ImportRejected as exc:
        return _rejected(exc.errors)
    result = await run_in_threadpool(profiles.upsert, ledger(request).store, changes)
    return {"rows": result.rows, "created": result.created, "updated": result.updated, "unchanged": result.unchanged}


@router.get(
    "/customers/{user_id:path}",
    response_model=CustomerOut,
    summary="One user's customer profile",
    responses={404: {"description": "No profile (or not in your tenant)."}},
)
def customer(request: Request, principal: Reader, user_id: UserIdPath, tenant: TenantOfUser = None) -> dict[str, Any]:
    tenant_id = principal.scope(params.text(tenant, "tenant")) or ""
    found = profiles.get(ledger(request).store, params.text(user_id, "user id") or "", tenant_id=tenant_id)
    if found is None:
        raise HTTPException(status_code=404, detail="no such customer profile")
    return records.CUSTOMER.record(found)


@router.put(
    "/customers/{user_id:path}",
    response_model=ProfileWritten,
    summary="Create or update one user's customer profile (admin)",
    responses={422: {"description": "A bad field; nothing was written."}},
)
def put_customer(
    request: Request, principal: Reader, user_id: UserIdPath, body: ProfileIn, tenant: TenantOfUser = None
) -> Any:
    admin(principal)
    return _write(request, params.text(user_id, "user id") or "", params.text(tenant, "tenant") or "", body)


@router.get(
    "/tenants/{tenant_id}/profile",
    response_model=CustomerOut,
    summary="A tenant's own customer profile",
    responses={404: {"description": "No profile (or not your tenant)."}},
)
def tenant_profile(
    request: Request, principal: Reader, tenant_id: Annotated[str, Path(max_length=256)]
) -> dict[str, Any]:
    tenant = principal.scope(params.text(tenant_id, "tenant")) or ""
    found = profiles.get(ledger(request).store, "", tenant_id=tenant) if tenant else None
    if found is None:
        raise HTTPException(status_code=404, detail="no such tenant profile")
    return records.CUSTOMER.record(found)


@router.put(
    "/tenants/{tenant_id}/profile",
    response_model=ProfileWritten,
    summary="Set a tenant's own profile (admin)",
    responses={422: {"description": "A bad field; nothing was written."}},
)
def put_tenant_profile(
    request: Request, principal: Reader, tenant_id: Annotated[str, Path(min_length=1, max_length=256)], body: ProfileIn
) -> Any:
    admin(principal)
    return _write(request, "", params.text(tenant_id, "tenant") or "", body)


@router.get("/tools", response_model=ToolsPage, summary="Tool executions per tool, or per user and tool")
def tools(
    request: Request,
    principal: Reader,
    start: FromParam = None,
    end: ToParam = None,
    tenant: TenantParam = None,
    user: Annotated[str | None, Query(max_length=256, description="Only this user.")] = None,
    per_user: Annotated[bool, Query(alias="perUser", description="One row per tenant, user and tool.")] = False,
    page: PageParam = 1,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    tag: TagParam = [],  # noqa: B006 - FastAPI copies defaults
) -> dict[str, Any]:
    lo, hi = params.window_bounds(start, end)
    uid = params.text(user, "user")
    found = ledger(request).tools(
        start=lo,
        end=hi,
        tenant_id=principal.scope(params.text(tenant, "tenant")),
        user_id=user_id_from_path(uid) if uid is not None else None,
        tags=params.tags(request.query_params),
        per_user=per_user,
        page=page,
        limit=limit,
    )
    return records.page_record(found, records.TOOL, window=records.window_record(lo, hi), per_user=per_user)

"""Privacy endpoints (admin only): forget a user, the forget audit, and the retention in force.

``POST /api/v1/privacy/forget`` takes the id in a JSON body, never in the URL (URLs end up in access logs), and
only with the admin token in the ``Authorization`` header (a dashboard session cookie is not enough: a page of
another site must not be able to make a signed-in browser forget someone). The answer never contains the id.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from .._privacy import retention
from .._privacy import store as privacy_store
from .._privacy.forget import UnknownIdError, forget
from .api import Reader, admin

router = APIRouter(prefix="/api/v1/privacy", tags=["privacy"])


class ForgetRequest(BaseModel):
    """Whom to forget, and how."""

    user_id: Annotated[str, Field(min_length=1, max_length=256, description="The id as the application knows it.")]
    tenant: Annotated[str | None, Field(max_length=256, description="Only the user's data in this tenant.")] = None
    mode: Literal["delete", "anonymize"] = "delete"
    dry_run: bool = False


@router.post(
    "/forget",
    summary="Delete (or anonymize) one user's data everywhere (admin; the id in the body, never in the URL)",
    responses={404: {"description": "Nothing holds this id and it was never forgotten: nothing changed."}},
)
def forget_user(request: Request, principal: Reader, body: ForgetRequest) -> dict[str, Any]:
    admin(principal)
    if not request.headers.get("authorization"):
        raise HTTPException(status_code=403, detail="forget needs the admin token in the Authorization header")
    pipeline = request.app.state.exporter.pipeline
    try:
        report = forget(
            request.app.state.store,
            body.user_id,
            tenant=body.tenant,
            mode=body.mode,
            pipelines=[pipeline],
            spool_dir=pipeline.spool_root,
            dry_run=body.dry_run,
        )
    except UnknownIdError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    if not body.dry_run:
        request.app.state.choices.clear()  # the filter bar's menus (cached a minute) must not offer the id again
    return {**asdict(report), "seconds": round(report.seconds, 3), "dry_run": body.dry_run}


@router.get("/audit", summary="Every forget: when, mode, rows, the keyed hash of the id (admin)")
def forget_audit(request: Request, principal: Reader) -> dict[str, Any]:
    admin(principal)
    rows = privacy_store.audit(request.app.state.store)
    return {"data": [{**row, "at": row["at"].isoformat()} for row in rows]}


@router.get("/retention", summary="How long raw calls, captured content and rollups are kept (admin)")
def retention_in_force(request: Request, principal: Reader) -> dict[str, Any]:
    admin(principal)
    return retention.report(request.app.state.store)

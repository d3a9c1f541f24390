"""Tool use: executions per tool, per user and tool, and per (tenant, user) for a page of users.

Exact to the microsecond like every other question: whole hours come from the hourly tool rollup, the partial
hours at both edges from ``tool_calls`` (there is no daily tool rollup: agents run far fewer tools than LLM
calls). The rollup keeps no tags, so a tag filter reads ``tool_calls`` alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .._model.rows import TOOL_METRICS, Page, ToolRow
from .._store.store import Store
from .._store.tool_schema import TOOL_ROLLUP, TOOL_TABLE
from .sql import Query, check_paging, fetch
from .tiers import TierPlan, plan
from .timebound import TimeBound

_ROLLUP = ", ".join(f"{m.merge}({m.name}) AS {m.name}" for m in TOOL_METRICS)
"""Every tool metric merged from the rollup's rows (and, over the union of tiers, the final merge)."""
_RAW = ", ".join(f"{m.raw} AS {m.name}" for m in TOOL_METRICS)
"""The same metrics computed from ``tool_calls`` (aliased ``r``)."""


def tools(
    store: Store,
    *,
    start: TimeBound = None,
    end: TimeBound = None,
    tenant_id: str | None = None,
    user_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    per_user: bool = False,
    page: int = 1,
    limit: int = 100,
) -> Page[ToolRow]:
    """Tool executions per tool (``per_user``: per tenant, user and tool), most executed first, then by name.

    ``user_id`` narrows to one user (``""``: the executions that carried no user), in every tenant unless
    ``tenant_id`` says which. LLM calls are never counted here, and tool executions never in any LLM figure.
    """
    page, limit = check_paging(page, limit)
    q = Query(store.database, plan(start, end, rollups=not tags))
    q.where_equal("tenant_id", tenant_id)
    q.where_equal("user_id", user_id)
    q.where_tags(tags)
    keys = ["tenant_id", "user_id", "tool_name"] if per_user else ["tool_name"]
    union = q.union(TOOL_ROLLUP, keys, _ROLLUP, _RAW, raw=TOOL_TABLE)
    group = ", ".join(keys)
    order = "calls DESC, " + ", ".join(f"{k} ASC" for k in keys)

    def ranked(limit: int, offset: int) -> list[dict[str, Any]]:
        sql = f"""
SELECT {group}, {_ROLLUP}, count() OVER () AS total_rows
FROM ({union})
GROUP BY {group}
ORDER BY {order}
LIMIT {limit} OFFSET {offset}"""
        return fetch(store, sql, q.params)

    rows = ranked(limit, (page - 1) * limit)
    counted = rows or (ranked(1, 0) if page > 1 else [])  # past the last page: the count from the first row
    total = int(counted[0]["total_rows"]) if counted else 0
    out = [
        ToolRow(
            tool_name=r["tool_name"],
            tenant_id=r["tenant_id"] if per_user else None,
            user_id=r["user_id"] if per_user else None,
            calls=int(r["calls"]),
            errors=int(r["errors"]),
            duration_us=int(r["duration_us"]),
            last_seen=_utc(r["last_seen"]),
        )
        for r in rows
    ]
    return Page(rows=out, total=total, page=page, limit=limit)


def per_pair(
    store: Store, w: TierPlan, pairs: list[tuple[str, str]], tags: Mapping[str, str] | None
) -> dict[tuple[str, str], int]:
    """Tool executions of each of these ``(tenant_id, user_id)`` pairs over the window ``w`` (a ranking's,
    whose tiers read the raw table alone when ``tags`` are given): one look-up for a page of users."""
    if not pairs:
        return {}
    q = Query(store.database, w)
    q.where_pairs(pairs)
    q.where_tags(tags)
    union = q.union(TOOL_ROLLUP, ["tenant_id", "user_id"], "sum(calls) AS calls", "count() AS calls", raw=TOOL_TABLE)
    sql = f"SELECT tenant_id, user_id, sum(calls) AS calls FROM ({union}) GROUP BY tenant_id, user_id"
    return {(r["tenant_id"], r["user_id"]): int(r["calls"]) for r in fetch(store, sql, q.params)}


def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return None

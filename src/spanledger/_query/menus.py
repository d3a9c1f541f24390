"""What the dashboard's menus offer: the tag keys and values, and the providers and models, of a window —
each with the spend it carries, most first, so a menu never asks a person to type an id blind."""

from __future__ import annotations

from decimal import Decimal

from .._model.rows import TagChoice
from .._model.usage import CALL_COST
from .._store.schema import DAILY_OF, TENANT_ROLLUP, USER_MODEL_ROLLUP
from .._store.store import Store
from .segments import tag_key
from .sql import Query, check_paging, fetch
from .tiers import plan
from .timebound import TimeBound


def _query(store: Store, start: TimeBound, end: TimeBound, tenant_id: str | None) -> Query:
    q = Query(store.database, plan(start, end))
    q.where_equal("tenant_id", tenant_id)
    return q


def tag_keys(
    store: Store,
    *,
    start: TimeBound = None,
    end: TimeBound = None,
    tenant_id: str | None = None,
    limit: int = 50,
) -> list[TagChoice]:
    """The tag keys carried by calls in the window, most spend first (for menus)."""
    _page, limit = check_paging(1, limit)
    q = _query(store, start, end, tenant_id)
    union = q.union(
        TENANT_ROLLUP,
        ["tenant_id"],
        "tags AS t, cost AS c, requests AS n",
        f"r.tags AS t, {CALL_COST} AS c, toUInt64(1) AS n",
        grouped=False,
    )
    sql = f"""
SELECT arrayJoin(mapKeys(t)) AS key, sum(c) AS cost, sum(n) AS requests
FROM ({union})
GROUP BY key
ORDER BY cost DESC, requests DESC, key
LIMIT {limit}"""
    return [TagChoice(r["key"], "", Decimal(r["cost"]), int(r["requests"])) for r in fetch(store, sql, q.params)]


def tag_values(
    store: Store,
    key: str,
    *,
    start: TimeBound = None,
    end: TimeBound = None,
    tenant_id: str | None = None,
    limit: int = 100,
) -> list[TagChoice]:
    """The values of the tag ``key`` in the window, most spend first (for menus)."""
    _page, limit = check_paging(1, limit)
    q = _query(store, start, end, tenant_id)
    k = q.bind(tag_key(key))
    union = q.union(
        TENANT_ROLLUP,
        ["tenant_id"],
        f"tags[{{{k}:String}}] AS v, mapContains(tags, {{{k}:String}}) AS has, cost AS c, requests AS n",
        f"r.tags[{{{k}:String}}] AS v, mapContains(r.tags, {{{k}:String}}) AS has, {CALL_COST} AS c, toUInt64(1) AS n",
        grouped=False,
    )
    sql = f"""
SELECT v AS value, sum(c) AS cost, sum(n) AS requests
FROM ({union})
WHERE has
GROUP BY value
ORDER BY cost DESC, requests DESC, value
LIMIT {limit}"""
    return [TagChoice(key, r["value"], Decimal(r["cost"]), int(r["requests"])) for r in fetch(store, sql, q.params)]


def models(
    store: Store,
    *,
    start: TimeBound = None,
    end: TimeBound = None,
    tenant_id: str | None = None,
    limit: int = 200,
) -> list[tuple[str, str]]:
    """The (provider, model) pairs that answered calls in the window, most spend first."""
    _page, limit = check_paging(1, limit)
    q = _query(store, start, end, tenant_id)
    union = q.union(
        USER_MODEL_ROLLUP,
        ["provider", "model"],
        "cost AS c",
        f"{CALL_COST} AS c",
        daily=DAILY_OF[USER_MODEL_ROLLUP],
        grouped=False,
    )
    sql = f"""
SELECT provider, model, sum(c) AS cost FROM ({union})
GROUP BY provider, model
ORDER BY cost DESC, provider, model
LIMIT {limit}"""
    return [(r["provider"], r["model"]) for r in fetch(store, sql, q.params)]

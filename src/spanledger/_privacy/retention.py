"""Retention: how long the ledger keeps raw calls, captured content and rollups — ClickHouse TTLs, set by an
idempotent schema step.

Three periods, in whole days, each "forever" unless set:

* ``SPANLEDGER_RETENTION_DAYS`` — raw calls (``llm_calls``: a table TTL on the call's time);
* ``SPANLEDGER_CONTENT_RETENTION_DAYS`` — captured prompts and completions (column TTLs: the text is emptied, the
  call kept); no longer than the raw calls';
* ``SPANLEDGER_ROLLUP_RETENTION_DAYS`` — every rollup (a TTL on its hour or day); no shorter than the raw calls'.

:func:`apply` reads what the tables say now (``system.tables``) and changes only what differs, so it can run
whenever a writer opens the store (the pipeline does, with what the environment asks) or from
``spanledger retention``. ClickHouse drops expired rows in the background, at merges. A period of 0 or less,
or periods in the wrong order, are refused before anything changes. While rollups outlive raw calls, rollup
rebuilds (``spanledger rebuild``, forget) leave the days the raw table no longer holds in full as they are.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .._errors import ConfigError, SpanledgerError
from .._store.schema import RAW_TABLE, ROLLUP_KEYS, ROLLUP_TABLES
from .._store.store import Store

_log = logging.getLogger(__name__)

ENV = {
    "raw_days": "SPANLEDGER_RETENTION_DAYS",
    "content_days": "SPANLEDGER_CONTENT_RETENTION_DAYS",
    "rollup_days": "SPANLEDGER_ROLLUP_RETENTION_DAYS",
}
CONTENT_COLUMNS = ("prompt", "completion")
FOREVER = ("forever", "off", "none")
_RAW_TTL = "toDateTime(timestamp)"
_DAYS = re.compile(r"toIntervalDay\((\d+)\)")


@dataclass(frozen=True, slots=True)
class Retention:
    """Days kept (``None``: forever)."""

    raw_days: int | None = None
    content_days: int | None = None
    rollup_days: int | None = None

    def check(self) -> Retention:
        """Itself, or a :class:`ConfigError` for a period under 1 day or periods in the wrong order."""
        for name, days in asdict(self).items():
            if days is not None and days < 1:
                raise ConfigError(f"{ENV[name]} must be 1 or more days (or 'forever'), got {days}; nothing changed")
        raw, content, rollup = self.raw_days, self.content_days, self.rollup_days
        if raw is not None and content is not None and content > raw:
            raise ConfigError(f"content retention ({content} days) cannot be longer than the calls' ({raw})")
        if raw is not None and rollup is not None and rollup < raw:
            raise ConfigError(f"rollup retention ({rollup} days) cannot be shorter than the calls' ({raw})")
        return self

    def describe(self) -> dict[str, str]:
        """What is kept for how long, in words (for ``spanledger status``)."""
        words = {"raw_days": "raw calls", "content_days": "captured content", "rollup_days": "rollups"}
        return {words[k]: "forever" if v is None else f"{v} days" for k, v in asdict(self).items()}


def parse_days(text: str, name: str) -> int | None:
    """``"30"`` → 30, ``"forever"`` → ``None``; anything else (0, negative, not a number) is a ConfigError."""
    value = text.strip().lower()
    if value in FOREVER:
        return None
    try:
        days = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of days or 'forever', got {text!r}") from None
    if days < 1:
        raise ConfigError(f"{name} must be 1 or more days (or 'forever'), got {days}; nothing changed")
    return days


def from_env() -> dict[str, int | None]:
    """The periods the environment sets (only those set), checked one by one."""
    return {field: parse_days(os.environ[env], env) for field, env in ENV.items() if os.environ.get(env, "").strip()}


def _create(store: Store, table: str) -> str:
    rows = store.query(
        "SELECT create_table_query FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": store.database, "t": table},
    ).result_rows
    return str(rows[0][0]) if rows else ""


def _table_ttl(create: str) -> int | None:
    after_key = create.split(" ORDER BY ", 1)[-1]  # a table TTL follows the sorting key; column TTLs come before
    ttl = after_key.split(" TTL ", 1)[1] if " TTL " in after_key else ""
    found = _DAYS.search(ttl.split(" SETTINGS ", 1)[0])
    return int(found.group(1)) if found else None


def _column_ttl(create: str, column: str) -> int | None:
    found = re.search(rf"`{column}` [^`]*? TTL [^`]*?toIntervalDay\((\d+)\)", create.split(" ENGINE = ", 1)[0])
    return int(found.group(1)) if found else None


def current(store: Store) -> Retention:
    """What the tables keep now (the shortest rollup period, if rollups differ)."""
    raw = _create(store, RAW_TABLE)
    rollups = [_table_ttl(_create(store, t)) for t in ROLLUP_TABLES]
    kept = [d for d in rollups if d is not None]
    content = [_column_ttl(raw, c) for c in CONTENT_COLUMNS]
    return Retention(
        raw_days=_table_ttl(raw),
        content_days=min((d for d in content if d is not None), default=None),
        rollup_days=min(kept) if kept and len(kept) == len(rollups) else None,
    )


def apply(store: Store, **periods: int | None) -> list[str]:
    """Set the given periods (``raw_days=``, ``content_days=``, ``rollup_days=``; ``None``: forever), keep the
    others as the store has them, and return the statements that changed something (none when it already
    matches). Checked first: nothing changes when the result would be invalid."""
    unknown = set(periods) - set(ENV)
    if unknown:
        raise ConfigError(f"unknown retention period(s): {', '.join(sorted(unknown))}")
    now = current(store)
    wanted = Retention(**{**asdict(now), **periods}).check()
    db = store.database
    out: list[str] = []
    raw_create = _create(store, RAW_TABLE)
    if _table_ttl(raw_create) != wanted.raw_days:
        out.append(_ttl(f"{db}.{RAW_TABLE}", _RAW_TTL, wanted.raw_days))
    for column in CONTENT_COLUMNS:
        if _column_ttl(raw_create, column) != wanted.content_days:
            days = wanted.content_days
            rule = f"TTL {_RAW_TTL} + INTERVAL {days} DAY" if days is not None else "REMOVE TTL"
            out.append(f"ALTER TABLE {db}.{RAW_TABLE} MODIFY COLUMN {column} {rule}")
    for table in ROLLUP_TABLES:
        if _table_ttl(_create(store, table)) != wanted.rollup_days:
            out.append(_ttl(f"{db}.{table}", "hour" if table in ROLLUP_KEYS else "day", wanted.rollup_days))
    for statement in out:
        store.command(statement)
    if out:
        _log.info("retention of %s is now %s", db, wanted.describe())
    return out


def _ttl(table: str, column: str, days: int | None) -> str:
    if days is None:
        return f"ALTER TABLE {table} REMOVE TTL"
    return f"ALTER TABLE {table} MODIFY TTL {column} + INTERVAL {days} DAY"


def apply_from_env(store: Store) -> None:
    """What a writer does when it opens the store: the periods the environment sets, applied; a bad value or a
    store that refuses is logged and changes nothing (never fatal for the host application)."""
    try:
        periods = from_env()
        if periods:
            apply(store, **periods)
    except SpanledgerError as exc:
        _log.error("retention not changed: %s", exc)


def raw_horizon(store: Store, today: date | None = None) -> date | None:
    """The first day the raw table still holds in full under its retention (``None``: it keeps everything)."""
    days = _table_ttl(_create(store, RAW_TABLE))
    if days is None:
        return None
    today = today or datetime.now(UTC).date()
    return today - timedelta(days=days - 1)


def report(store: Store) -> dict[str, Any]:
    """For ``spanledger status``: each period, and the oldest raw call still stored."""
    kept = current(store)
    oldest = store.query(f"SELECT min(timestamp), count() FROM {store.database}.{RAW_TABLE}").result_rows[0]
    return {
        **asdict(kept),
        "kept": kept.describe(),
        "oldest_call": oldest[0].isoformat() if oldest[1] else None,
    }

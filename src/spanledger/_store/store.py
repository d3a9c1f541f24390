"""The connection to the ledger's ClickHouse: opening it (one chDB location per process), the schema and its
migrations, queries, inserts, and what an error from ClickHouse means for the caller (see ``dsn.py`` for
the DSNs)."""

from __future__ import annotations

import logging
import re
import struct
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError, DataError, OperationalError

from .._config import DEFAULT_STORE, env_str
from .._errors import ConfigError, StoreDataError, StoreError, StoreLockedError, StoreUnavailableError
from . import dsn
from .dsn import parse as _parse
from .dsn import redact as _redact
from .schema import KEYS_TABLE, MIGRATIONS_TABLE, RAW_COLUMNS, RAW_TABLE, bootstrap, migrations

_log = logging.getLogger(__name__)

# chDB keeps one engine per process: remember which location it was opened on.
_CHDB_LOCK = threading.RLock()
_chdb_location: str | None = None

RAW_COLUMN_NAMES = [name for name, _ in RAW_COLUMNS]
RAW_COLUMN_TYPES = [ctype for _, ctype in RAW_COLUMNS]


def _lock_holder(location: str) -> str:
    """``PID n (command)`` of the process holding a chDB directory, when it can be read."""
    try:
        status = Path(location, "status").read_text()
    except OSError:
        return "another process"
    match = re.search(r"PID:\s*(\d+)", status)
    if not match:
        return "another process"
    pid = match.group(1)
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        cmd = " ".join(raw.split())  # one line, whatever the command line held
    except OSError:
        cmd = ""
    return f"PID {pid} ({cmd[:120]})" if cmd else f"PID {pid}"


DATA_ERROR_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
        395,  # FUNCTION_THROW_IF_VALUE_IS_NON_ZERO
        407,  # DECIMAL_OVERFLOW
        469,  # VIOLATED_CONSTRAINT
    }
)
"""ClickHouse error codes that mean an insert's *rows* are bad. Every other server error (a missing table, too
many parts, memory, Keeper, a timeout) is about the store, and the same rows are retried later."""
_CLIENT_DATA_ERRORS = (TypeError, ValueError, OverflowError, struct.error)
"""Raised by clickhouse-connect while packing rows it cannot represent in the column's type."""


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def _cause(text: str) -> str:
    """The reason a connection failed, without the HTTP library's internals: ``connection refused``,
    ``timed out``, ``Name or service not known`` …"""
    found = _ERRNO.search(text)
    if found:
        return found.group(1).strip().rstrip(".").lower() if "refused" in found.group(1) else found.group(1).strip()
    lowered = text.lower()
    for phrase in ("timed out", "connection reset", "connection aborted", "remote end closed"):
        if phrase in lowered:
            return phrase
    return text[:300]


def _wrap(exc: Exception, what: str) -> StoreError:
    """A clickhouse-connect (or transport) error as the :class:`StoreError` that says what to do about it."""
    code = getattr(exc, "code", None)
    name = getattr(exc, "name", None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if ". In scope " in text:  # ClickHouse repeats the whole statement after this; keep its error name
        text = text.split(". In scope ", 1)[0] + (f". ({name})" if name else "")
    if isinstance(exc, DataError) or (code in DATA_ERROR_CODES and isinstance(exc, DatabaseError)):
        return StoreDataError(f"{what}: {text[:500]}", code=code, name=name)
    if isinstance(exc, _CLIENT_DATA_ERRORS) and not isinstance(exc, OSError):
        return StoreDataError(f"{what}: {type(exc).__name__}: {text[:500]}", code=code, name=name)
    if isinstance(exc, OperationalError) or not isinstance(exc, ClickHouseError):
        return StoreUnavailableError(f"{what}: {_cause(text)}", code=code, name=name)
    return StoreError(f"{what}: {text[:500]}", code=code, name=name)


class Store:
    """A connection to the ledger database, creating and migrating its schema on first use.

    Args:
        dsn: Where the ledger lives (see module docs); default ``SPANLEDGER_STORE``, then
            ``chdb://.spanledger``.
        create: Create the database and apply pending migrations (idempotent).
    """

    def __init__(self, dsn: str | None = None, *, create: bool = True, existing: bool = False) -> None:
        self.dsn = env_str("SPANLEDGER_STORE", dsn, DEFAULT_STORE)
        kind, location, database, kwargs = _parse(self.dsn)
        self.kind = kind
        self.location = location
        self.database = database
        self._create = not existing  # a read-only command creates nothing where no store is
        self.client = self._connect(kwargs)
        if existing and not self.holds_store():
            where = f"the database {database!r} of {_redact(self.dsn)}" if kind == "http" else location or "memory"
            raise ConfigError(
                f"there is no spanledger store in {where}: point --store (or SPANLEDGER_STORE) at one, or create "
                "one with `spanledger demo` or an exporter"
            )
        if create or existing:
            self.ensure_schema()

    def holds_store(self) -> bool:
        """Whether the database exists and holds the ledger's raw table."""
        rows = self.query(
            "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            {"db": self.database, "t": RAW_TABLE},
        ).result_rows
        return bool(rows and rows[0][0])

    def _connect(self, kwargs: dict[str, Any]) -> Any:
        global _chdb_location
        if self.kind == "http":
            try:
                return clickhouse_connect.get_client(**kwargs)
            except Exception as exc:
                raise _wrap(exc, f"cannot connect to the ClickHouse server {kwargs['host']}:{kwargs['port']}") from None
        where = self.location or ":memory:"
        with _CHDB_LOCK:
            if _chdb_location is not None and _chdb_location != where:
                raise StoreError(
                    f"this process already opened the embedded store at {_chdb_location}; chDB allows one "
                    f"location per process, so {where} cannot be opened too"
                )
            if self.location:
                dsn.make_location(self.location, create=self._create)
            try:
                client = clickhouse_connect.get_client(interface="chdb", path=self.location)
            except Exception as exc:
                message = str(exc)
                if "EmbeddedServer" in message or "lock" in message.lower():
                    raise StoreLockedError(
                        f"the embedded store {where} is in use by {_lock_holder(where)}; a chDB directory can be "
                        "opened by one process at a time (stop it, or read through `spanledger serve`)"
                    ) from None
                raise _wrap(exc, f"cannot open the embedded store {where}") from None
            _chdb_location = where
            return client

    def command(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
    ) -> Any:
        """Run a statement; failures become :class:`StoreError`."""
        try:
            return self.client.command(sql, parameters=parameters, settings=settings)
        except (ClickHouseError, OSError) as exc:
            raise _wrap(exc, "ClickHouse command failed") from None

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        """Run a query with bound parameters and return clickhouse-connect's ``QueryResult``."""
        try:
            return self.client.query(sql, parameters=parameters)
        except (ClickHouseError, OSError) as exc:
            raise _wrap(exc, "ClickHouse query failed") from None

    def ensure_schema(self) -> list[int]:
        """Create the database and apply every migration not yet recorded; returns the versions applied."""
        db = self.database
        for statement in bootstrap(db):
            self.command(statement)
        done = {row[0] for row in self.query(f"SELECT version FROM {db}.{MIGRATIONS_TABLE}").result_rows}
        applied = []
        for migration in migrations(db):
            if migration.version in done:
                continue
            for statement in migration.statements:
                self.command(statement)
            if migration.backfill:
                from .rebuild import rebuild  # a new rollup filled so that concurrent inserts count once

                rebuild(self, tables=migration.backfill)
            self.insert_rows(
                MIGRATIONS_TABLE,
                [[migration.version, migration.name]],
                ["version", "name"],
                ["UInt32", "String"],
            )
            applied.append(migration.version)
            _log.info("applied spanledger schema migration %s (%s) to %s", migration.version, migration.name, db)
        return applied

    def insert_rows(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        column_names: Sequence[str],
        column_types: Sequence[str],
        *,
        dedup_token: str | None = None,
        column_oriented: bool = False,
    ) -> None:
        """Insert with explicit column names and types (no schema look-up per insert)."""
        settings: dict[str, Any] = {}
        if dedup_token:
            settings = {
                "insert_deduplicate": 1,
                "insert_deduplication_token": dedup_token,
                "deduplicate_blocks_in_dependent_materialized_views": 1,
            }
        try:
            self.client.insert(
                table,
                rows,
                database=self.database,
                column_names=list(column_names),
                column_type_names=list(column_types),
                column_oriented=column_oriented,
                settings=settings or None,
            )
        except (ClickHouseError, OSError, *_CLIENT_DATA_ERRORS) as exc:
            raise _wrap(exc, f"insert into {self.database}.{table} failed") from None

    def prepare_inserts(self) -> None:
        """Do now what clickhouse-connect does at its first insert: resolve its optional pandas support (an
        import). A first insert at interpreter exit — the last flush of a short script — cannot import
        anything any more ("can't register atexit after shutdown"), so writers call this when they start."""
        from clickhouse_connect.driver import options

        getattr(options, "pd", None)

    def insert_calls(self, columns: Sequence[Sequence[Any]], *, dedup_token: str | None = None) -> None:
        """Insert LLM calls given as columns in :data:`RAW_COLUMNS` order."""
        self.insert_rows(
            RAW_TABLE,
            columns,
            RAW_COLUMN_NAMES,
            RAW_COLUMN_TYPES,
            dedup_token=dedup_token,
            column_oriented=True,
        )

    def stored_call_keys(self, keys: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
        """Which of these calls (``(trace_id, span_id)``) the store already holds — every call stored within the
        dedup window (``call_keys``, 48 hours by default), whatever process wrote it. One point look-up per
        call in a table ordered by span id."""
        if not keys:
            return set()
        wanted = set(keys)
        found: set[tuple[int, int]] = set()
        span_ids = sorted({span for _, span in wanted})
        for begin in range(0, len(span_ids), 10_000):  # a bounded statement however large the block
            result = self.query(
                f"SELECT trace_id, span_id FROM {self.database}.{KEYS_TABLE} WHERE span_id IN {{ids:Array(UInt64)}}",
                {"ids": span_ids[begin : begin + 10_000]},
            )
            found.update(key for key in map(tuple, result.result_rows) if key in wanted)
        return found

    def set_dedup_window(self, hours: int) -> None:
        """Keep stored calls' keys for ``hours`` (``ALTER TABLE call_keys MODIFY TTL``), when it differs."""
        row = self.query(
            "SELECT create_table_query FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            {"db": self.database, "t": KEYS_TABLE},
        ).result_rows
        wanted = f"INTERVAL {hours} HOUR"
        if row and wanted not in row[0][0]:
            self.command(f"ALTER TABLE {self.database}.{KEYS_TABLE} MODIFY TTL inserted_at + {wanted}")
            _log.info("call_keys now keeps stored calls' keys for %d hours", hours)

    def close(self) -> None:
        """Release a server connection. An embedded store's client is left to the garbage collector:
        chDB closes the engine (and frees the directory lock) when its last client is gone."""
        if self.kind == "chdb":
            return
        try:
            self.client.close()
        except Exception:  # closing must never fail the caller
            _log.debug("error closing ClickHouse client", exc_info=True)

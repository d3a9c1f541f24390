"""Errors spanledger raises to its callers (never from inside an exporter's ``export``).

::

    SpanledgerError
     ├── ConfigError            a bad DSN, option or price file
     │    ├── PriceFileError
     │    └── ImportRejected    customer profile rows that cannot be imported (nothing was written)
     ├── InvalidCallError       record_call was given an argument it cannot record (also a ValueError)
     └── StoreError             ClickHouse refused or could not be reached (carries ``code``, ``name``)
          ├── StoreLockedError  the embedded chDB directory is held by another process
          ├── StoreUnavailableError  the server could not be reached (retry later)
          └── StoreDataError    the rows themselves were refused (retrying the same rows fails again)
"""

from __future__ import annotations


class SpanledgerError(Exception):
    """Base of every error spanledger raises."""


class ConfigError(SpanledgerError, ValueError):
    """A DSN, option or file the user gave cannot be used."""


class ImportRejected(ConfigError):
    """Customer profile rows that cannot be imported; nothing was written. ``errors`` holds one ``line N: …`` per
    problem, with ids and never a name or an e-mail address."""

    SHOWN = 20
    """Errors the message lists (every one is in ``errors``)."""

    def __init__(self, errors: list[str], *, source: str = "") -> None:
        self.errors = errors
        self.source = source
        shown = "; ".join(errors[: self.SHOWN])
        more = f"; … and {len(errors) - self.SHOWN} more" if len(errors) > self.SHOWN else ""
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{len(errors)} bad row(s), nothing imported: {shown}{more}")


class InvalidCallError(SpanledgerError, ValueError):
    """``record_call`` was given an argument it cannot record; raised at the call, never later."""


class StoreError(SpanledgerError):
    """ClickHouse refused an operation; ``code`` and ``name`` are ClickHouse's when it gave them."""

    def __init__(self, message: str, *, code: int | None = None, name: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.name = name


class StoreLockedError(StoreError):
    """Another process holds the embedded chDB data directory (one process per directory)."""


class StoreUnavailableError(StoreError):
    """The ClickHouse server could not be reached or did not answer in time."""


class StoreDataError(StoreError):
    """ClickHouse, or the client packing the insert, refused the rows themselves (a value out of a column's
    range, a type it cannot parse): the same rows would be refused again, so they are set aside, not retried."""


def unknown_user(user_id: str, tenant_id: str | None, near: list[str]) -> str:
    """The one message for a user id never seen (in a tenant), with the nearest ids: the CLI, the API's 404 and
    the CLI reading through the API say the same."""
    where = f" for tenant {tenant_id!r}" if tenant_id is not None else ""
    return f"no user {user_id!r} in the ledger{where}" + (f"; did you mean {', '.join(near)}?" if near else "")

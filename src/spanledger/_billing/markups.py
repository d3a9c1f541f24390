"""Markups: a percentage added to cost, per user, per tenant, per plan tag, or by default.

The markup of a call is the first that is set of: its user's, its tenant's, its ``plan`` tag's, the
default; none set is 0 %. A user is a user id (in whichever tenant), as revenue names them. Markups live in
the ledger's store (``billing_markups``, every change kept); a statement applies those in force when it is
made.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from .._errors import ConfigError
from .._store.store import Store
from . import store as sql
from .model import LOOKUP, NO_MARKUP, SCOPES, Markup

MIN_PERCENT = Decimal(-100)
MAX_PERCENT = Decimal(100_000)


def parse_percent(value: object) -> Decimal:
    """A markup percentage from text or a number: ``20``, ``"12.5"``, ``"-10"``; six decimals at most."""
    if isinstance(value, bool | float):
        raise ConfigError(f"bad markup {value!r}: give it as a string or an integer, e.g. '12.5'")
    try:
        percent = Decimal(str(value).strip().removesuffix("%"))
    except InvalidOperation:
        raise ConfigError(f"bad markup {value!r}: a percentage like 20, 12.5 or -10") from None
    if not percent.is_finite() or not MIN_PERCENT <= percent <= MAX_PERCENT:
        raise ConfigError(f"bad markup {value!r}: between {MIN_PERCENT} and {MAX_PERCENT} percent")
    if percent.as_tuple().exponent < -6:  # type: ignore[operator]
        raise ConfigError(f"bad markup {value!r}: six decimals at most")
    return percent


def _check_scope(scope: str, key: str) -> None:
    if scope not in SCOPES:
        raise ConfigError(f"bad markup scope {scope!r}: use one of {', '.join(SCOPES)}")
    if scope == "default" and key:
        raise ConfigError("the default markup has no key")
    if scope != "default" and not key:
        raise ConfigError(f"a {scope} markup needs the {scope} it applies to")
    if len(key) > 256 or any(ord(c) < 32 for c in key):
        raise ConfigError("bad markup key: at most 256 characters, no control characters")


def set_markup(store: Store, scope: str, key: str, percent: object, *, note: str = "") -> Markup:
    """Set the markup of a user, tenant or plan (``key``), or the default (``key=""``)."""
    _check_scope(scope, key)
    value = parse_percent(percent)
    sql.write_markup(store, scope, key, value, note)
    return Markup(scope, key, value, note=note)  # type: ignore[arg-type]


def remove_markup(store: Store, scope: str, key: str) -> bool:
    """Remove a markup; returns whether one was in force."""
    _check_scope(scope, key)
    existed = any(m.scope == scope and m.key == key for m in sql.read_markups(store))
    if existed:
        sql.write_markup(store, scope, key, None)
    return existed


class Markups:
    """The markups in force, and which one applies to a call."""

    def __init__(self, items: Iterable[Markup]) -> None:
        self.items = sorted(items, key=lambda m: (SCOPES.index(m.scope), m.key))
        self._by: dict[str, Markup] = {m.label: m for m in self.items}
        self.by_user = bool(self.keys("user"))
        """Whether some user has a markup of their own: usage must then be read per user."""
        self.by_plan = bool(self.keys("plan"))
        """Whether some plan has a markup: usage must then be read per plan tag."""

    @classmethod
    def load(cls, store: Store) -> Markups:
        return cls(sql.read_markups(store))

    def keys(self, scope: str) -> list[str]:
        """The users, tenants or plans with a markup of their own (``[""]`` for a default that is set)."""
        return [m.key for m in self.items if m.scope == scope]

    def labelled(self, label: str) -> Markup:
        """The markup a label names (as the SQL built from :data:`LOOKUP` labels each call's)."""
        return self._by.get(label, NO_MARKUP)

    def resolve(self, tenant_id: str, user_id: str, plan: str) -> Markup:
        """The markup of calls by ``user_id`` in ``tenant_id`` tagged ``plan``."""
        columns = {"user_id": user_id, "tenant_id": tenant_id, "tags['plan']": plan}
        for scope, column in LOOKUP:
            found = self._by.get(f"{scope} {columns[column]}")
            if found is not None:
                return found
        return self._by.get("default", NO_MARKUP)

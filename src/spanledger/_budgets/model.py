"""A budget: whose spend it limits, over which period, how much, and whether it stops calls or only alerts.

Subjects (``scope``):

* ``user`` — one user id, whatever the tenant of the call;
* ``pair`` — one user within one tenant;
* ``tenant`` — everything a tenant spends;
* ``tenant_default`` — every user of a tenant who has no budget of their own (each user separately);
* ``tag_default`` — every user whose calls carry a tag (``plan=free``), optionally within one tenant, who has
  no budget of their own.

A user's own budgets (``user``, ``pair``) replace every default; all the defaults that match a user apply
(the strictest binds); a tenant's budget applies on top of the user's. A budget is identified by its subject
and period: setting it again replaces it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Literal

from .._errors import ConfigError
from .._model.rows import doc
from .periods import PERIODS, Window, check_zone, window

Scope = Literal["user", "pair", "tenant", "tenant_default", "tag_default"]
SCOPES: tuple[str, ...] = ("user", "pair", "tenant", "tenant_default", "tag_default")
DEFAULT_ALERT_AT: tuple[int, ...] = (50, 80, 100)
"""Alert thresholds, in percent of the budget, unless a budget says otherwise."""
MAX_LIMIT = Decimal(10) ** 24
"""Largest budget accepted (the store keeps sums as ``Decimal(38, 12)``)."""
MAX_ID = 256


@dataclass(frozen=True, slots=True)
class Budget:
    """One budget, as stored."""

    scope: str = doc("user, pair, tenant, tenant_default or tag_default.")
    tenant_id: str = doc("The tenant (pair, tenant, tenant_default; tag_default within one tenant); else empty.")
    user_id: str = doc("The user (user, pair); else empty.")
    tag_key: str = doc("The tag of a tag_default budget (plan); else empty.")
    tag_value: str = doc("Its value (free); else empty.")
    period: str = doc("daily, weekly (from Monday), monthly, yearly, custom or lifetime.")
    limit: Decimal = doc("The budget in USD.")
    hard: bool = doc("True: BudgetGuard refuses calls past it; False: alerts only.")
    timezone: str = doc("IANA time zone the period's days start in (UTC by default).", default="UTC")
    starts_at: datetime | None = doc("A custom period's start (UTC).", default=None)
    ends_at: datetime | None = doc("A custom period's end, exclusive (UTC).", default=None)
    alert_at: tuple[int, ...] = doc("Alert thresholds, in percent of the limit.", default=DEFAULT_ALERT_AT)
    updated_at: datetime | None = doc("When it was last set.", default=None)

    @property
    def id(self) -> str:
        """A stable id derived from the subject and period (setting the same budget again keeps it)."""
        key = "\x1f".join((self.scope, self.tenant_id, self.user_id, self.tag_key, self.tag_value, self.period))
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @property
    def subject(self) -> str:
        """Who it limits, as people read it."""
        in_tenant = f" in tenant {self.tenant_id}" if self.tenant_id else ""
        if self.scope == "user":
            return f"user {self.user_id}"
        if self.scope == "pair":
            return f"user {self.user_id}{in_tenant}"
        if self.scope == "tenant":
            return f"tenant {self.tenant_id}"
        if self.scope == "tenant_default":
            return f"each user of tenant {self.tenant_id}"
        return f"each user with {self.tag_key}={self.tag_value}{in_tenant}"

    @property
    def is_default(self) -> bool:
        """Whether it applies to every user of a tenant or tag who has no budget of their own."""
        return self.scope in ("tenant_default", "tag_default")

    def window(self, at: datetime) -> Window | None:
        """The period containing ``at``; ``None`` for a custom period ``at`` lies outside of."""
        return window(self.period, at, self.timezone, self.starts_at, self.ends_at)


def make_budget(
    *,
    limit: object,
    period: str,
    user_id: str | None = None,
    tenant_id: str | None = None,
    tag: str | tuple[str, str] | None = None,
    default: bool = False,
    hard: bool = True,
    timezone: str | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    alert_at: object = None,
) -> Budget:
    """A checked :class:`Budget`: the scope follows from the subject given.

    ``user_id`` alone → ``user``; ``tenant_id`` alone → ``tenant``; both → ``pair``; ``tenant_id`` and
    ``default=True`` → ``tenant_default``; ``tag`` (``"plan=free"``), optionally with ``tenant_id`` →
    ``tag_default``.

    Raises:
        ConfigError: A negative or non-numeric limit, an unknown period, a bad time zone, a custom period
            without both ends, an impossible subject.
    """
    user = _id("user_id", user_id)
    tenant = _id("tenant_id", tenant_id)
    tag_key, tag_value = _tag(tag)
    scope: Scope
    if tag_key:
        if user:
            raise ConfigError("a tag default is for every user with that tag: give no user id")
        scope = "tag_default"
    elif default:
        if not tenant or user:
            raise ConfigError("a tenant default needs a tenant (and no user): --tenant ID --default")
        scope = "tenant_default"
    elif user and tenant:
        scope = "pair"
    elif user:
        scope = "user"
    elif tenant:
        scope = "tenant"
    else:
        raise ConfigError("a budget needs a subject: a user, a tenant, both, a tenant default or a tag")
    if period not in PERIODS:
        raise ConfigError(f"unknown period {period!r}: use one of {', '.join(PERIODS)}")
    zone = check_zone(timezone or "UTC")
    start, end = _utc(starts_at, "start"), _utc(ends_at, "end")
    if period == "custom":
        if start is None or end is None:
            raise ConfigError("a custom period needs a start and an end")
        if end <= start:
            raise ConfigError("a custom period must end after it starts")
    elif start is not None or end is not None:
        raise ConfigError(f"only a custom period has a start and an end, not a {period} one")
    return Budget(
        scope=scope,
        tenant_id=tenant,
        user_id=user,
        tag_key=tag_key,
        tag_value=tag_value,
        period=period,
        limit=parse_limit(limit),
        hard=bool(hard),
        timezone=zone,
        starts_at=start,
        ends_at=end,
        alert_at=parse_alert_at(alert_at),
    )


def parse_limit(value: object) -> Decimal:
    """A budget in USD: a ``Decimal``, a whole number or a decimal string; never a float (money is exact)."""
    if isinstance(value, bool | float):
        raise ConfigError(f"bad limit {value!r}: give USD as a string or Decimal (money is never a float)")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str):
        text = value.strip().removeprefix("$").replace(",", "").replace("_", "")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise ConfigError(f"bad limit {value!r}: not a number of USD (e.g. 25 or 0.50)") from None
    else:
        raise ConfigError(f"bad limit {value!r}: not a number of USD")
    if not amount.is_finite():
        raise ConfigError(f"bad limit {value!r}: not a finite amount")
    if amount < 0:
        raise ConfigError(f"bad limit {value!r}: a budget cannot be negative")
    if amount >= MAX_LIMIT:
        raise ConfigError(f"bad limit {value!r}: must be under $10^24")
    if amount != amount.quantize(Decimal("1e-12")):
        raise ConfigError(f"bad limit {value!r}: at most 12 decimal places")
    return amount.quantize(Decimal("1e-12"))


def parse_alert_at(value: object) -> tuple[int, ...]:
    """Alert thresholds in percent: ``None`` for the default (50, 80, 100), a list of whole numbers, or a
    comma-separated string; ``()`` or ``""`` for none."""
    if value is None:
        return DEFAULT_ALERT_AT
    items: list[object]
    if isinstance(value, str):
        items = [p.strip().rstrip("%") for p in value.split(",") if p.strip()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ConfigError(f"bad alert thresholds {value!r}: a list of percentages such as 50,80,100")
    out = set()
    for item in items:
        pct = None
        if isinstance(item, int | str) and not isinstance(item, bool):
            try:
                pct = int(item)
            except ValueError:
                pct = None
        if pct is None or not 1 <= pct <= 1000:
            raise ConfigError(f"bad alert threshold {item!r}: a whole percentage between 1 and 1000")
        out.add(pct)
    return tuple(sorted(out))


def _id(name: str, value: str | None) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {type(value).__name__}")
    if len(value) > MAX_ID or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigError(f"bad {name} {value[:40]!r}: at most {MAX_ID} characters, no control characters")
    return value


def _tag(tag: str | tuple[str, str] | None) -> tuple[str, str]:
    if tag is None or tag == "":
        return "", ""
    if isinstance(tag, tuple):
        key, value = tag
    else:
        key, sep, value = str(tag).partition("=")
        if not sep:
            raise ConfigError(f"bad tag {tag!r}: use key=value, e.g. plan=free")
    key, value = _id("tag key", key.strip()), _id("tag value", value.strip())
    if not key or not value:
        raise ConfigError(f"bad tag {tag!r}: use key=value, e.g. plan=free")
    return key, value


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ConfigError(f"the custom period's {name} must be a datetime")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

"""Alerts: budget thresholds, absolute rules and the spike rule, each fired once per subject, rule and period,
to the log and to a webhook.

* **Thresholds** of every budget (50 / 80 / 100 % by default, per budget): a subject whose spend this period
  reaches ``pct`` % of its limit.
* **Absolute rules**, ``absolute:user:daily:50``: any user (within a tenant), or tenant, over $50 in a day (or
  week, month).
* **Spike rules**, ``spike:user:hour:5:10[:14]``: a user's (or tenant's) last hour (or day) above 5 × its own
  baseline — the median of its last 14 daily totals — and above $10 (``spike.py``). Once per subject and UTC
  day.

:class:`Alerts` evaluates them all against the store (``evaluate``; every ``interval_s`` once started),
claims the new ones in the store (``alert_store.py``: once, whatever the number of processes or restarts),
logs each and queues it for the webhook (``webhook.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from .._config import env_int, env_str
from .._errors import ConfigError
from .._present.numbers import decimal_string, iso
from .._store.store import Store
from . import alert_store, webhook
from .alert_store import StoredAlert
from .model import parse_limit
from .periods import window
from .report import report
from .spend import Kind, spend
from .spike import WINDOWS, spikes

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AlertRule:
    """An absolute or a spike rule (budget thresholds come with the budgets). Build one with
    :meth:`absolute`, :meth:`spike` or :meth:`parse`."""

    kind: str
    scope: str
    """``user`` (each user within a tenant) or ``tenant``."""
    period: str
    """absolute: ``daily``, ``weekly`` or ``monthly``; spike: the recent window, ``hour`` or ``day``."""
    amount: Decimal
    """absolute: the USD a subject must exceed; spike: the floor."""
    factor: Decimal = Decimal(0)
    baseline_days: int = 14

    @classmethod
    def absolute(cls, scope: str, period: str, amount: object) -> AlertRule:
        """Any user (or tenant) over ``amount`` USD in a ``period`` (UTC)."""
        if scope not in ("user", "tenant"):
            raise ConfigError(f"bad alert scope {scope!r}: user or tenant")
        if period not in ("daily", "weekly", "monthly"):
            raise ConfigError(f"bad alert period {period!r}: daily, weekly or monthly")
        return cls("absolute", scope, period, parse_limit(amount))

    @classmethod
    def spike(cls, scope: str, window: str, factor: object, floor: object, baseline_days: int = 14) -> AlertRule:
        """A user's (or tenant's) last ``window`` over ``factor`` × its baseline and over ``floor`` USD."""
        if scope not in ("user", "tenant"):
            raise ConfigError(f"bad alert scope {scope!r}: user or tenant")
        if window not in WINDOWS:
            raise ConfigError(f"bad spike window {window!r}: hour or day")
        k = parse_limit(factor)
        if k < 1:
            raise ConfigError(f"bad spike factor {factor!r}: 1 or more (5 means five times the baseline)")
        if not isinstance(baseline_days, int) or not 1 <= baseline_days <= 90:
            raise ConfigError(f"bad baseline {baseline_days!r}: between 1 and 90 days")
        return cls("spike", scope, window, parse_limit(floor), k, baseline_days)

    @classmethod
    def parse(cls, text: str) -> AlertRule:
        """``absolute:SCOPE:PERIOD:USD`` or ``spike:SCOPE:hour|day:FACTOR:FLOOR[:DAYS]``."""
        parts = [p.strip() for p in text.strip().split(":")]
        if parts[0] == "absolute" and len(parts) == 4:
            return cls.absolute(parts[1], parts[2], parts[3])
        if parts[0] == "spike" and len(parts) in (5, 6):
            days = parts[5] if len(parts) == 6 else "14"
            if not days.isdigit():
                raise ConfigError(f"bad baseline days {days!r} in alert rule {text!r}")
            return cls.spike(parts[1], parts[2], parts[3], parts[4], int(days))
        raise ConfigError(
            f"bad alert rule {text!r}: absolute:user|tenant:daily|weekly|monthly:USD or "
            "spike:user|tenant:hour|day:FACTOR:FLOOR[:DAYS]"
        )

    @property
    def name(self) -> str:
        """The rule in its text form (what :meth:`parse` reads)."""
        if self.kind == "absolute":
            return f"absolute:{self.scope}:{self.period}:{self.amount.normalize():f}"
        return f"spike:{self.scope}:{self.period}:{self.factor.normalize():f}:{self.amount.normalize():f}:{self.baseline_days}"


def _alert_id(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:24]


def _subject(tenant_id: str, user_id: str) -> str:
    if user_id:
        return f"user {user_id}" + (f" in tenant {tenant_id}" if tenant_id else "")
    return f"tenant {tenant_id}"


def _make(
    kind: str,
    rule: str,
    tenant_id: str,
    user_id: str,
    period_start: datetime,
    spent: Decimal,
    threshold: Decimal,
    message: str,
    now: datetime,
    holder: str,
    **detail: object,
) -> StoredAlert:
    alert_id = _alert_id(kind, rule, tenant_id, user_id, period_start.isoformat())
    body = {
        "id": alert_id,
        "type": kind,
        "rule": rule,
        "message": message,
        "tenant_id": tenant_id,
        "user_id": user_id,
        "period_start": iso(period_start),
        "spent": decimal_string(spent),
        "threshold": decimal_string(threshold),
        "fired_at": iso(now),
        **detail,
    }
    return StoredAlert(
        alert_id, kind, rule, tenant_id, user_id, period_start, spent, threshold, json.dumps(body), holder, now
    )


class Alerts:
    """Evaluates alert rules against the store and delivers what fires (see the module docs).

    Every argument falls back to a ``SPANLEDGER_*`` environment variable, then to its default; a bad
    environment value is logged and left out.

    Args:
        store: DSN or open :class:`Store` (``SPANLEDGER_STORE``).
        rules: Absolute and spike rules, as :class:`AlertRule` or text (``SPANLEDGER_ALERT_RULES``, separated
            by ``;``). Budget thresholds always apply.
        webhook_url: Where to POST each alert (``SPANLEDGER_ALERT_WEBHOOK_URL``; none: the log only).
        webhook_secret: The shared secret of its signature (``SPANLEDGER_ALERT_WEBHOOK_SECRET``; required
            with a URL).
        interval_s: Seconds between evaluations once started (``SPANLEDGER_ALERT_INTERVAL_S``, 60).
        retry_base_s, retry_max_s, give_up_after_s: The webhook's backoff (1 s doubling to 300 s; failed after
            a day).
        adopt_after_s: Seconds before another process's pending delivery is taken over (600).
        now: The wall clock (for tests).
    """

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        rules: Sequence[AlertRule | str] | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        interval_s: int | None = None,
        retry_base_s: float = 1.0,
        retry_max_s: float = 300.0,
        give_up_after_s: float = 86_400.0,
        adopt_after_s: float = 600.0,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store if isinstance(store, Store) else Store(store)
        self.rules = _rules(rules)
        self.interval = env_int("SPANLEDGER_ALERT_INTERVAL_S", interval_s, 60, minimum=1)
        self._now = now or (lambda: datetime.now(UTC))
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        url = env_str("SPANLEDGER_ALERT_WEBHOOK_URL", webhook_url, "")
        secret = env_str("SPANLEDGER_ALERT_WEBHOOK_SECRET", webhook_secret, "")
        self.deliverer: webhook.Deliverer | None = None
        if url:
            if webhook_url is None:  # from the environment: a bad value is logged, not raised
                try:
                    webhook.check_url(url)
                except ConfigError as exc:
                    _log.error("ignoring SPANLEDGER_ALERT_WEBHOOK_URL: %s", exc)
                    url = ""
            if url and not secret:
                raise ConfigError("a webhook needs a shared secret to sign with: set SPANLEDGER_ALERT_WEBHOOK_SECRET")
        if url:
            self.deliverer = webhook.Deliverer(
                lambda: self.store,
                url=url,
                secret=secret,
                holder=self.holder,
                backoff=webhook.Backoff(retry_base_s, retry_max_s, give_up_after_s),
                adopt_after=adopt_after_s,
            )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- evaluation -----------------------------------------------------------------------------------
    def candidates(self) -> list[StoredAlert]:
        """Every alert the rules call for now, fired before or not."""
        now = self._now()
        out: list[StoredAlert] = []
        for status in report(self.store, now=now):
            budget = status.budget
            for pct in budget.alert_at:
                if status.spent * 100 < budget.limit * pct or not status.spent:
                    continue
                message = (
                    f"{status.subject} reached {pct}% of the {budget.period} budget: "
                    f"${status.spent.normalize():f} of ${budget.limit.normalize():f}"
                )
                out.append(
                    _make(
                        "threshold",
                        f"budget:{budget.id}:{pct}",
                        status.tenant_id,
                        status.user_id,
                        status.period_start,
                        status.spent,
                        budget.limit * pct / 100,
                        message,
                        now,
                        self.holder,
                        budget_id=budget.id,
                        percent=pct,
                        limit=decimal_string(budget.limit),
                        period=budget.period,
                        period_end=iso(status.period_end),
                        hard=budget.hard,
                    )
                )
        for rule in self.rules:
            out.extend(self._absolute(rule, now) if rule.kind == "absolute" else self._spikes(rule, now))
        return out

    def _absolute(self, rule: AlertRule, now: datetime) -> list[StoredAlert]:
        span = window(rule.period, now, "UTC")
        assert span is not None
        kind: Kind = "pair" if rule.scope == "user" else "tenant"
        out = []
        for (tenant, user), read in spend(self.store, kind, span.start, span.end, above=rule.amount).items():
            message = f"{_subject(tenant, user)} spent ${read.cost.normalize():f} ({rule.period}), over ${rule.amount.normalize():f}"
            out.append(
                _make(
                    "absolute",
                    rule.name,
                    tenant,
                    user,
                    span.start,
                    read.cost,
                    rule.amount,
                    message,
                    now,
                    self.holder,
                    period=rule.period,
                    period_end=iso(span.end),
                )
            )
        return out

    def _spikes(self, rule: AlertRule, now: datetime) -> list[StoredAlert]:
        day = window("daily", now, "UTC")
        assert day is not None
        out = []
        found = spikes(
            self.store,
            scope=rule.scope,
            window=rule.period,
            factor=rule.factor,
            floor=rule.amount,
            baseline_days=rule.baseline_days,
            now=now,
        )
        for s in found:
            message = (
                f"{_subject(s.tenant_id, s.user_id)} spent ${s.recent.normalize():f} in the last {rule.period}, "
                f"over {rule.factor.normalize():f}x its baseline of ${s.baseline.normalize():f}"
            )
            out.append(
                _make(
                    "spike",
                    rule.name,
                    s.tenant_id,
                    s.user_id,
                    day.start,
                    s.recent,
                    rule.factor * s.baseline,
                    message,
                    now,
                    self.holder,
                    baseline=decimal_string(s.baseline),
                    window=rule.period,
                    window_start=iso(s.window_start),
                    window_end=iso(s.window_end),
                    floor=decimal_string(rule.amount),
                )
            )
        return out

    def evaluate(self, *, dry_run: bool = False) -> list[StoredAlert]:
        """Fire what the rules call for and has not fired (this period); returns what this call fired (with
        ``dry_run``, what it would fire, changing nothing)."""
        wanted = self.candidates()
        if dry_run:
            before = alert_store.held(self.store, [a.id for a in wanted])
            return [a for a in wanted if a.id not in before]
        fired = alert_store.claim(self.store, wanted, self.holder)
        for alert in fired:
            _log.warning("spanledger alert: %s", json.loads(alert.body)["message"])
            if self.deliverer is not None:
                self.deliverer.enqueue(alert.id)
        return fired

    def deliver(self) -> int:
        """One round of webhook deliveries now (they also run on their own thread once started)."""
        return self.deliverer.run_once() if self.deliverer is not None else 0

    def test(self) -> tuple[int, str]:
        """POST a signed test alert to the webhook now; returns (HTTP status, error). Records nothing."""
        if self.deliverer is None:
            raise ConfigError("no webhook configured: set SPANLEDGER_ALERT_WEBHOOK_URL (and its secret)")
        now = self._now()
        alert = _make("test", "test", "", "", now, Decimal(0), Decimal(0), "spanledger test alert", now, self.holder)
        return webhook.post(
            self.deliverer.url, alert.body.encode(), self.deliverer._secret, alert_id=alert.id, attempt=1, timeout=5.0
        )

    def list(self, *, tenant_id: str | None = None, limit: int = 100) -> list[StoredAlert]:
        """The most recent alerts with their delivery state (``tenant_id``: that tenant's only)."""
        return alert_store.alerts(self.store, tenant_id=tenant_id, limit=limit)

    # --- running --------------------------------------------------------------------------------------
    def start(self) -> Alerts:
        """Evaluate every ``interval_s`` and deliver on background threads until :meth:`close`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spanledger-alerts", daemon=True)
            self._thread.start()
            if self.deliverer is not None:
                self.deliverer.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.evaluate()
            except Exception as exc:  # the store is down: try again next round
                _log.warning("spanledger alerts: evaluation failed (%s)", " ".join(str(exc).split())[:200])

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.deliverer is not None:
            self.deliverer.close()

    def __enter__(self) -> Alerts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rules(rules: Sequence[AlertRule | str] | None) -> list[AlertRule]:
    if rules is not None:
        return [r if isinstance(r, AlertRule) else AlertRule.parse(r) for r in rules]
    out = []
    for text in env_str("SPANLEDGER_ALERT_RULES", None, "").split(";"):
        if text.strip():
            try:
                out.append(AlertRule.parse(text))
            except ConfigError as exc:
                _log.error("ignoring an alert rule in SPANLEDGER_ALERT_RULES: %s", exc)
    return out

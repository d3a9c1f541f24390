"""Budgets without a store: periods in time zones, checked input, which budgets apply, sliding windows, rules."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from spanledger import AlertRule, Budget, ConfigError
from spanledger._budgets.book import BudgetBook, key_for
from spanledger._budgets.model import make_budget, parse_alert_at, parse_limit
from spanledger._budgets.periods import EPOCH, FOREVER, Window, window
from spanledger._budgets.ratelimit import SlidingWindow
from spanledger._budgets.spike import median
from spanledger._budgets.webhook import Backoff, check_url, signature

US = timedelta(microseconds=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- periods ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        ("daily", utc(2026, 12, 31), utc(2027, 1, 1)),
        ("weekly", utc(2026, 12, 28), utc(2027, 1, 4)),  # Monday to Monday
        ("monthly", utc(2026, 12, 1), utc(2027, 1, 1)),
        ("yearly", utc(2026, 1, 1), utc(2027, 1, 1)),
    ],
)
def test_a_utc_period_ends_exactly_where_the_next_begins(period: str, start: datetime, end: datetime) -> None:
    last = end - US
    assert window(period, last) == Window(start, end)
    assert window(period, start) == Window(start, end)
    following = window(period, end)
    assert following is not None and following.start == end and following.end > end
    assert window(period, end - US) != following


def test_a_tokyo_month_starts_at_tokyo_midnight() -> None:
    # December 2026 in Tokyo (UTC+9): from 2026-11-30 15:00 UTC to 2026-12-31 15:00 UTC
    december = Window(utc(2026, 11, 30, 15), utc(2026, 12, 31, 15))
    assert window("monthly", utc(2026, 11, 30, 15), "Asia/Tokyo") == december
    assert window("monthly", utc(2026, 12, 31, 15) - US, "Asia/Tokyo") == december
    january = window("monthly", utc(2026, 12, 31, 15), "Asia/Tokyo")
    assert january == Window(utc(2026, 12, 31, 15), utc(2027, 1, 31, 15))
    # in UTC the same instant is still December
    assert window("monthly", utc(2026, 12, 31, 15), "UTC") == Window(utc(2026, 12, 1), utc(2027, 1, 1))


def test_days_across_clock_changes_are_23_or_25_hours_and_still_adjoin() -> None:
    spring = window("daily", utc(2026, 3, 8, 12), "America/New_York")  # clocks go forward at 02:00
    assert spring == Window(utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))
    autumn = window("daily", utc(2026, 11, 1, 12), "America/New_York")  # clocks go back
    assert autumn == Window(utc(2026, 11, 1, 4), utc(2026, 11, 2, 5))
    # Santiago skips midnight itself on 2026-09-06: the day starts at the instant the clock jumps to 01:00
    skipped = window("daily", utc(2026, 9, 6, 12), "America/Santiago")
    before = window("daily", utc(2026, 9, 5, 12), "America/Santiago")
    assert skipped is not None and before is not None
    assert before.end == skipped.start == utc(2026, 9, 6, 4)
    assert skipped.end - skipped.start == timedelta(hours=23)


def test_lifetime_and_custom_periods() -> None:
    assert window("lifetime", utc(2026, 5, 5)) == Window(EPOCH, FOREVER)
    start, end = utc(2026, 6, 1, 12), utc(2026, 6, 15)
    assert window("custom", start, starts_at=start, ends_at=end) == Window(start, end)
    assert window("custom", start - US, starts_at=start, ends_at=end) is None
    assert window("custom", end, starts_at=start, ends_at=end) is None


def test_projection_is_exact_at_the_rate_so_far() -> None:
    june = Window(utc(2026, 6, 1), utc(2026, 7, 1))  # 30 days
    assert june.projected(Decimal("3.000000000003"), utc(2026, 6, 11)) == Decimal("9.000000000009")
    assert june.projected(Decimal(5), utc(2026, 6, 1)) is None  # nothing elapsed yet
    assert Window(EPOCH, FOREVER).projected(Decimal(5), utc(2026, 6, 11)) is None


# --- checked input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "negative"),
        ("ten dollars", "not a number"),
        (2.5, "never a float"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("0.0000000000001", "12 decimal places"),
        ("1e30", "under"),
        (None, "not a number"),
        (True, "never a float"),
    ],
)
def test_a_bad_limit_is_refused_with_a_clear_message(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_limit(value)


def test_limits_are_exact_decimals() -> None:
    assert parse_limit("$1,250.50") == Decimal("1250.50")
    assert parse_limit(5) == Decimal(5)
    assert parse_limit(Decimal("0.000000000001")) == Decimal("1e-12")
    assert parse_limit("0") == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"period": "fortnightly"}, "unknown period"),
        ({"timezone": "Mars/Olympus_Mons"}, "unknown time zone"),
        ({"timezone": "../../etc/passwd"}, "time zone"),
        ({"period": "custom"}, "needs a start and an end"),
        ({"period": "custom", "starts_at": utc(2026, 2, 1), "ends_at": utc(2026, 1, 1)}, "end after it starts"),
        ({"starts_at": utc(2026, 1, 1)}, "only a custom period"),
        ({"user_id": None}, "needs a subject"),
        ({"tag": "plan"}, "key=value"),
        ({"tag": "plan=free", "user_id": "alice"}, "no user id"),
        ({"default": True, "tenant_id": None}, "tenant default needs a tenant"),
        ({"user_id": "a\nb"}, "control characters"),
        ({"alert_at": "50,eighty"}, "alert threshold"),
        ({"alert_at": [0]}, "alert threshold"),
    ],
)
def test_a_bad_budget_is_refused(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"limit": "10", "period": "monthly", "user_id": "alice", **kwargs}
    with pytest.raises(ConfigError, match=message):
        make_budget(**args)  # type: ignore[arg-type]


def test_the_subject_decides_the_scope_and_the_id_is_stable() -> None:
    def scope(**kwargs: object) -> str:
        return make_budget(limit="5", period="monthly", **kwargs).scope  # type: ignore[arg-type]

    assert scope(user_id="alice") == "user"
    assert scope(tenant_id="acme") == "tenant"
    assert scope(user_id="alice", tenant_id="acme") == "pair"
    assert scope(tenant_id="acme", default=True) == "tenant_default"
    assert scope(tag="plan=free") == "tag_default"
    assert scope(tag=("plan", "free"), tenant_id="acme") == "tag_default"
    a = make_budget(limit="5", period="monthly", user_id="alice")
    b = make_budget(limit="9", period="monthly", user_id="alice", timezone="Asia/Tokyo", hard=False)
    assert a.id == b.id  # the same subject and period: setting it again replaces it
    assert a.id != make_budget(limit="5", period="daily", user_id="alice").id
    assert parse_alert_at("80%, 50,100,50") == (50, 80, 100)
    assert parse_alert_at("") == ()


# --- which budgets apply ------------------------------------------------------------------------------------


def _b(limit: str, **kwargs: object) -> Budget:
    return make_budget(limit=limit, period=str(kwargs.pop("period", "monthly")), **kwargs)  # type: ignore[arg-type]


def test_a_users_own_budget_wins_over_every_default_and_the_tenants_applies_on_top() -> None:
    free = _b("5", tag="plan=free")
    free_in_globex = _b("3", tag="plan=free", tenant_id="globex")
    acme_default = _b("20", tenant_id="acme", default=True)
    acme = _b("500", tenant_id="acme")
    alice = _b("50", user_id="alice")
    bob_in_acme = _b("70", user_id="bob", tenant_id="acme", period="daily")
    book = BudgetBook([free, free_in_globex, acme_default, acme, alice, bob_in_acme])

    assert book.applicable("acme", "carol", {"plan": "free"}) == [acme_default, free, acme]
    assert book.applicable("globex", "carol", {"plan": "free"}) == [free, free_in_globex]
    assert book.applicable("acme", "carol", {"plan": "pro"}) == [acme_default, acme]
    assert book.applicable("acme", "alice", {"plan": "free"}) == [alice, acme]  # her own budget wins
    assert book.applicable("acme", "bob", {"plan": "free"}) == [bob_in_acme, acme]
    assert book.applicable("globex", "bob", {"plan": "free"}) == [free, free_in_globex]  # his is acme's only
    assert book.applicable("acme", "", {"plan": "free"}) == [acme]  # no user: the tenant's budget alone

    at = utc(2026, 12, 15)
    assert key_for(alice, "acme", "alice", at).subject == ("", "alice")  # type: ignore[union-attr]
    assert key_for(free, "acme", "carol", at).subject == ("acme", "carol")  # type: ignore[union-attr]
    assert key_for(acme, "acme", "carol", at).subject == ("acme", "")  # type: ignore[union-attr]


# --- sliding windows ----------------------------------------------------------------------------------------


def test_a_sliding_minute_never_lets_more_through_than_its_limit() -> None:
    window = SlidingWindow(3, 60.0)
    for t in (0.0, 10.0, 59.0):
        assert window.wait("alice", 1, t) == 0
        window.add("alice", 1, t)
    assert window.wait("alice", 1, 59.5) == pytest.approx(0.5)  # the call at 0 leaves the window at 60
    assert window.wait("alice", 1, 60.0) == 0
    window.add("alice", 1, 60.0)
    assert window.wait("alice", 1, 60.0) == pytest.approx(10.0)
    assert window.wait("bob", 1, 60.0) == 0  # per subject


def test_a_token_window_waits_for_enough_tokens_to_leave_and_takes_real_counts() -> None:
    window = SlidingWindow(1000, 60.0)
    first = window.add("acme", 600, 0.0)
    window.add("acme", 300, 30.0)
    assert window.wait("acme", 200, 40.0) == pytest.approx(20.0)  # the 600 must leave
    assert window.wait("acme", 1001, 40.0) == 60.0  # never fits
    window.reweigh("acme", first, 50, 40.0)  # priced: the call used 50 tokens, not 600
    assert window.wait("acme", 600, 40.0) == 0
    window.remove("acme", first, 40.0)
    assert window.wait("acme", 700, 40.0) == 0


# --- rules, signatures, URLs --------------------------------------------------------------------------------


def test_alert_rules_in_text_and_their_bad_forms() -> None:
    rule = AlertRule.parse("absolute:user:daily:50")
    assert (rule.kind, rule.scope, rule.period, rule.amount) == ("absolute", "user", "daily", Decimal(50))
    spike = AlertRule.parse("spike:tenant:hour:5:10:7")
    assert (spike.factor, spike.amount, spike.baseline_days, spike.period) == (Decimal(5), Decimal(10), 7, "hour")
    assert AlertRule.parse(spike.name) == spike and AlertRule.parse(rule.name) == rule
    for bad in ("absolute:user:daily", "absolute:team:daily:5", "spike:user:week:5:10", "spike:user:hour:0.5:1",
                "absolute:user:daily:-5", "spike:user:hour:5:10:x", "loud:user"):  # fmt: skip
        with pytest.raises(ConfigError):
            AlertRule.parse(bad)


def test_the_signature_is_hmac_sha256_of_the_exact_body() -> None:
    body = b'{"id": "abc", "spent": "1.500000000000"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature(body, "s3cret") == f"sha256={expected}"
    assert signature(body + b" ", "s3cret") != signature(body, "s3cret")


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example/x", "file:///etc/passwd", "hooks.example/x", "http://", "https:// x", ""]
)
def test_a_webhook_url_must_be_http_or_https_with_a_host(url: str) -> None:
    with pytest.raises(ConfigError, match="webhook URL"):
        check_url(url)
    assert check_url("https://hooks.example/spend?x=1") == "https://hooks.example/spend?x=1"


def test_backoff_doubles_up_to_its_cap_and_the_median_is_exact() -> None:
    backoff = Backoff(base=1.0, cap=30.0)
    assert [backoff.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert median([Decimal(3), Decimal(1), Decimal(2)]) == 2
    assert median([Decimal("0.1"), Decimal("0.2")]) == Decimal("0.15")
    assert median([]) == 0

"""Alerts against a local HTTP receiver on 127.0.0.1: each threshold fires once per period, a restart does not
refire, deliveries retry while the receiver is down and succeed when it is back, signatures check; the spike
rule on a seeded history fires for the user stuck in a loop and not for the steadily heavy one."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from spanledger import AlertRule, Alerts, Budgets, ConfigError, Store
from spanledger._budgets import alert_store
from tests.integration.test_budgets_guard import store_calls, until

pytestmark = pytest.mark.integration

SECRET = "whsec-0123456789abcdef"
NOW = datetime(2026, 12, 15, 12, 30, tzinfo=UTC)


class Receiver:
    """A webhook receiver on 127.0.0.1 that can be down (port closed) or answer 503, and records what it got."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self.up()

    def up(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if owner.status == 200:
                    owner.received.append((dict(self.headers), body))
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/spend"

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.down()


@pytest.fixture
def alerts_on(store: Store, receiver: Receiver) -> Iterator[Callable[..., Alerts]]:
    made: list[Alerts] = []

    def make(**kwargs: Any) -> Alerts:
        kwargs.setdefault("webhook_url", receiver.url)
        kwargs.setdefault("webhook_secret", SECRET)
        kwargs.setdefault("retry_base_s", 0.05)
        kwargs.setdefault("now", lambda: NOW)
        alerts = Alerts(store, **kwargs)
        made.append(alerts)
        return alerts

    yield make
    for alerts in made:
        alerts.close()


def signed(headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Spanledger-Signature"], expected)


def test_each_threshold_fires_once_per_period_and_a_restart_does_not_refire(
    store: Store, receiver: Receiver, alerts_on: Callable[..., Alerts]
) -> None:
    Budgets(store).set(user_id="carol", tenant_id="acme", limit="1", period="monthly")
    spent_at = NOW - timedelta(hours=2)
    alerts = alerts_on()
    assert alerts.evaluate() == []
    store_calls(store, ("acme", "carol", "0.55", spent_at))
    assert [json.loads(a.body)["percent"] for a in alerts.evaluate()] == [50]
    assert alerts.evaluate() == []  # once per period
    store_calls(store, ("acme", "carol", "0.30", spent_at))
    assert [json.loads(a.body)["percent"] for a in alerts.evaluate()] == [80]
    store_calls(store, ("acme", "carol", "0.20", spent_at), ("globex", "carol", "5", spent_at))  # other tenant
    assert [json.loads(a.body)["percent"] for a in alerts.evaluate()] == [100]
    assert alerts.evaluate(dry_run=True) == [] and alerts.evaluate() == []
    assert alerts.deliver() == 3

    restarted = alerts_on()  # a new process on the same store
    assert restarted.evaluate() == [] and restarted.deliver() == 0
    bodies = receiver.bodies()
    assert [b["percent"] for b in bodies] == [50, 80, 100] and len({b["id"] for b in bodies}) == 3
    assert all(signed(headers, body) for headers, body in receiver.received)
    first = bodies[0]
    assert (first["type"], first["tenant_id"], first["user_id"], first["spent"]) == (
        "threshold",
        "acme",
        "carol",
        "0.550000000000",
    )
    assert first["limit"] == "1.000000000000" and first["period_start"] == "2026-12-01T00:00:00Z"
    assert {a.delivery for a in restarted.list()} == {"delivered"}
    assert restarted.list(tenant_id="globex") == []

    # January: a new period, the 50 % threshold fires again for January's spend only
    january = alerts_on(now=lambda: datetime(2027, 1, 2, tzinfo=UTC))
    assert january.evaluate() == []
    store_calls(store, ("acme", "carol", "0.5", datetime(2027, 1, 1, 8, tzinfo=UTC)))
    assert [(json.loads(a.body)["percent"], a.period_start.month) for a in january.evaluate()] == [(50, 1)]


def test_delivery_retries_while_the_receiver_is_down_and_survives_a_restart(
    store: Store, receiver: Receiver, alerts_on: Callable[..., Alerts]
) -> None:
    Budgets(store).set(tenant_id="umbrella", limit="10", period="daily", alert_at="100")
    store_calls(store, ("umbrella", "u1", "12", NOW - timedelta(minutes=5)))
    receiver.down()
    alerts = alerts_on(interval_s=3600).start()  # the delivery thread runs; evaluation is called here
    (fired,) = alerts.evaluate()
    assert until(lambda: alerts.list()[0].attempts >= 3)  # refused, retried with backoff
    (listed,) = alerts.list()
    assert listed.delivery == "pending" and "refused" in listed.last_error.lower()
    alerts.close()  # the process stops with the delivery still pending

    receiver.status = 503
    receiver.up()
    restarted = alerts_on(adopt_after_s=0)
    assert restarted.evaluate() == []  # not fired again
    assert until(lambda: restarted.deliver() == 0 and restarted.list()[0].last_error == "HTTP 503")
    assert restarted.list()[0].delivery == "pending"  # the receiver is back but answers 503
    receiver.status = 200
    restarted.start()
    assert until(lambda: restarted.list()[0].delivery == "delivered")
    ((headers, body),) = receiver.received  # delivered once
    assert signed(headers, body) and json.loads(body)["id"] == fired.id == headers["X-Spanledger-Alert-Id"]
    assert int(headers["X-Spanledger-Attempt"]) == restarted.list()[0].attempts >= 5
    assert json.loads(body)["message"] == "tenant umbrella reached 100% of the daily budget: $12 of $10"


def test_two_processes_evaluating_at_once_fire_each_alert_once(store: Store, alerts_on: Callable[..., Alerts]) -> None:
    budgets = Budgets(store)
    for n in range(20):
        budgets.set(user_id=f"user{n}", limit="1", period="daily", alert_at="10,20")
        store_calls(store, ("acme", f"user{n}", "0.5", NOW - timedelta(minutes=1)))
    a, b = alerts_on(webhook_url=""), alerts_on(webhook_url="")
    start = threading.Barrier(2)
    fired: dict[str, list[str]] = {}

    def run(alerts: Alerts, name: str) -> None:
        start.wait()
        fired[name] = [x.id for x in alerts.evaluate()]

    threads = [threading.Thread(target=run, args=(x, n)) for x, n in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fired["a"]) + len(fired["b"]) == 40 and not set(fired["a"]) & set(fired["b"])
    assert len(a.list(limit=1000)) == 40


def test_a_claim_that_lost_the_race_fires_nothing_even_with_a_clock_behind(
    store: Store, alerts_on: Callable[..., Alerts], monkeypatch: pytest.MonkeyPatch
) -> None:
    """B looked before A claimed, and claims after A; B's clock is a minute behind, so B's row would be the
    earliest: the alert's id as the insert's deduplication token is what keeps B's claim out."""
    Budgets(store).set(user_id="dora", limit="1", period="daily", alert_at="50")
    store_calls(store, ("acme", "dora", "0.75", NOW - timedelta(minutes=5)))
    (fired,) = alerts_on(webhook_url="").evaluate()
    late = alerts_on(webhook_url="", now=lambda: NOW - timedelta(minutes=1))
    real_held = alert_store.held
    looks = []

    def looked_too_early(store: Store, ids: Any) -> dict[str, str]:
        looks.append(ids)
        return {} if len(looks) == 1 else real_held(store, ids)

    monkeypatch.setattr(alert_store, "held", looked_too_early)
    assert late.evaluate() == [] and len(looks) == 2
    assert [a.id for a in late.list()] == [fired.id]


def test_the_spike_rule_fires_for_the_user_stuck_in_a_loop_not_for_the_steadily_heavy_one(
    store: Store, alerts_on: Callable[..., Alerts]
) -> None:
    history = []
    for day in range(1, 15):  # 2026-12-01 .. 12-14, at noon
        at = datetime(2026, 12, day, 12, tzinfo=UTC)
        history += [("acme", "steady", "20", at), ("acme", "looping", "0.10", at), ("globex", "tiny", "0.01", at)]
    last_hour = NOW - timedelta(minutes=20)
    history += [
        ("acme", "steady", "3.50", last_hour),  # heavy, but within 5 x its own hourly baseline ($4.17)
        ("acme", "looping", "1.25", last_hour),
        ("acme", "looping", "1.25", last_hour),  # $2.50 against a baseline of $0.10 a day
        ("globex", "tiny", "1.50", last_hour),  # 150 x its baseline, but under the $2 floor
        ("globex", "newcomer", "2.10", last_hour),  # no history at all: over the floor, so it fires
    ]
    store_calls(store, *history)
    rules = ["spike:user:hour:5:2", "absolute:user:daily:3", "spike:tenant:day:3:10"]
    alerts = alerts_on(rules=rules, webhook_url="")
    fired = alerts.evaluate()
    spikes = sorted((a.user_id, a.spent) for a in fired if a.kind == "spike")
    assert spikes == [("looping", Decimal("2.50")), ("newcomer", Decimal("2.10"))]
    (looping,) = [json.loads(a.body) for a in fired if a.user_id == "looping"]
    assert looping["baseline"] == "0.004166666667" and looping["window"] == "hour"  # $0.10 / 24
    assert [(a.user_id, a.spent) for a in fired if a.kind == "absolute"] == [("steady", Decimal("3.50"))]
    assert alerts.evaluate() == []  # once per subject, rule and day
    later = alerts_on(rules=rules, webhook_url="", now=lambda: NOW + timedelta(minutes=30))
    assert later.evaluate() == []


def test_bad_alert_configuration_is_refused_and_changes_nothing(store: Store) -> None:
    with pytest.raises(ConfigError, match="webhook URL"):
        Alerts(store, webhook_url="ftp://hooks.example/x", webhook_secret=SECRET)
    with pytest.raises(ConfigError, match="secret"):
        Alerts(store, webhook_url="https://hooks.example/x")
    with pytest.raises(ConfigError, match="bad alert period 'hourly'"):
        Alerts(store, rules=["absolute:user:hourly:5"])
    with pytest.raises(ConfigError, match="no webhook"):
        Alerts(store).test()
    assert AlertRule.absolute("tenant", "weekly", "7").name == "absolute:tenant:weekly:7"


def test_the_test_alert_is_signed_and_recorded_nowhere(
    store: Store, receiver: Receiver, alerts_on: Callable[..., Alerts]
) -> None:
    alerts = alerts_on()
    assert alerts.test() == (200, "")
    ((headers, body),) = receiver.received
    assert signed(headers, body) and json.loads(body)["type"] == "test"
    assert alerts.list() == []
    receiver.down()
    status, error = alerts.test()
    assert status == 0 and "refused" in error.lower()

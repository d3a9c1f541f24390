"""Delivering alerts to a webhook: a JSON body signed with HMAC-SHA256, retried with exponential backoff while
the receiver is down, the queue kept in the store so that a restart resumes it.

Each request carries ``X-Spanledger-Signature: sha256=<hex>``, the HMAC-SHA256 of the exact body under the
shared secret; a receiver recomputes it (:func:`signature`) and compares in constant time. The body's ``id``
is the alert's, the same on every attempt: delivery is at least once, so a receiver that may see an alert twice
(a crash between its answer and our record of it) drops the repeat by id. Redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from .._errors import ConfigError
from .._store.store import Store
from . import alert_store

_log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Spanledger-Signature"


def signature(body: bytes, secret: str) -> str:
    """The signature header's value for ``body``: ``sha256=`` and the hex HMAC-SHA256 under ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host, else a ConfigError."""
    if not isinstance(url, str) or len(url) > 2048 or any(c.isspace() for c in url):
        raise ConfigError(f"bad webhook URL {str(url)[:60]!r}: an http(s) URL such as https://hooks.example/spend")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"bad webhook URL {url[:60]!r}: only http:// and https:// URLs with a host")
    return url


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a 3xx is an answer like any other: not delivered


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(url: str, body: bytes, secret: str, *, alert_id: str, attempt: int, timeout: float) -> tuple[int, str]:
    """POST one signed body; returns (HTTP status, error), status 0 when no answer came."""
    from .. import __version__

    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": f"spanledger/{__version__}",
            SIGNATURE_HEADER: signature(body, secret),
            "X-Spanledger-Alert-Id": alert_id,
            "X-Spanledger-Attempt": str(attempt),
        },
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code), f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:  # refused, reset, timed out, a name that does not resolve
        reason = getattr(exc, "reason", exc)
        return 0, " ".join(str(reason).split())[:200] or type(exc).__name__
    return status, "" if 200 <= status < 300 else f"HTTP {status}"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Seconds before attempt ``n + 1`` after ``n`` failures: ``base * 2 ** (n - 1)``, at most ``cap``; a delivery
    still failing ``give_up`` seconds after its alert fired is marked failed (and logged)."""

    base: float = 1.0
    cap: float = 300.0
    give_up: float = 86_400.0

    def delay(self, failures: int) -> float:
        return float(min(self.cap, self.base * 2 ** max(0, failures - 1)))


class Deliverer:
    """Sends queued alerts to one webhook on its own thread; the queue lives in the store.

    Args:
        store: Returns the store.
        url, secret: The webhook and its shared secret.
        holder: Who this deliverer is (recorded on every state it writes).
        adopt_after: Seconds after which a pending delivery another process last touched is taken over (its
            process has presumably gone); this process's own are resumed at once.
    """

    def __init__(
        self,
        store: Callable[[], Store],
        *,
        url: str,
        secret: str,
        holder: str,
        backoff: Backoff,
        adopt_after: float = 600.0,
        timeout: float = 5.0,
    ) -> None:
        self._store = store
        self.url = check_url(url)
        self._secret = secret
        self.holder = holder
        self.backoff = backoff
        self.adopt_after = adopt_after
        self.timeout = timeout
        self.stats = {"delivered": 0, "failed_attempts": 0, "gave_up": 0}
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def enqueue(self, alert_id: str) -> None:
        """Queue an alert fired (and claimed) by this process: delivered at the next round."""
        alert_store.record_delivery(
            self._store(),
            alert_id,
            url=self.url,
            state="pending",
            attempts=0,
            next_at=datetime.now(UTC),
            holder=self.holder,
        )
        self._wake.set()

    def run_once(self) -> int:
        """Attempt every delivery due (this process's, and others' left pending too long); returns how many
        were delivered."""
        store, now = self._store(), datetime.now(UTC)
        delivered = 0
        for item in alert_store.pending(store):
            if item.next_at > now:
                continue
            if item.holder != self.holder and (now - item.updated_at).total_seconds() < self.adopt_after:
                continue  # another process is on it
            attempt = item.attempts + 1
            status, error = post(
                item.url,
                item.body.encode(),
                self._secret,
                alert_id=item.alert_id,
                attempt=attempt,
                timeout=self.timeout,
            )
            if not error:
                alert_store.record_delivery(
                    store,
                    item.alert_id,
                    url=item.url,
                    state="delivered",
                    attempts=attempt,
                    next_at=now,
                    holder=self.holder,
                    status=status,
                )
                self.stats["delivered"] += 1
                delivered += 1
                continue
            self.stats["failed_attempts"] += 1
            fired = _fired_at(item)
            if (now - fired).total_seconds() > self.backoff.give_up:
                state, next_at = "failed", now
                self.stats["gave_up"] += 1
                _log.error(
                    "spanledger alert %s: giving up on %s after %d attempts (%s)",
                    item.alert_id,
                    item.url,
                    attempt,
                    error,
                )
            else:
                state, next_at = "pending", now + timedelta(seconds=self.backoff.delay(attempt))
                _log.warning(
                    "spanledger alert %s: webhook attempt %d failed (%s); next at %s",
                    item.alert_id,
                    attempt,
                    error,
                    next_at,
                )
            alert_store.record_delivery(
                store,
                item.alert_id,
                url=item.url,
                state=state,
                attempts=attempt,
                next_at=next_at,
                holder=self.holder,
                status=status,
                error=error,
            )
        return delivered

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spanledger-webhook", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            try:
                self.run_once()
            except Exception as exc:  # the store is down: the queue waits in it
                _log.warning("spanledger alerts: webhook deliveries wait (%s)", " ".join(str(exc).split())[:200])
            self._wake.wait(timeout=max(0.01, min(self.backoff.base, 1.0)))
            self._wake.clear()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5)


def _fired_at(item: alert_store.Delivery) -> datetime:
    """When the alert behind a delivery fired (its body says; else the delivery's last update)."""
    try:
        return datetime.fromisoformat(json.loads(item.body)["fired_at"].replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError):
        return item.updated_at

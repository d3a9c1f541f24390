"""Pseudonymous ids: a user (and optionally tenant) id replaced by a keyed hash before anything leaves the process.

A pseudonym is ``sl_`` followed by the first 32 hex digits (128 bits) of HMAC-SHA256(key, id): 35 ASCII
characters, the same for the same id and key in every process, so attribution across services, look-ups
and ``forget`` keep working while the ledger never holds the id in clear. Hashing is idempotent: a value
that already has the pseudonym's form (``sl_`` + 32 lower-case hex digits) is left as it is, so a span
hashed by one process and read by another, or an id given twice, comes out the same.

The key comes from ``key=`` or ``SPANLEDGER_ID_KEY`` (at least 16 characters); setting it turns
pseudonymisation on for the processor, the exporter, ``record_call``, the CLI and the API.
``SPANLEDGER_PSEUDONYMIZE=off`` keeps ids in clear while the key still serves ``forget``'s audit records;
``SPANLEDGER_PSEUDONYMIZE=users,tenants`` hashes tenant ids too.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import secrets
from typing import Final

from .._errors import ConfigError

_log = logging.getLogger(__name__)

PREFIX: Final = "sl_"
"""What every pseudonym starts with."""
DIGEST_CHARS: Final = 32
"""Hex digits of the HMAC kept (128 bits)."""
PSEUDONYM_LENGTH: Final = len(PREFIX) + DIGEST_CHARS
"""35 characters."""
ANONYMOUS_PREFIX: Final = "anon_"
"""What ``forget --mode anonymize`` puts in place of an id: ``anon_`` + 32 random hex digits."""
MIN_KEY_CHARS: Final = 16
KEY_ENV: Final = "SPANLEDGER_ID_KEY"
MODE_ENV: Final = "SPANLEDGER_PSEUDONYMIZE"
_HEX = frozenset("0123456789abcdef")
_CACHE_SIZE = 65_536
_AUDIT_LABEL = b"spanledger-forget-audit\x00"


def is_pseudonym(value: str) -> bool:
    """Whether ``value`` already has a pseudonym's form (``sl_`` + 32 lower-case hex digits)."""
    return len(value) == PSEUDONYM_LENGTH and value.startswith(PREFIX) and _HEX.issuperset(value[len(PREFIX) :])


def random_pseudonym() -> str:
    """A fresh random stand-in for an id (``anon_`` + 32 hex digits): linked to nothing, not even by the key."""
    return ANONYMOUS_PREFIX + secrets.token_hex(DIGEST_CHARS // 2)


class Pseudonymizer:
    """Replaces ids by ``sl_`` + 32 hex digits of HMAC-SHA256(key, id); see the module docs.

    Args:
        key: The secret (at least 16 characters). Keep it: the same id must give the same pseudonym in every
            process and later, for look-ups and ``forget``.
        tenants: Hash tenant ids too (``tenant()``); by default they stay in clear.
    """

    __slots__ = ("_cache", "_key", "tenants")

    def __init__(self, key: str | bytes, *, tenants: bool = False) -> None:
        raw = key.encode() if isinstance(key, str) else bytes(key)
        if len(raw) < MIN_KEY_CHARS:
            raise ConfigError(f"the id key must be at least {MIN_KEY_CHARS} characters long, got {len(raw)}")
        self._key = raw
        self.tenants = tenants
        self._cache: dict[str, str] = {}

    def __repr__(self) -> str:  # never the key
        return f"Pseudonymizer(tenants={self.tenants})"

    def __call__(self, value: str) -> str:
        """The pseudonym of a user id; ``""`` (no user) stays ``""``, a pseudonym stays itself."""
        found = self._cache.get(value)
        if found is not None:
            return found
        if not value or is_pseudonym(value):
            return value
        digest = hmac.new(self._key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        out = PREFIX + digest[:DIGEST_CHARS]
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[value] = out
        return out

    def tenant(self, value: str) -> str:
        """The tenant id as stored: its pseudonym when tenants are hashed, else itself."""
        return self(value) if self.tenants else value

    def audit_hash(self, value: str) -> str:
        """What ``forget``'s audit record holds for an id: a keyed hash of its pseudonym under another label, so
        the record names neither the id nor the pseudonym that was in the store, yet a second request for the
        same id (in clear or as its pseudonym) finds it."""
        canonical = self(value).encode()
        return hmac.new(self._key, _AUDIT_LABEL + canonical, hashlib.sha256).hexdigest()


def from_env(*, required: bool = False) -> Pseudonymizer | None:
    """The pseudonymizer ``SPANLEDGER_ID_KEY`` describes, whatever ``SPANLEDGER_PSEUDONYMIZE`` says (``forget``
    needs the key even when ids are kept in clear); ``None`` without a key, or a :class:`ConfigError` when
    ``required``."""
    key = os.environ.get(KEY_ENV, "")
    if not key:
        if required:
            raise ConfigError(
                f"no id key: set {KEY_ENV} (a secret of at least {MIN_KEY_CHARS} characters; the same one the "
                "exporters use) — forget records a keyed hash of the id, never the id"
            )
        return None
    modes = {m.strip().lower() for m in os.environ.get(MODE_ENV, "users").split(",") if m.strip()}
    try:
        return Pseudonymizer(key, tenants="tenants" in modes)
    except ConfigError as exc:
        if required:
            raise ConfigError(f"{KEY_ENV}: {exc}") from None
        _log.error("%s is too short (%s); ids are hashed with it all the same: set a longer key", KEY_ENV, exc)
        return _Weak(key, tenants="tenants" in modes)


def _enabled_in_env() -> bool:
    """Whether ``SPANLEDGER_PSEUDONYMIZE`` leaves hashing on (it is on whenever a key is set, unless ``off``)."""
    return os.environ.get(MODE_ENV, "").strip().lower() not in ("off", "none", "false", "0", "no")


def resolve(pseudonymize: Pseudonymizer | bool | None) -> Pseudonymizer | None:
    """The pseudonymizer a ``pseudonymize=`` argument asks for: one given; ``True`` → from the environment (a
    :class:`ConfigError` without a key); ``False`` → none; ``None`` → from the environment when a key is set."""
    if isinstance(pseudonymize, Pseudonymizer):
        return pseudonymize
    if pseudonymize is False:
        return None
    if pseudonymize is True:
        return from_env(required=True)
    return _env_cached(os.environ.get(KEY_ENV, ""), os.environ.get(MODE_ENV, "")) if _enabled_in_env() else None


@functools.lru_cache(maxsize=4)
def _env_cached(key: str, mode: str) -> Pseudonymizer | None:
    """One pseudonymizer (and its cache of hashed ids) per key and mode the environment has held."""
    return from_env()


def lookup_id(value: str) -> str:
    """A user id as the CLI and the API look it up: hashed when the environment pseudonymizes ids."""
    found = resolve(None)
    return found(value) if found is not None else value


def lookup_tenant(value: str) -> str:
    """A tenant id as the CLI and the API look it up: hashed when the environment pseudonymizes tenants."""
    found = resolve(None)
    return found.tenant(value) if found is not None else value


class _Weak(Pseudonymizer):
    """A pseudonymizer with a key shorter than advised, from the environment only (logged; never refused there:
    a short key is still better than ids in clear)."""

    def __init__(self, key: str | bytes, *, tenants: bool = False) -> None:
        self._key = key.encode() if isinstance(key, str) else bytes(key)
        self.tenants = tenants
        self._cache = {}

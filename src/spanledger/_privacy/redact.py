"""Redaction of captured content: what runs on a prompt or completion before it is stored or forwarded.

Content capture is off by default. When it is on, every captured text goes through a :class:`Redactor`: the
application's own callable first (it sees the text as captured), then the built-in patterns, each replaced
by a marker that says what was there:

==============  ==================================================================  ==============
what            recognised as                                                       replaced by
==============  ==================================================================  ==============
API keys        ``sk-…`` (OpenAI, Anthropic ``sk-ant-…``), AWS ``AKIA…``, GitHub     ``[api_key]``
                ``ghp_…``/``gho_…``…, Slack ``xox?-…``, Google ``AIza…``,
                ``Bearer <token>``
e-mail          ``local@domain.tld``                                                ``[email]``
card numbers    13–19 digits, spaces or dashes between, passing the Luhn check      ``[card]``
phone numbers   ``+`` and 8–15 digits (spaces, dots, dashes, brackets between), or  ``[phone]``
                ``(555) 123-4567`` / ``555-123-4567`` / ``555.123.4567``
==============  ==================================================================  ==============

A callable that raises does not let the text through: the content is dropped (stored empty) and the call
flagged ``redaction_failed``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from .._config import env_bool

API_KEY: Final = "[api_key]"
EMAIL: Final = "[email]"
CARD: Final = "[card]"
PHONE: Final = "[phone]"

_API_KEYS = re.compile(
    r"\bsk-[A-Za-z0-9_-]{16,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{36,}"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"
    r"|\bAIza[0-9A-Za-z_-]{35}"
    r"|\bBearer\s+[A-Za-z0-9._~+/-]{16,}=*",
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_PHONE = re.compile(
    r"(?<![\w+])\+\d(?:[\s.()-]{0,2}\d){7,14}(?!\d)"  # international: + and 8-15 digits
    r"|(?<!\w)(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?!\d)"  # (555) 123-4567, 555-123-4567, 555.123.4567
)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return CARD if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


def redact_builtin(text: str) -> str:
    """``text`` with every built-in pattern replaced by its marker (see the module docs)."""
    text = _API_KEYS.sub(API_KEY, text)
    text = _EMAIL.sub(EMAIL, text)
    text = _CARD.sub(_card, text)
    return _PHONE.sub(PHONE, text)


class Redactor:
    """The redaction step for captured content: ``custom`` (if given), then the built-in patterns.

    Args:
        custom: The application's own redaction, ``str -> str``; runs first, on the text as captured.
        builtin: Apply the built-in patterns (default on).
    """

    __slots__ = ("builtin", "custom")

    def __init__(self, custom: Callable[[str], str] | None = None, *, builtin: bool = True) -> None:
        self.custom = custom
        self.builtin = builtin

    def __call__(self, text: str) -> str:
        """The redacted text; raises whatever ``custom`` raises (the caller drops the content then)."""
        if self.custom is not None:
            text = self.custom(text)
            if not isinstance(text, str):
                raise TypeError(f"the redaction callable returned {type(text).__name__}, not str")
        return redact_builtin(text) if self.builtin and text else text


def resolve(redact: Redactor | Callable[[str], str] | bool | None) -> Redactor | None:
    """The redactor a ``redact=`` argument asks for: one given; a callable → it plus the built-in patterns;
    ``False`` → none (content kept as captured); ``True`` or ``None`` → the built-in patterns, unless
    ``SPANLEDGER_REDACT=false``."""
    if isinstance(redact, Redactor):
        return redact
    if redact is False:
        return None
    if callable(redact):
        return Redactor(redact)
    if redact is None and not env_bool("SPANLEDGER_REDACT", None, True):
        return None
    return Redactor()

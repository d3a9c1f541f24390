"""What pseudonymisation and redaction change on a span's attributes: the ids any instrumentation put there (every
name in :data:`~spanledger._capture.conventions.SPAN_USER_KEYS`, and the tenant names when tenants are hashed)
and the captured content (:data:`PROMPT_KEYS`, :data:`COMPLETION_KEYS`). Used by the processor (at span start)
and by the forwarder (on the copy handed to another exporter)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from .._capture.conventions import COMPLETION_KEYS, PROMPT_KEYS, SPAN_TENANT_KEYS, SPAN_USER_KEYS
from .pseudonym import Pseudonymizer

_log = logging.getLogger(__name__)

CONTENT_KEYS = PROMPT_KEYS + COMPLETION_KEYS


def hashed_ids(attrs: Mapping[str, Any], pseudonymize: Pseudonymizer) -> dict[str, str]:
    """The id attributes of ``attrs`` that are not pseudonyms yet, each with its pseudonym."""
    out: dict[str, str] = {}
    for key in SPAN_USER_KEYS:
        value = attrs.get(key)
        if value is not None and value != "":
            hashed = pseudonymize(str(value))
            if hashed != value:
                out[key] = hashed
    if pseudonymize.tenants:
        for key in SPAN_TENANT_KEYS:
            value = attrs.get(key)
            if value is not None and value != "":
                hashed = pseudonymize.tenant(str(value))
                if hashed != value:
                    out[key] = hashed
    return out


def redacted_content(attrs: Mapping[str, Any], redact: Callable[[str], str]) -> dict[str, Any]:
    """The content attributes of ``attrs`` that redaction changes, redacted (emptied when redaction fails)."""
    out: dict[str, Any] = {}
    for key in CONTENT_KEYS:
        value = attrs.get(key)
        if isinstance(value, str):
            new: Any = safely(redact, value)
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            new = tuple(safely(redact, v) for v in value)
        else:
            continue
        if new != value:
            out[key] = new
    return out


def safely(redact: Callable[[str], str], text: str) -> str:
    """``redact(text)``, or ``""`` when it raises (the text never goes out unredacted)."""
    try:
        return redact(text)
    except Exception:
        _log.warning("content redaction failed; the content is dropped", exc_info=True)
        return ""

"""What every span says, read the same way for an LLM call and a tool execution: ids made safe to store, text
made storable, who the work was for (user, tenant, tags), when it ran and whether it failed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from .attribution import USER_ATTRIBUTE

MAX_ID_CHARS: Final = 256
"""The longest user, tenant or tool name stored; longer ones are cut and flagged."""
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_MIN_TS_NS: Final = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1e9)
_FUTURE_SLACK_NS: Final = 24 * 3600 * 10**9

Found = dict[str, tuple[str, Any]]
"""The best-ranked ``(attribute, value)`` a span has for each concept (``user``, ``tenant``, ``model`` …)."""


def first(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str, Any] | None:
    """The first of ``keys`` the span has a non-empty value for, with that value."""
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return key, value
    return None


def utf8(text: str) -> str:
    """``text`` made encodable as UTF-8 (a lone surrogate becomes U+FFFD) so it can be stored."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return text


def clean_id(value: object, flags: list[str], what: str) -> str:
    """A user or tenant id made safe to store: valid UTF-8, no control characters, at most 256 chars."""
    if (
        type(value) is str
        and value.isascii()
        and value.isprintable()  # printable ASCII: no control characters
        and len(value) <= MAX_ID_CHARS
        and value[:1] != " "
        and value[-1:] != " "
    ):
        return value  # the usual id, checked at C speed
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    else:
        text = value if isinstance(value, str) else str(value)
    cleaned = _CONTROL_CHARS.sub("", utf8(text)).strip()
    if cleaned != text:
        flags.append(f"{what}_cleaned")
    if len(cleaned) > MAX_ID_CHARS:
        cleaned = cleaned[:MAX_ID_CHARS]
        flags.append(f"{what}_truncated")
    return cleaned


def text(value: object) -> str:
    """An attribute's value as storable text (a list joined by lines)."""
    if isinstance(value, str):
        return utf8(value)
    if isinstance(value, (list, tuple)):
        return utf8("\n".join(str(v) for v in value))
    return utf8(str(value))


def attribution(
    found: Found, tag_attrs: list[tuple[str, Any]], flags: list[str]
) -> tuple[str, str, str, dict[str, str]]:
    """User id, where it came from (``attribution`` or ``span``), tenant id and tags, cleaned."""
    user_id, user_source = "", ""
    user_found = found.get("user")
    if user_found:
        user_id = clean_id(user_found[1], flags, "user_id")
        user_source = "attribution" if user_found[0] == USER_ATTRIBUTE else "span"
    tenant_found = found.get("tenant")
    tenant_id = clean_id(tenant_found[1], flags, "tenant_id") if tenant_found else ""
    tags = {clean_id(k, flags, "tag"): clean_id(v, flags, "tag") for k, v in tag_attrs}
    return user_id, user_source, tenant_id, tags


def timing(span: ReadableSpan, now_ns: int, flags: list[str]) -> tuple[datetime, int]:
    """When the span started (now, flagged ``clock_skew``, when its clock is implausible) and its duration (µs)."""
    start_ns = span.start_time if span.start_time is not None else now_ns
    end_ns = span.end_time or start_ns
    duration_us = max(0, (end_ns - start_ns) // 1000)
    if start_ns < _MIN_TS_NS or start_ns > now_ns + _FUTURE_SLACK_NS:
        flags.append("clock_skew")
        start_ns = now_ns
    return datetime.fromtimestamp(start_ns // 10**9, tz=UTC).replace(
        microsecond=(start_ns // 1000) % 10**6
    ), duration_us


def error(span: ReadableSpan, attrs: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the span failed (an error status or an ``error.type``) and the error's type."""
    is_error = span.status.status_code is StatusCode.ERROR
    error_type = text(attrs.get("error.type", "")) if is_error or "error.type" in attrs else ""
    if is_error and not error_type:
        error_type = text(
            next(
                (e.attributes.get("exception.type", "") for e in span.events if e.name == "exception" and e.attributes),
                "",
            )
            or "error"
        )
    return is_error or "error.type" in attrs, str(error_type)[:128]


def service(span: ReadableSpan) -> str:
    """The ``service.name`` of the process that emitted the span (empty when its resource has none)."""
    resource_attrs = span.resource.attributes if span.resource else {}
    return str(resource_attrs.get("service.name", ""))[:128]

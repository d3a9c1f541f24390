"""Profile rows from a file or a request, checked whole before anything is written.

A row names its customer by ``user_id`` and ``tenant_id`` (the tenant's own profile has no user id) and may
give ``display_name``, ``email``, ``plan``, ``metadata`` (an object) and ``metadata.<key>`` entries. What a
row gives replaces the stored value (``""`` or ``null`` clears it); what it leaves out is kept — so a CSV
with only ``user_id,email`` columns sets e-mails and keeps names. ``metadata`` replaces the whole map;
``metadata.<key>`` sets one entry (an empty value removes it) on top of it, or of the stored map.

Every problem is reported as ``line N: …`` — with ids, never a name or an e-mail address, so an error can be
logged or shown anywhere — and one bad row means nothing is written.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import ConfigError, ImportRejected
from .._model.customer import Customer

MAX_ROWS = 100_000
"""Rows one import may hold (written as one insert, which ClickHouse applies whole)."""
MAX_ID_CHARS = 256
MAX_NAME_CHARS = 256
MAX_EMAIL_CHARS = 320
MAX_PLAN_CHARS = 64
MAX_METADATA_ENTRIES = 64
MAX_METADATA_KEY_CHARS = 128
MAX_METADATA_VALUE_CHARS = 1024

_TEXT_FIELDS = {"display_name": MAX_NAME_CHARS, "email": MAX_EMAIL_CHARS, "plan": MAX_PLAN_CHARS}
_ID_FIELDS = ("user_id", "tenant_id")
_KNOWN = frozenset({*_ID_FIELDS, *_TEXT_FIELDS, "metadata"})
_META_PREFIX = "metadata."
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class ProfileChange:
    """One row: whose profile, and the fields it gives (the others are kept)."""

    tenant_id: str
    user_id: str
    values: dict[str, Any] = field(default_factory=dict)
    """``display_name``, ``email``, ``plan``: the new text; ``metadata``: the new map."""
    metadata_entries: dict[str, str] = field(default_factory=dict)
    """``metadata.<key>`` entries to set on top (``""`` removes the key)."""
    line: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return self.tenant_id, self.user_id

    def applied_to(self, current: Customer | None) -> Customer:
        """The profile this row makes of ``current`` (the stored one, or none): times left to the store."""
        base = current or Customer(self.tenant_id, self.user_id)
        values = {name: getattr(base, name) for name in ("display_name", "email", "plan", "metadata")}
        values.update(self.values)
        metadata = dict(values["metadata"])
        for key, value in self.metadata_entries.items():
            if value:
                metadata[key] = value
            else:
                metadata.pop(key, None)
        values["metadata"] = dict(sorted(metadata.items()))
        return Customer(self.tenant_id, self.user_id, **values, created_at=base.created_at)


def change_of(
    row: Mapping[str, Any], *, line: int = 0, user_id: str | None = None, tenant_id: str | None = None
) -> ProfileChange:
    """One row checked (``user_id`` / ``tenant_id``: given by a URL rather than the row); raises
    :class:`ImportRejected` with every problem it has."""
    errors: list[str] = []
    change = _check(row, errors, line=line, user_id=user_id, tenant_id=tenant_id)
    if errors or change is None:
        raise ImportRejected(errors)
    return change


def changes_of(rows: Iterable[tuple[int, Any]], *, source: str = "") -> list[ProfileChange]:
    """Every row (with its line number) checked, and the file as a whole (no customer twice, at most
    :data:`MAX_ROWS`); raises :class:`ImportRejected` listing every problem."""
    errors: list[str] = []
    out: list[ProfileChange] = []
    first: dict[tuple[str, str], int] = {}
    for line, row in rows:
        if len(out) >= MAX_ROWS:
            errors.append(f"line {line}: more than {MAX_ROWS:,} rows; split the file")
            break
        change = _check(row, errors, line=line)
        if change is None:
            continue
        if change.key in first:
            errors.append(f"line {line}: {_who(change.key)} is already given on line {first[change.key]}")
            continue
        first[change.key] = line
        out.append(change)
    if errors:
        raise ImportRejected(errors, source=source)
    return out


def read_text(text: str, *, format: str, source: str = "") -> list[ProfileChange]:
    """The rows of a CSV (a header line first) or JSON Lines text (``format``: ``csv`` or ``jsonl``)."""
    if format == "csv":
        return changes_of(_csv_rows(text, source), source=source)
    if format == "jsonl":
        return changes_of(_jsonl_rows(text), source=source)
    raise ConfigError(f"unknown profile file format {format!r}: use csv or jsonl")


def format_of(name: str) -> str:
    """``csv`` or ``jsonl`` from a file name's extension (``.json`` and ``.ndjson`` are JSON Lines too)."""
    lowered = name.lower()
    if lowered.endswith(".csv"):
        return "csv"
    if lowered.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    raise ConfigError(f"{name}: cannot tell the format from the name; use a .csv or .jsonl file")


def _csv_rows(text: str, source: str) -> Iterator[tuple[int, Any]]:
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise ImportRejected([f"line 1: {exc}"], source=source) from None
    names = [h.strip() for h in header]
    unknown = [n for n in names if n not in _KNOWN and not (n.startswith(_META_PREFIX) and len(n) > len(_META_PREFIX))]
    if unknown or len(set(names)) != len(names) or not ({"user_id", "tenant_id"} & set(names)):
        problem = (
            f"unknown column(s) {', '.join(repr(n) for n in unknown)}"
            if unknown
            else "a column is named twice"
            if len(set(names)) != len(names)
            else "no user_id or tenant_id column"
        )
        allowed = "user_id, tenant_id, display_name, email, plan, metadata (a JSON object), metadata.<key>"
        raise ImportRejected([f"line 1: {problem}; the columns are {allowed}"], source=source)
    try:
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue  # a blank line
            if len(cells) != len(names):
                yield line, f"has {len(cells)} cells; the header has {len(names)}"
                continue
            row: dict[str, Any] = dict(zip(names, cells, strict=True))
            if "metadata" in row:
                row["metadata"] = _json_cell(row["metadata"])
            yield line, row
    except csv.Error as exc:
        raise ImportRejected([f"line {reader.line_num}: {exc}"], source=source) from None


class _BadCell:
    def __init__(self, why: str) -> None:
        self.why = why


def _json_cell(text: str) -> Any:
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return _BadCell("metadata is not a JSON object")


def _jsonl_rows(text: str) -> Iterator[tuple[int, Any]]:
    for line, raw in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            yield line, json.loads(raw)
        except ValueError as exc:
            yield (
                line,
                f"not JSON ({exc.msg} at column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else "not JSON",
            )


def _who(key: tuple[str, str]) -> str:
    tenant, user = key
    if not user:
        return f"tenant {tenant!r}"
    return f"user {user!r}" + (f" of tenant {tenant!r}" if tenant else "")


def _check(
    row: Any, errors: list[str], *, line: int, user_id: str | None = None, tenant_id: str | None = None
) -> ProfileChange | None:
    at = f"line {line}: " if line else ""
    before = len(errors)
    if isinstance(row, str):  # a reader's own complaint about the line
        errors.append(at + row)
        return None
    if not isinstance(row, Mapping):
        errors.append(at + "not an object")
        return None
    unknown = sorted(k for k in row if k not in _KNOWN and not (isinstance(k, str) and k.startswith(_META_PREFIX)))
    if unknown:
        errors.append(at + f"unknown field(s) {', '.join(repr(k) for k in unknown)}")
    ids = {}
    for name, given in (("user_id", user_id), ("tenant_id", tenant_id)):
        ids[name] = given if given is not None else _id(row.get(name), name, errors, at)
    if not ids["user_id"] and not ids["tenant_id"] and len(errors) == before:
        errors.append(at + "needs a user_id (a user's profile) or a tenant_id (a tenant's)")
    values: dict[str, Any] = {}
    for name, limit in _TEXT_FIELDS.items():
        if name in row:
            values[name] = _text(row[name], name, limit, errors, at)
    if values.get("email") and not _EMAIL.match(values["email"]):
        errors.append(at + "email is not an e-mail address")  # never the value: it stays out of logs
    if "metadata" in row:
        values["metadata"] = _metadata(row["metadata"], errors, at)
    entries = {}
    for key in row:
        if isinstance(key, str) and key.startswith(_META_PREFIX):
            name = key[len(_META_PREFIX) :]
            if not name or len(name) > MAX_METADATA_KEY_CHARS or _CONTROL.search(name):
                errors.append(at + f"bad metadata key {key!r}")
                continue
            entries[name] = _meta_value(row[key], name, errors, at)
    if len(errors) > before:
        return None
    return ProfileChange(ids["tenant_id"], ids["user_id"], values, entries, line)


def _id(value: Any, name: str, errors: list[str], at: str) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        errors.append(at + f"{name} must be text")
        return ""
    text = value.strip()
    if _CONTROL.search(text) or len(text) > MAX_ID_CHARS:
        errors.append(at + f"{name} must be at most {MAX_ID_CHARS} characters, without control characters")
        return ""
    return text


def _text(value: Any, name: str, limit: int, errors: list[str], at: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        errors.append(at + f"{name} must be text")
        return ""
    text = value.strip()
    if _CONTROL.search(text):
        errors.append(at + f"{name} holds a control character (a line break, a tab …)")
    elif len(text) > limit:
        errors.append(at + f"{name} is longer than {limit} characters")
    return text


def _metadata(value: Any, errors: list[str], at: str) -> dict[str, str]:
    if isinstance(value, _BadCell):
        errors.append(at + value.why)
        return {}
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        errors.append(at + "metadata must be an object of key → value")
        return {}
    if len(value) > MAX_METADATA_ENTRIES:
        errors.append(at + f"metadata has more than {MAX_METADATA_ENTRIES} entries")
        return {}
    out = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > MAX_METADATA_KEY_CHARS or _CONTROL.search(key):
            errors.append(at + f"bad metadata key {key!r}")
            continue
        out[key] = _meta_value(item, key, errors, at)
    return dict(sorted(out.items()))


def _meta_value(value: Any, key: str, errors: list[str], at: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if not isinstance(value, str):
        errors.append(at + f"metadata {key!r} must be text, a number or true/false")
        return ""
    if len(value) > MAX_METADATA_VALUE_CHARS:
        errors.append(at + f"metadata {key!r} is longer than {MAX_METADATA_VALUE_CHARS} characters")
    return value

"""Revenue import: what customers paid, from a CSV file, stored whole or not at all, once.

Two shapes are read (the header line says which):

* **spanledger** — ``customer_id``, ``amount``, ``currency`` (USD), and ``period`` (``2026-11``) or ``date``
  (``2026-11-05``); optional ``customer_type`` (``tenant``, the default, or ``user``), ``tenant_id`` (a
  user's tenant: lets that tenant's token see the line), ``id`` (your own key for the line) and
  ``description``.
* **stripe** — Stripe's invoice line items: the line's ``id``, ``invoice_id`` (or ``invoice``), ``amount``
  **in cents** (as Stripe's API, Sigma and Data Pipeline give it), ``currency``, ``period_start`` (and
  ``period_end``; Unix seconds or ISO dates), ``description``, and the customer's metadata naming the
  tenant or user: a column whose name ends in ``tenant_id`` / ``user_id`` (``customer_metadata_tenant_id``,
  ``Customer Metadata: user_id``, ``metadata[tenantId]`` …). A line with a user is the user's revenue
  (the tenant, if given too, may see it); otherwise the tenant's.

Every line is checked before anything is stored; any bad line refuses the whole file, with one error per
bad line. Each line has a key — Stripe's invoice and line ids, your ``id``, or else a hash of its content
and how many identical lines precede it in the file — so importing the same file again stores nothing
new, and a line stored before with other content is an error, never a silent change.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from .._errors import ConfigError
from .._store.store import Store
from . import store as sql
from .model import RevenueImport
from .periods import period_bounds
from .rounding import exact_sum

MAX_ERRORS = 50
"""Errors reported for one file (then ``… and N more``)."""
MAX_LINES = 1_000_000
"""Lines in one file: an import is one insert, which ClickHouse stores as one block (atomic) up to this."""
_LIMIT = Decimal(10) ** 20
"""Largest amount accepted: it must fit ``Decimal(38, 12)`` with room for sums."""


class RevenueFileError(ConfigError):
    """A revenue file that cannot be imported; ``errors`` holds one message per bad line."""

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or [message]


@dataclass(frozen=True, slots=True)
class RevenueLine:
    """One line of revenue, checked."""

    key: str
    kind: str
    customer_id: str
    tenant_id: str
    period_start: date
    period_end: date
    amount: Decimal
    currency: str
    source: str
    line: int
    description: str

    def content(self) -> tuple[Any, ...]:
        return (self.kind, self.customer_id, self.tenant_id, self.period_start, self.amount)


def _norm(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")


def _text(value: str | None, what: str, *, required: bool = True) -> str:
    text = (value or "").strip()
    if required and not text:
        raise ValueError(f"{what} is empty")
    if len(text) > 256 or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"{what} must be at most 256 characters, without control characters")
    return text


def _amount(value: str | None, *, cents: bool) -> Decimal:
    text = (value or "").strip()
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"amount {value!r} is not a number") from None
    if not amount.is_finite() or abs(amount) >= _LIMIT:
        raise ValueError(f"amount {value!r} is out of range")
    if cents:
        if amount != amount.to_integral_value() or "." in text:
            raise ValueError(f"amount {value!r}: Stripe amounts are whole cents (1234 for $12.34)")
        return amount / 100
    if amount.as_tuple().exponent < -12:  # type: ignore[operator]
        raise ValueError(f"amount {value!r} has more than 12 decimals")
    return amount


def _currency(value: str | None) -> str:
    currency = (value or "").strip().upper()
    if currency != "USD":
        raise ValueError(f"currency {value!r}: only USD is accepted")
    return currency


def _when(value: str | None, what: str) -> date:
    text = (value or "").strip()
    if not text:
        raise ValueError(f"{what} is empty")
    if re.fullmatch(r"\d{9,11}", text):  # Unix seconds, as Stripe's API gives them
        return datetime.fromtimestamp(int(text), UTC).date()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{what} {value!r} is not a date (YYYY-MM-DD, an ISO time or Unix seconds)") from None
    return (parsed.astimezone(UTC) if parsed.tzinfo else parsed).date()


def _native(row: dict[str, str], n: int) -> RevenueLine:
    kind = (row.get("customer_type") or "tenant").strip().lower()
    if kind not in ("tenant", "user"):
        raise ValueError(f"customer_type {row.get('customer_type')!r}: tenant or user")
    customer = _text(row.get("customer_id"), "customer_id")
    tenant = _text(row.get("tenant_id"), "tenant_id", required=False)
    if kind == "tenant":
        if tenant and tenant != customer:
            raise ValueError(f"tenant_id {tenant!r} differs from the tenant customer_id {customer!r}")
        tenant = customer
    period, day = (row.get("period") or "").strip(), (row.get("date") or "").strip()
    if period and day:
        raise ValueError("give period or date, not both")
    if period:
        if not re.fullmatch(r"\d{4}-\d{2}", period):
            raise ValueError(f"period {period!r}: use YYYY-MM")
        try:
            start, end = (b.date() for b in period_bounds(period))
        except ConfigError:
            raise ValueError(f"period {period!r} is not a month") from None
    elif day:
        start = _when(day, "date")
        end = start + timedelta(days=1)
    else:
        raise ValueError("period and date are both empty")
    own = _text(row.get("id"), "id", required=False)
    return RevenueLine(
        key=f"csv:{own}" if own else "",
        kind=kind,
        customer_id=customer,
        tenant_id=tenant,
        period_start=start,
        period_end=end,
        amount=_amount(row.get("amount"), cents=False),
        currency=_currency(row.get("currency")),
        source="csv",
        line=n,
        description=_text(row.get("description"), "description", required=False),
    )


_STRIPE = {
    "line": ("id", "invoice_line_item_id", "line_item_id", "line_id"),
    "invoice": ("invoice_id", "invoice"),
    "amount": ("amount", "invoice_line_item_amount", "line_item_amount"),
    "currency": ("currency",),
    "period_start": ("period_start", "period_start_utc", "line_item_period_start"),
    "period_end": ("period_end", "period_end_utc", "line_item_period_end"),
    "description": ("description", "invoice_line_item_memo", "line_item_description"),
}


def _stripe_columns(headers: list[str]) -> dict[str, str] | None:
    """Which header holds each field of a Stripe export; ``None`` when it is not one."""
    found = {field: next((h for h in names if h in headers), "") for field, names in _STRIPE.items()}
    if not (found["invoice"] and found["line"] and found["amount"] and found["period_start"]):
        return None
    found["tenant"] = next((h for h in headers if h.endswith(("tenant_id", "tenantid"))), "")
    found["user"] = next((h for h in headers if h.endswith(("user_id", "userid"))), "")
    return found


def _stripe(row: dict[str, str], n: int, cols: dict[str, str]) -> RevenueLine:
    user = _text(row.get(cols["user"]), "user id", required=False) if cols["user"] else ""
    tenant = _text(row.get(cols["tenant"]), "tenant id", required=False) if cols["tenant"] else ""
    if not user and not tenant:
        raise ValueError("no tenant or user id in the customer metadata columns")
    start = _when(row.get(cols["period_start"]), "period_start")
    end = _when(row[cols["period_end"]], "period_end") if (row.get(cols["period_end"]) or "").strip() else start
    line_id, invoice = _text(row.get(cols["line"]), "line id"), _text(row.get(cols["invoice"]), "invoice id")
    description = row.get(cols["description"]) if cols["description"] else ""
    return RevenueLine(
        key=f"stripe:{invoice}:{line_id}",
        kind="user" if user else "tenant",
        customer_id=user or tenant,
        tenant_id=tenant,
        period_start=start,
        period_end=max(end, start),
        amount=_amount(row.get(cols["amount"]), cents=True),
        currency=_currency(row.get(cols["currency"])) if cols["currency"] else "USD",
        source="stripe",
        line=n,
        description=_text(description, "description", required=False),
    )


def parse_revenue(text: str, name: str = "revenue.csv") -> tuple[str, list[RevenueLine]]:
    """The shape and the checked lines of a revenue file; :class:`RevenueFileError` with every bad line."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    try:
        raw_headers = next(reader)
    except StopIteration:
        raise RevenueFileError(f"{name}: the file is empty") from None
    except csv.Error as exc:
        raise RevenueFileError(f"{name} line 1: {exc}") from None
    headers = [_norm(h) for h in raw_headers]
    stripe = _stripe_columns(headers)
    native = {"customer_id", "amount", "currency"} <= set(headers) and bool({"period", "date"} & set(headers))
    if stripe is None and not native:
        raise RevenueFileError(
            f"{name}: unknown columns ({', '.join(raw_headers)[:200]}); expected customer_id, period or date, "
            "amount, currency — or a Stripe invoice line export (id, invoice_id, amount, currency, period_start)"
        )
    shape = "stripe" if stripe is not None else "spanledger"
    lines: list[RevenueLine] = []
    errors: list[str] = []
    seen: Counter[tuple[Any, ...]] = Counter()
    try:
        for values in reader:
            n = reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(lines) + len(errors) >= MAX_LINES:
                raise RevenueFileError(f"{name}: more than {MAX_LINES:,} lines; split the file")
            if len(values) != len(headers):
                errors.append(f"{name} line {n}: {len(values)} fields, the header has {len(headers)}")
                continue
            row = dict(zip(headers, values, strict=True))
            try:
                line = _stripe(row, n, stripe) if stripe is not None else _native(row, n)
            except ValueError as exc:
                errors.append(f"{name} line {n}: {exc}")
                continue
            if not line.key:  # no key of its own: its content, and which repeat of it this is
                content = (*line.content(), line.period_end, line.currency, line.description)
                seen[content] += 1
                digest = hashlib.sha256(repr((content, seen[content])).encode()).hexdigest()[:32]
                line = _with_key(line, f"csv#{digest}")
            lines.append(line)
    except csv.Error as exc:
        errors.append(f"{name} line {reader.line_num}: {exc}")
    errors += _repeated_keys(lines, name)
    if errors:
        raise _refused(name, errors)
    if not lines:
        raise RevenueFileError(f"{name}: no revenue lines after the header")
    return shape, lines


def _with_key(line: RevenueLine, key: str) -> RevenueLine:
    values = {f: getattr(line, f) for f in RevenueLine.__dataclass_fields__}
    values["key"] = key
    return RevenueLine(**values)


def _repeated_keys(lines: list[RevenueLine], name: str) -> list[str]:
    """A key twice in one file must name the same content (a repeat is then imported once)."""
    first: dict[str, RevenueLine] = {}
    errors = []
    for line in lines:
        before = first.setdefault(line.key, line)
        if before is not line and before.content() != line.content():
            errors.append(f"{name} line {line.line}: {_label(line)} is also line {before.line}, with other content")
    return errors


def _label(line: RevenueLine) -> str:
    return f"line id {line.key.split(':', 1)[1]!r}" if not line.key.startswith("csv#") else "this line"


def _refused(name: str, errors: list[str]) -> RevenueFileError:
    shown = errors[:MAX_ERRORS]
    if len(errors) > MAX_ERRORS:
        shown.append(f"{name}: … and {len(errors) - MAX_ERRORS} more bad lines")
    return RevenueFileError(f"{name}: {len(errors)} bad line(s), nothing imported; first: {errors[0]}", shown)


def import_revenue(store: Store, text: str, *, name: str = "revenue.csv", dry_run: bool = False) -> RevenueImport:
    """Check every line of a revenue file, then store the lines not stored before, in one insert."""
    shape, lines = parse_revenue(text, name)
    unique = list({line.key: line for line in lines}.values())
    stored = sql.stored_revenue(store, [line.key for line in unique])
    errors = [
        f"{name} line {line.line}: {_label(line)} was imported before with other content "
        f"({_describe(stored[line.key])}); an import never changes a stored line"
        for line in unique
        if line.key in stored and stored[line.key] != line.content()
    ]
    if errors:
        raise _refused(name, errors)
    new = [line for line in unique if line.key not in stored]
    if new and not dry_run:
        token = "revenue:" + hashlib.sha256("\n".join(line.key for line in new).encode()).hexdigest()
        sql.insert_revenue(
            store,
            [
                [
                    line.key,
                    line.kind,
                    line.customer_id,
                    line.tenant_id,
                    line.period_start,
                    line.period_end,
                    line.amount,
                    line.currency,
                    line.source,
                    name,
                    line.line,
                    line.description,
                ]
                for line in new
            ],
            token,
        )
    total = exact_sum([line.amount for line in lines])
    return RevenueImport(name, shape, len(lines), len(new), len(unique) - len(new), total, dry_run)


def _describe(content: tuple[Any, ...]) -> str:
    kind, customer, _tenant, start, amount = content
    return f"{kind} {customer}, {start.isoformat()}, {amount.normalize():f} USD"

"""Exact USD cost of an :class:`LLMCall`: genai-prices, overridden by the user's own price file.

Money is ``Decimal`` end to end. A call whose model no price table knows is *unpriced* (``cost`` stays
``None`` and the call is flagged), never free.

Looking a model up in genai-prices costs about 100 µs, so the price of a (provider, model) is resolved
once per minute of request time (prices may start on a date or apply at certain times of day) and
reduced to four per-token coefficients, measured once per price-table entry with genai-prices' own
arithmetic, plus any fixed per-request fee; a call is then four multiplications. Tiered prices (a
different rate above a context size) are computed by genai-prices for each call.
"""

from __future__ import annotations

import fnmatch
import logging
import tomllib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import genai_prices
from genai_prices import Usage

from .._config import env_str
from .._errors import ConfigError
from .._model.call import LLMCall

_log = logging.getLogger(__name__)

COST_QUANTUM = Decimal("1e-12")
"""Costs are stored as ``Decimal(18, 12)``: exact to a trillionth of a dollar."""
_MTOK = 1_000_000
_MINUTE = timedelta(minutes=1)
_PICO = Decimal(10) ** 12
_PRICE_FIELDS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
GENAI_PRICES_SOURCE = f"genai-prices {genai_prices.__version__}"


class PriceFileError(ConfigError):
    """The price file cannot be read or a rule in it is invalid."""


@dataclass(frozen=True, slots=True)
class PriceRule:
    """One rule of a user price file; the first rule that matches a call prices it."""

    model: str
    """Model id or glob (``gpt-4o*``, ``*``); matched case-insensitively."""
    provider: str = "*"
    input_mtok: Decimal | None = None
    """USD per million uncached input tokens."""
    output_mtok: Decimal | None = None
    cache_read_mtok: Decimal | None = None
    """USD per million cache-read tokens; defaults to ``input_mtok``."""
    cache_write_mtok: Decimal | None = None
    """USD per million cache-write tokens; defaults to ``input_mtok``."""
    multiplier: Decimal | None = None
    """Scales the genai-prices price (``0.8`` = a 20 % negotiated discount) when no prices are given."""
    since: date | None = None
    """The rule applies to calls made on or after this UTC date."""
    until: date | None = None
    """The rule applies to calls made before this UTC date."""
    name: str = ""
    """How ``price_source`` names the rule (``override:<file>#<name>``); its number in the file otherwise."""

    def matches(self, provider: str, model: str, day: date) -> bool:
        if self.since is not None and day < self.since:
            return False
        if self.until is not None and day >= self.until:
            return False
        return fnmatch.fnmatchcase(model.lower(), self.model.lower()) and fnmatch.fnmatchcase(
            provider.lower(), self.provider.lower()
        )


def _decimal(value: Any, field: str, where: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise PriceFileError(f"{where}: {field} must be a number, got {value!r}")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise PriceFileError(f"{where}: {field} must be a number, got {value!r}") from None
    if not result.is_finite() or result < 0:
        raise PriceFileError(f"{where}: {field} must be a finite number >= 0, got {value!r}")
    return result


def _date(value: Any, field: str, where: str) -> date | None:
    if isinstance(value, datetime):  # a TOML date-time: the rule works on UTC dates
        return value.date()
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise PriceFileError(f"{where}: {field} must be an ISO date, got {value!r}") from None


def load_price_file(path: str | Path) -> list[PriceRule]:
    """Read price rules from a TOML or YAML file (``[[prices]]`` tables / a ``prices:`` list).

    Write prices as strings (``"0.15"``) to keep them exact; numbers are read through their
    shortest decimal spelling.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceFileError(f"cannot read price file {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:
        raise PriceFileError(f"cannot parse price file {path}: {exc}") from None
    rows = data.get("prices") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise PriceFileError(f"{path}: expected a list of rules under 'prices'")
    rules = []
    allowed = {"model", "provider", "multiplier", "since", "until", "name", *_PRICE_FIELDS}
    for index, row in enumerate(rows, 1):
        where = f"{path.name} rule {index}"
        if not isinstance(row, dict) or not isinstance(row.get("model"), str) or not row["model"]:
            raise PriceFileError(f"{where}: each rule needs a 'model' (id or glob)")
        unknown = set(row) - allowed
        if unknown:
            raise PriceFileError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        name = row.get("name", "")
        if not isinstance(name, str) or len(name) > 64 or any(ord(c) < 32 or c == "#" for c in name):
            raise PriceFileError(f"{where}: name must be a short text without '#' or control characters")
        rule = PriceRule(
            model=row["model"],
            provider=str(row.get("provider", "*")),
            multiplier=_decimal(row.get("multiplier"), "multiplier", where),
            since=_date(row.get("since"), "since", where),
            until=_date(row.get("until"), "until", where),
            name=name,
            **{f: _decimal(row.get(f), f, where) for f in _PRICE_FIELDS},
        )
        if rule.multiplier is None and (rule.input_mtok is None or rule.output_mtok is None):
            raise PriceFileError(f"{where}: give input_mtok and output_mtok, or a multiplier")
        rules.append(rule)
    return rules


@dataclass(frozen=True, slots=True)
class _Linear:
    """USD per token for each kind of token, as genai-prices computes them."""

    uncached: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal
    per_call: Decimal
    """A fixed fee per request (some providers charge one), in neither input nor output cost."""
    model_id: str
    source: str
    pico: tuple[int, int, int, int, int] | None = None
    """The same rates in pico-dollars (10⁻¹² USD, the stored precision) when all are whole numbers,
    as they are for every price quoted to six decimals per million tokens: exact integer arithmetic."""

    @staticmethod
    def make(**fields: Any) -> _Linear:
        rates = [fields[k] * _PICO for k in ("uncached", "cache_read", "cache_write", "output", "per_call")]
        whole = all(r == r.to_integral_value() for r in rates)
        pico = (int(rates[0]), int(rates[1]), int(rates[2]), int(rates[3]), int(rates[4])) if whole else None
        return _Linear(pico=pico, **fields)


@dataclass(frozen=True, slots=True)
class PriceRates:
    """USD per million tokens of each kind, and per call, for one model at one time."""

    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal
    per_call: Decimal
    model_id: str
    source: str


@dataclass(frozen=True, slots=True)
class _Tiered:
    model_price: Any
    model_id: str
    source: str


_Resolved = _Linear | _Tiered | None


class Pricer:
    """Prices :class:`LLMCall` records in place.

    Args:
        price_file: TOML or YAML price rules that win over genai-prices (default ``SPANLEDGER_PRICE_FILE``).
        rules: Rules given in code; they come before the file's.
    """

    def __init__(self, *, price_file: str | Path | None = None, rules: list[PriceRule] | None = None) -> None:
        file = env_str("SPANLEDGER_PRICE_FILE", str(price_file) if price_file is not None else None, "")
        self.rules: list[PriceRule] = list(rules or [])
        self._labels = [f"override:rules#{r.name or i}" for i, r in enumerate(self.rules, 1)]
        """What ``price_source`` says for each rule: its file (or ``rules``, given in code) and its name or number."""
        if file:
            loaded = load_price_file(file)
            self.rules.extend(loaded)
            self._labels += [f"override:{Path(file).name}#{r.name or i}" for i, r in enumerate(loaded, 1)]
        self._cache: OrderedDict[tuple[str, str, datetime], _Resolved] = OrderedDict()
        self._last: dict[tuple[str, str], tuple[datetime, datetime, _Resolved]] = {}
        self._models: dict[tuple[str, str], Any] = {}
        self._measured: dict[int, tuple[Any, tuple[Decimal, Decimal, Decimal, Decimal, Decimal]]] = {}

    def price(self, call: LLMCall) -> None:
        """Fill ``cost``, ``input_cost``, ``output_cost``, ``price_source`` and ``price_model``.

        A call with no model, or that succeeded with its usage unknown (``no_usage``: a stream read without
        its usage chunk), is unpriced — ``cost`` stays ``None`` — never $0. A failed call without usage (a 429,
        a 500) is priced at what it reported, nothing: providers do not bill refused requests."""
        if not call.model or ("no_usage" in call.flags and not call.is_error):
            self._unpriced(call)
            return
        model_key = (call.provider, call.model)
        last = self._last.get(model_key)
        if last is not None and last[0] <= call.timestamp < last[1]:
            resolved = last[2]  # the common case: another call in the same minute
        else:
            minute = call.timestamp.replace(second=0, microsecond=0)
            key = (call.provider, call.model, minute)
            if key in self._cache:
                resolved = self._cache[key]
            else:
                resolved = self._resolve(call.provider, call.model, minute)
                self._cache[key] = resolved
                if len(self._cache) > 4096:
                    self._cache.popitem(last=False)
            self._last[model_key] = (minute, minute + _MINUTE, resolved)
        if resolved is None:
            self._unpriced(call)
            return
        uncached = max(0, call.input_tokens - call.cache_read_tokens - call.cache_write_tokens)
        if isinstance(resolved, _Linear) and resolved.pico is not None:
            a, b, c, d, fee = resolved.pico
            input_pico = a * uncached + b * call.cache_read_tokens + c * call.cache_write_tokens
            output_pico = d * call.output_tokens
            call.input_cost = Decimal(input_pico).scaleb(-12)
            call.output_cost = Decimal(output_pico).scaleb(-12)
            call.cost = Decimal(input_pico + output_pico + fee).scaleb(-12)
            call.price_source = resolved.source
            call.price_model = resolved.model_id
            return
        if isinstance(resolved, _Linear):
            input_cost = (
                resolved.uncached * uncached
                + resolved.cache_read * call.cache_read_tokens
                + resolved.cache_write * call.cache_write_tokens
            )
            output_cost = resolved.output * call.output_tokens
            total_cost = input_cost + output_cost + resolved.per_call
        else:
            result = resolved.model_price.calc_price(_usage(call))
            input_cost, output_cost, total_cost = result["input_price"], result["output_price"], result["total_price"]
        total = _quantize(total_cost, call)
        call.input_cost = _quantize(input_cost, call, flag=False)
        call.output_cost = _quantize(output_cost, call, flag=False)
        call.cost = total
        call.price_source = resolved.source
        call.price_model = resolved.model_id

    def rates(self, provider: str, model: str, when: datetime) -> PriceRates | None:
        """The price of ``model`` at ``when`` per million tokens of each kind, as :meth:`price` applies it;
        ``None`` when no price is known, or the price is tiered (it then depends on the call's size)."""
        resolved = self._resolve(provider, model, when.replace(second=0, microsecond=0))
        if not isinstance(resolved, _Linear):
            return None
        return PriceRates(
            input=resolved.uncached * _MTOK,
            cache_read=resolved.cache_read * _MTOK,
            cache_write=resolved.cache_write * _MTOK,
            output=resolved.output * _MTOK,
            per_call=resolved.per_call,
            model_id=resolved.model_id,
            source=resolved.source,
        )

    def _unpriced(self, call: LLMCall) -> None:
        call.cost = call.input_cost = call.output_cost = None
        call.price_source = call.price_model = ""
        if "unpriced" not in call.flags:
            call.flags.append("unpriced")

    def _resolve(self, provider: str, model: str, when: datetime) -> _Resolved:
        index = next((i for i, r in enumerate(self.rules) if r.matches(provider, model, when.date())), None)
        rule = self.rules[index] if index is not None else None
        source = self._labels[index] if index is not None else ""
        if rule is not None and rule.multiplier is None:
            assert rule.input_mtok is not None and rule.output_mtok is not None
            return _Linear.make(
                uncached=rule.input_mtok / _MTOK,
                cache_read=(rule.cache_read_mtok if rule.cache_read_mtok is not None else rule.input_mtok) / _MTOK,
                cache_write=(rule.cache_write_mtok if rule.cache_write_mtok is not None else rule.input_mtok) / _MTOK,
                output=rule.output_mtok / _MTOK,
                per_call=Decimal(0),
                model_id=model,
                source=source,
            )
        # The model is looked up in genai-prices once; each new minute only asks it for that time's prices.
        info = self._models.get((provider, model), False)
        if info is False:
            try:
                info = genai_prices.calc_price(
                    Usage(input_tokens=0, output_tokens=0),
                    model_ref=model,
                    provider_id=provider or None,
                    genai_request_timestamp=when,
                ).model
            except LookupError:
                info = None
            except Exception:  # a price table problem must not stop the export
                _log.warning("genai-prices failed for %s/%s; call left unpriced", provider, model, exc_info=True)
                return None
            self._models[(provider, model)] = info
        if info is None:
            return None
        model_price = info.get_prices(when)
        factor = rule.multiplier if rule is not None and rule.multiplier is not None else Decimal(1)
        label = source if factor != 1 else GENAI_PRICES_SOURCE
        model_id = str(info.id)
        if any(type(v).__name__ == "TieredPrices" for v in vars(model_price).values()):
            if factor != 1:
                return _Tiered(_Scaled(model_price, factor), model_id, label)
            return _Tiered(model_price, model_id, label)
        measured = self._measured.get(id(model_price))
        if measured is None or measured[0] is not model_price:  # the table's price objects live as long as it
            measured = (model_price, _measure(model_price))
            self._measured[id(model_price)] = measured
        only_input, with_read, with_write, output, per_call = measured[1]
        return _Linear.make(
            uncached=only_input * factor,
            cache_read=with_read * factor,
            cache_write=with_write * factor,
            output=output * factor,
            per_call=per_call * factor,
            model_id=model_id,
            source=label,
        )


def _measure(model_price: Any) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
    """USD per uncached input, cache-read, cache-write and output token, measured with genai-prices' own
    arithmetic on a million tokens of each kind, and the fixed fee per request (the price of no tokens)."""
    m = _MTOK
    only_input = model_price.calc_price(Usage(input_tokens=m))["input_price"]
    with_read = model_price.calc_price(Usage(input_tokens=m, cache_read_tokens=m))["input_price"]
    with_write = model_price.calc_price(Usage(input_tokens=m, cache_write_tokens=m))["input_price"]
    output = model_price.calc_price(Usage(output_tokens=m))["output_price"]
    fee = model_price.calc_price(Usage(input_tokens=0, output_tokens=0))["total_price"]
    return only_input / m, with_read / m, with_write / m, output / m, fee


class _Scaled:
    """A genai-prices ``ModelPrice`` whose results are multiplied by a negotiated factor."""

    def __init__(self, model_price: Any, factor: Decimal) -> None:
        self._model_price, self._factor = model_price, factor

    def calc_price(self, usage: Usage) -> dict[str, Decimal]:
        result = self._model_price.calc_price(usage)
        return {k: v * self._factor for k, v in result.items()}


def _usage(call: LLMCall) -> Usage:
    return Usage(
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        cache_read_tokens=call.cache_read_tokens,
        cache_write_tokens=call.cache_write_tokens,
    )


def _quantize(value: Decimal, call: LLMCall, *, flag: bool = True) -> Decimal:
    rounded = value.quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN)
    if flag and rounded != value:
        call.flags.append("cost_rounded")
    return rounded

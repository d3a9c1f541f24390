"""Exact USD prices: genai-prices through the per-minute fast path, and the user's own price files."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import genai_prices
import pytest
from genai_prices import Usage
from hypothesis import given, settings
from hypothesis import strategies as st

from spanledger import ConfigError, LLMCall, PriceFileError, Pricer, PriceRule
from spanledger._pricing.pricer import COST_QUANTUM, GENAI_PRICES_SOURCE, load_price_file

WHEN = datetime(2026, 6, 15, 12, 30, 15, tzinfo=UTC)


def make_call(
    model: str,
    *,
    provider: str = "openai",
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_read: int = 0,
    cache_write: int = 0,
    when: datetime = WHEN,
) -> LLMCall:
    return LLMCall(
        timestamp=when,
        trace_id=1,
        span_id=2,
        parent_span_id=0,
        duration_us=1000,
        provider=provider,
        model=model,
        request_model=model,
        operation="chat",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=0,
        user_id="u",
        user_source="attribution",
        tenant_id="t",
        tags={},
        is_error=False,
        error_type="",
        response_id="",
        service_name="svc",
        source="otel-genai",
    )


def priced(call: LLMCall, pricer: Pricer | None = None) -> LLMCall:
    (pricer or Pricer()).price(call)
    return call


def test_gpt_4o_mini_exact_price() -> None:
    call = priced(make_call("gpt-4o-mini", input_tokens=1200, cache_read=1024, output_tokens=30))
    assert call.cost == Decimal("0.0001212")
    assert call.input_cost == Decimal("0.0001032")  # 176 x $0.15/M + 1024 x $0.075/M
    assert call.output_cost == Decimal("0.000018")
    assert isinstance(call.cost, Decimal)
    assert (call.price_source, call.price_model) == (GENAI_PRICES_SOURCE, "gpt-4o-mini")
    assert call.flags == []


def test_dated_model_id_resolves_to_its_family_price() -> None:
    call = priced(make_call("gpt-4o-mini-2024-07-18", input_tokens=1_000_000))
    assert call.cost == Decimal("0.15")
    assert call.price_model == "gpt-4o-mini"


def test_anthropic_cache_write_price() -> None:
    # claude-3-5-haiku: $0.8 input, $0.08 cache read, $1 cache write, $4 output per million
    call = priced(
        make_call(
            "claude-3-5-haiku-20241022",
            provider="anthropic",
            input_tokens=5000,
            cache_read=3000,
            cache_write=1000,
            output_tokens=200,
        )
    )
    # 1000 uncached x 0.8 + 3000 read x 0.08 + 1000 written x 1 + 200 out x 4, per million
    assert call.cost == Decimal("0.0008") + Decimal("0.00024") + Decimal("0.001") + Decimal("0.0008")


@pytest.mark.parametrize(
    ("provider", "model", "input_tokens", "output_tokens", "expected"),
    [
        # claude-sonnet-4-5: $3 / $15 below 200k input tokens, $6 / $22.5 for the whole call above
        ("anthropic", "claude-sonnet-4-5", 199_999, 1000, Decimal("0.599997") + Decimal("0.015")),
        ("anthropic", "claude-sonnet-4-5", 200_000, 1000, Decimal("0.6") + Decimal("0.015")),
        ("anthropic", "claude-sonnet-4-5", 200_001, 1000, Decimal("1.200006") + Decimal("0.0225")),
        # gemini-2.5-pro: $1.25 / $10 below 200k, $2.5 / $15 above
        ("google", "gemini-2.5-pro", 100_000, 2000, Decimal("0.125") + Decimal("0.02")),
        ("google", "gemini-2.5-pro", 300_000, 2000, Decimal("0.75") + Decimal("0.03")),
    ],
)
def test_tiered_prices_below_and_above_the_threshold(
    provider: str, model: str, input_tokens: int, output_tokens: int, expected: Decimal
) -> None:
    pricer = Pricer()
    # the same pricer serves both sides of the threshold within one minute
    small = priced(make_call(model, provider=provider, input_tokens=10, output_tokens=0), pricer)
    call = priced(make_call(model, provider=provider, input_tokens=input_tokens, output_tokens=output_tokens), pricer)
    assert call.cost == expected
    assert small.cost is not None and small.cost < expected


def test_per_request_fee_is_charged() -> None:
    # perplexity sonar: $1 / $1 per million tokens plus $12 per thousand requests
    call = priced(make_call("sonar", provider="perplexity", input_tokens=1000, output_tokens=1000))
    assert call.cost == Decimal("0.002") + Decimal("0.012")


def test_historic_price_follows_the_request_timestamp() -> None:
    """claude-sonnet-4-6 dropped its long-context tier on 2026-03-13: 300k input tokens cost half after."""
    pricer = Pricer()
    before = make_call(
        "claude-sonnet-4-6", provider="anthropic", input_tokens=300_000, when=datetime(2026, 3, 12, 23, 59, tzinfo=UTC)
    )
    after = make_call(
        "claude-sonnet-4-6", provider="anthropic", input_tokens=300_000, when=datetime(2026, 3, 13, 0, 1, tzinfo=UTC)
    )
    assert priced(before, pricer).cost == Decimal("1.8")  # 300k x $6/M
    assert priced(after, pricer).cost == Decimal("0.9")  # 300k x $3/M


def test_historic_linear_price_change() -> None:
    """baseten reflection/Beam-1.0 went from $1.3 to $0.4 per million input tokens on 2026-11-02."""
    pricer = Pricer()
    day = datetime(2026, 11, 2, tzinfo=UTC)
    old = priced(
        make_call("reflection/Beam-1.0", provider="baseten", input_tokens=10**6, when=day - timedelta(minutes=1)),
        pricer,
    )
    new = priced(make_call("reflection/Beam-1.0", provider="baseten", input_tokens=10**6, when=day), pricer)
    assert (old.cost, new.cost) == (Decimal("1.3"), Decimal("0.4"))


@pytest.mark.parametrize("model", ["acme-internal-llm-7b", ""])
def test_unknown_model_is_unpriced_not_free(model: str) -> None:
    call = priced(make_call(model, input_tokens=1000, output_tokens=10))
    assert call.cost is None and call.input_cost is None and call.output_cost is None
    assert call.flags == ["unpriced"]
    assert (call.price_source, call.price_model) == ("", "")


def test_a_call_whose_usage_is_unknown_is_unpriced_never_free() -> None:
    """A stream read without its usage chunk: its tokens are not 0, they are unknown."""
    call = make_call("gpt-4o-mini")
    call.flags.append("no_usage")
    assert priced(call).cost is None and call.flags == ["no_usage", "unpriced"]
    failed = make_call("gpt-4o-mini")  # a 429 reports no usage either: providers bill it nothing
    failed.flags.append("no_usage")
    failed.is_error = True
    assert priced(failed).cost == Decimal(0) and "unpriced" not in failed.flags


def test_cost_below_the_storage_quantum_is_rounded_and_flagged() -> None:
    rule = PriceRule(model="tiny", input_mtok=Decimal("0.0000004"), output_mtok=Decimal(0))
    call = priced(make_call("tiny", input_tokens=1), Pricer(rules=[rule]))
    assert call.cost == Decimal("0E-12")
    assert "cost_rounded" in call.flags


# --- the fast path equals genai-prices ------------------------------------------------------------------

FAST_PATH_MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o-2024-08-06"),
    ("openai", "gpt-5"),
    ("anthropic", "claude-3-5-haiku-20241022"),
    ("anthropic", "claude-sonnet-4-5"),  # tiered
    ("google", "gemini-2.5-pro"),  # tiered
    ("google", "gemini-2.5-flash"),
    ("deepseek", "deepseek-chat"),  # off-peak prices by time of day
    ("perplexity", "sonar"),  # per-request fee
    ("mistral", "mistral-large-latest"),
]


@functools.cache
def shared_pricer() -> Pricer:
    """One pricer for every example, so that cached per-minute prices are reused across usages."""
    return Pricer()


@st.composite
def usages(draw: st.DrawFn) -> tuple[int, int, int, int]:
    input_tokens = draw(st.one_of(st.integers(0, 2_000), st.integers(0, 400_000)))
    cache_read = draw(st.integers(0, input_tokens))
    cache_write = draw(st.integers(0, input_tokens - cache_read))
    output_tokens = draw(st.one_of(st.integers(0, 500), st.integers(0, 100_000)))
    return input_tokens, output_tokens, cache_read, cache_write


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from(FAST_PATH_MODELS),
    tokens=usages(),
    minute=st.integers(0, 2 * 24 * 60 - 1),
    second=st.integers(0, 59),
)
def test_fast_path_equals_genai_prices(
    model: tuple[str, str], tokens: tuple[int, int, int, int], minute: int, second: int
) -> None:
    provider, model_id = model
    input_tokens, output_tokens, cache_read, cache_write = tokens
    when = datetime(2026, 6, 14, tzinfo=UTC) + timedelta(minutes=minute, seconds=second)
    call = make_call(
        model_id,
        provider=provider,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read=cache_read,
        cache_write=cache_write,
        when=when,
    )
    shared_pricer().price(call)
    expected = genai_prices.calc_price(
        Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
        ),
        model_ref=model_id,
        provider_id=provider,
        genai_request_timestamp=when,
    )
    assert call.cost == expected.total_price.quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN)
    assert call.price_model == expected.model.id


def test_fast_path_models_are_all_known() -> None:
    for provider, model in FAST_PATH_MODELS:
        assert priced(make_call(model, provider=provider, input_tokens=1)).cost is not None, model


# --- price files -----------------------------------------------------------------------------------------

TOML_RULES = """
[[prices]]
model = "my-llama-*"
provider = "self-hosted"
input_mtok = "0.10"
output_mtok = "0.20"
cache_read_mtok = "0.01"

[[prices]]
model = "gpt-4o-mini*"
multiplier = "0.8"

[[prices]]
model = "gpt-4o"
input_mtok = 1
output_mtok = 2.5
since = 2026-06-01
until = 2026-07-01

[[prices]]
model = "claude-sonnet-4-5"
multiplier = "0.5"
"""

YAML_RULES = """
prices:
  - model: "my-llama-*"
    provider: self-hosted
    input_mtok: "0.10"
    output_mtok: "0.20"
    cache_read_mtok: "0.01"
  - model: "gpt-4o-mini*"
    multiplier: 0.8
  - model: gpt-4o
    input_mtok: 1
    output_mtok: 2.5
    since: 2026-06-01
    until: 2026-07-01
  - model: claude-sonnet-4-5
    multiplier: "0.5"
"""


@pytest.fixture(params=[("prices.toml", TOML_RULES), ("prices.yaml", YAML_RULES), ("prices.yml", YAML_RULES)])
def price_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    name, text = request.param
    path = tmp_path / name
    path.write_text(text)
    return path


def test_price_file_rules_are_read_exactly(price_file: Path) -> None:
    rules = load_price_file(price_file)
    assert [r.model for r in rules] == ["my-llama-*", "gpt-4o-mini*", "gpt-4o", "claude-sonnet-4-5"]
    assert rules[0].input_mtok == Decimal("0.10") and rules[0].provider == "self-hosted"
    assert rules[1].multiplier == Decimal("0.8")
    assert (rules[2].output_mtok, rules[2].since, rules[2].until) == (
        Decimal("2.5"),
        date(2026, 6, 1),
        date(2026, 7, 1),
    )


def test_explicit_prices_for_a_self_hosted_glob(price_file: Path) -> None:
    pricer = Pricer(price_file=price_file)
    call = priced(
        make_call(
            "My-Llama-70B", provider="self-hosted", input_tokens=2_000_000, cache_read=1_000_000, output_tokens=10**6
        ),
        pricer,
    )
    assert call.cost == Decimal("0.1") + Decimal("0.01") + Decimal("0.2")
    assert call.price_source == f"override:{price_file.name}#1"  # the file's first rule
    assert call.price_model == "My-Llama-70B"


def test_provider_must_match(price_file: Path) -> None:
    call = priced(make_call("my-llama-70b", provider="openai", input_tokens=1000), Pricer(price_file=price_file))
    assert call.cost is None and "unpriced" in call.flags


def test_multiplier_discounts_the_genai_prices_price(price_file: Path) -> None:
    call = priced(
        make_call("gpt-4o-mini", input_tokens=1200, cache_read=1024, output_tokens=30), Pricer(price_file=price_file)
    )
    assert call.cost == Decimal("0.0001212") * Decimal("0.8")
    assert call.price_source == f"override:{price_file.name}#2"


def test_multiplier_on_a_tiered_model(price_file: Path) -> None:
    call = priced(
        make_call("claude-sonnet-4-5", provider="anthropic", input_tokens=200_001), Pricer(price_file=price_file)
    )
    assert call.cost == Decimal("1.200006") / 2


def test_explicit_prices_win_over_genai_prices_only_between_since_and_until(price_file: Path) -> None:
    pricer = Pricer(price_file=price_file)
    inside = priced(make_call("gpt-4o", input_tokens=10**6, output_tokens=10**6), pricer)
    first_day = priced(make_call("gpt-4o", input_tokens=10**6, when=datetime(2026, 6, 1, tzinfo=UTC)), pricer)
    before = priced(make_call("gpt-4o", input_tokens=10**6, when=datetime(2026, 5, 31, 23, 59, tzinfo=UTC)), pricer)
    until_day = priced(make_call("gpt-4o", input_tokens=10**6, when=datetime(2026, 7, 1, tzinfo=UTC)), pricer)
    assert inside.cost == Decimal("3.5")
    assert first_day.cost == Decimal("1")
    assert before.cost == until_day.cost == Decimal("2.5")  # genai-prices: $2.5 per million input tokens
    assert before.price_source == GENAI_PRICES_SOURCE


def test_price_file_from_the_environment(price_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLEDGER_PRICE_FILE", str(price_file))
    call = priced(make_call("my-llama-1", provider="self-hosted", input_tokens=10**6), Pricer())
    assert call.cost == Decimal("0.1")


def test_toml_datetimes_are_read_as_dates(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[[prices]]\nmodel = "m"\ninput_mtok = "1"\noutput_mtok = "1"\nsince = 2026-06-01T00:00:00Z\n')
    pricer = Pricer(price_file=path)
    assert priced(make_call("m", input_tokens=10**6), pricer).cost == Decimal("1")
    assert priced(make_call("m", input_tokens=10**6, when=datetime(2026, 5, 1, tzinfo=UTC)), pricer).cost is None


def test_rules_given_in_code_come_before_the_file(price_file: Path) -> None:
    rule = PriceRule(model="gpt-4o", input_mtok=Decimal("7"), output_mtok=Decimal("7"))
    call = priced(make_call("gpt-4o", input_tokens=10**6), Pricer(price_file=price_file, rules=[rule]))
    assert call.cost == Decimal("7")
    assert call.price_source == "override:rules#1"  # the code's rule, not the file's


def test_a_named_rule_is_named_in_the_price_source(tmp_path: Path) -> None:
    path = tmp_path / "deals.toml"
    path.write_text('[[prices]]\nname = "acme-deal"\nmodel = "m"\ninput_mtok = "1"\noutput_mtok = "1"\n')
    assert (
        priced(make_call("m", input_tokens=10**6), Pricer(price_file=path)).price_source
        == "override:deals.toml#acme-deal"
    )
    path.write_text('[[prices]]\nname = "a#b"\nmodel = "m"\ninput_mtok = "1"\noutput_mtok = "1"\n')
    with pytest.raises(PriceFileError, match="name"):
        load_price_file(path)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("p.toml", "[[prices]\nmodel=", "cannot parse price file"),
        ("p.yaml", "prices: [\n  - model: x\n", "cannot parse price file"),
        ("p.toml", 'model = "x"\n', "expected a list of rules under 'prices'"),
        ("p.yaml", "- model: x\n", "expected a list of rules under 'prices'"),
        ("p.toml", '[[prices]]\ninput_mtok = "1"\noutput_mtok = "1"\n', "rule 1: each rule needs a 'model'"),
        ("p.toml", '[[prices]]\nmodel = ""\nmultiplier = "1"\n', "rule 1: each rule needs a 'model'"),
        (
            "p.toml",
            '[[prices]]\nmodel = "a"\nmultiplier = "1"\n[[prices]]\nmodel = "b"\ninput_price = "1"\n',
            r"rule 2: unknown field\(s\) input_price",
        ),
        ("p.toml", '[[prices]]\nmodel = "a"\ninput_mtok = "cheap"\noutput_mtok = "1"\n', "input_mtok must be a number"),
        ("p.toml", '[[prices]]\nmodel = "a"\ninput_mtok = true\noutput_mtok = "1"\n', "input_mtok must be a number"),
        ("p.toml", '[[prices]]\nmodel = "a"\ninput_mtok = "-1"\noutput_mtok = "1"\n', "must be a finite number >= 0"),
        ("p.toml", '[[prices]]\nmodel = "a"\nmultiplier = "NaN"\n', "must be a finite number >= 0"),
        ("p.toml", '[[prices]]\nmodel = "a"\nmultiplier = "1"\nsince = "soon"\n', "since must be an ISO date"),
        ("p.toml", '[[prices]]\nmodel = "a"\ninput_mtok = "1"\n', "give input_mtok and output_mtok, or a multiplier"),
    ],
)
def test_bad_price_files_raise_a_clear_error(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PriceFileError, match=message) as info:
        Pricer(price_file=path)
    assert isinstance(info.value, ConfigError)
    assert name in str(info.value)


def test_missing_price_file_raises(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match=r"cannot read price file .*nope\.toml"):
        Pricer(price_file=tmp_path / "nope.toml")

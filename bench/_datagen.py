"""Seeded, realistic LLM traffic for the benchmarks: as stored rows (bulk load) or as real OTel spans.

The population: ``users`` end users whose traffic follows a Zipf-like law (weight ``1 / rank**0.8``: the
top user makes about 2 % of all calls, the top 50 about 14 %), spread over ``tenants`` tenants whose own
sizes are Zipf-like (weight ``1 / rank**1.3``, so a few heavy tenants hold most users); each tenant has a
plan (enterprise / pro / free). A handful of models with realistic shares, token sizes and prompt caching
(OpenAI-style cache reads, Anthropic-style reads and writes), one custom model that no price table knows
(unpriced), 1.5 % errors and 1 % unattributed calls, spread evenly over ``days`` days.

Two outputs:

* :func:`call_blocks` — columns in ``RAW_COLUMN_NAMES`` order for ``Store.insert_calls`` (bulk load of
  rows equal to what the exporter writes; costs come from the real :class:`spanledger.Pricer`);
* :class:`SpanFactory` — finished ``ReadableSpan`` objects made by a real ``TracerProvider`` with
  ``UserAttributionProcessor`` inside ``attribute_to``, with the attributes that
  ``opentelemetry-instrumentation-openai`` / ``-anthropic`` write.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from spanledger import LLMCall, Pricer, UserAttributionProcessor, attribute_to
from spanledger._store.store import RAW_COLUMN_NAMES

SEED = 20261120
DATA_END = datetime(2026, 11, 20, 14, 37, 12, tzinfo=UTC)
"""Bulk-loaded data ends here (not on an hour edge, like a real "last 30 days" window)."""
USER_EXPONENT = 0.8
TENANT_EXPONENT = 1.3
FEATURES = ("chat", "summarize", "search", "extract", "agent")
FEATURE_SHARE = (0.45, 0.2, 0.15, 0.1, 0.1)
ERROR_SHARE = 0.015
UNATTRIBUTED_SHARE = 0.01
_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class Model:
    provider: str
    request_model: str
    response_model: str
    share: float
    cache: str
    """``openai`` (cache reads, included in input), ``anthropic`` (reads and writes) or ``""``."""
    input_median: int
    output_median: int
    reasoning: bool = False


MODELS = (
    Model("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 0.42, "openai", 1400, 220),
    Model("openai", "gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", 0.15, "openai", 2200, 300),
    Model("openai", "gpt-4o", "gpt-4o-2024-08-06", 0.10, "openai", 2600, 380),
    Model("anthropic", "claude-sonnet-4-20250514", "claude-sonnet-4-20250514", 0.12, "anthropic", 3500, 450),
    Model("anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku-20241022", 0.09, "anthropic", 1800, 250),
    Model("google", "gemini-2.0-flash", "gemini-2.0-flash", 0.10, "", 1600, 260),
    Model("acme", "acme-llm-7b", "acme-llm-7b", 0.02, "", 900, 150),
)


class Population:
    """Users, their tenants and plans, and the traffic weights; the same for a given seed."""

    def __init__(self, *, users: int = 100_000, tenants: int = 1_000, seed: int = SEED) -> None:
        rng = np.random.default_rng(seed)
        self.users = users
        self.tenants = tenants
        user_w = 1.0 / np.arange(1, users + 1) ** USER_EXPONENT
        self.user_p = user_w / user_w.sum()
        tenant_w = 1.0 / np.arange(1, tenants + 1) ** TENANT_EXPONENT
        # user of traffic rank r belongs to a tenant drawn by tenant size: heavy tenants hold most users
        self.user_tenant = rng.choice(tenants, size=users, p=tenant_w / tenant_w.sum())
        # user ids are not in traffic order
        self.user_names = [f"user_{i:06d}" for i in rng.permutation(users)]
        self.tenant_names = [f"org_{i:04d}" for i in range(tenants)]
        plans = np.where(np.arange(tenants) < max(1, tenants // 50), "enterprise", "free")
        pro = rng.random(tenants) < 0.3
        self.tenant_plan = [
            p if p == "enterprise" else ("pro" if is_pro else "free") for p, is_pro in zip(plans, pro, strict=False)
        ]
        self.model_p = np.array([m.share for m in MODELS]) / sum(m.share for m in MODELS)

    def heavy_tenant(self) -> str:
        """The tenant with the most traffic (for filtered queries)."""
        counts = np.bincount(self.user_tenant, weights=self.user_p, minlength=self.tenants)
        return self.tenant_names[int(counts.argmax())]

    def top_user(self) -> tuple[str, str]:
        """(tenant, user) of the heaviest user."""
        return self.tenant_names[int(self.user_tenant[0])], self.user_names[0]


@dataclass(frozen=True, slots=True)
class Usage:
    model: int
    input_tokens: int
    output_tokens: int
    cache_read: int
    cache_write: int
    reasoning: int


def draw_usage(rng: np.random.Generator, model_idx: np.ndarray) -> list[Usage]:
    """Token counts per call: log-normal sizes, prompt caching where the provider has it."""
    n = len(model_idx)
    med_in = np.array([m.input_median for m in MODELS])[model_idx]
    med_out = np.array([m.output_median for m in MODELS])[model_idx]
    inp = np.maximum(1, (med_in * rng.lognormal(0, 0.9, n)).astype(np.int64))
    out = np.maximum(1, (med_out * rng.lognormal(0, 0.8, n)).astype(np.int64))
    cached = rng.random(n)
    result = []
    for i in range(n):
        m = MODELS[model_idx[i]]
        total_in, cr, cw = int(inp[i]), 0, 0
        if m.cache == "openai" and total_in >= 1024 and cached[i] < 0.35:
            cr = (total_in // 1024) * 1024 - (128 if total_in % 1024 == 0 else 0)
        elif m.cache == "anthropic" and total_in >= 1024:
            if cached[i] < 0.45:
                cr = int(total_in * 0.8)
            elif cached[i] < 0.55:
                cw = int(total_in * 0.8)
        result.append(Usage(int(model_idx[i]), total_in, int(out[i]), cr, cw, 0))
    return result


class Templates:
    """A pool of priced calls (model + tokens + exact cost) that stored rows are drawn from.

    Pricing each of 10M rows one by one is not what is being measured here; rows draw their model,
    tokens and cost from this pool, priced by the real :class:`spanledger.Pricer`.
    """

    def __init__(self, rng: np.random.Generator, *, size: int = 8192, when: datetime = DATA_END) -> None:
        pricer = Pricer()
        model_idx = rng.choice(len(MODELS), size=size, p=np.array([m.share for m in MODELS]))
        self.columns: dict[str, list[Any]] = {k: [] for k in _TEMPLATE_KEYS}
        for j, u in enumerate(draw_usage(rng, model_idx)):
            error = j % 64 == 0  # ~1.5 % of the pool: failed calls with no usage
            m = MODELS[u.model]
            call = LLMCall(
                timestamp=when,
                trace_id=0,
                span_id=0,
                parent_span_id=0,
                duration_us=0,
                provider=m.provider,
                model=m.response_model,
                request_model=m.request_model,
                operation="chat",
                input_tokens=0 if error else u.input_tokens,
                output_tokens=0 if error else u.output_tokens,
                cache_read_tokens=0 if error else u.cache_read,
                cache_write_tokens=0 if error else u.cache_write,
                reasoning_tokens=0,
                user_id="",
                user_source="",
                tenant_id="",
                tags={},
                is_error=error,
                error_type="RateLimitError" if error else "",
                response_id="",
                service_name="api",
                source="otel-genai",
            )
            pricer.price(call)
            for key in _TEMPLATE_KEYS:
                self.columns[key].append(getattr(call, key))
        self.size = size


_TEMPLATE_KEYS = (
    "provider",
    "model",
    "request_model",
    "operation",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "is_error",
    "error_type",
    "flags",
    "cost",
    "input_cost",
    "output_cost",
    "price_source",
    "price_model",
)


def _random_strings(rng: np.random.Generator, n: int, width: int, prefix: str) -> list[str]:
    raw = _ALPHABET[rng.integers(0, len(_ALPHABET), size=(n, width))].tobytes().decode("ascii")
    return [prefix + raw[i * width : (i + 1) * width] for i in range(n)]


def call_blocks(
    pop: Population,
    templates: Templates,
    total: int,
    *,
    block: int = 250_000,
    days: float = 30,
    end: datetime = DATA_END,
    seed: int = SEED,
    sliced: bool = True,
) -> Iterator[list[list[Any]]]:
    """``total`` stored calls as column blocks for ``Store.insert_calls``, spread over ``days``.

    ``sliced``: block ``k`` covers the ``k``-th slice of the window (the data arrives in time order, as
    from an exporter). Otherwise every block covers all ``days`` (sorted inside the block), so any prefix
    of whole blocks is itself a valid data set.
    """
    rng = np.random.default_rng(seed)
    start_us = int((end - timedelta(days=days)).timestamp() * 1_000_000)
    span_us = int(days * 86_400 * 1_000_000)
    blocks = max(1, -(-total // block))
    tc = templates.columns
    plan_of = pop.tenant_plan
    done = 0
    for k in range(blocks):
        n = min(block, total - done)
        lo = start_us + span_us * k // blocks if sliced else start_us
        hi = start_us + span_us * (k + 1) // blocks if sliced else start_us + span_us
        ts = np.sort(rng.integers(lo, hi, size=n))
        users = rng.choice(pop.users, size=n, p=pop.user_p)
        tmpl = rng.integers(0, templates.size, size=n).tolist()
        feature = rng.choice(len(FEATURES), size=n, p=FEATURE_SHARE).tolist()
        unattributed = (rng.random(n) < UNATTRIBUTED_SHARE).tolist()
        hi64 = rng.integers(0, 2**63, size=n, dtype=np.int64).tolist()
        lo64 = rng.integers(0, 2**63, size=n, dtype=np.int64).tolist()
        span = rng.integers(1, 2**63, size=n, dtype=np.int64).tolist()
        duration = (rng.lognormal(np.log(1_200_000), 0.7, size=n)).astype(np.int64).tolist()
        resp = _random_strings(rng, n, 29, "chatcmpl-")
        user_ids, tenant_ids, tags, sources = [], [], [], []
        for u, f, un in zip(users.tolist(), feature, unattributed, strict=True):
            if un:
                user_ids.append("")
                tenant_ids.append("")
                tags.append({})
                sources.append("")
            else:
                t = int(pop.user_tenant[u])
                user_ids.append(pop.user_names[u])
                tenant_ids.append(pop.tenant_names[t])
                tags.append({"feature": FEATURES[f], "plan": plan_of[t]})
                sources.append("attribution")
        cols: dict[str, list[Any]] = {
            "timestamp": ts.tolist(),
            "trace_id": [(h << 64) | low for h, low in zip(hi64, lo64, strict=True)],
            "span_id": span,
            "parent_span_id": [0] * n,
            "duration_us": duration,
            "user_id": user_ids,
            "user_source": sources,
            "tenant_id": tenant_ids,
            "tags": tags,
            "response_id": resp,
            "service_name": ["api"] * n,
            "source": ["otel-genai"] * n,
            "prompt": [""] * n,
            "completion": [""] * n,
        }
        for key in _TEMPLATE_KEYS:
            values = tc[key]
            cols[key] = [values[i] for i in tmpl]
        cols["is_error"] = [1 if e else 0 for e in cols["is_error"]]
        yield [cols[name] for name in RAW_COLUMN_NAMES]
        done += n


# --- spans -------------------------------------------------------------------------------------------------


class _Collect(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


_SYSTEM_PROMPT = (
    "You are a helpful assistant for a project-management SaaS. Answer concisely, cite the ticket ids you "
    "used, never invent data, and format lists as Markdown. "
) * 6


class SpanFactory:
    """Finished LLM spans as the OpenAI / Anthropic instrumentations write them, attributed by baggage."""

    def __init__(self, pop: Population, *, seed: int = SEED, content: bool = False) -> None:
        self.pop = pop
        self.rng = np.random.default_rng(seed)
        self.content = content
        self._collect = _Collect()
        self.provider = TracerProvider()
        self.provider.add_span_processor(UserAttributionProcessor())
        self.provider.add_span_processor(self._collect)
        self.tracer = self.provider.get_tracer("bench")

    def attributes(self, n: int) -> Iterator[tuple[int, int, dict[str, Any], dict[str, Any], bool]]:
        """(user index, feature index, start attributes, end attributes, is_error) for ``n`` calls."""
        rng = self.rng
        users = rng.choice(self.pop.users, size=n, p=self.pop.user_p).tolist()
        feature = rng.choice(len(FEATURES), size=n, p=FEATURE_SHARE).tolist()
        models = rng.choice(len(MODELS), size=n, p=self.pop.model_p)
        usage = draw_usage(rng, models)
        errors = (rng.random(n) < ERROR_SHARE).tolist()
        resp = _random_strings(rng, n, 29, "chatcmpl-")
        for i in range(n):
            u = usage[i]
            m = MODELS[u.model]
            start = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": m.provider,
                "gen_ai.request.model": m.request_model,
                "server.address": "api.example.com",
            }
            end: dict[str, Any] = {}
            if not errors[i]:
                end = {
                    "gen_ai.response.model": m.response_model,
                    "gen_ai.response.id": resp[i],
                    "gen_ai.usage.input_tokens": u.input_tokens,
                    "gen_ai.usage.output_tokens": u.output_tokens,
                    "gen_ai.usage.total_tokens": u.input_tokens + u.output_tokens,
                }
                if u.cache_read:
                    end["gen_ai.usage.cache_read.input_tokens"] = u.cache_read
                if u.cache_write:
                    end["gen_ai.usage.cache_creation.input_tokens"] = u.cache_write
                if self.content:
                    end["gen_ai.input.messages"] = self._prompt(i, u.input_tokens)
                    end["gen_ai.output.messages"] = self._completion(i, u.output_tokens)
            else:
                end = {"error.type": "RateLimitError"}
            yield users[i], feature[i], start, end, errors[i]

    def _prompt(self, i: int, tokens: int) -> str:
        question = f"Summarise ticket PRJ-{i % 9973} and list the blockers for sprint {i % 37}. " * max(
            1, min(40, tokens // 400)
        )
        return json.dumps(
            [
                {"role": "system", "parts": [{"type": "text", "content": _SYSTEM_PROMPT}]},
                {"role": "user", "parts": [{"type": "text", "content": question}]},
            ]
        )

    def _completion(self, i: int, tokens: int) -> str:
        words = self.rng.choice(_WORDS, size=max(5, min(1500, int(tokens * 0.75)))).tolist()
        return json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": " ".join(words)}], "finish_reason": "stop"}]
        )

    def spans(self, n: int, *, start_ns: int, end_ns: int) -> list[ReadableSpan]:
        """``n`` finished spans whose start times are spread evenly over ``[start_ns, end_ns)``."""
        self._collect.spans = []
        pop = self.pop
        step = max(1, (end_ns - start_ns) // max(1, n))
        for i, (u, f, start_attrs, end_attrs, error) in enumerate(self.attributes(n)):
            t0 = start_ns + i * step
            if i % 100 != 99:  # 1 % unattributed
                tenant = int(pop.user_tenant[u])
                scope = attribute_to(
                    user_id=pop.user_names[u],
                    tenant_id=pop.tenant_names[tenant],
                    plan=pop.tenant_plan[tenant],
                    feature=FEATURES[f],
                )
            else:
                scope = attribute_to()
            with scope:
                span = self.tracer.start_span(
                    f"chat {start_attrs['gen_ai.request.model']}",
                    kind=SpanKind.CLIENT,
                    attributes=start_attrs,
                    start_time=t0,
                )
                span.set_attributes(end_attrs)
                if error:
                    span.set_status(Status(StatusCode.ERROR, "rate limited"))
                span.end(end_time=t0 + 800_000_000)
        out, self._collect.spans = self._collect.spans, []
        return out


_WORDS = np.array(
    [
        "the",
        "sprint",
        "ticket",
        "blocker",
        "review",
        "deploy",
        "migration",
        "customer",
        "billing",
        "invoice",
        "latency",
        "cache",
        "index",
        "query",
        "release",
        "owner",
        "team",
        "priority",
        "estimate",
        "backlog",
        "risk",
        "dependency",
        "api",
        "schema",
        "design",
        "test",
        "coverage",
        "bug",
        "fix",
        "rollback",
        "incident",
        "alert",
        "dashboard",
        "metric",
        "cost",
        "budget",
        "forecast",
        "plan",
        "scope",
        "milestone",
        "demo",
        "feedback",
    ]
)


def decimal_sum(values: list[Decimal | None]) -> Decimal:
    return sum((v for v in values if v is not None), Decimal(0))

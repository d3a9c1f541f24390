"""The demo's month: a seeded plan of who calls which model when, and the story it is built to tell.

Thirty days ending at ``end``: weekdays about three times as busy as weekends and working hours busier
than nights; a few heavy users dominate (Zipf-like); one tenant grows week over week, one light user spikes
on a known day (a CI job stuck in a loop), one tenant moves from one model to another mid-month. The month
also holds, on purpose, the cases the ledger's counts must get right: background jobs with no user (the
"(unattributed)" row), users with no tenant (the "(no tenant)" bucket, with the jobs), failed calls (no
tokens, stored under the model asked for, not the dated snapshot that answers), a self-hosted model with no
public price, and prompt-cache reads.

The same seed, number of calls and ``end`` give the same plan, call for call.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

DEFAULT_CALLS = 30_000
DEFAULT_SEED = 7
DAYS = 30
UNPRICED_MODEL = "llama-3.1-8b-selfhosted"
"""A self-hosted model behind an OpenAI-compatible gateway: no public price, so its calls stay unpriced."""

GROWING_TENANT = "piedpiper"
GROWING_SHARE = 0.08
"""The growing tenant's share of the month's calls."""
WEEKLY_GROWTH = 1.5
"""How much more the growing tenant calls each week than the week before."""
SWITCH_TENANT, OLD_MODELS, NEW_MODEL = "globex", ("gpt-4o", "gpt-4.1"), "gpt-5-mini"
"""Mid-month, this tenant moves every call it made to the old models to the new one."""
SPIKE_TENANT, SPIKE_FEATURE, SPIKE_MODEL = "umbrella", "code-review", "gpt-4.1"
SPIKE_SHARE = 0.012
"""The spike's share of the month's calls, all made by one user in one afternoon."""

_PLANS = {"enterprise": 1.6, "pro": 1.0, "free": 0.35}
"""Plan → how much more than average its users call."""
# fmt: off
_TENANTS = (
    ("acme", "enterprise", 8), ("globex", "enterprise", 6), ("initech", "pro", 6), ("umbrella", "pro", 5),
    ("hooli", "pro", 5), ("piedpiper", "free", 4), ("vandelay", "free", 4), ("wonka", "free", 3),
)
"""(tenant, plan, number of users)"""
NO_TENANT_USERS = 3
"""Users who signed up without an organisation (free plan): their calls carry a user but no tenant."""
_NAMES = (
    "maya", "ari", "lena", "omar", "jin", "sofia", "noah", "ines", "ravi", "zoe", "liam", "ada", "kofi", "emma",
    "yuki", "leo", "nora", "amir", "chloe", "tariq", "mila", "jonas", "hana", "diego", "freya", "sam", "ivy",
    "malik", "rosa", "theo", "aisha", "ben", "clara", "dev", "elif", "finn", "gala", "hugo", "iris", "juno", "kai",
    "lars", "mei", "oona",
)
SNAPSHOTS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06", "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14", "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "o3-mini": "o3-mini-2025-01-31", "gpt-5-mini": "gpt-5-mini-2025-08-07", UNPRICED_MODEL: UNPRICED_MODEL,
}
"""The dated snapshot the API answers with for each requested model."""
_WEEKDAY = (1.0, 1.0, 1.0, 1.0, 0.9, 0.35, 0.3)
"""Monday … Sunday: how busy a day is."""
# fmt: on
_FREE_MODELS = frozenset({"gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1-nano"})
_ERRORS = ((429, 5), (500, 3), (503, 2))
_ERROR_RATE = 0.025
_JOB_RATE = 0.05
"""Share of sessions that are background jobs, with no user or tenant, running around the clock."""
_JOB_FEATURES = frozenset({"summarize", "extract", "search"})
_SESSION_EXTRA_CALLS = 3.0
"""Mean number of calls in a session after the first."""


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    weight: float
    plans: frozenset[str]
    models: tuple[tuple[str, float], ...]
    input: tuple[int, int]
    output: tuple[int, int]
    cache_rate: float
    """Share of calls whose prompt prefix hits the provider's prompt cache."""
    prompt: str


_ALL = frozenset(_PLANS)
_PAID = frozenset({"pro", "enterprise"})
_ENTERPRISE = frozenset({"enterprise"})
# fmt: off
FEATURES = {f.name: f for f in (
    #       name           weight plans        models (weighted)                              input tokens   output       cache
    Feature("chat",        5,   _ALL,        (("gpt-4o-mini", 6), ("gpt-4o", 3)),             (300, 3000),   (40, 600),   0.4,
            "How do I rotate my API keys?"),
    Feature("summarize",   3,   _ALL,        (("gpt-4o-mini", 5), ("gpt-4.1-mini", 3)),       (2000, 9000),  (120, 450),  0.1,
            "Summarize this thread."),
    Feature("search",      3,   _ALL,        (("gpt-4.1-nano", 1),),                          (500, 2000),   (30, 200),   0.0,
            "Rewrite this query for search."),
    Feature("extract",     2,   _PAID,       (("gpt-4.1-mini", 2), (UNPRICED_MODEL, 3)),      (800, 4000),   (60, 300),   0.2,
            "Extract the invoice fields as JSON."),
    Feature("code-review", 2,   _PAID,       (("gpt-4.1", 1),),                               (4000, 16000), (300, 1500), 0.5,
            "Review this diff."),
    Feature("support-bot", 2,   _ENTERPRISE, (("gpt-4o", 1),),                                (1500, 6000),  (80, 500),   0.7,
            "Customer asks about SSO."),
    Feature("agent",       1.5, _ENTERPRISE, (("o3-mini", 1),),                               (3000, 12000), (600, 4000), 0.3,
            "Plan the data migration."),
)}
# fmt: on
TENANTS: tuple[str, ...] = tuple(t for t, _, _ in _TENANTS)
PLANS: dict[str, str] = {t: plan for t, plan, _ in _TENANTS}
"""Tenant → its plan."""


@dataclass(frozen=True, slots=True)
class DemoCall:
    """One simulated request: who, when, which model, and what the stub should answer."""

    at: datetime
    """When it started (UTC)."""
    user_id: str | None
    tenant_id: str | None
    plan: str | None
    feature: str
    model: str
    """The model asked for (the stub answers with its dated snapshot, :data:`SNAPSHOTS`)."""
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int
    status: int

    @property
    def failed(self) -> bool:
        return self.status != 200


@dataclass(frozen=True, slots=True)
class Story:
    """What the month is built to show, with its names and dates."""

    start: datetime
    end: datetime
    growing_tenant: str
    spike_user: str
    spike_day: date
    spike_calls: int
    switch_tenant: str
    switch_day: date
    """From midnight (UTC) of this day on, the tenant's calls to :data:`OLD_MODELS` go to :data:`NEW_MODEL`."""
    no_tenant_users: tuple[str, ...]

    def weeks(self) -> list[tuple[datetime, datetime]]:
        """The last four whole weeks (7 × 24 h each, ending at ``end``), oldest first."""
        return [(self.end - timedelta(days=7 * (w + 1)), self.end - timedelta(days=7 * w)) for w in range(3, -1, -1)]


@dataclass(frozen=True, slots=True)
class Month:
    """The plan: the story and every call, oldest first."""

    story: Story
    calls: list[DemoCall]


@dataclass(frozen=True, slots=True)
class _User:
    user_id: str
    tenant: str | None
    plan: str
    weight: float


def plan_month(*, calls: int = DEFAULT_CALLS, seed: int = DEFAULT_SEED, end: datetime | None = None) -> Month:
    """A seeded month of traffic ending at ``end`` (default: the start of the current hour, UTC).

    Same ``calls``, ``seed`` and ``end``, same month. ``calls`` is exact: the spike takes
    :data:`SPIKE_SHARE` of them, the sessions of the month the rest.
    """
    if calls < 1:
        raise ValueError(f"calls must be 1 or more, got {calls}")
    end = (end or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)).astimezone(UTC)
    rng = random.Random(seed)
    users = _cast(rng)
    spiker = min((u for u in users if u.tenant == SPIKE_TENANT), key=lambda u: u.weight)  # a light user
    spike_day = (end - timedelta(days=10)).date()
    while spike_day.weekday() >= 5:  # a working day
        spike_day -= timedelta(days=1)
    story = Story(
        start=end - timedelta(days=DAYS),
        end=end,
        growing_tenant=GROWING_TENANT,
        spike_user=spiker.user_id,
        spike_day=spike_day,
        spike_calls=max(1, round(calls * SPIKE_SHARE)),
        switch_tenant=SWITCH_TENANT,
        switch_day=(end - timedelta(days=DAYS // 2)).date(),
        no_tenant_users=tuple(sorted(u.user_id for u in users if u.tenant is None)),
    )
    out = _spike(rng, story, spiker, story.spike_calls)
    slots = [story.start + timedelta(hours=h) for h in range(DAYS * 24)]
    busy = [_WEEKDAY[s.weekday()] * _hour_weight(s.hour) for s in slots]
    growing = [u for u in users if u.tenant == story.growing_tenant]
    out += _growing(rng, story, growing, slots, busy, min(calls - len(out), round(calls * GROWING_SHARE)))
    others = [u for u in users if u.tenant != story.growing_tenant]
    out += _sessions(rng, story, others, slots, busy, calls - len(out), job_rate=_JOB_RATE)
    out.sort(key=lambda c: c.at)
    return Month(story, out)


def _cast(rng: random.Random) -> list[_User]:
    """The users: tenants' members and the few with no tenant, ranked at random, heavy ones first."""
    names = list(_NAMES)
    rng.shuffle(names)
    people: list[tuple[str, str | None, str]] = []
    for tenant, plan, n in _TENANTS:
        people += [(f"{names.pop()}@{tenant}.example", tenant, plan) for _ in range(n)]
    people += [(f"{names.pop()}@mail.example", None, "free") for _ in range(NO_TENANT_USERS)]
    rng.shuffle(people)
    return [_User(u, t, p, _PLANS[p] / rank**1.1) for rank, (u, t, p) in enumerate(people, start=1)]


def _spike(rng: random.Random, story: Story, user: _User, n: int) -> list[DemoCall]:
    """A CI job stuck in a loop: the same big diff sent for review every half minute or so, one afternoon."""
    feature = FEATURES[SPIKE_FEATURE]
    begin = datetime(story.spike_day.year, story.spike_day.month, story.spike_day.day, 13, tzinfo=UTC)
    step = timedelta(hours=6) / n
    return [
        _call(rng, begin + i * step + step * rng.random(), user, feature, SPIKE_MODEL, cache_rate=0.9) for i in range(n)
    ]


def _growing(
    rng: random.Random, story: Story, users: Sequence[_User], slots: Sequence[datetime], busy: Sequence[float], n: int
) -> list[DemoCall]:
    """The growing tenant's ``n`` calls: each day's number fixed by the rhythm and :data:`WEEKLY_GROWTH`, so
    every week holds more calls than the week before, whatever the draws."""
    grown = [weight * WEEKLY_GROWTH ** (hour / (7 * 24)) for hour, weight in enumerate(busy)]
    scale = n / sum(grown)
    out: list[DemoCall] = []
    for day in range(0, len(slots), 24):
        hours = slice(day, day + 24)
        out += _sessions(rng, story, users, slots[hours], grown[hours], round(sum(grown[hours]) * scale))
    return out[:n]


def _sessions(
    rng: random.Random,
    story: Story,
    users: Sequence[_User],
    slots: Sequence[datetime],
    weights: Sequence[float],
    n: int,
    *,
    job_rate: float = 0.0,
) -> list[DemoCall]:
    """``n`` calls in short sessions, each one user (or one background job) making a few calls to one feature,
    starting in one of the hour ``slots`` picked by ``weights`` (a job's in any of them)."""
    by_slot = list(itertools.accumulate(weights))
    by_user = list(itertools.accumulate(u.weight for u in users))
    out: list[DemoCall] = []
    while len(out) < n:
        job = job_rate > 0 and rng.random() < job_rate
        slot = rng.randrange(len(slots)) if job else rng.choices(range(len(slots)), cum_weights=by_slot)[0]
        at = slots[slot] + timedelta(seconds=rng.uniform(0, 3600))
        user = None if job else rng.choices(users, cum_weights=by_user)[0]
        plan = "" if user is None else user.plan
        features = [f for f in FEATURES.values() if (f.name in _JOB_FEATURES if user is None else plan in f.plans)]
        feature = rng.choices(features, [f.weight for f in features])[0]
        models = [m for m in feature.models if plan != "free" or m[0] in _FREE_MODELS] or list(feature.models[:1])
        model = rng.choices([m for m, _ in models], [w for _, w in models])[0]
        size = min(n - len(out), 1 + int(rng.expovariate(1 / _SESSION_EXTRA_CALLS)))
        for _ in range(size):
            if at >= story.end:
                break
            switched = user is not None and user.tenant == story.switch_tenant and at.date() >= story.switch_day
            out.append(_call(rng, at, user, feature, NEW_MODEL if switched and model in OLD_MODELS else model))
            at += timedelta(seconds=rng.uniform(3, 40))
    return out


def _hour_weight(hour: int) -> float:
    """Working hours (UTC) are busier than the night."""
    middle = hour + 0.5
    return 0.2 + 0.8 * max(0.0, math.sin(math.pi * (middle - 7) / 12)) if 7 <= middle <= 19 else 0.2


def _call(
    rng: random.Random,
    at: datetime,
    user: _User | None,
    feature: Feature,
    model: str,
    *,
    cache_rate: float | None = None,
) -> DemoCall:
    input_tokens = _log_uniform(rng, feature.input)
    output_tokens = _log_uniform(rng, feature.output)
    cached = 0
    if input_tokens >= 1024 and rng.random() < (feature.cache_rate if cache_rate is None else cache_rate):
        # OpenAI caches a prompt prefix of 1,024 tokens and more, in steps of 128
        cached = 1024 + 128 * rng.randint(0, max(0, int(input_tokens * 0.8) - 1024) // 128)
    reasoning = round(output_tokens * rng.uniform(0.4, 0.8)) if model.startswith("o") else 0
    status = 200
    if rng.random() < _ERROR_RATE:
        status = rng.choices([s for s, _ in _ERRORS], [w for _, w in _ERRORS])[0]
    user_id, tenant, plan = (None, None, None) if user is None else (user.user_id, user.tenant, user.plan)
    return DemoCall(
        at, user_id, tenant, plan, feature.name, model, input_tokens, cached, output_tokens, reasoning, status
    )


def _log_uniform(rng: random.Random, bounds: tuple[int, int]) -> int:
    """A log-uniform whole number within ``bounds``: many small values, a few large ones."""
    lo, hi = bounds
    return round(math.exp(rng.uniform(math.log(lo), math.log(hi))))

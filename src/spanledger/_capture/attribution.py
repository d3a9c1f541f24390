"""Who a span's work is for: the ``attribute_to`` helper and the ``UserAttributionProcessor``.

The app says once, at its request boundary, whom the work is for. The default carrier is OpenTelemetry
baggage, which follows the context into child spans, asyncio tasks, threads started with a copied
context, and (through propagators) into other services. Baggage is also sent in a ``baggage`` header on
**every** outgoing HTTP request by instrumented HTTP clients, LLM providers included; pass
``propagate=False`` to keep the ids inside this process instead.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar, cast

from opentelemetry import baggage, context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import get_current_span
from opentelemetry.trace import propagation as trace_propagation

from .._config import env_list
from .._privacy.pseudonym import Pseudonymizer
from .._privacy.pseudonym import resolve as _pseudonymizer

USER_ATTRIBUTE = "enduser.id"
"""The span attribute holding the end user (OpenTelemetry's standard name)."""
TENANT_ATTRIBUTE = "tenant.id"
"""The span attribute holding the tenant (organisation, workspace, account)."""
TAG_PREFIX = "spanledger.tag."
"""Every other tag ``k`` is written as the span attribute ``spanledger.tag.k``."""
NESTED_ATTRIBUTE = "spanledger.nested_llm_span"
"""Set on the outer of two LLM spans that describe the same call; the exporter skips it."""

DEFAULT_USER_KEYS = ("userId", "user_id", "user.id", "enduser.id")
DEFAULT_TENANT_KEYS = ("tenantId", "tenant_id", "tenant.id", "org", "orgId", "organization.id")
DEFAULT_TAG_KEYS = ("plan", "feature", "env", "environment", "team", "project", "region")

_LOCAL_KEY = context.create_key("spanledger-local-attribution")
_EXPLICIT_TAGS_KEY = context.create_key("spanledger-explicit-keys")
# The API's own key for baggage in a Context: reading it directly saves the two calls and the
# MappingProxyType that baggage.get_all adds per span (checked against get_all in the tests).
_BAGGAGE_KEY: str | None = getattr(baggage, "_BAGGAGE_KEY", None)
# The same for the current span (``trace.get_current_span`` is a call and a default look-up per span).
_SPAN_KEY: str | None = getattr(trace_propagation, "_SPAN_KEY", None)
_OWN_IDENTITY_KEYS = frozenset({"userId", "tenantId"})
_NO_KEYS: frozenset[str] = frozenset()

# Attributes an LLM span has when it starts, in any of the conventions we read.
_LLM_START_MARKERS = ("gen_ai.request.model", "llm.model_name", "ai.model.id")
_PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system", "ai.model.provider")
# A span that has one of these when it starts may be an LLM call (some instrumentations set the model later).
_LLM_KEYS = _LLM_START_MARKERS + _PROVIDER_KEYS
_LLM_KEY_SET = frozenset(_LLM_KEYS)
_LLM_START_SET = frozenset(_LLM_START_MARKERS)
# The last LLM span started in this context; a ContextVar, so each thread and asyncio task has its own.
_LAST_LLM_SPAN: ContextVar[Span | None] = ContextVar("spanledger_last_llm_span", default=None)

F = TypeVar("F", bound=Callable[..., Any])


class attribute_to(contextlib.ContextDecorator):
    """Attribute every span started inside to a user, a tenant and tags.

    Use it as ``with attribute_to(user_id=…):`` or as a decorator on a sync or ``async def`` function.
    Nested uses override the outer values key by key and restore them on exit. ``None`` values are
    left out. Tags are free-form ``key=value`` pairs (``plan="pro"``, ``feature="summarize"``).

    Args:
        user_id: The end user; written under the baggage key ``userId``.
        tenant_id: The tenant; written under ``tenantId``.
        propagate: ``True`` (default) stores the values as baggage, which crosses process boundaries
            and is sent in the ``baggage`` header of outgoing requests. ``False`` keeps them in a
            private context key that no propagator sends.
        **tags: Other tags; each is copied onto spans as ``spanledger.tag.<key>``.

    With ``SPANLEDGER_ID_KEY`` set, the user id (and the tenant id, when tenants are pseudonymized) is
    stored as its pseudonym: baggage leaves the process too.
    """

    def __init__(
        self, user_id: object = None, tenant_id: object = None, *, propagate: bool = True, **tags: object
    ) -> None:
        values: dict[str, str] = {}
        hasher = _pseudonymizer(None)
        if user_id is not None:
            values["userId"] = str(user_id) if hasher is None else hasher(str(user_id))
        if tenant_id is not None:
            values["tenantId"] = str(tenant_id) if hasher is None else hasher.tenant(str(tenant_id))
        for key, value in tags.items():
            if value is not None:
                values[key] = str(value)
        self._values = values
        self._propagate = propagate
        self._tokens: list[object] = []

    def __enter__(self) -> attribute_to:
        ctx = context.get_current()
        if self._propagate:
            for key, value in self._values.items():
                ctx = baggage.set_baggage(key, value, context=ctx)
        else:
            local = dict(cast(Mapping[str, str], context.get_value(_LOCAL_KEY, ctx) or {}))
            local.update(self._values)
            ctx = context.set_value(_LOCAL_KEY, local, ctx)
        # Remember which keys this process set on purpose: they are honoured whatever the key lists say.
        explicit = cast(frozenset[str], context.get_value(_EXPLICIT_TAGS_KEY, ctx) or frozenset())
        ctx = context.set_value(_EXPLICIT_TAGS_KEY, explicit | frozenset(self._values), ctx)
        self._tokens.append(context.attach(ctx))
        return self

    def __exit__(self, *exc: object) -> None:
        context.detach(self._tokens.pop())  # type: ignore[arg-type]

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._recreate_cm():
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)
        return super().__call__(func)

    def _recreate_cm(self) -> attribute_to:
        # a fresh instance per call so that concurrent calls of a decorated function never share tokens
        clone = attribute_to.__new__(attribute_to)
        clone._values = self._values
        clone._propagate, clone._tokens = self._propagate, []
        return clone


def own_keys(ctx: Context | None = None) -> frozenset[str]:
    """The baggage keys :class:`attribute_to` set in this context (tags included)."""
    return cast(frozenset[str], context.get_value(_EXPLICIT_TAGS_KEY, ctx) or _NO_KEYS)


def span_attributes(span: ReadableSpan) -> Mapping[str, Any]:
    """The span's attributes as a plain dict when the SDK keeps one (read-only use).

    ``ReadableSpan.attributes`` wraps the SDK's ``BoundedAttributes`` in a new ``MappingProxyType`` on
    every access and answers each look-up through the ``Mapping`` ABC; on the per-span hot path that
    costs more than the work itself. Falls back to the public property for any other span type.
    """
    raw = getattr(span, "_attributes", None)
    if type(raw) is dict:
        return raw
    plain = getattr(raw, "_dict", None)
    if type(plain) is dict:
        return plain
    return span.attributes or {}


class UserAttributionProcessor(SpanProcessor):
    """Copy user, tenant and allowed tags from baggage onto every span when it starts.

    The first present key of ``user_keys`` becomes ``enduser.id``, of ``tenant_keys`` ``tenant.id``;
    each key of ``tag_keys`` present in baggage becomes ``spanledger.tag.<key>``, and so does every tag
    set through :class:`attribute_to` in this process. ``tag_keys=("*",)`` allows every other key.
    A span whose instrumentation already set ``enduser.id`` keeps it.

    Key lists fall back to ``SPANLEDGER_USER_KEYS``, ``SPANLEDGER_TENANT_KEYS`` and
    ``SPANLEDGER_TAG_KEYS`` (comma-separated), then to the defaults in this module.

    ``pseudonymize`` (a :class:`~spanledger.Pseudonymizer`, ``True`` for ``SPANLEDGER_ID_KEY``, ``False`` for
    off; by default on when ``SPANLEDGER_ID_KEY`` is set) writes each user id as its keyed hash, tenant ids
    too when asked, and hashes the ids an instrumentation put on the span when it started.
    """

    def __init__(
        self,
        *,
        user_keys: Sequence[str] | None = None,
        tenant_keys: Sequence[str] | None = None,
        tag_keys: Sequence[str] | None = None,
        pseudonymize: Pseudonymizer | bool | None = None,
    ) -> None:
        self._pseudonymize = _pseudonymizer(pseudonymize)
        if self._pseudonymize is not None:
            from .._privacy.spans import hashed_ids  # a cycle at import time: conventions needs this module

            self._hashed_ids = hashed_ids
        self._user_keys = env_list("SPANLEDGER_USER_KEYS", user_keys, DEFAULT_USER_KEYS)
        self._tenant_keys = env_list("SPANLEDGER_TENANT_KEYS", tenant_keys, DEFAULT_TENANT_KEYS)
        tags = env_list("SPANLEDGER_TAG_KEYS", tag_keys, DEFAULT_TAG_KEYS)
        self._all_tags = "*" in tags
        self._tag_keys = frozenset(tags)
        self._identity_keys = frozenset(self._user_keys) | frozenset(self._tenant_keys)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        # Runs for every span the host creates: one context look-up, then plain dict reads.
        ctx = parent_context if parent_context is not None else context.get_current()
        attrs = span_attributes(span)
        if attrs and not _LLM_KEY_SET.isdisjoint(attrs):  # iterates the span's few keys, at C speed
            _mark_outer_duplicate(span, ctx.get(_SPAN_KEY) if _SPAN_KEY is not None else get_current_span(ctx))
        pseudonymize = self._pseudonymize
        if pseudonymize is not None and attrs:  # ids the instrumentation set as the span started
            hashed = self._hashed_ids(attrs, pseudonymize)
            if hashed:
                span.set_attributes(hashed)
        values: Any = ctx.get(_BAGGAGE_KEY) if _BAGGAGE_KEY is not None else baggage.get_all(ctx)
        local = ctx.get(_LOCAL_KEY)
        if not values and not local:
            return  # the common case with no attribution
        if values and type(values) is not dict:  # stored some other way: ask the API
            values = baggage.get_all(ctx)
        if local:
            values = {**(values or {}), **cast(Mapping[str, str], local)}
        attributes: dict[str, str] = {}
        explicit = cast(frozenset[str], ctx.get(_EXPLICIT_TAGS_KEY) or _NO_KEYS)
        # attribute_to in this process wins, whatever the configured key lists. The user and tenant
        # look-ups are written out rather than shared through a helper: a call per span costs more here.
        user = values.get("userId") if "userId" in explicit else None
        if not user:
            for key in self._user_keys:
                user = values.get(key)
                if user:
                    break
        if user:
            attributes[USER_ATTRIBUTE] = str(user) if pseudonymize is None else pseudonymize(str(user))
        tenant = values.get("tenantId") if "tenantId" in explicit else None
        if not tenant:
            for key in self._tenant_keys:
                tenant = values.get(key)
                if tenant:
                    break
        if tenant:
            attributes[TENANT_ATTRIBUTE] = str(tenant) if pseudonymize is None else pseudonymize.tenant(str(tenant))
        skip = self._identity_keys if not explicit else self._identity_keys | (_OWN_IDENTITY_KEYS & explicit)
        all_tags, tag_keys = self._all_tags, self._tag_keys
        for key, value in values.items():
            if key not in skip and (all_tags or key in tag_keys or key in explicit):
                attributes[TAG_PREFIX + key] = str(value)
        if attrs and USER_ATTRIBUTE in attrs:  # the instrumentation named the user: keep it
            attributes.pop(USER_ATTRIBUTE, None)
        if attributes:
            span.set_attributes(attributes)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _mark_outer_duplicate(span: Span, parent: object) -> None:
    """When two instrumentations record the same LLM call, mark the outer span so only one is counted.

    The inner span (closest to the wire: the provider SDK's own) is kept. The outer one is either the
    new span's parent, or — when an instrumentation starts its span without making it current, as
    ``opentelemetry-instrumentation-anthropic`` does around the Anthropic SDK's own span — the last LLM
    span started in this context, still open, from another instrumentation, for the same provider and
    model.
    """
    previous = _LAST_LLM_SPAN.get()
    _LAST_LLM_SPAN.set(span)
    # an SDK span's attribute dict, read without the per-access proxy (see span_attributes); None for
    # a non-recording or foreign span, which cannot be marked anyway
    parent_attrs = getattr(getattr(parent, "_attributes", None), "_dict", None)
    if type(parent_attrs) is dict and not _LLM_START_SET.isdisjoint(parent_attrs):
        if isinstance(parent, Span) and parent.is_recording():
            parent.set_attribute(NESTED_ATTRIBUTE, True)
        return
    if previous is None or previous is span or not previous.is_recording():
        return
    before, attrs = span_attributes(previous), span_attributes(span)
    if (
        previous.instrumentation_scope != span.instrumentation_scope
        and _first(before, _LLM_START_MARKERS) == _first(attrs, _LLM_START_MARKERS)
        and _first(before, _PROVIDER_KEYS) == _first(attrs, _PROVIDER_KEYS)
    ):
        previous.set_attribute(NESTED_ATTRIBUTE, True)


def _first(attrs: Mapping[str, object], keys: tuple[str, ...]) -> object:
    return next((attrs[k] for k in keys if k in attrs), None)

"""Ids that stay home: a propagator wrapper that leaves spanledger's baggage keys out of requests to third parties.

Instrumented HTTP clients — and the Anthropic SDK itself — put the context's baggage in a ``baggage`` header on
every request, so user and tenant ids reach LLM providers. :class:`IdsStayHome` wraps the propagator that writes
those headers: for a request to a third party it injects the context *without* spanledger's keys (the user and
tenant keys, ``SPANLEDGER_USER_KEYS`` / ``SPANLEDGER_TENANT_KEYS``, and every key ``attribute_to`` set), and
unchanged for the application's own services, so attribution across them keeps working. Other baggage and the
trace context go out as before.

Where a request goes is read at injection time from the carrier's ``Host`` header, else from the span being
propagated: ``server.address`` / ``server.port`` (the Anthropic SDK's call span, current HTTP client
instrumentations), ``url.full``, ``http.url`` or ``net.peer.name`` / ``net.peer.port`` (older ones). A request
whose destination cannot be told is treated as going to a third party: the keys stay home.

Install it once, at start-up::

    from opentelemetry import propagate
    propagate.set_global_textmap(IdsStayHome())   # wraps the propagators already configured
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from opentelemetry import baggage, propagate, trace
from opentelemetry.context import Context, get_current
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

from .._capture.attribution import DEFAULT_TENANT_KEYS, DEFAULT_USER_KEYS, own_keys
from .._config import env_list

LLM_PROVIDER_HOSTS: Final = (
    "api.openai.com",
    "*.openai.azure.com",
    "*.services.ai.azure.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "*aiplatform.googleapis.com",
    "bedrock-runtime.*.amazonaws.com",
    "api.mistral.ai",
    "api.cohere.com",
    "api.cohere.ai",
    "api.groq.com",
    "api.deepseek.com",
    "api.x.ai",
    "openrouter.ai",
    "api.together.xyz",
    "api.fireworks.ai",
    "api.perplexity.ai",
    "api.cerebras.ai",
)
"""Third parties by default: the LLM providers' API hosts (``fnmatch`` patterns)."""
_HOST_ATTRIBUTES = ("server.address", "net.peer.name", "http.host")
_PORT_ATTRIBUTES = ("server.port", "net.peer.port")
_URL_ATTRIBUTES = ("url.full", "http.url")


class IdsStayHome(TextMapPropagator):
    """Injects through ``inner``, without spanledger's baggage keys when the request goes to a third party.

    Args:
        inner: The propagator to wrap (default: the global one when this is created).
        third_parties: Hosts that never get the keys, as ``fnmatch`` patterns on ``host`` or ``host:port``
            (default :data:`LLM_PROVIDER_HOSTS`, plus ``SPANLEDGER_THIRD_PARTY_HOSTS``, comma-separated).
        own_hosts: When given, the only hosts that get the keys (``SPANLEDGER_OWN_HOSTS``): every other
            destination is a third party.
        keys: More baggage keys to keep home (default: the user and tenant keys, and whatever ``attribute_to``
            set in the context).
    """

    def __init__(
        self,
        inner: TextMapPropagator | None = None,
        *,
        third_parties: Sequence[str] | None = None,
        own_hosts: Sequence[str] | None = None,
        keys: Sequence[str] = (),
    ) -> None:
        self.inner = inner if inner is not None else propagate.get_global_textmap()
        extra = env_list("SPANLEDGER_THIRD_PARTY_HOSTS", None, ())
        self.third_parties = tuple(third_parties) if third_parties is not None else (*LLM_PROVIDER_HOSTS, *extra)
        own = env_list("SPANLEDGER_OWN_HOSTS", own_hosts, ())
        self.own_hosts = tuple(own) if own else None
        self.keys = frozenset(
            (
                *env_list("SPANLEDGER_USER_KEYS", None, DEFAULT_USER_KEYS),
                *env_list("SPANLEDGER_TENANT_KEYS", None, DEFAULT_TENANT_KEYS),
                *keys,
            )
        )

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        ctx = context if context is not None else get_current()
        entries = baggage.get_all(ctx)
        if entries:
            home = self.keys | own_keys(ctx)
            if not home.isdisjoint(entries) and not self.is_own(destination(carrier, ctx)):
                for key in home.intersection(entries):
                    ctx = baggage.remove_baggage(key, ctx)
        self.inner.inject(carrier, ctx, setter)

    def is_own(self, where: tuple[str, int | None] | None) -> bool:
        """Whether a destination (``(host, port)``) is one of the application's own services."""
        if where is None:
            return False
        host, port = where
        names = (host.lower(), f"{host.lower()}:{port}") if port is not None else (host.lower(),)
        if self.own_hosts is not None:
            return any(fnmatch.fnmatchcase(n, p.lower()) for n in names for p in self.own_hosts)
        return not any(fnmatch.fnmatchcase(n, p.lower()) for n in names for p in self.third_parties)

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        return self.inner.extract(carrier, context, getter)

    @property
    def fields(self) -> set[str]:
        return self.inner.fields


def destination(carrier: object, ctx: Context) -> tuple[str, int | None] | None:
    """Where the request being injected goes: its ``Host`` header, else the propagated span's attributes."""
    if isinstance(carrier, Mapping) or hasattr(carrier, "get"):
        try:
            host = carrier.get("host") or carrier.get("Host")
        except Exception:
            host = None
        if isinstance(host, str) and host:
            return _split(host)
    attrs: Mapping[str, Any] = getattr(trace.get_current_span(ctx), "attributes", None) or {}
    for key in _URL_ATTRIBUTES:
        url = attrs.get(key)
        if isinstance(url, str) and url:
            parts = urlsplit(url)
            if parts.hostname:
                return parts.hostname, parts.port
    for key in _HOST_ATTRIBUTES:
        host = attrs.get(key)
        if isinstance(host, str) and host:
            port = next((attrs[k] for k in _PORT_ATTRIBUTES if isinstance(attrs.get(k), int)), None)
            return host, port
    return None


def _split(host: str) -> tuple[str, int | None]:
    parts = urlsplit(f"//{host}")
    return (parts.hostname or host), parts.port

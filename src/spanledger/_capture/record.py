"""``record_call`` and ``Recorder``: LLM calls that no instrumentation sees — a background worker, a raw HTTP
call, another gateway — recorded by hand, through the same pipeline as spans.

The same rules apply as to spans: ids cleaned, token counts bounded, Anthropic-style input (cache tokens
on top) converted and flagged, priced by the same rules, durable in the spool when the call returns, and a
``request_id`` recorded twice counted once (even after a restart: it names the call). User, tenant and tags
default to the current :class:`attribute_to` context, read by the :class:`UserAttributionProcessor`'s own
logic. A bad argument raises :class:`InvalidCallError` at the call; a refusal for the store's sake (the
spool is full) is logged and counted, never raised into the host application.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

from opentelemetry import context

from .._errors import InvalidCallError, SpanledgerError
from .._ingest import shared as _pipeline
from .._ingest.pipeline import Pipeline
from .._model.call import LLMCall
from .._privacy.pseudonym import Pseudonymizer
from .._privacy.pseudonym import resolve as _pseudonymizer
from .._store.store import Store
from .attribution import TAG_PREFIX, TENANT_ATTRIBUTE, USER_ATTRIBUTE, UserAttributionProcessor
from .conventions import normalize_provider
from .exporter import _checked_dsn
from .normalize import MAX_ID_CHARS, MAX_TOKENS, clean_id, input_excludes_cache

_log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
SOURCE: Final = "record_call"
_FROM_CONTEXT: Any = object()
_EARLIEST = datetime(2020, 1, 1, tzinfo=UTC)
_SLACK = timedelta(days=1)
_TOKEN_ARGS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


@dataclass(frozen=True, slots=True)
class Recorded:
    """What became of one recorded call."""

    call: LLMCall
    """The call as stored: priced (``cost`` is ``None`` when unpriced) when accepted."""
    accepted: bool
    """Spooled: it will be in the store after the next flush."""
    duplicate: bool = False
    """Its ``request_id`` was recorded before: counted once, not again."""
    refused: str = ""
    """Why it was not accepted (``spool_full``, ``shutdown``, ``out_of_range:cost`` …), when it was not."""


class _Collector:
    """Stands in for a span so that the processor's ``on_start`` writes its attributes here."""

    __slots__ = ("_attributes",)

    def __init__(self) -> None:
        self._attributes: dict[str, Any] = {}

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        self._attributes.update(attributes)


class Recorder:
    """Records LLM calls into a store through the process's pipeline for it (shared with exporters).

    Arguments fall back to the same ``SPANLEDGER_*`` variables as :class:`CostExporter`'s.

    Args:
        store: DSN or an open :class:`Store` (``SPANLEDGER_STORE``, default ``chdb://.spanledger``).
        price_file: Price rules (``SPANLEDGER_PRICE_FILE``).
        spool_dir: Spool directory (``SPANLEDGER_SPOOL_DIR``).
        service_name: ``service.name`` stored with each call (default: none).
        pseudonymize: Record user ids (and tenant ids, if it says so) as their keyed hash (see
            :class:`CostExporter`; by default on when ``SPANLEDGER_ID_KEY`` is set).
        **pipeline_options: ``spool_max_bytes``, ``fsync``, ``flush_interval_ms``, ``max_block_rows``,
            ``shutdown_timeout_ms``, ``dedup``, ``dedup_window_hours`` (see :class:`CostExporter`).
    """

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        price_file: str | None = None,
        spool_dir: str | Path | None = None,
        service_name: str = "",
        pipeline: Pipeline | None = None,
        pseudonymize: Pseudonymizer | bool | None = None,
        **pipeline_options: Any,
    ) -> None:
        if pipeline is not None:
            self.pipeline, self._owned = pipeline, False
        else:
            target: str | Store = store if isinstance(store, Store) else _checked_dsn(store)
            self.pipeline = _pipeline.acquire(target, price_file=price_file, spool_dir=spool_dir, **pipeline_options)
            self._owned = True
        self.service_name = service_name
        self._pseudonymize = _pseudonymizer(pseudonymize)
        self._attribution = UserAttributionProcessor(pseudonymize=self._pseudonymize or False)
        self._closed = False
        try:  # a short script's only flush may come at exit, when nothing can be opened or imported any more
            self.pipeline.store.prepare_inserts()
        except SpanledgerError as exc:  # the flusher keeps trying; the host is never stopped for it
            _log.warning("spanledger could not open the store yet (%s); calls wait in the spool", exc)

    def record(
        self,
        *,
        provider: str,
        model: str,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        user_id: str | None = _FROM_CONTEXT,
        tenant_id: str | None = _FROM_CONTEXT,
        tags: Mapping[str, object] | None = None,
        timestamp: datetime | None = None,
        duration: timedelta | float | None = None,
        error: bool | str | BaseException | None = None,
        request_id: str | None = None,
        operation: str = "chat",
    ) -> Recorded:
        """Record one call; returns what became of it.

        Args:
            provider: ``openai``, ``anthropic`` … (any ``gen_ai.system`` spelling).
            model: The model that answered.
            input_tokens: Input tokens, cache reads and writes included (the OpenTelemetry convention; when it is
                smaller than the cache tokens, they are taken to be on top, as Anthropic's API reports them).
            output_tokens: Output tokens, reasoning included.
            cache_read_tokens: Input tokens read from the prompt cache.
            cache_write_tokens: Input tokens written to the prompt cache.
            reasoning_tokens: Output tokens spent on reasoning.
            user_id: The end user; default: the current :class:`attribute_to` context; ``None`` for none.
            tenant_id: The tenant; default: the current context.
            tags: Tags, on top of the context's.
            timestamp: When the call started (default: now); before 2020 or more than a day ahead is refused.
            duration: How long it took (a ``timedelta`` or seconds).
            error: Whether it failed: ``True``, an error type, or the exception.
            request_id: The provider's response id or your own request id: the same id recorded twice is
                counted once, even across restarts and processes (within the dedup window).
            operation: ``chat`` (default), ``embeddings``, ``text_completion`` …

        Raises:
            InvalidCallError: An argument that cannot be recorded (also a ``ValueError``).
        """
        call = self._build(
            provider=provider,
            model=model,
            tokens=(input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens),
            user_id=user_id,
            tenant_id=tenant_id,
            tags=tags,
            timestamp=timestamp,
            duration=duration,
            error=error,
            request_id=request_id,
            operation=operation,
        )
        if self._closed:
            return Recorded(call, accepted=False, refused="shutdown")
        result = self.pipeline.submit([call], redelivered=request_id is not None)
        if result.accepted:
            return Recorded(call, accepted=True)
        if result.duplicates:
            return Recorded(call, accepted=False, duplicate=True)
        reason = next(iter(result.rejected), "refused")
        return Recorded(call, accepted=False, refused=reason)

    def flush(self, timeout_millis: int = 30000) -> bool:
        """Insert everything recorded so far (see :meth:`CostExporter.force_flush`)."""
        return self.pipeline.force_flush(timeout_millis)

    def close(self) -> None:
        """Stop recording; the pipeline's last user shuts it down (a last, bounded insert)."""
        if self._closed:
            return
        self._closed = True
        if self._owned:
            _pipeline.release(self.pipeline)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- building the call -------------------------------------------------------------------------
    def _hashed(self, value: str, *, tenant: bool = False) -> str:
        if self._pseudonymize is None:
            return value
        return self._pseudonymize.tenant(value) if tenant else self._pseudonymize(value)

    def _build(
        self,
        *,
        provider: str,
        model: str,
        tokens: tuple[int, int, int, int, int],
        user_id: str | None,
        tenant_id: str | None,
        tags: Mapping[str, object] | None,
        timestamp: datetime | None,
        duration: timedelta | float | None,
        error: bool | str | BaseException | None,
        request_id: str | None,
        operation: str,
    ) -> LLMCall:
        flags: list[str] = []
        provider = _text("provider", provider)
        model = _text("model", model)
        inp, out, cache_read, cache_write, reasoning = (_count(n, v) for n, v in zip(_TOKEN_ARGS, tokens, strict=True))
        if reasoning > out:
            raise InvalidCallError(
                f"reasoning_tokens ({reasoning}) is part of output_tokens ({out}): it cannot be more"
            )
        if input_excludes_cache({}, SOURCE, "", inp, cache_read, cache_write):
            inp += cache_read + cache_write  # Anthropic's API style: cache tokens on top of the input
            flags.append("input_excluded_cache")
        at = _when(timestamp)
        attributed = self._context() if user_id is _FROM_CONTEXT or tenant_id is _FROM_CONTEXT else {}
        user_source = "attribution" if user_id is _FROM_CONTEXT and attributed.get(USER_ATTRIBUTE) else SOURCE
        if user_id is _FROM_CONTEXT:
            user_id = attributed.get(USER_ATTRIBUTE)
        if tenant_id is _FROM_CONTEXT:
            tenant_id = attributed.get(TENANT_ATTRIBUTE)
        merged = {k[len(TAG_PREFIX) :]: v for k, v in attributed.items() if k.startswith(TAG_PREFIX)}
        merged.update(_tags(tags))
        trace_id, span_id = _ids(request_id)
        return LLMCall(
            timestamp=at,
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=0,
            duration_us=_micros(duration),
            provider=normalize_provider(provider),
            model=model,
            request_model=model,
            operation=_text("operation", operation)[:64],
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            reasoning_tokens=reasoning,
            user_id=self._hashed(clean_id(_optional("user_id", user_id), flags, "user_id")),
            user_source=user_source if user_id else "",
            tenant_id=self._hashed(clean_id(_optional("tenant_id", tenant_id), flags, "tenant_id"), tenant=True),
            tags={clean_id(k, flags, "tag"): clean_id(v, flags, "tag") for k, v in merged.items()},
            is_error=error is not None and error is not False,
            error_type=_error_type(error),
            response_id=(request_id or "")[:128],
            service_name=self.service_name[:128],
            source=SOURCE,
            flags=flags,
        )

    def _context(self) -> dict[str, Any]:
        """User, tenant and tags of the current context, as the processor would put them on a span."""
        collector = _Collector()
        self._attribution.on_start(collector, context.get_current())  # type: ignore[arg-type]
        return collector._attributes


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidCallError(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > MAX_ID_CHARS:
        raise InvalidCallError(f"{name} is longer than {MAX_ID_CHARS} characters")
    return value.strip()


def _optional(name: str, value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidCallError(f"{name} must be a string or None, got {type(value).__name__}")
    return value


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidCallError(f"{name} must be a whole number, got {value!r}")
    if not 0 <= value <= MAX_TOKENS:
        raise InvalidCallError(f"{name} must be between 0 and {MAX_TOKENS:,}, got {value:,}")
    return value


def _tags(tags: Mapping[str, object] | None) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidCallError(f"tags must be a mapping of names to values, got {type(tags).__name__}")
    out = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not key.strip():
            raise InvalidCallError(f"tag names must be non-empty strings, got {key!r}")
        if value is not None:
            out[key] = str(value)
    return out


def _when(timestamp: datetime | None) -> datetime:
    now = datetime.now(UTC)
    if timestamp is None:
        return now
    if not isinstance(timestamp, datetime):
        raise InvalidCallError(f"timestamp must be a datetime, got {type(timestamp).__name__}")
    at = timestamp.replace(tzinfo=UTC) if timestamp.tzinfo is None else timestamp.astimezone(UTC)
    if not _EARLIEST <= at <= now + _SLACK:
        raise InvalidCallError(f"timestamp {at.isoformat()} is before 2020 or more than a day ahead")
    return at


def _micros(duration: timedelta | float | None) -> int:
    if duration is None:
        return 0
    if isinstance(duration, timedelta):
        seconds = duration.total_seconds()
    elif isinstance(duration, int | float) and not isinstance(duration, bool):
        seconds = float(duration)
    else:
        raise InvalidCallError(f"duration must be a timedelta or seconds, got {duration!r}")
    if not 0 <= seconds < 10**7:
        raise InvalidCallError(f"duration must be between 0 and 10,000,000 seconds, got {seconds}")
    return round(seconds * 1_000_000)


def _error_type(error: bool | str | BaseException | None) -> str:
    if error is None or error is False:
        return ""
    if error is True:
        return "error"
    if isinstance(error, BaseException):
        return type(error).__name__[:128]
    if isinstance(error, str):
        return error[:128] or "error"
    raise InvalidCallError(f"error must be a bool, a string or an exception, got {type(error).__name__}")


def _ids(request_id: str | None) -> tuple[int, int]:
    """A trace and span id for the call: derived from ``request_id`` (the same request, the same ids, so a
    call recorded twice is recognised even by another process), random without one."""
    if request_id is None:
        return secrets.randbits(127) + 1, secrets.randbits(63) + 1
    if not isinstance(request_id, str) or not request_id.strip() or len(request_id) > 256:
        raise InvalidCallError(f"request_id must be a non-empty string of at most 256 characters, got {request_id!r}")
    digest = hashlib.sha256(f"spanledger:request:{request_id}".encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1, int.from_bytes(digest[16:24], "big") or 1


# --- record_call: the process's default recorder ----------------------------------------------------------

_default: Recorder | None = None
_default_lock = threading.Lock()


def _default_recorder() -> Recorder:
    global _default
    with _default_lock:
        if _default is None or _default._closed or _default.pipeline._closed:
            running = _pipeline.running()
            if running is not None:  # an exporter already writes somewhere: one chDB location per process
                _default = Recorder(pipeline=running)
            else:
                _default = Recorder()
                atexit.register(_default.close)
        return _default


def _on_default(method: Callable[Concatenate[Recorder, P], R]) -> Callable[P, R]:
    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        return method(_default_recorder(), *args, **kwargs)

    return call


record_call = _on_default(Recorder.record)
record_call.__name__ = record_call.__qualname__ = "record_call"
record_call.__doc__ = """Record an LLM call that no instrumentation saw; it is priced and stored like a span's.

In a process that already exports spans (a :class:`CostExporter`), the call goes through that exporter's
pipeline; otherwise through one for ``SPANLEDGER_STORE`` (default ``chdb://.spanledger``), created on first
use and flushed at exit. For another store, use a :class:`Recorder`. The arguments are
:meth:`Recorder.record`'s.
"""

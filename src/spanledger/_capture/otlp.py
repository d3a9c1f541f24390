"""OTLP/HTTP trace requests → SDK ``ReadableSpan`` objects, and the responses the OTLP spec prescribes.

The decoded spans are what an in-process ``BatchSpanProcessor`` would hand :class:`CostExporter`
(resource, scope, attributes of every value type, status, times, ids, parent, events, links), so spans
sent over the wire are normalised, priced and stored exactly like spans exported in-process.

Status codes (OTLP specification, "OTLP/HTTP Response"): 200 with ``partial_success`` when some spans
were rejected; 400 for a body that cannot be decoded; 413 when the body, before or after decompression,
exceeds the limit; 415 for an unsupported ``Content-Type`` or ``Content-Encoding``; 503 (retryable) when
the spans could not be stored. A body nested too deeply for the decoder (``[`` × 100k, a 300-deep
``kvlistValue``) is a 400, in JSON as in protobuf (whose decoder stops at 100 levels). Error bodies are a ``google.rpc.Status`` in the request's encoding.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format  # type: ignore[import-untyped,unused-ignore]
from google.protobuf.any_pb2 import Any as AnyMessage  # type: ignore[import-untyped,unused-ignore]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped,unused-ignore]
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped,unused-ignore]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_CONTENT_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}
_KINDS = {2: SpanKind.SERVER, 3: SpanKind.CLIENT, 4: SpanKind.PRODUCER, 5: SpanKind.CONSUMER}
_MAX_MESSAGES = 5


class OtlpError(Exception):
    """A request that fails as a whole, with its HTTP status and a developer-facing message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Decoded:
    spans: list[ReadableSpan] = field(default_factory=list)
    rejected: int = 0
    messages: list[str] = field(default_factory=list)

    def reject(self, message: str) -> None:
        self.rejected += 1
        if len(self.messages) < _MAX_MESSAGES:
            self.messages.append(message)


def media_type(content_type: str | None) -> str:
    """The OTLP encoding of a ``Content-Type`` header, or 415."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    if base not in _CONTENT_TYPES:
        raise OtlpError(415, f"unsupported Content-Type {base or '(none)'!r}: use {PROTOBUF} or {JSON}")
    return _CONTENT_TYPES[base]


async def read_limited(chunks: AsyncIterator[bytes], limit: int, declared: str | None) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes without reading it all."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise OtlpError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise OtlpError(413, f"request body exceeds the limit of {limit} bytes")
    return bytes(body)


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (identity, gzip or deflate), refusing (413) output over ``limit``."""
    coding = (encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding in ("gzip", "x-gzip"):
        wbits = [16 + zlib.MAX_WBITS]
    elif coding == "deflate":
        wbits = [zlib.MAX_WBITS, -zlib.MAX_WBITS]  # zlib-wrapped as HTTP says, or raw as some clients send
    else:
        raise OtlpError(415, f"unsupported Content-Encoding {coding!r}: use gzip, deflate or none")
    for bits in wbits:
        inflater = zlib.decompressobj(wbits=bits)
        try:
            out = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            if bits is wbits[-1]:
                raise OtlpError(400, f"the body is not valid {coding} data: {exc}") from None
            continue
        if len(out) > limit or inflater.unconsumed_tail:
            raise OtlpError(413, f"decompressed request body exceeds the limit of {limit} bytes")
        if not inflater.eof:
            raise OtlpError(400, f"the {coding} body is truncated")
        return out
    raise OtlpError(400, f"the body is not valid {coding} data")


def parse(body: bytes, encoding: str) -> tuple[ExportTraceServiceRequest, Decoded]:
    """The request message; JSON spans that do not parse are rejected one by one, not the whole request."""
    decoded = Decoded()
    if encoding == PROTOBUF:
        try:
            return ExportTraceServiceRequest.FromString(body), decoded
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise OtlpError(400, f"the body is not a valid ExportTraceServiceRequest: {exc}") from None
    try:
        doc = json.loads(body)
        return _parse_json(doc, decoded), decoded
    except (UnicodeDecodeError, ValueError) as exc:
        raise OtlpError(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise OtlpError(400, "the JSON body is nested too deeply to be an ExportTraceServiceRequest") from None


def _parse_json(doc: Any, decoded: Decoded) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        for rs in _objects(doc, "resourceSpans", "request"):
            out_rs: ResourceSpans = request.resource_spans.add()
            json_format.ParseDict(_without(rs, "scopeSpans"), out_rs, ignore_unknown_fields=True)
            for ss in _objects(rs, "scopeSpans", "resourceSpans[]"):
                out_ss: ScopeSpans = out_rs.scope_spans.add()
                json_format.ParseDict(_without(ss, "spans"), out_ss, ignore_unknown_fields=True)
                for raw in _objects(ss, "spans", "scopeSpans[]"):
                    span = Span()
                    try:
                        json_format.ParseDict(_hex_ids(raw), span, ignore_unknown_fields=True)
                    except (json_format.ParseError, TypeError, ValueError) as exc:
                        decoded.reject(f"span {str(raw.get('name', ''))[:80]!r}: {exc}")
                        continue
                    out_ss.spans.append(span)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise OtlpError(400, f"the JSON body is not a valid ExportTraceServiceRequest: {exc}") from None
    return request


def _objects(parent: Any, key: str, where: str) -> list[dict[str, Any]]:
    if not isinstance(parent, dict):
        raise TypeError(f"{where} must be a JSON object")
    items = parent.get(key, [])
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise TypeError(f"{key} must be a list of objects")
    return items


def _without(obj: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != key}


def _b64_from_hex(value: Any) -> str:
    """OTLP/JSON writes ids as hex, protobuf's JSON mapping expects base64; a bad id becomes empty."""
    if not isinstance(value, str):
        return ""
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except ValueError:
        return ""


def _hex_ids(span: dict[str, Any]) -> dict[str, Any]:
    out = dict(span)
    for key in ("traceId", "spanId", "parentSpanId"):
        if key in out:
            out[key] = _b64_from_hex(out[key])
    links = out.get("links")
    if isinstance(links, list):
        out["links"] = [
            {**link, **{k: _b64_from_hex(link[k]) for k in ("traceId", "spanId") if k in link}}
            if isinstance(link, dict)
            else link
            for link in links
        ]
    return out


def to_spans(request: ExportTraceServiceRequest, decoded: Decoded) -> Decoded:
    """Every span of the request as a ``ReadableSpan``; spans with invalid ids are rejected."""
    for rs in request.resource_spans:
        resource = Resource(_attributes(rs.resource.attributes), rs.schema_url or None)
        for ss in rs.scope_spans:
            scope = InstrumentationScope(
                ss.scope.name, ss.scope.version or None, ss.schema_url or None, _attributes(ss.scope.attributes)
            )
            for span in ss.spans:
                problem = _invalid_ids(span)
                if problem:
                    decoded.reject(f"span {span.name[:80]!r}: {problem}")
                    continue
                try:
                    decoded.spans.append(_readable(span, resource, scope))
                except Exception as exc:  # one odd span must not fail the request
                    decoded.reject(f"span {span.name[:80]!r}: {exc}")
    return decoded


def _invalid_ids(span: Span) -> str:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return "traceId must be 16 bytes (32 hex characters), not all zero"
    if len(span.span_id) != 8 or not any(span.span_id):
        return "spanId must be 8 bytes (16 hex characters), not all zero"
    if len(span.parent_span_id) not in (0, 8):
        return "parentSpanId must be empty or 8 bytes (16 hex characters)"
    return ""


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(v for v in (_value(item) for item in value.array_value.values) if v is not None)
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in pairs:
        converted = _value(kv.value)
        if converted is not None:
            out[kv.key] = converted
    return out


def _context(trace_id: bytes, span_id: bytes, flags: int, trace_state: str = "") -> SpanContext:
    state = TraceState.from_header([trace_state]) if trace_state else None
    return SpanContext(
        trace_id=int.from_bytes(trace_id, "big"),
        span_id=int.from_bytes(span_id, "big"),
        is_remote=True,
        trace_flags=TraceFlags(flags & 0xFF),
        trace_state=state,
    )


def _readable(span: Span, resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    context = _context(span.trace_id, span.span_id, span.flags, span.trace_state)
    parent = _context(span.trace_id, span.parent_span_id, span.flags) if any(span.parent_span_id) else None
    code = span.status.code
    if code == 2:
        status = Status(StatusCode.ERROR, span.status.message or None)
    else:
        status = Status(StatusCode.OK if code == 1 else StatusCode.UNSET)
    events = [Event(e.name, _attributes(e.attributes), e.time_unix_nano or None) for e in span.events]
    links = [
        Link(_context(link.trace_id, link.span_id, link.flags, link.trace_state), _attributes(link.attributes))
        for link in span.links
        if len(link.trace_id) == 16 and len(link.span_id) == 8
    ]
    return ReadableSpan(
        name=span.name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=_attributes(span.attributes),
        events=events,
        links=links,
        kind=_KINDS.get(span.kind, SpanKind.INTERNAL),
        status=status,
        start_time=span.start_time_unix_nano or None,
        end_time=span.end_time_unix_nano or None,
        instrumentation_scope=scope,
    )


def success_body(rejected: int, messages: list[str], encoding: str) -> bytes:
    """An ``ExportTraceServiceResponse``; ``partial_success`` is set only when something was rejected."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = (
            f"{rejected} span(s) rejected: " + "; ".join(messages) if messages else f"{rejected} span(s) rejected"
        )
    return _encode(response, encoding)


def error_body(status: int, message: str, encoding: str) -> bytes:
    """A ``google.rpc.Status`` (with a ``BadRequest`` detail for 400) in the request's encoding."""
    codes: Mapping[int, int] = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 503: 14}
    rpc = status_pb2.Status(code=codes.get(status, 2), message=message)
    if status == 400:
        detail = AnyMessage()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[error_details_pb2.BadRequest.FieldViolation(field="body", description=message)]
            )
        )
        rpc.details.append(detail)
    return _encode(rpc, encoding)


def _encode(message: Any, encoding: str) -> bytes:
    if encoding == JSON:
        text: str = json_format.MessageToJson(message, indent=None)
        return text.encode()
    data: bytes = message.SerializeToString()
    return data

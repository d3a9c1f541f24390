"""OTLP/HTTP ingest: the real OTLPSpanExporter, JSON, gzip, partial success and malformed bodies."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from decimal import Decimal

import httpx2
import pytest
from fastapi import FastAPI
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.testclient import TestClient

from spanledger import UserAttributionProcessor, attribute_to
from spanledger._capture.otlp import Decoded, to_spans
from spanledger._server import create_app
from tests.integration.server_support import ADMIN_TOKEN, INGEST_TOKEN, running, settings

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024
INGEST = {"Authorization": f"Bearer {INGEST_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PROTO = {**INGEST, "Content-Type": "application/x-protobuf"}
JSON_H = {**INGEST, "Content-Type": "application/json"}


@pytest.fixture
def app(store_dsn: str) -> Iterator[FastAPI]:
    app = create_app(settings(store_dsn, max_request_bytes=LIMIT))
    yield app
    app.state.exporter.shutdown()


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


def llm_spans() -> list[ReadableSpan]:
    """Two LLM calls (alice: gpt-4o-mini with cache reads, bob: gpt-4o) and one plain HTTP span."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout-api"}))
    provider.add_span_processor(UserAttributionProcessor())
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("app.llm", "1.2.3")
    with tracer.start_as_current_span("POST /summarise", kind=SpanKind.SERVER):
        with (
            attribute_to(user_id="alice", tenant_id="acme", plan="pro"),
            tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as span,
        ):
            span.set_attributes(
                {
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 1200,
                    "gen_ai.usage.cache_read.input_tokens": 1024,
                    "gen_ai.usage.output_tokens": 30.0,  # a double on the wire: still 30 tokens
                    "gen_ai.response.finish_reasons": ("stop",),
                }
            )
        with (
            attribute_to(user_id="bob", tenant_id="acme"),
            tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as span,
        ):
            span.set_attributes(
                {
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 1000,
                    "gen_ai.usage.output_tokens": 100,
                }
            )
    provider.shutdown()
    return list(memory.get_finished_spans())


def _costs(client: httpx2.Client | TestClient, base: str = "") -> dict[str, Decimal]:
    response = client.get(f"{base}/api/v1/users?tenant=acme", headers=ADMIN)
    assert response.status_code == 200
    return {row["user_id"]: Decimal(row["cost"]) for row in response.json()["data"]}


def test_real_otlp_exporter_protobuf_and_gzip_prices_exactly(app: FastAPI) -> None:
    spans = llm_spans()
    alice = next(s for s in spans if s.name == "chat gpt-4o-mini")
    with running(app) as base:
        for compression, batch in ((Compression.NoCompression, spans[:1]), (Compression.Gzip, spans[1:])):
            exporter = OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers=INGEST, compression=compression)
            assert exporter.export(batch) is SpanExportResult.SUCCESS
            exporter.shutdown()
        wrong = OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers=ADMIN)  # the admin token cannot ingest
        assert wrong.export(spans) is SpanExportResult.FAILURE
        wrong.shutdown()
        assert app.state.exporter.force_flush(30_000)
        with httpx2.Client(timeout=30) as http:
            assert _costs(http, base) == {"alice": Decimal("0.0001212"), "bob": Decimal("0.0035")}
            detail = http.get(f"{base}/api/v1/users/alice", headers=ADMIN).json()
    (call,) = detail["calls"]
    assert call["trace_id"] == f"{alice.context.trace_id:032x}"
    assert call["span_id"] == f"{alice.context.span_id:016x}"
    assert call["parent_span_id"] == f"{alice.parent.span_id:016x}"
    assert (call["service_name"], call["tags"], call["user_source"]) == ("checkout-api", {"plan": "pro"}, "attribution")
    assert (call["input_tokens"], call["cache_read_tokens"], call["output_tokens"]) == (1200, 1024, 30)
    assert app.state.exporter.stats["skipped:not_llm"] == 1  # the HTTP server span was received, not stored


def test_decoded_spans_equal_the_sdk_spans_they_were_encoded_from() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc", "deployment.environment": "prod"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("scope.name", "0.9", attributes={"scope.attr": True})
    with (
        tracer.start_as_current_span("parent"),
        tracer.start_as_current_span("child", kind=SpanKind.PRODUCER) as span,
    ):
        span.set_attributes(
            {
                "s": "text",
                "i": 42,
                "d": 2.5,
                "b": False,
                "as": ("a", "b"),
                "ai": (1, 2),
                "ad": (0.5,),
                "ab": (True, False),
            }
        )
        span.add_event("exception", {"exception.type": "TimeoutError", "n": 3})
        span.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()
    originals = {s.name: s for s in memory.get_finished_spans()}
    decoded = to_spans(encode_spans(list(originals.values())), Decoded())
    assert decoded.rejected == 0
    for got in decoded.spans:
        want = originals[got.name]
        assert (got.context.trace_id, got.context.span_id) == (want.context.trace_id, want.context.span_id)
        assert (got.parent.span_id if got.parent else None) == (want.parent.span_id if want.parent else None)
        assert (got.kind, got.start_time, got.end_time) == (want.kind, want.start_time, want.end_time)
        assert (got.status.status_code, got.status.description) == (want.status.status_code, want.status.description)
        assert dict(got.attributes or {}) == dict(want.attributes or {})
        assert dict(got.resource.attributes) == dict(want.resource.attributes)
        scope, want_scope = got.instrumentation_scope, want.instrumentation_scope
        assert scope is not None and want_scope is not None
        assert (scope.name, scope.version, dict(scope.attributes or {})) == ("scope.name", "0.9", {"scope.attr": True})
        assert [(e.name, e.timestamp, dict(e.attributes or {})) for e in got.events] == [
            (e.name, e.timestamp, dict(e.attributes or {})) for e in want.events
        ]


def _json_request(spans: list[ReadableSpan]) -> dict:
    """OTLP/JSON as the spec writes it: lowerCamelCase keys, hex ids, integer enums."""
    doc = json_format.MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex().upper()
    return doc


def test_json_with_partial_success(client: TestClient, app: FastAPI) -> None:
    doc = _json_request(llm_spans())
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    bad_id = {**spans[0], "traceId": "not-hex", "name": "bad id"}
    bad_field = {**spans[0], "spanId": "00000000000000ff", "startTimeUnixNano": "yesterday", "name": "bad time"}
    spans += [bad_id, bad_field]
    doc["futureField"] = {"ignored": True}  # unknown fields must be ignored
    response = client.post("/v1/traces", content=json.dumps(doc), headers=JSON_H)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    partial = response.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 2
    assert "traceId" in partial["errorMessage"] and "bad time" in partial["errorMessage"]
    assert app.state.exporter.force_flush(30_000)
    assert _costs(client) == {"alice": Decimal("0.0001212"), "bob": Decimal("0.0035")}


def test_gzip_json_and_full_success_leaves_partial_success_unset(client: TestClient, app: FastAPI) -> None:
    body = gzip.compress(json.dumps(_json_request(llm_spans())).encode())
    response = client.post("/v1/traces", content=body, headers={**JSON_H, "Content-Encoding": "gzip"})
    assert (response.status_code, response.json()) == (200, {})
    assert app.state.exporter.force_flush(30_000)
    assert _costs(client)["alice"] == Decimal("0.0001212")


def test_protobuf_span_with_invalid_ids_is_rejected_alone(client: TestClient, app: FastAPI) -> None:
    request = encode_spans(llm_spans())
    request.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x01\x02"
    response = client.post("/v1/traces", content=request.SerializeToString(), headers=PROTO)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    parsed = ExportTraceServiceResponse.FromString(response.content)
    assert parsed.partial_success.rejected_spans == 1
    assert "spanId" in parsed.partial_success.error_message
    assert app.state.exporter.force_flush(30_000)
    assert len(_costs(client)) == 1


def _status(response: httpx2.Response) -> str:
    if response.headers["content-type"].startswith("application/json"):
        return str(response.json()["message"])
    return status_pb2.Status.FromString(response.content).message


MALFORMED = [
    (PROTO, b"\xff\xff\xff\xff\xff", 400, "not a valid ExportTraceServiceRequest"),
    (JSON_H, b"{not json", 400, "not valid JSON"),
    (JSON_H, b'{"resourceSpans": 5}', 400, "resourceSpans must be a list"),
    (JSON_H, b"[]", 400, "must be a JSON object"),
    ({**INGEST, "Content-Type": "text/plain"}, b"hello", 415, "unsupported Content-Type"),
    (INGEST, b"", 415, "unsupported Content-Type"),
    ({**PROTO, "Content-Encoding": "br"}, b"x", 415, "unsupported Content-Encoding"),
    ({**PROTO, "Content-Encoding": "gzip"}, b"not gzip at all", 400, "not valid gzip"),
    ({**PROTO, "Content-Encoding": "gzip"}, gzip.compress(b"\0" * (LIMIT + 1)), 413, "decompressed"),
    (PROTO, b"\0" * (LIMIT + 1), 413, "exceeds the limit"),
    # parser bombs: nesting deeper than a decoder's stack, numbers and text no decoder should take
    (JSON_H, b"[" * 60_000, 400, "nested too deeply"),
    (JSON_H, b'{"resourceSpans": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "nested too deeply"),
    (JSON_H, b"1" * 60_000, 400, "not valid JSON"),
    (JSON_H, b'{"resourceSpans": [], "x": "\xff"}', 400, "not valid JSON"),
    ({"Content-Type": "application/x-protobuf"}, b"", 401, "ingest token"),
    ({**ADMIN, "Content-Type": "application/x-protobuf"}, b"", 401, "ingest token"),
]


def _deep_kvlist_json(depth: int) -> bytes:
    value = '{"stringValue": "x"}'
    for _ in range(depth):
        value = '{"kvlistValue": {"values": [{"key": "k", "value": ' + value + "}]}}"
    span = '{"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174", "name": "deep", '
    span += '"attributes": [{"key": "a", "value": ' + value + "}]}"
    return ('{"resourceSpans": [{"scopeSpans": [{"spans": [' + span + "]}]}]}").encode()


def _deep_kvlist_protobuf(depth: int) -> bytes:
    request = encode_spans(llm_spans())
    value = request.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="deep").value
    for _ in range(depth):
        value = value.kvlist_value.values.add(key="k").value
    value.string_value = "x"
    data: bytes = request.SerializeToString()
    return data


MALFORMED.extend(
    [
        (JSON_H, _deep_kvlist_json(300), 400, "nested too deeply"),
        (PROTO, _deep_kvlist_protobuf(300), 400, "not a valid ExportTraceServiceRequest"),
    ]
)


def test_malformed_requests_get_the_otlp_status_codes(client: TestClient, app: FastAPI) -> None:
    for headers, body, status, message in MALFORMED:
        response = client.post("/v1/traces", content=body, headers=headers)
        case = f"{headers} {body[:20]!r}"
        assert response.status_code == status, case
        if message:
            assert message in _status(response), case
    assert app.state.exporter.stats["received"] == 0
    assert client.get("/healthz").json()["status"] == "ok"  # and the server is still up


def test_body_over_the_limit_without_content_length_is_refused(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(LIMIT // 4096 + 2):
            yield b"\0" * 4096

    response = client.post("/v1/traces", content=chunks(), headers=PROTO)
    assert response.status_code == 413


def test_empty_request_succeeds_and_store_failure_is_retryable(client: TestClient, app: FastAPI) -> None:
    assert (
        client.post("/v1/traces", content=ExportTraceServiceRequest().SerializeToString(), headers=PROTO).status_code
        == 200
    )
    app.state.exporter.shutdown()  # an exporter that can no longer store: the client must retry later
    response = client.post("/v1/traces", content=encode_spans(llm_spans()).SerializeToString(), headers=PROTO)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "retry" in _status(response)

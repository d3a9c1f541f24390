"""A local OpenAI- and Anthropic-compatible HTTP server for demos and tests.

It answers ``POST /v1/chat/completions`` (OpenAI chat, plain or streamed as SSE), ``POST /v1/messages``
(Anthropic Messages, plain or streamed) and ``POST /v1/embeddings`` with bodies the real SDKs parse, and
records every request it receives. It never calls anything outside 127.0.0.1 and never prints.

A request body may carry a ``"stub"`` object (clients send it with ``extra_body={"stub": {...}}``) to
choose the answer: ``input_tokens``, ``output_tokens``, ``cached_tokens``, ``cache_creation_tokens``,
``reasoning_tokens``, ``status``, ``response_model`` and ``text``. ``input_tokens`` is the **whole** prompt,
cache reads and writes included (the OpenTelemetry convention); the server converts it to each API's own
convention: OpenAI's ``prompt_tokens`` includes ``cached_tokens``, while Anthropic reports
``input_tokens`` *without* the cache reads and writes, which it lists on top.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import math
import re
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_TEXT = "This is a canned answer from the spanledger stub server."
"""The answer text when the request's ``stub`` sets none."""
OPENAI_MODEL_DATE = "-2024-07-18"
"""Appended to an OpenAI request model without a date, the way the API answers with a dated snapshot."""

_DATED_MODEL = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")
_INT_CONTROLS = (
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
    "status",
)
_STR_CONTROLS = ("response_model", "text")
_OPENAI_ERROR_TYPES = {429: "requests"}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class StubRequest:
    """One request the stub server received."""

    method: str
    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: dict[str, Any]
    """The parsed JSON body; empty when it was missing or not a JSON object."""


class _BadRequest(Exception):
    """The request cannot be answered; the message goes into the API's error body."""


@dataclass(frozen=True)
class _Answer:
    """What to answer, in the OpenTelemetry convention (``input_tokens`` includes the cache)."""

    model: str
    text: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_creation_tokens: int
    reasoning_tokens: int
    status: int
    stream: bool
    include_usage: bool
    request_id: str


class StubLLMServer:
    """OpenAI- and Anthropic-compatible HTTP server on 127.0.0.1 for demos and tests.

    Use it as a context manager or call :meth:`start` and :meth:`stop`. ``port=0`` picks a free port;
    :attr:`url` tells which.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._id_prefix = uuid.uuid4().hex[:12]  # ids stay unique across servers, like the real APIs' ids
        self.requests: list[StubRequest] = []
        self.url = ""

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` for ``openai.OpenAI``."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The ``base_url`` for ``anthropic.Anthropic``."""
        return self.url

    def start(self) -> StubLLMServer:
        """Start serving in a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"stub": self})
        server = ThreadingHTTPServer((self._host, self._port), handler)
        server.daemon_threads = True
        host, port = server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="spanledger-stub-llm", daemon=True)
        self._thread.start()
        logger.debug("stub LLM server listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and release the port; calling it again does nothing."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> StubLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, request: StubRequest) -> str:
        with self._lock:
            self.requests.append(request)
            return f"{self._id_prefix}{next(self._ids):06d}"


class _Handler(BaseHTTPRequestHandler):
    stub: StubLLMServer
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms a call
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("stub LLM server: " + format, *args)

    def do_GET(self) -> None:
        self._read_body()
        self._send_json(404, {"error": {"message": f"no route for GET {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        raw = self._read_body()
        path = self.path.split("?", 1)[0].rstrip("/")
        kind = {"/v1/chat/completions": "openai", "/v1/embeddings": "embeddings", "/v1/messages": "anthropic"}.get(path)
        body: dict[str, Any] = {}
        error: str | None = None
        try:
            parsed = json.loads(raw or b"{}")
            if not isinstance(parsed, dict):
                raise ValueError("the body is not a JSON object")
            body = parsed
        except ValueError as exc:
            error = f"invalid JSON body: {exc}"
        headers = {key.lower(): value for key, value in self.headers.items()}
        request_id = self.stub._record(StubRequest("POST", self.path, headers, body))
        if kind is None:
            self._send_json(404, {"error": {"message": f"no route for POST {self.path}", "type": "not_found"}})
            return
        try:
            if error is not None:
                raise _BadRequest(error)
            answer = _answer(body, kind=kind, request_id=request_id)
        except _BadRequest as exc:
            self._send_error(kind, 400, str(exc), request_id)
            return
        if answer.status >= 400:
            self._send_error(kind, answer.status, f"stub error with status {answer.status}", request_id)
        elif kind == "openai":
            self._send_openai_chat(answer)
        elif kind == "anthropic":
            self._send_anthropic(answer)
        else:
            self._send_json(200, _embeddings(body, answer), {"x-request-id": f"req_{request_id}"})

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, payload: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _send_json(self, status: int, obj: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", extra)

    def _send_error(self, kind: str, status: int, message: str, request_id: str) -> None:
        if kind == "anthropic":
            error_type = _ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
            error = {"type": error_type, "message": message}
            body = {"type": "error", "error": error, "request_id": f"req_{request_id}"}
            self._send_json(status, body, {"request-id": f"req_{request_id}"})
            return
        error_type = _OPENAI_ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
        body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
        self._send_json(status, body, {"x-request-id": f"req_{request_id}"})

    def _send_openai_chat(self, answer: _Answer) -> None:
        response_id = f"chatcmpl-stub{answer.request_id}"
        created = int(time.time())
        headers = {"x-request-id": f"req_{answer.request_id}"}
        usage = {
            "prompt_tokens": answer.input_tokens,
            "completion_tokens": answer.output_tokens,
            "total_tokens": answer.input_tokens + answer.output_tokens,
            "prompt_tokens_details": {"cached_tokens": answer.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": answer.reasoning_tokens, "audio_tokens": 0},
        }
        common = {"id": response_id, "created": created, "model": answer.model, "system_fingerprint": "fp_stub"}
        if not answer.stream:
            message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            body = {**common, "object": "chat.completion", "choices": [choice], "usage": usage}
            self._send_json(200, {**body, "service_tier": "default"}, headers)
            return
        chunk = {**common, "object": "chat.completion.chunk"}
        no_usage: dict[str, Any] = {"usage": None} if answer.include_usage else {}

        def choice_chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**chunk, "choices": [choice], **no_usage}

        events = [choice_chunk({"role": "assistant", "content": "", "refusal": None}, None)]
        events += [choice_chunk({"content": piece}, None) for piece in _pieces(answer.text)]
        events.append(choice_chunk({}, "stop"))
        if answer.include_usage:
            events.append({**chunk, "choices": [], "usage": usage})
        payload = "".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: [DONE]\n\n"
        self._send(200, payload.encode(), "text/event-stream; charset=utf-8", headers)

    def _send_anthropic(self, answer: _Answer) -> None:
        uncached = answer.input_tokens - answer.cached_tokens - answer.cache_creation_tokens
        usage: dict[str, Any] = {
            "input_tokens": uncached,
            "cache_creation_input_tokens": answer.cache_creation_tokens,
            "cache_read_input_tokens": answer.cached_tokens,
            "output_tokens": answer.output_tokens,
            "service_tier": "standard",
        }
        if answer.reasoning_tokens:
            usage["output_tokens_details"] = {"thinking_tokens": answer.reasoning_tokens}
        message: dict[str, Any] = {
            "id": f"msg_stub{answer.request_id}",
            "type": "message",
            "role": "assistant",
            "model": answer.model,
            "content": [{"type": "text", "text": answer.text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        headers = {"request-id": f"req_{answer.request_id}"}
        if not answer.stream:
            self._send_json(200, message, headers)
            return
        # as the real API does: 1 output token in message_start, cumulative totals in message_delta
        start_usage = {**usage, "output_tokens": 1}
        start_usage.pop("output_tokens_details", None)
        delta_usage = {key: value for key, value in usage.items() if key != "service_tier"}
        start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
        block = {"type": "text", "text": ""}
        events: list[dict[str, Any]] = [
            {"type": "message_start", "message": start},
            {"type": "content_block_start", "index": 0, "content_block": block},
            {"type": "ping"},
        ]
        events += [
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
            for piece in _pieces(answer.text)
        ]
        stop = {"stop_reason": "end_turn", "stop_sequence": None}
        events += [
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": stop, "usage": delta_usage},
            {"type": "message_stop"},
        ]
        payload = "".join(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n" for event in events)
        self._send(200, payload.encode(), "text/event-stream; charset=utf-8", headers)


def _answer(body: dict[str, Any], *, kind: str, request_id: str) -> _Answer:
    """The answer to ``body``: its ``stub`` controls, else values derived from the request."""
    controls = body.get("stub") or {}
    if not isinstance(controls, dict):
        raise _BadRequest("'stub' must be a JSON object")
    for key, value in controls.items():
        if key in _INT_CONTROLS and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise _BadRequest(f"stub.{key} must be a non-negative integer")
        if key in _STR_CONTROLS and not isinstance(value, str):
            raise _BadRequest(f"stub.{key} must be a string")
        if key not in _INT_CONTROLS and key not in _STR_CONTROLS:
            raise _BadRequest(f"unknown stub control {key!r}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _BadRequest("'model' is required")
    text = controls.get("text", DEFAULT_TEXT)
    input_tokens = controls.get("input_tokens", math.ceil(_prompt_chars(body) / 4) + 8)
    cached = controls.get("cached_tokens", 0)
    creation = controls.get("cache_creation_tokens", 0)
    if cached + creation > input_tokens:
        raise _BadRequest("stub.input_tokens must include cached_tokens and cache_creation_tokens")
    output_tokens = controls.get("output_tokens", 0 if kind == "embeddings" else max(1, math.ceil(len(text) / 4)))
    reasoning = controls.get("reasoning_tokens", 0)
    if reasoning > output_tokens:
        raise _BadRequest("stub.output_tokens must include reasoning_tokens")
    default_model = model if kind != "openai" or _DATED_MODEL.search(model) else model + OPENAI_MODEL_DATE
    stream_options = body.get("stream_options")
    return _Answer(
        model=controls.get("response_model", default_model),
        text=text,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=cached,
        cache_creation_tokens=creation,
        reasoning_tokens=reasoning,
        status=controls.get("status", 200),
        stream=body.get("stream") is True,
        include_usage=isinstance(stream_options, dict) and stream_options.get("include_usage") is True,
        request_id=request_id,
    )


def _prompt_chars(body: dict[str, Any]) -> int:
    """The number of text characters in a chat, messages or embeddings request."""
    total = 0
    parts: list[Any] = [body.get("system"), body.get("input")]
    messages = body.get("messages")
    if isinstance(messages, list):
        parts += [message.get("content") for message in messages if isinstance(message, dict)]
    while parts:
        part = parts.pop()
        if isinstance(part, str):
            total += len(part)
        elif isinstance(part, list):
            parts.extend(part)
        elif isinstance(part, dict):
            parts.append(part.get("text"))
    return total


def _pieces(text: str) -> list[str]:
    """``text`` cut into word-sized stream deltas that join back to it."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


def _embeddings(body: dict[str, Any], answer: _Answer) -> dict[str, Any]:
    """An OpenAI embeddings response with one small deterministic vector per input."""
    inputs = body.get("input")
    count = len(inputs) if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else 1
    data = []
    for index in range(count):
        vector = [round((index + 1) / (dim + 2), 6) for dim in range(8)]
        embedding: Any = vector
        if body.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    usage = {"prompt_tokens": answer.input_tokens, "total_tokens": answer.input_tokens}
    return {"object": "list", "data": data, "model": answer.model, "usage": usage}


__all__ = ["DEFAULT_TEXT", "StubLLMServer", "StubRequest"]

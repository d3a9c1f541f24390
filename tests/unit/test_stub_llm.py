"""The stub server answers what the real SDKs parse, in each API's own token convention."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from spanledger._demo.stub_llm import DEFAULT_TEXT, StubLLMServer

MESSAGES = [{"role": "user", "content": "x" * 40}]


@pytest.fixture(scope="module")
def stub() -> Iterator[StubLLMServer]:
    with StubLLMServer() as server:
        yield server


@pytest.fixture
def oai(stub: StubLLMServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=stub.openai_base_url, api_key="test", max_retries=0)


@pytest.fixture
def claude(stub: StubLLMServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stub.anthropic_base_url, api_key="test", max_retries=0, open_telemetry=False)


def _post(stub: StubLLMServer, path: str, data: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(stub.url + path, data=data, method="POST")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_openai_usage_includes_the_cache(oai: openai.OpenAI) -> None:
    stub = {"input_tokens": 1200, "cached_tokens": 1024, "output_tokens": 30, "reasoning_tokens": 7}
    response = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_body={"stub": stub})
    assert response.model == "gpt-4o-mini-2024-07-18"
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (1200, 30)
    assert response.usage.prompt_tokens_details is not None
    assert response.usage.prompt_tokens_details.cached_tokens == 1024
    assert response.usage.completion_tokens_details is not None
    assert response.usage.completion_tokens_details.reasoning_tokens == 7
    assert response.choices[0].message.content == DEFAULT_TEXT


def test_openai_defaults_are_derived_from_the_request(oai: openai.OpenAI) -> None:
    response = oai.chat.completions.create(model="gpt-4o-2024-08-06", messages=MESSAGES)
    assert response.model == "gpt-4o-2024-08-06"  # already dated: kept
    assert response.usage is not None
    assert response.usage.prompt_tokens == 40 // 4 + 8


def test_openai_stream_ends_with_a_usage_chunk_only_when_asked(oai: openai.OpenAI) -> None:
    stub = {"input_tokens": 50, "output_tokens": 5, "text": "one two three"}
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"stub": stub},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 50
    plain = list(oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert all(c.usage is None for c in plain)


def test_anthropic_reports_the_cache_on_top_of_input(claude: anthropic.Anthropic) -> None:
    stub = {"input_tokens": 3000, "cached_tokens": 2000, "cache_creation_tokens": 500, "output_tokens": 40}
    message = claude.messages.create(
        model="claude-3-5-sonnet-20241022", max_tokens=64, messages=MESSAGES, extra_body={"stub": stub}
    )
    assert message.model == "claude-3-5-sonnet-20241022"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (500, 2000)
    assert (message.usage.cache_creation_input_tokens, message.usage.output_tokens) == (500, 40)


def test_anthropic_stream_accumulates_to_the_same_usage(claude: anthropic.Anthropic) -> None:
    stub = {"input_tokens": 3000, "cached_tokens": 2000, "output_tokens": 40, "text": "a b c"}
    with claude.messages.stream(
        model="claude-3-5-sonnet-20241022", max_tokens=64, messages=MESSAGES, extra_body={"stub": stub}
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == "a b c"
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens, final.usage.output_tokens) == (
        1000,
        2000,
        40,
    )


def test_status_control_raises_each_sdks_own_error(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    with pytest.raises(openai.RateLimitError) as openai_error:
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_body={"stub": {"status": 429}})
    assert openai_error.value.code == "rate_limit_exceeded"
    with pytest.raises(anthropic.InternalServerError) as anthropic_error:
        claude.messages.create(
            model="claude-3-5-sonnet-20241022", max_tokens=8, messages=MESSAGES, extra_body={"stub": {"status": 529}}
        )
    assert anthropic_error.value.status_code == 529
    assert anthropic_error.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "stub error with status 529"},
        "request_id": anthropic_error.value.request_id,
    }


def test_embeddings_in_base64_and_float(oai: openai.OpenAI) -> None:
    encoded = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    floats = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"], encoding_format="float")
    assert encoded.model == "text-embedding-3-small"
    assert [len(d.embedding) for d in encoded.data] == [8, 8]
    assert floats.data[1].embedding[0] == pytest.approx(encoded.data[1].embedding[0])


@pytest.mark.parametrize(
    ("path", "data", "message"),
    [
        ("/v1/chat/completions", b"{not json", "invalid JSON body"),
        ("/v1/messages", b"[1, 2]", "not a JSON object"),
        ("/v1/chat/completions", b'{"model": "m", "stub": {"input_tokens": -1}}', "non-negative integer"),
        ("/v1/messages", b'{"model": "m", "stub": {"input_tokens": 5, "cached_tokens": 9}}', "must include"),
        ("/v1/chat/completions", b'{"model": "m", "stub": {"colour": "red"}}', "unknown stub control"),
        ("/v1/messages", b'{"messages": []}', "'model' is required"),
    ],
)
def test_bad_requests_get_a_400_and_the_server_keeps_serving(
    stub: StubLLMServer, path: str, data: bytes, message: str
) -> None:
    status, body = _post(stub, path, data)
    assert status == 400
    assert message in body["error"]["message"]
    assert _post(stub, "/v1/chat/completions", b'{"model": "gpt-4o-mini"}')[0] == 200


def test_requests_are_recorded_with_lower_case_headers(stub: StubLLMServer, oai: openai.OpenAI) -> None:
    oai.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Tenant": "acme"}, extra_body={"stub": {"text": "t"}}
    )
    last = stub.requests[-1]
    assert (last.method, last.path) == ("POST", "/v1/chat/completions")
    assert last.headers["x-tenant"] == "acme"
    assert last.body["stub"] == {"text": "t"}


def test_unknown_route_is_404_and_stop_is_idempotent() -> None:
    server = StubLLMServer().start()
    assert _post(server, "/v1/nope", b"{}")[0] == 404
    server.stop()
    server.stop()
    with pytest.raises(urllib.error.URLError):
        _post(server, "/v1/chat/completions", b"{}")

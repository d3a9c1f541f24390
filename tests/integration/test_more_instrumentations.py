"""Two more real instrumentations of the ``openai`` client, against the stub: OpenInference
(``openinference-instrumentation-openai``) and the official ``opentelemetry-instrumentation-openai-v2``.

Each runs in a process of its own: they patch the same client methods as OpenLLMetry's instrumentation,
which the other end-to-end tests keep installed. Costs are written out by hand from genai-prices'
per-million-token prices: gpt-4o-mini $0.15 input, $0.075 cache read, $0.60 output;
text-embedding-3-small $0.02 input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import openai
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from spanledger import CostExporter, Ledger, UserAttributionProcessor, attribute_to
    from spanledger._demo.stub_llm import StubLLMServer
    from spanledger._present import records

    which, dsn = sys.argv[1:3]
    if which == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor
    else:
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    provider = TracerProvider()
    provider.add_span_processor(UserAttributionProcessor())
    exporter = CostExporter(dsn)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    messages = [{"role": "user", "content": "Summarise our quarterly numbers."}]
    with StubLLMServer() as stub:
        client = openai.OpenAI(base_url=stub.openai_base_url, api_key="test", max_retries=0)
        with attribute_to(user_id="ines", tenant_id="acme"):
            client.chat.completions.create(model="gpt-4o-mini", messages=messages, extra_body={"stub": {
                "input_tokens": 1200, "cached_tokens": 1024, "output_tokens": 30, "reasoning_tokens": 12}})
            client.embeddings.create(model="text-embedding-3-small", input="hello",
                                     extra_body={"stub": {"input_tokens": 500}})
            # a stream read without stream_options={"include_usage": True}: no usage at all
            for _ in client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True,
                                                    extra_body={"stub": {"input_tokens": 100, "output_tokens": 7}}):
                pass
    assert provider.force_flush() and exporter.force_flush(30_000)
    detail = Ledger(exporter.store).user("ines")
    print(json.dumps({"summary": records.USER.record(detail.summary), "calls": records.CALL.records(detail.calls)}))
    """
)


def _run(which: str, tmp_path: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPANLEDGER_")}
    env["PYTHONPATH"] = str(Path(__file__).parents[2])
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, which, f"chdb://{tmp_path / 'store'}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _by_operation(calls: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for call in calls:
        out.setdefault(call["operation"], []).append(call)
    return out


def test_openinference_embedding_spans_are_priced_from_their_embedding_model(tmp_path: Path) -> None:
    result = _run("openinference", tmp_path)
    calls = {c["model"]: c for c in result["calls"] if c["input_tokens"] != 100}
    embedding = calls["text-embedding-3-small"]
    assert (embedding["operation"], embedding["input_tokens"], Decimal(embedding["cost"])) == (
        "embedding",
        500,
        Decimal("0.00001"),  # 500 tokens at $0.02 per million
    )
    chat = calls["gpt-4o-mini-2024-07-18"]
    assert (chat["cache_read_tokens"], chat["reasoning_tokens"]) == (1024, 12)
    assert Decimal(chat["cost"]) == Decimal("0.0001212") and "usage_incomplete" not in chat["flags"]
    (stream,) = [c for c in result["calls"] if c["input_tokens"] == 0]  # the stream without usage
    assert (stream["cost"], "no_usage" in stream["flags"], "unpriced" in stream["flags"]) == (None, True, True)
    summary = result["summary"]
    assert (summary["requests"], summary["unpriced_requests"], summary["incomplete_requests"]) == (3, 1, 0)
    assert Decimal(summary["cost"]) == Decimal("0.0001212") + Decimal("0.00001")


def test_openai_v2_calls_are_flagged_as_possibly_overstated(tmp_path: Path) -> None:
    result = _run("openai-v2", tmp_path)
    ops = _by_operation(result["calls"])
    priced = next(c for c in ops["chat"] if c["input_tokens"] == 1200)
    # the instrumentation reports no cached tokens: 1,200 input tokens priced as uncached, and flagged
    assert (priced["cache_read_tokens"], Decimal(priced["cost"])) == (0, Decimal("0.000198"))
    assert "usage_incomplete" in priced["flags"]
    (embedding,) = ops["embeddings"]
    assert Decimal(embedding["cost"]) == Decimal("0.00001") and "usage_incomplete" not in embedding["flags"]
    stream = next(c for c in ops["chat"] if c["input_tokens"] == 0)
    assert stream["cost"] is None and "no_usage" in stream["flags"]
    summary = result["summary"]
    assert (summary["requests"], summary["unpriced_requests"], summary["incomplete_requests"]) == (3, 1, 2)

"""Tool spans from real instrumentations against the stub LLM: an agent loop with the real ``openai`` client,
instrumented by the official ``opentelemetry-instrumentation-openai-v2`` (its tools through
``opentelemetry-util-genai``'s ``handler.tool``, which writes OTel GenAI ``execute_tool`` spans) or by
OpenInference (its tools through ``OITracer.tool``, which writes ``TOOL`` spans). Each run happens twice, with
and without the tools: the tool executions are counted per user and per tool, exactly, and every LLM figure is
the same in both runs.

Each run is a process of its own: the instrumentations patch the same client methods as OpenLLMetry's, which
other tests keep installed.
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

    which, dsn, with_tools = sys.argv[1], sys.argv[2], sys.argv[3] == "tools"
    provider = TracerProvider()
    provider.add_span_processor(UserAttributionProcessor())
    exporter = CostExporter(dsn)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if which == "openinference":
        from openinference.instrumentation import OITracer, TraceConfig
        from openinference.instrumentation.openai import OpenAIInstrumentor
        OpenAIInstrumentor().instrument(tracer_provider=provider)
        tracer = OITracer(provider.get_tracer("agent"), config=TraceConfig())
        def tool(name, function):
            return tracer.tool(name=name)(function)
    else:
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
        from opentelemetry.util.genai.handler import get_telemetry_handler
        OpenAIInstrumentor().instrument(tracer_provider=provider)
        handler = get_telemetry_handler(tracer_provider=provider)
        def tool(name, function):
            def run(*args):
                with handler.tool(name, tool_type="function"):
                    return function(*args)
            return run

    def weather(city):
        return f"sunny in {city}"

    def broken(query):
        raise ValueError("no such table")

    get_weather, run_sql = tool("get_weather", weather), tool("run_sql", broken)
    messages = [{"role": "user", "content": "What is the weather?"}]
    usage = {"stub": {"input_tokens": 1200, "cached_tokens": 1024, "output_tokens": 30}}
    with StubLLMServer() as stub:
        client = openai.OpenAI(base_url=stub.openai_base_url, api_key="test", max_retries=0)
        for user, cities in (("ines", ["Lisbon", "Oslo"]), ("omar", ["Cairo"])):
            with attribute_to(user_id=user, tenant_id="acme"):
                for city in cities:
                    client.chat.completions.create(model="gpt-4o-mini", messages=messages, extra_body=usage)
                    if with_tools:  # the model asked for tools: the agent runs them, then asks again
                        get_weather(city)
                        if user == "omar":
                            try:
                                run_sql("select 1")
                            except ValueError:
                                pass
                    client.chat.completions.create(model="gpt-4o-mini", messages=messages, extra_body=usage)
    assert provider.force_flush() and exporter.force_flush(30_000)
    ledger = Ledger(exporter.store)
    print(json.dumps({
        "totals": records.TOTALS.record(ledger.totals()),
        "users": records.USER.records(ledger.users().rows),
        "tools": records.TOOL.records(ledger.tools(per_user=True).rows),
        "stats": dict(exporter.stats),
    }))
    """
)
_LLM_FIELDS = ("requests", "errors", "input_tokens", "output_tokens", "cache_read_tokens", "cost", "unpriced_requests")
_LLM_FIELDS += ("incomplete_requests",)


def _run(which: str, tools: bool, tmp_path: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPANLEDGER_")}
    env["PYTHONPATH"] = str(Path(__file__).parents[2])
    store = tmp_path / f"{which}-{'tools' if tools else 'plain'}"
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, which, f"chdb://{store}", "tools" if tools else "plain"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _llm(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in _LLM_FIELDS}


@pytest.mark.parametrize("which", ["openai-v2", "openinference"])
def test_tool_spans_of_a_real_instrumentation_are_counted_per_user_and_tool_and_llm_totals_do_not_move(
    which: str, tmp_path: Path
) -> None:
    plain, with_tools = _run(which, False, tmp_path), _run(which, True, tmp_path)
    # every LLM figure is the same with and without the tools running in between
    assert _llm(with_tools["totals"]) == _llm(plain["totals"])
    assert with_tools["totals"]["requests"] == 6
    per_user = {u["user_id"]: _llm(u) for u in with_tools["users"]}
    assert per_user == {u["user_id"]: _llm(u) for u in plain["users"]}
    if which == "openinference":  # it reports cached tokens: exact price
        assert Decimal(with_tools["totals"]["cost"]) == Decimal("0.0001212") * 6
    # the tool executions, per user and tool, exactly
    assert {(t["tenant_id"], t["user_id"], t["tool_name"]): (t["calls"], t["errors"]) for t in with_tools["tools"]} == {
        ("acme", "ines", "get_weather"): (2, 0),
        ("acme", "omar", "get_weather"): (1, 0),
        ("acme", "omar", "run_sql"): (1, 1),
    }
    assert plain["tools"] == []
    assert {u["user_id"]: u["tool_calls"] for u in with_tools["users"]} == {"ines": 2, "omar": 2}
    stats = with_tools["stats"]
    assert (stats["spooled"], stats["tools_spooled"], stats["tools_stored"]) == (6, 4, 4)

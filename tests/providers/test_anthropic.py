"""Anthropic: the loopback server checked with the official SDK, then our adapter."""

from __future__ import annotations

import anthropic
import pytest

from orchestrator.errors import AuthenticationError
from orchestrator.integrations.anthropic_model import AnthropicModel
from orchestrator.models.model_registry import ModelRegistry
from tests.providers.conftest import ANTHROPIC_KEY
from tests.servers import AnthropicServer


async def test_sdk_speaks_to_the_server(anthropic_server: AnthropicServer) -> None:
    client = anthropic.AsyncAnthropic(
        api_key=ANTHROPIC_KEY, base_url=anthropic_server.url, max_retries=0
    )
    try:
        msg = await client.messages.create(
            model="claude-3-opus-20240229",
            max_tokens=64,
            system="be brief",
            messages=[{"role": "user", "content": "Say hello"}],
        )
        assert msg.content[0].type == "text" and msg.content[0].text == anthropic_server.reply
        assert msg.usage.input_tokens == 4 and msg.usage.output_tokens == 6
        assert anthropic_server.requests[-1].headers["anthropic-version"]

        async with client.messages.stream(
            model="claude-3-5-haiku-20241022",
            max_tokens=64,
            messages=[{"role": "user", "content": "Say hello"}],
        ) as stream:
            pieces = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
        assert "".join(pieces) == anthropic_server.reply
        assert final.usage.output_tokens == 6 and final.stop_reason == "end_turn"

        # Raw events, as the SDK parses them.
        raw = await client.messages.create(
            model="claude-3-opus-20240229",
            max_tokens=64,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
        kinds = [event.type async for event in raw]
        assert kinds[:3] == ["message_start", "content_block_start", "content_block_delta"]
        assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]

        anthropic_server.add_fault(status=529)
        with pytest.raises(anthropic.InternalServerError) as info:
            await client.messages.create(
                model="claude-3-opus-20240229",
                max_tokens=8,
                messages=[{"role": "user", "content": "x"}],
            )
        assert info.value.status_code == 529
        anthropic_server.add_fault(stream_error=True)
        with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
            events = await client.messages.create(
                model="claude-3-opus-20240229",
                max_tokens=8,
                messages=[{"role": "user", "content": "x"}],
                stream=True,
            )
            async for _ in events:
                pass
        page = await client.models.list()
        assert "claude-3-opus-20240229" in [m.id for m in page.data]
    finally:
        await client.close()


async def test_adapter_resolves_name_generates_and_streams(
    anthropic_server: AnthropicServer,
) -> None:
    model = AnthropicModel(
        name="claude-3-opus", api_key=ANTHROPIC_KEY, base_url=anthropic_server.url
    )
    assert model.model_id == "claude-3-opus-20240229"
    assert model.cost is not None and model.cost.input_per_million == 15.0
    registry = ModelRegistry()
    registry.register_model(model)

    text = await model.generate_response(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Say hello"}],
        stop="\n\n",
        temperature=0,
    )
    assert text == anthropic_server.reply
    body = anthropic_server.requests[-1].json()
    assert body["system"] == "be brief" and body["messages"] == [
        {"role": "user", "content": "Say hello"}
    ]
    assert body["max_tokens"] == 1024 and body["stop_sequences"] == ["\n\n"]
    headers = anthropic_server.requests[-1].headers
    assert headers["x-api-key"] == ANTHROPIC_KEY and headers["anthropic-version"] == "2023-06-01"

    chunks = [c async for c in model.stream_response("Say hello")]
    assert "".join(chunks) == anthropic_server.reply

    metrics = registry.get_metrics("claude-3-opus")
    assert metrics.successes == 2
    assert metrics.input_tokens == 4 + 2 and metrics.output_tokens == 12
    assert metrics.total_cost == pytest.approx(6 * 15e-6 + 12 * 75e-6)
    assert await model.health_check() is True
    assert anthropic_server.requests[-1].path == "/v1/models/claude-3-opus-20240229"
    assert "claude-3-opus-20240229" in model.cache_identity()


async def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    model = AnthropicModel("claude-3-5-sonnet")
    with pytest.raises(AuthenticationError, match="ANTHROPIC_API_KEY"):
        await model.generate_response("hi")
    assert model.model_id == "claude-3-5-sonnet-20241022"

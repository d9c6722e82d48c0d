"""OpenAI: the loopback server checked with the official SDK, then our adapter."""

from __future__ import annotations

import logging

import openai
import pytest

from orchestrator.core.model import ModelCost
from orchestrator.errors import AuthenticationError, NotFoundError
from orchestrator.integrations.openai_model import OpenAIModel
from orchestrator.models.model_registry import ModelRegistry
from tests.providers.conftest import OPENAI_KEY, fast
from tests.servers import OpenAIServer
from tests.servers.openai_server import embedding_of


async def test_sdk_speaks_to_the_server(openai_server: OpenAIServer) -> None:
    client = openai.AsyncOpenAI(api_key=OPENAI_KEY, base_url=openai_server.url, max_retries=0)
    try:
        done = await client.chat.completions.create(
            model="gpt-4", messages=[{"role": "user", "content": "Say hello"}]
        )
        assert done.choices[0].message.content == openai_server.reply
        assert done.model == "gpt-4-0613"
        assert done.usage is not None and done.usage.prompt_tokens == 2
        assert done.usage.completion_tokens == len(openai_server.reply.split())

        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Say hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces, usage = [], None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            if chunk.usage:
                usage = chunk.usage
        assert "".join(pieces) == openai_server.reply
        assert usage is not None and usage.completion_tokens == 6

        # The SDK asks for base64 embeddings by default and decodes them.
        emb = await client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"])
        assert [d.embedding for d in emb.data] == [embedding_of("a b"), embedding_of("c")]

        models = await client.models.list()
        assert "gpt-4" in [m.id for m in models.data]

        openai_server.add_fault(status=429, retry_after="1")
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(
                model="gpt-4", messages=[{"role": "user", "content": "x"}]
            )
        assert info.value.code == "rate_limit_exceeded"
        bad = openai.AsyncOpenAI(api_key="wrong", base_url=openai_server.url, max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            await bad.models.list()
        await bad.close()
    finally:
        await client.close()


async def test_adapter_generates_streams_and_records_usage(openai_server: OpenAIServer) -> None:
    model = OpenAIModel("gpt-4", api_key=OPENAI_KEY, base_url=openai_server.url)
    registry = ModelRegistry()
    registry.register_model(model)

    text = await model.generate_response(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Say hello"}],
        temperature=0.2,
        max_tokens=20,
    )
    assert text == openai_server.reply
    sent = openai_server.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert sent.json()["temperature"] == 0.2 and sent.json()["max_tokens"] == 20
    assert sent.json()["messages"][0] == {"role": "system", "content": "be brief"}

    chunks = [c async for c in model.stream_response("Say hello")]
    assert "".join(chunks) == openai_server.reply and len(chunks) > 1
    assert openai_server.requests[-1].json()["stream_options"] == {"include_usage": True}

    metrics = registry.get_metrics("gpt-4")
    assert metrics.requests == 2 and metrics.successes == 2
    # usage from the provider: 4 + 2 prompt words, 6 + 6 completion words
    assert metrics.input_tokens == 6 and metrics.output_tokens == 12
    # cost from the catalogue's gpt-4 price ($30 / $60 per million)
    assert metrics.total_cost == pytest.approx(6 * 30e-6 + 12 * 60e-6)
    assert metrics.time_to_first_token_p50 is not None


async def test_embeddings_and_health(openai_server: OpenAIServer) -> None:
    model = OpenAIModel("text-embedding-3-small", api_key=OPENAI_KEY, base_url=openai_server.url)
    assert model.capabilities.embeddings
    assert await model.embed(["hello world", "x"]) == [
        embedding_of("hello world"),
        embedding_of("x"),
    ]
    assert openai_server.requests[-1].json()["encoding_format"] == "float"
    assert await model.health_check() is False  # not among the served models

    gpt4 = OpenAIModel("gpt-4", api_key=OPENAI_KEY, base_url=openai_server.url)
    assert await gpt4.health_check() is True
    assert openai_server.requests[-1].path == "/v1/models"
    unknown = OpenAIModel("gpt-9", api_key=OPENAI_KEY, base_url=openai_server.url)
    with pytest.raises(NotFoundError):
        await unknown._probe()


async def test_key_from_environment_at_call_time(
    openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    import os

    model = OpenAIModel(name="gpt-4", api_key=os.environ.get("OPENAI_API_KEY"))
    assert model.base_url == "https://api.openai.com/v1"
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        await model.generate_response("hi")
    assert await model.health_check() is False

    local = OpenAIModel("gpt-4", base_url=openai_server.url)
    with pytest.raises(AuthenticationError) as info:  # the server wants a key
        await local.generate_response("hi")
    assert info.value.status_code == 401
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    assert await local.generate_response("hi") == openai_server.reply


async def test_key_never_leaks(
    openai_server: OpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-very-secret-key-0123456789"
    model = fast(OpenAIModel("gpt-4", api_key=secret, base_url=openai_server.url))
    caplog.set_level(logging.DEBUG)
    assert secret not in repr(model) and secret not in model.cache_identity()
    assert secret not in repr(model._transport) and secret not in repr(model._api_key)
    assert openai_server.url in model.cache_identity() and "gpt-4" in model.cache_identity()
    openai_server.add_fault(status=500, times=-1)
    with pytest.raises(Exception) as info:
        await model.generate_response("hi")
    # Error bodies that echo the key (as some gateways do) are scrubbed too.
    openai_server.faults.clear()
    openai_server.api_key = "other"
    with pytest.raises(AuthenticationError) as auth:
        await model.generate_response("hi")
    for text in (str(info.value), str(auth.value), caplog.text, repr(auth.value)):
        assert secret not in text


async def test_unknown_model_is_unpriced_unless_priced(openai_server: OpenAIServer) -> None:
    unknown = OpenAIModel("my-local-llm", base_url=openai_server.url, validate_model=False)
    assert unknown.cost is None and unknown.in_catalogue is False
    priced = OpenAIModel(
        "my-local-llm",
        base_url=openai_server.url,
        cost=ModelCost(input_per_million=1.0, output_per_million=2.0),
    )
    assert priced.cost is not None and priced.cost.output_per_million == 2.0
    known = OpenAIModel("gpt-4o-mini", api_key="k")
    assert known.cost == ModelCost(input_per_million=0.15, output_per_million=0.6)
    assert known.capabilities.context_length == 128000 and known.speed is not None

"""Ollama: the loopback server checked with the official client, then our
adapter and the lazily pulling variant."""

from __future__ import annotations

import asyncio
import logging

import ollama
import pytest

from orchestrator.core.model import ModelCapabilities
from orchestrator.errors import NotFoundError, ServerError
from orchestrator.integrations.lazy_ollama_model import LazyOllamaModel, PullProgress
from orchestrator.integrations.ollama_model import OllamaModel, parse_host
from orchestrator.models.model_registry import ModelRegistry
from tests.providers.conftest import fast
from tests.servers import OllamaServer
from tests.servers.openai_server import embedding_of


async def test_sdk_speaks_to_the_server(ollama_server: OllamaServer) -> None:
    client = ollama.AsyncClient(host=ollama_server.url)
    done = await client.chat(model="llama3.2", messages=[{"role": "user", "content": "Say hello"}])
    assert done.message.content == ollama_server.reply
    assert done.done and done.eval_count == 6 and done.prompt_eval_count == 2

    pieces = []
    last = None
    async for part in await client.chat(
        model="llama3.2", messages=[{"role": "user", "content": "hi"}], stream=True
    ):
        pieces.append(part.message.content)
        last = part
    assert "".join(pieces) == ollama_server.reply
    assert last is not None and last.done and last.done_reason == "stop"

    listed = await client.list()
    assert "llama3.2:latest" in [m.model for m in listed.models]
    shown = await client.show("llama3.2")
    assert shown.modelinfo is not None and shown.modelinfo["llama.context_length"] == 131072
    assert shown.capabilities == ["completion", "tools"]
    emb = await client.embed(model="nomic-embed-text", input=["a", "b c"])
    assert [list(e) for e in emb.embeddings] == [embedding_of("a"), embedding_of("b c")]

    statuses = [p.status async for p in await client.pull("qwen2.5:0.5b", stream=True)]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    with pytest.raises(ollama.ResponseError) as info:
        await client.chat(model="missing", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 404 and "not found" in info.value.error


def test_ollama_host_is_read_like_the_client() -> None:
    assert parse_host(None) == "http://127.0.0.1:11434"
    assert parse_host("0.0.0.0") == "http://0.0.0.0:11434"
    assert parse_host(":5000") == "http://127.0.0.1:5000"
    assert parse_host("http://example.com") == "http://example.com:80"
    assert parse_host("https://example.com/ollama/") == "https://example.com:443/ollama"
    assert parse_host("[::1]:8080") == "http://[::1]:8080"


async def test_adapter(ollama_server: OllamaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", ollama_server.url.removeprefix("http://"))
    model = OllamaModel("llama3.2")
    assert model.base_url == ollama_server.url
    assert model.cost is not None and model.cost.is_free
    registry = ModelRegistry()
    registry.register_model(model)

    text = await model.generate_response(
        "Say hello", temperature=0.1, max_tokens=30, keep_alive="5m"
    )
    assert text == ollama_server.reply
    body = ollama_server.requests[-1].json()
    assert body["stream"] is False and body["keep_alive"] == "5m"
    assert body["options"] == {"temperature": 0.1, "num_predict": 30}
    chunks = [c async for c in model.stream_response("Say hello")]
    assert "".join(chunks) == ollama_server.reply and len(chunks) == 6
    metrics = registry.get_metrics("llama3.2")
    assert metrics.input_tokens == 4 and metrics.output_tokens == 12 and metrics.total_cost == 0

    # /api/show fills in context length and capabilities, in the registry too.
    ollama_server.capabilities = ["completion", "tools", "vision", "thinking"]
    assert await model.health_check() is True
    assert model.capabilities.context_length == 131072
    assert model.capabilities.vision and model.capabilities.function_calling
    assert model.capabilities.reasoning and not model.capabilities.embeddings
    found = registry.select_model(capabilities=["vision"], context_length=100000)
    assert found is model

    embedder = OllamaModel("nomic-embed-text", base_url=ollama_server.url)
    assert await embedder.embed(["x"]) == [embedding_of("x")]
    assert await OllamaModel("absent", base_url=ollama_server.url).health_check() is False


async def test_user_capabilities_are_kept(ollama_server: OllamaServer) -> None:
    caps = ModelCapabilities(text_generation=True, code_generation=True)
    model = OllamaModel("llama3.2", base_url=ollama_server.url, capabilities=caps)
    await model.refresh_capabilities()
    assert model.capabilities.code_generation and not model.capabilities.function_calling
    assert model.capabilities.context_length == 131072


async def test_missing_model_is_not_found(ollama_server: OllamaServer) -> None:
    model = fast(OllamaModel("qwen2.5:0.5b", base_url=ollama_server.url))
    with pytest.raises(NotFoundError, match="try pulling it first"):
        await model.generate_response("hi")


async def test_lazy_model_pulls_once_under_concurrent_first_calls(
    ollama_server: OllamaServer, caplog: pytest.LogCaptureFixture
) -> None:
    ollama_server.pull_delay = 0.2
    events: list[PullProgress] = []
    model = LazyOllamaModel("qwen2.5:0.5b", base_url=ollama_server.url, progress=events.append)
    caplog.set_level(logging.INFO, logger="orchestrator.integrations.lazy_ollama_model")
    answers = await asyncio.gather(*(model.generate_response("hi") for _ in range(5)))
    assert answers == [ollama_server.reply] * 5
    assert ollama_server.pulls == 1 and model.pulls == 1 and model.ready
    assert events[0].status == "pulling manifest" and events[-1].status == "success"
    assert [e.fraction for e in events if e.fraction is not None] == [0.0, 0.4, 1.0]
    assert "pulling qwen2.5:0.5b" in caplog.text
    chunks = [c async for c in model.stream_response("hi")]
    assert "".join(chunks) == ollama_server.reply
    assert ollama_server.pulls == 1
    assert model.capabilities.context_length == 131072


async def test_lazy_model_does_not_pull_what_is_there(ollama_server: OllamaServer) -> None:
    model = LazyOllamaModel("llama3.2", base_url=ollama_server.url)
    assert await model.generate_response("hi") == ollama_server.reply
    assert ollama_server.pulls == 0


async def test_lazy_pull_failures(ollama_server: OllamaServer) -> None:
    unknown = LazyOllamaModel("does-not-exist", base_url=ollama_server.url)
    fast(unknown)
    with pytest.raises(ServerError, match="file does not exist"):
        await unknown.generate_response("hi")
    assert not unknown.ready
    ollama_server.add_fault(path="/api/pull", cut=True)
    model = LazyOllamaModel("qwen2.5:0.5b", base_url=ollama_server.url)
    from orchestrator.errors import StreamCutError

    with pytest.raises(StreamCutError):
        await model.generate_response("hi")
    assert not model.ready
    assert await model.generate_response("hi") == ollama_server.reply  # pulls again, then works
    assert model.pulls == 2

"""The provider adapters against a real llama.cpp server (SmolLM2-135M on loopback):
OpenAI's ``/v1/chat/completions`` and Anthropic's ``/v1/messages``, whole and
streamed, and a registry that learns to route around a dead endpoint.

llama.cpp labels its answers with the model file's path, not the requested name:
the adapters must accept that from a non-official endpoint."""

from __future__ import annotations

import pytest

from orchestrator.integrations.anthropic_model import AnthropicModel
from orchestrator.integrations.openai_model import OpenAIModel
from orchestrator.models.model_registry import ModelRegistry
from tests.realserver.conftest import LlamaServer
from tests.redis_server import free_port

PROMPT = "What is the capital of France? Answer in one word."
#: Few tokens: the model answers at a few tokens per second on a busy 2-core machine.
MAX_TOKENS = 6

pytestmark = pytest.mark.timeout(300)


def local_openai(name: str, base_url: str) -> OpenAIModel:
    return OpenAIModel(name, base_url=base_url, model_id="smollm2-135m", timeout=120)


async def test_openai_adapter_answers_through_chat_completions(llama: LlamaServer) -> None:
    model = local_openai("smollm2", f"{llama.url}/v1")
    try:
        answer = await model.generate_response(PROMPT, max_tokens=MAX_TOKENS, temperature=0)
    finally:
        await model.aclose()
    assert isinstance(answer, str) and answer.strip()


async def test_openai_adapter_streams(llama: LlamaServer) -> None:
    model = local_openai("smollm2", f"{llama.url}/v1")
    try:
        chunks = [
            chunk
            async for chunk in model.stream_response(PROMPT, max_tokens=MAX_TOKENS, temperature=0)
        ]
    finally:
        await model.aclose()
    assert len(chunks) >= 2
    assert "".join(chunks).strip()


async def test_anthropic_adapter_answers_through_messages(llama: LlamaServer) -> None:
    model = AnthropicModel(
        "smollm2", api_key="unused-by-llama-cpp", base_url=llama.url, model_id="smollm2-135m",
        timeout=120,
    )  # fmt: skip
    try:
        answer = await model.generate_response(PROMPT, max_tokens=MAX_TOKENS, temperature=0)
        streamed = [
            chunk
            async for chunk in model.stream_response(PROMPT, max_tokens=MAX_TOKENS, temperature=0)
        ]
    finally:
        await model.aclose()
    assert answer.strip()
    assert "".join(streamed).strip()


async def test_registry_learns_to_avoid_a_dead_endpoint(llama: LlamaServer) -> None:
    live = local_openai("live", f"{llama.url}/v1")
    dead = local_openai("dead", f"http://127.0.0.1:{free_port()}/v1")  # nothing listens
    registry = ModelRegistry()
    registry.register_model(live)
    registry.register_model(dead)
    try:
        answered_by = []
        for _ in range(30):  # bounded: stops once the dead endpoint's circuit is open
            result = await registry.generate(PROMPT, retry_budget=1, max_tokens=MAX_TOKENS)
            answered_by.append(result.model)
            if (await registry.get_model_health("dead")).state == "open":
                break
        assert set(answered_by) == {"live"}
        assert (await registry.get_model_health("dead")).state == "open"
        assert registry.get_metrics("dead").successes == 0
        after = [await registry.generate(PROMPT, retry_budget=1, max_tokens=MAX_TOKENS)]
        assert [a.model for r in after for a in r.attempts] == ["live"]
        assert (await registry.get_model_health("live")).state == "closed"
    finally:
        await registry.aclose()
        await live.aclose()
        await dead.aclose()

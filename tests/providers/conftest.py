"""Fixtures of the provider tests: loopback servers, adapters pointed at them
with fast retries, and a registry that records every outcome."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.core.model import Model
from orchestrator.integrations._http import HTTPModel
from orchestrator.integrations.anthropic_model import AnthropicModel
from orchestrator.integrations.google_model import GoogleModel
from orchestrator.integrations.huggingface_model import HuggingFaceModel
from orchestrator.integrations.ollama_model import OllamaModel
from orchestrator.integrations.openai_model import OpenAIModel
from orchestrator.models.model_registry import ModelRegistry
from tests.servers import (
    AnthropicServer,
    GeminiServer,
    LoopbackServer,
    OllamaServer,
    OpenAIServer,
    TGIServer,
)

OPENAI_KEY = "sk-test-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"
GOOGLE_KEY = "AIza-test-0123456789abcdef"


def fast(model: Any, *, max_retries: int = 2, timeout: float = 5.0, deadline: float = 10.0) -> Any:
    """Make retries quick for tests (same policy shape, tiny backoff)."""
    transport = model._transport
    transport.policy = dataclasses.replace(
        transport.policy,
        max_retries=max_retries,
        base_delay=0.01,
        max_delay=0.05,
        timeout=timeout,
        deadline=deadline,
    )
    return model


@dataclasses.dataclass
class Harness:
    """A provider's loopback server and our adapter pointed at it."""

    provider: str
    server: LoopbackServer
    model: Model
    has_model_name: bool = True


def make_harness(provider: str) -> Harness:
    """A loopback server and an adapter that checks answers' model labels, as
    it does on the provider's official endpoint."""
    if provider == "openai":
        s: LoopbackServer = OpenAIServer(api_key=OPENAI_KEY)
        s.start()
        m: Model = OpenAIModel("gpt-4", api_key=OPENAI_KEY, base_url=s.url, validate_model=True)
        return Harness(provider, s, fast(m))
    if provider == "anthropic":
        s = AnthropicServer(api_key=ANTHROPIC_KEY)
        s.start()
        m = AnthropicModel(
            "claude-3-opus", api_key=ANTHROPIC_KEY, base_url=s.url, validate_model=True
        )
        return Harness(provider, s, fast(m))
    if provider == "google":
        s = GeminiServer(api_key=GOOGLE_KEY)
        s.start()
        m = GoogleModel("gemini-1.5-flash", api_key=GOOGLE_KEY, base_url=s.url, validate_model=True)
        return Harness(provider, s, fast(m))
    if provider == "ollama":
        s = OllamaServer()
        s.start()
        return Harness(provider, s, fast(OllamaModel("llama3.2", base_url=s.url)))
    if provider == "tgi":
        s = TGIServer()
        s.start()
        m = HuggingFaceModel("tgi-model", endpoint_url=s.url)
        return Harness(provider, s, fast(m), has_model_name=False)
    raise ValueError(provider)


HTTP_PROVIDERS = ["openai", "anthropic", "google", "ollama", "tgi"]


@pytest.fixture(params=HTTP_PROVIDERS)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    h = make_harness(request.param)
    try:
        yield h
    finally:
        h.server.stop()


@pytest.fixture
def registry() -> ModelRegistry:
    return ModelRegistry()


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    with OpenAIServer(api_key=OPENAI_KEY) as s:
        yield s


@pytest.fixture
def anthropic_server() -> Iterator[AnthropicServer]:
    with AnthropicServer(api_key=ANTHROPIC_KEY) as s:
        yield s


@pytest.fixture
def gemini_server() -> Iterator[GeminiServer]:
    with GeminiServer(api_key=GOOGLE_KEY) as s:
        yield s


@pytest.fixture
def ollama_server() -> Iterator[OllamaServer]:
    with OllamaServer() as s:
        yield s


__all__ = ["HTTPModel"]


@pytest.fixture(autouse=True)
async def _close_pooled_clients() -> Any:
    """Each test has its own event loop: close the pooled clients it opened."""
    from orchestrator.integrations._http import aclose_clients

    yield
    await aclose_clients()

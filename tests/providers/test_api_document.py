"""The API document's first two examples, as written, against the loopback
servers through OPENAI_BASE_URL / ANTHROPIC_BASE_URL."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.providers.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.servers import AnthropicServer, OpenAIServer


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[OpenAIServer, AnthropicServer]]:
    with OpenAIServer(api_key=OPENAI_KEY) as o, AnthropicServer(api_key=ANTHROPIC_KEY) as a:
        monkeypatch.setenv("OPENAI_BASE_URL", o.url)
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", a.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        yield o, a


async def test_usage_pattern(env: tuple[OpenAIServer, AnthropicServer]) -> None:
    from orchestrator.integrations.openai_model import OpenAIModel
    from orchestrator.models.model_registry import ModelRegistry

    # Create registry
    registry = ModelRegistry()

    # Register models
    gpt4 = OpenAIModel(name="gpt-4", api_key=os.environ.get("OPENAI_API_KEY"))
    registry.register_model(gpt4)

    # Select best model for task: gpt-4 at list price ($30/$60 per million)
    # costs $0.009 for the default request of 100 input and 100 output tokens.
    best_model = registry.select_model(capabilities=["text_generation"], max_cost=0.01)
    assert best_model is gpt4

    # Generate response
    response = await best_model.generate_response("Hello, world!")
    assert response == env[0].reply
    assert registry.get_metrics("gpt-4").successes == 1


async def test_registry_example(env: tuple[OpenAIServer, AnthropicServer]) -> None:
    from orchestrator.integrations.anthropic_model import AnthropicModel
    from orchestrator.integrations.openai_model import OpenAIModel
    from orchestrator.models.model_registry import ModelRegistry

    # Create registry with custom configuration
    registry = ModelRegistry(
        selection_strategy="ucb", health_check_interval=300, cache_responses=True
    )

    # Register multiple models
    models = [
        OpenAIModel(name="gpt-4", api_key=os.environ.get("OPENAI_API_KEY")),
        OpenAIModel(name="gpt-3.5-turbo", api_key=os.environ.get("OPENAI_API_KEY")),
        AnthropicModel(name="claude-3-opus", api_key=os.environ.get("ANTHROPIC_API_KEY")),
    ]

    for model in models:
        registry.register_model(model)

    # Select model based on requirements
    selected_model = registry.select_model(
        capabilities=["text_generation", "code_generation"],
        max_cost=0.05,
        min_speed=100,
        context_length=8000,
    )

    # Use selected model
    response = await selected_model.generate_response(
        "Write a Python function to calculate fibonacci numbers"
    )
    openai_server, anthropic_server = env
    # gpt-3.5-turbo is the only catalogued model declared at >= 100 tokens/s.
    assert selected_model.name == "gpt-3.5-turbo"
    assert response == openai_server.reply
    claude = registry.get_model("claude-3-opus")
    assert await claude.generate_response("hi") == anthropic_server.reply
    assert anthropic_server.requests[-1].json()["model"] == "claude-3-opus-20240229"

"""The API document's examples that need no provider, run as written
(custom models stand in where the document leaves the body to the user)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core.model import Model, ModelCapabilities
from orchestrator.models.model_registry import (
    ModelRegistry,
    ModelSelector,
    NoEligibleModelsError,
    UCBModelSelector,
)


class CustomModel(Model):
    """The document's custom model, with its two bodies filled in."""

    def __init__(self, name: str, config: dict[str, Any]):
        capabilities = ModelCapabilities(
            text_generation=True, max_tokens=4096, supports_streaming=True
        )
        super().__init__(name=name, provider="custom", capabilities=capabilities)
        self.config = config

    async def generate_response(self, prompt: str, **kwargs: Any) -> str:
        return f"{self.config['prefix']}{prompt}"

    async def health_check(self) -> bool:
        return True


def test_model_capabilities_example() -> None:
    caps = ModelCapabilities(text_generation=True, max_tokens=4096, supports_streaming=True)
    assert caps.names() == ["text_generation", "supports_streaming"]
    assert caps.max_tokens == 4096


def test_registry_with_custom_configuration() -> None:
    registry = ModelRegistry(
        selection_strategy="ucb", health_check_interval=300, cache_responses=True
    )
    assert registry.strategy == "ucb"
    assert registry.health_check_interval == 300
    assert registry.cache is not None


async def test_ucb_selector_example_learns_from_custom_model_calls() -> None:
    selector = UCBModelSelector(exploration_factor=2.0, min_trials=5, confidence_level=0.95)
    registry = ModelRegistry(model_selector=selector)
    model = registry.register_model(CustomModel("custom-1", {"prefix": "> "}))
    chosen = registry.select_model(capabilities=["text_generation"])
    assert chosen is model
    response = await chosen.generate_response("Hello, world!")
    assert response == "> Hello, world!"
    metrics = registry.get_metrics("custom-1")
    assert metrics.requests == 1
    assert metrics.successes == 1
    assert metrics.pending == 0
    assert metrics.latency_p50 is not None


async def test_custom_model_overriding_generate_response_is_measured() -> None:
    registry = ModelRegistry()
    registry.register_model(CustomModel("c", {"prefix": ""}))
    model = registry.get_model("c")
    for _ in range(3):
        await model.generate_response("abcd" * 10)
    metrics = registry.get_metrics("c")
    assert metrics.requests == 3
    assert metrics.input_tokens == 30  # estimated at four characters a token
    assert metrics.total_cost == 0.0  # unpriced


def test_the_document_custom_model_with_empty_bodies_fails_clearly() -> None:
    class AsWritten(Model):
        async def generate_response(self, prompt: str, **kwargs: Any) -> str:
            """Generate response from custom model."""
            pass  # type: ignore[return-value]

        async def health_check(self) -> bool:
            """Check model health."""
            pass  # type: ignore[return-value]

    import asyncio

    from orchestrator.errors import MalformedResponseError

    registry = ModelRegistry()
    registry.register_model(AsWritten(name="x", provider="custom"))
    with pytest.raises(MalformedResponseError, match="returned NoneType, expected str"):
        asyncio.run(registry.get_model("x").generate_response("hi"))
    assert registry.get_metrics("x").failures_by_class == {"malformed_response": 1}


def test_selector_classes_exist_with_the_documented_base() -> None:
    from orchestrator.models.model_registry import CostBasedSelector, PerformanceSelector

    for cls in (UCBModelSelector, CostBasedSelector, PerformanceSelector):
        assert issubclass(cls, ModelSelector)
    assert issubclass(NoEligibleModelsError, Exception)

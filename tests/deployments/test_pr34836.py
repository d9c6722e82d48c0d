"""LiteLLM PR #34836: 25 consecutive 500s left a deployment in rotation. Here
one deployment of a model answers 500 over real loopback HTTP: its own
breaker opens and it stops being selected, while the other deployment of the
same model carries every request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator.integrations.openai_model import OpenAIModel
from orchestrator.models.model_registry import ModelRegistry
from tests.providers.conftest import OPENAI_KEY, fast
from tests.servers import OpenAIServer

REQUESTS = 25


@pytest.fixture
def servers() -> Iterator[tuple[OpenAIServer, OpenAIServer]]:
    with OpenAIServer(api_key=OPENAI_KEY) as broken, OpenAIServer(api_key=OPENAI_KEY) as healthy:
        broken.add_fault(status=500, times=-1)
        yield broken, healthy


def deployment(server: OpenAIServer, name: str) -> OpenAIModel:
    model = OpenAIModel("gpt-4", api_key=OPENAI_KEY, base_url=server.url, deployment=name)
    return fast(model, max_retries=0)


async def test_25_consecutive_500s_take_the_deployment_out_of_rotation(
    servers: tuple[OpenAIServer, OpenAIServer],
) -> None:
    broken, healthy = servers
    registry = ModelRegistry()
    registry.register_model(deployment(broken, "eu"))
    registry.register_model(deployment(healthy, "us"))
    served = [await registry.generate("Hello", alias="gpt-4") for _ in range(REQUESTS)]
    assert {r.model for r in served} == {"gpt-4@us"}, "every request was served by the healthy one"
    threshold = registry.health_monitor.failure_threshold
    assert len(broken.requests) <= threshold, "out of rotation once its breaker opened"
    assert len(healthy.requests) == REQUESTS
    assert registry.core.breaker(registry.core.slot_of("gpt-4@eu"))["state"] == "open"
    why = {c.name: c for c in registry.explain_selection(alias="gpt-4").candidates}
    assert why["gpt-4@eu"].constraint == "health"
    assert why["gpt-4@us"].eligible
    assert registry.get_metrics("gpt-4@eu").failures_by_class == {
        "server_error": len(broken.requests)
    }
    assert registry.get_metrics("gpt-4@us").successes == REQUESTS
    await registry.aclose()


async def test_failover_between_deployments_serves_every_request(
    servers: tuple[OpenAIServer, OpenAIServer],
) -> None:
    broken, healthy = servers
    registry = ModelRegistry(selection_strategy="cost")  # a tie: the broken one (slot 0) first
    registry.register_model(deployment(broken, "eu"))
    registry.register_model(deployment(healthy, "us"))
    first = await registry.generate("Hello")
    assert [a.model for a in first.attempts] == ["gpt-4@eu", "gpt-4@us"]
    assert first.attempts[0].outcome == "server_error"
    for _ in range(REQUESTS):
        assert (await registry.generate("Hello")).model == "gpt-4@us"
    await registry.aclose()

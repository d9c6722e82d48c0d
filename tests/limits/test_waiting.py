"""Waiting for the soonest slot (LiteLLM #3646: "all deployments cooled down"
fails requests instead of waiting): ``generate``/``stream`` with a deadline
wait when every eligible model is rate limited and a slot opens before the
deadline, over real HTTP to a loopback provider; with a slot beyond the
deadline they fail at once with the error they raised before."""

from __future__ import annotations

import pytest

from orchestrator.errors import FailoverExhaustedError, NoEligibleModelsError
from orchestrator.integrations.openai_model import OpenAIModel
from orchestrator.models.model_registry import ModelRegistry
from tests.conftest import ScriptedModel
from tests.providers.conftest import OPENAI_KEY, fast
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(60)


def openai_registry(server: OpenAIServer) -> ModelRegistry:
    registry = ModelRegistry()
    registry.register_model(
        fast(OpenAIModel("gpt-4", api_key=OPENAI_KEY, base_url=server.url), max_retries=0)
    )
    return registry


async def test_all_models_cooling_down_waits_for_the_soonest_slot() -> None:
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        registry = openai_registry(server)
        server.add_fault(status=429, retry_after="1")
        result = await registry.generate("Hello", deadline=20)
        assert [(a.model, a.outcome) for a in result.attempts] == [
            ("gpt-4", "rate_limit"),
            ("gpt-4", "ok"),
        ]
        assert len(server.requests) == 2


async def test_a_spent_provider_allowance_is_waited_for_within_the_deadline() -> None:
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        registry = openai_registry(server)
        server.extra_headers = server.rate_limit_headers(remaining_requests=0, requests_reset=1)
        await registry.generate("first", deadline=20)
        server.extra_headers = {}
        with pytest.raises(NoEligibleModelsError):
            registry.select_model()  # the allowance is spent for about a second
        result = await registry.generate("second", deadline=20)
        assert [a.outcome for a in result.attempts] == ["ok"]
        assert len(server.requests) == 2


async def test_a_stream_waits_for_the_soonest_slot_too() -> None:
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        registry = openai_registry(server)
        server.add_fault(status=429, retry_after="1")
        stream = registry.stream("Hello", deadline=20)
        text = "".join([chunk async for chunk in stream])
        assert text and [a.outcome for a in stream.attempts] == ["rate_limit", "ok"]


async def test_a_slot_beyond_the_deadline_fails_at_once_with_the_existing_error() -> None:
    model = ScriptedModel("a", rpm=1)
    registry = ModelRegistry()
    registry.register_model(model)
    await registry.generate("first", deadline=5)
    with pytest.raises(NoEligibleModelsError) as info:
        await registry.generate("second", deadline=5)
    assert info.value.retry_in is not None and info.value.retry_in > 5
    assert model.calls == 1


async def test_a_429_whose_slot_is_beyond_the_deadline_exhausts_the_failover() -> None:
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        registry = openai_registry(server)
        server.add_fault(status=429, retry_after="30")
        with pytest.raises(FailoverExhaustedError, match="no eligible model left"):
            await registry.generate("Hello", deadline=5)
        assert len(server.requests) == 1


async def test_without_a_deadline_nothing_waits() -> None:
    model = ScriptedModel("a", rpm=1)
    registry = ModelRegistry()
    registry.register_model(model)
    await registry.generate("first")
    with pytest.raises(NoEligibleModelsError):
        await registry.generate("second")


async def test_a_virtual_clock_is_never_waited_for() -> None:
    model = ScriptedModel("a", rpm=1)
    registry = ModelRegistry()
    registry.core.use_virtual_clock()
    registry.register_model(model)
    await registry.generate("first")
    with pytest.raises(NoEligibleModelsError):
        await registry.generate("second", deadline=3600)

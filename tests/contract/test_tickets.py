"""Tickets are never leaked (finding 5): a cache hit releases its selection's
ticket, a recovered model's half-open probe is not blocked by phantom
in-flight calls, and a model unregistered from one registry mid-call still
settles its ticket in every other registry it is in."""

from __future__ import annotations

import asyncio
import logging

import pytest

from orchestrator.core.cache import ModelCache
from orchestrator.errors import ServerError
from orchestrator.models.health_monitor import ModelHealthMonitor
from orchestrator.models.model_registry import ModelRegistry
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(60)


def pending(registry: ModelRegistry) -> int:
    return sum(registry.get_metrics(m.name).pending for m in registry.list_models())


async def test_cache_hits_release_their_selection_tickets() -> None:
    registry = ModelRegistry(cache_responses=ModelCache())
    for name in ("a", "b"):
        registry.register_model(ScriptedModel(name))

    async def one_request() -> str:
        model = registry.select_model()
        return await model.generate_response("the same prompt")

    for _ in range(3):
        await asyncio.gather(*(one_request() for _ in range(40)))
    assert pending(registry) == 0
    assert registry.core.outstanding_tickets() == 0
    calls = sum(m.calls for m in registry.list_models() if isinstance(m, ScriptedModel))
    assert calls <= 2  # at most one real call per model; the rest were hits


async def test_cached_streams_release_their_tickets_too() -> None:
    registry = ModelRegistry(cache_responses=ModelCache())
    registry.register_model(ScriptedModel("a"))
    for _ in range(5):
        model = registry.select_model()
        assert "".join([c async for c in model.stream_response("hi")]) == "a: hi"
    assert registry.core.outstanding_tickets() == 0


async def test_a_recovered_model_is_probed_after_cache_hits() -> None:
    monitor = ModelHealthMonitor(failure_threshold=1, base_cooldown=1.0, max_cooldown=5.0)
    registry = ModelRegistry(cache_responses=ModelCache(), health_monitor=monitor)
    model = registry.register_model(ScriptedModel("a"))
    assert isinstance(model, ScriptedModel)
    await registry.select_model().generate_response("cached")  # warm the cache
    model.fail = ServerError("down", model="a")
    with pytest.raises(ServerError):
        await registry.select_model().generate_response("uncached")
    assert registry.core.breaker(0)["state"] == "open"
    registry.core.advance_clock(2.0)
    model.fail = None
    for _ in range(20):  # hits while the model recovers: none holds a ticket afterwards
        await registry.select_model().generate_response("cached")
    await registry.select_model().generate_response("a fresh one")
    assert registry.core.breaker(0)["state"] in ("half_open", "closed")


async def test_unregistering_mid_call_settles_the_ticket_in_every_registry() -> None:
    first, second = ModelRegistry(), ModelRegistry()
    model = ScriptedModel("shared", delay=0.05)
    first.register_model(model)
    second.register_model(model)
    first.select_model()
    second.select_model()
    call = asyncio.ensure_future(model.generate_response("hi"))
    await asyncio.sleep(0.01)
    first.unregister_model("shared")
    assert await call == "shared: hi"
    assert second.get_metrics("shared").pending == 0
    assert second.get_metrics("shared").requests == 1
    assert second.core.outstanding_tickets() == 0


def test_an_unused_selection_is_released_by_the_next_one_of_the_same_model() -> None:
    registry = ModelRegistry()
    registry.register_model(ScriptedModel("only"))
    for _ in range(10):
        registry.select_model()
    assert registry.core.outstanding_tickets() == 1


def test_a_retry_after_is_capped_at_max_cooldown_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = ModelHealthMonitor(max_cooldown=600.0)
    registry = ModelRegistry(health_monitor=monitor)
    registry.register_model(ScriptedModel("limited"))
    with caplog.at_level(logging.WARNING, logger="orchestrator.models.model_registry"):
        registry.report_outcome(
            registry.select(), False, 0.1, error_class="rate_limit", retry_after=99999999.0
        )
    breaker = registry.core.breaker(0)
    assert breaker["state"] == "open"
    assert 0 < breaker["retry_in"] <= 600.0
    assert any("capped at max_cooldown" in r.getMessage() for r in caplog.records)

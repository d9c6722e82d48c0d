"""The half-open probe counts only real in-flight calls (issue 11, "the
half-open probe logic counts only real in-flight calls"): a model selected
but never called does not block the next probe, a cancelled, expired or
superseded selection releases it at once, and a probe call really in flight
still keeps every other request away until its outcome."""

from __future__ import annotations

import asyncio
import contextvars

import pytest
from health_scripted import HANG, ScriptedModel, breaker, make_registry

from orchestrator.errors import NoEligibleModelsError, ServerError
from orchestrator.models.health_monitor import ModelHealthMonitor
from orchestrator.models.model_registry import ModelRegistry

pytestmark = pytest.mark.timeout(30)

ONLY_A = {"exclude_models": ["b"]}


async def half_open_registry(*script: object) -> tuple[ModelRegistry, ScriptedModel]:
    """Models ``a`` (its breaker opened by two failures, its cool-down over)
    and ``b``; ``a`` then answers as ``script`` says."""
    monitor = ModelHealthMonitor(failure_threshold=2, recovery_threshold=1, base_cooldown=30)
    a = ScriptedModel("a", script=[ServerError("x"), ServerError("x"), *script])  # type: ignore[list-item]
    registry = make_registry(a, ScriptedModel("b"), monitor=monitor)
    for _ in range(2):
        with pytest.raises(ServerError):
            await a.generate_response("hi")
    assert breaker(registry, "a")["state"] == "open"
    registry.core.advance_clock(31.0)
    return registry, a


def reason_of_a(registry: ModelRegistry) -> str:
    verdict = {c.name: c for c in registry.explain_selection(**ONLY_A).candidates}["a"]
    return "eligible" if verdict.eligible else f"{verdict.constraint}: {verdict.reason}"


async def test_a_half_open_model_selected_but_never_called_blocks_no_probe() -> None:
    registry, a = await half_open_registry("ok")
    # Another task selects the half-open model and never calls it.
    abandoned = contextvars.Context()
    assert abandoned.run(registry.select_model, **ONLY_A) is a
    assert breaker(registry, "a")["state"] == "half_open"
    assert reason_of_a(registry) == "eligible"
    assert registry.select_model(**ONLY_A) is a  # this task's probe
    assert await a.generate_response("hi") == "a says hi"
    assert breaker(registry, "a")["state"] == "closed"


async def test_a_probe_call_in_flight_keeps_other_requests_away_until_its_outcome() -> None:
    registry, a = await half_open_registry(HANG)
    assert registry.select_model(**ONLY_A) is a
    call = asyncio.ensure_future(a.generate_response("hi"))
    await asyncio.sleep(0)  # the call starts: it takes its ticket and probes
    assert reason_of_a(registry) == "health: circuit half-open, a probe is in flight"
    with pytest.raises(NoEligibleModelsError, match="a probe is in flight"):
        registry.select_model(**ONLY_A)
    call.cancel()  # an abandoned call owes no outcome: its ticket is released
    with pytest.raises(asyncio.CancelledError):
        await call
    assert reason_of_a(registry) == "eligible"


async def test_a_selection_the_caller_calls_itself_probes_at_once() -> None:
    registry, a = await half_open_registry()
    first = registry.select(**ONLY_A)
    assert first.model is a
    assert reason_of_a(registry) == "health: circuit half-open, a probe is in flight"
    registry.report_outcome(first, True, 0.1)
    assert breaker(registry, "a")["state"] == "closed"
    assert reason_of_a(registry) == "eligible"


async def test_a_cancelled_expired_or_superseded_probe_is_released_at_once() -> None:
    registry, a = await half_open_registry()
    registry.cancel(registry.select(**ONLY_A))
    assert reason_of_a(registry) == "eligible"
    registry.select(**ONLY_A)
    registry.core.advance_clock(601.0)  # past pending_timeout: the ticket expired
    assert reason_of_a(registry) == "eligible"
    many = registry.select_many(3, **ONLY_A)
    assert [s.model for s in many] == [a]  # one probe; the others had no model left
    assert breaker(registry, "a")["state"] == "half_open"

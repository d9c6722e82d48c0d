"""Routing around failing models: a dead model is avoided within
``failure_threshold`` requests and comes back after recovery; all models down
then one recovers; a 1,000-request run with one of three models down for the
middle third."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from health_scripted import ScriptedModel, breaker, make_registry

from orchestrator.errors import ProviderConnectionError, ServerError
from orchestrator.models.failover import FailoverExhaustedError
from orchestrator.models.health_monitor import ModelHealthMonitor

logger = logging.getLogger(__name__)


async def test_model_failing_every_call_is_avoided_then_returns_after_recovery() -> None:
    monitor = ModelHealthMonitor(failure_threshold=3, recovery_threshold=2, base_cooldown=30)
    bad = ScriptedModel("bad", default=ServerError("500"))
    good = ScriptedModel("good")
    registry = make_registry(bad, good, monitor=monitor)
    for _ in range(100):
        model = registry.select_model()
        with contextlib.suppress(ServerError):
            await model.generate_response("hi")
    assert bad.calls == 3  # exactly failure_threshold requests reached it
    assert breaker(registry, "bad")["state"] == "open"
    bad.default = "ok"  # the provider recovers
    registry._core.advance_clock(30)
    served_by_bad = 0
    for _ in range(300):
        model = registry.select_model()
        await model.generate_response("hi")
        served_by_bad += model is bad
        if breaker(registry, "bad")["state"] == "closed" and served_by_bad >= 3:
            break
    assert breaker(registry, "bad")["state"] == "closed"
    assert served_by_bad >= monitor.recovery_threshold
    assert (await registry.get_model_health("bad")).healthy


async def test_all_models_down_then_one_recovers(caplog: pytest.LogCaptureFixture) -> None:
    monitor = ModelHealthMonitor(failure_threshold=2, recovery_threshold=2, base_cooldown=10)
    a = ScriptedModel("a", default=ServerError("down"))
    b = ScriptedModel("b", default=ProviderConnectionError("refused"))
    registry = make_registry(a, b, monitor=monitor)
    for _ in range(2):
        with pytest.raises(FailoverExhaustedError):
            await registry.generate("hi")
    assert breaker(registry, "a")["state"] == breaker(registry, "b")["state"] == "open"
    registry._core.advance_clock(3)  # b opened after a, so a recovers soonest
    explanation = registry.explain_selection()
    assert explanation.all_breakers_open and explanation.chosen == "a"
    assert "every eligible model's circuit is open" in str(explanation)
    # Selection still answers: it probes the model whose recovery is nearest.
    caplog.set_level(logging.WARNING, logger="orchestrator.models.health_monitor")
    assert registry.select_model() is a
    assert any("every eligible model's circuit is open" in r.getMessage() for r in caplog.records)
    assert breaker(registry, "a")["state"] == "half_open"
    with pytest.raises(ServerError):
        await a.generate_response("hi")  # the probe fails: a opens again, longer
    assert breaker(registry, "a")["retry_in"] > breaker(registry, "b")["retry_in"]

    b.default = "ok"  # b recovers
    registry._core.advance_clock(10)
    result = await registry.generate("hi")
    assert result.model == "b"
    result = await registry.generate("hi")
    assert result.model == "b"
    assert breaker(registry, "b")["state"] == "closed"
    assert breaker(registry, "a")["state"] == "open"
    for _ in range(20):
        assert (await registry.generate("hi")).model == "b"


async def test_thousand_requests_with_one_of_three_models_down_for_the_middle_third() -> None:
    monitor = ModelHealthMonitor(failure_threshold=3, recovery_threshold=2, base_cooldown=30)
    models = {name: ScriptedModel(name) for name in ("alpha", "beta", "gamma")}
    dead = models["gamma"]
    registry = make_registry(*models.values(), monitor=monitor)
    transitions: list[tuple[str, str]] = []
    monitor.on_transition(lambda model, state: transitions.append((model.name, state)))
    total, batch, seconds_per_request = 1000, 10, 0.5
    down_from, down_to = total // 3, 2 * total // 3
    dead_hits = 0
    served_after_recovery = 0
    answered = 0
    for start in range(0, total, batch):
        down = down_from <= start < down_to
        dead.default = ProviderConnectionError("connection refused") if down else "ok"
        calls_before = dead.calls
        results = await asyncio.gather(*(registry.generate(f"q{i}") for i in range(batch)))
        answered += len(results)
        if down:
            dead_hits += dead.calls - calls_before
        elif start >= down_to:
            served_after_recovery += sum(r.model == "gamma" for r in results)
        registry._core.advance_clock(batch * seconds_per_request)  # 2 requests/s
    logger.info(
        "1,000 requests, gamma down for requests %d-%d: %d reached it while down; "
        "it served %d after recovery",
        down_from,
        down_to,
        dead_hits,
        served_after_recovery,
    )
    assert answered == total  # every request was served
    # In flight when it died (up to one batch), then one probe per cool-down
    # (30 s, then 60 s) while it stays down for 167 s.
    assert 3 <= dead_hits <= batch + 3
    assert ("gamma", "opened") in transitions
    assert served_after_recovery > 0  # it came back
    assert breaker(registry, "gamma")["state"] == "closed"
    assert registry._core.outstanding_tickets() == 0

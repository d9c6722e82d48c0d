"""Breaker transitions at the exact thresholds, Retry-After, authentication,
and one callback and one log line per transition."""

from __future__ import annotations

import logging

import pytest
from health_scripted import ScriptedModel, breaker, make_registry

from orchestrator.core.model import Model
from orchestrator.errors import (
    AuthenticationError,
    NoEligibleModelsError,
    RateLimitError,
    ServerError,
)
from orchestrator.models.health_monitor import ModelHealthMonitor


def recorder(monitor: ModelHealthMonitor) -> list[tuple[str, str]]:
    events: list[tuple[str, str]] = []

    def on_transition(model: Model, state: str) -> None:
        events.append((model.name, state))

    monitor.on_transition(on_transition)
    return events


async def call(model: ScriptedModel) -> bool:
    """Call the model directly (measured and reported like any call)."""
    try:
        await model.generate_response("hi")
    except Exception:
        return False
    return True


async def test_opens_at_exactly_failure_threshold() -> None:
    monitor = ModelHealthMonitor(failure_threshold=3, recovery_threshold=2)
    events = recorder(monitor)
    a = ScriptedModel("a", default=ServerError("down"))
    registry = make_registry(a, monitor=monitor)
    for expected_failures in (1, 2):
        assert not await call(a)
        state = breaker(registry, "a")
        assert state["state"] == "closed"
        assert state["consecutive_failures"] == expected_failures
    assert events == []
    assert not await call(a)
    assert breaker(registry, "a")["state"] == "open"
    assert events == [("a", "opened")]
    status = await registry.get_model_health("a")
    assert not status.healthy and status.state == "open"
    assert status.consecutive_failures == 3
    assert status.retry_in == pytest.approx(monitor.base_cooldown, abs=1.0)


async def test_half_open_after_cooldown_and_closes_at_exactly_recovery_threshold() -> None:
    monitor = ModelHealthMonitor(failure_threshold=2, recovery_threshold=3, base_cooldown=30)
    events = recorder(monitor)
    a = ScriptedModel("a", script=[ServerError("x"), ServerError("x")])
    registry = make_registry(a, ScriptedModel("b"), monitor=monitor)
    assert not await call(a) and not await call(a)
    registry._core.advance_clock(29.0)
    verdict = {c.name: c for c in registry.explain_selection().candidates}["a"]
    assert not verdict.eligible and verdict.constraint == "health"
    assert verdict.reason is not None and "circuit open" in verdict.reason
    registry._core.advance_clock(1.5)
    assert {c.name: c for c in registry.explain_selection().candidates}["a"].eligible
    assert registry.select_model(exclude_models=["b"]) is a  # the probe
    assert events == [("a", "opened"), ("a", "half_open")]
    for successes in (1, 2):
        assert await call(a)
        assert breaker(registry, "a")["state"] == "half_open"
        assert breaker(registry, "a")["consecutive_successes"] == successes
    assert await call(a)
    assert breaker(registry, "a")["state"] == "closed"
    assert events[-1] == ("a", "closed")
    assert (await registry.get_model_health("a")).healthy


async def test_failure_while_half_open_reopens_with_a_longer_cooldown_capped() -> None:
    monitor = ModelHealthMonitor(failure_threshold=1, base_cooldown=10, max_cooldown=35)
    a = ScriptedModel("a", default=ServerError("still down"))
    registry = make_registry(a, monitor=monitor)
    expected = [10.0, 20.0, 35.0, 35.0]  # doubles per trip, capped at max_cooldown
    for cooldown in expected:
        assert not await call(a)
        b = breaker(registry, "a")
        assert b["state"] == "open"
        assert b["retry_in"] == pytest.approx(cooldown, abs=0.5)
        registry._core.advance_clock(cooldown)
        assert registry.select_model() is a
        assert breaker(registry, "a")["state"] == "half_open"


async def test_error_rate_opens_before_consecutive_failures_do() -> None:
    monitor = ModelHealthMonitor(
        failure_threshold=10, error_rate_threshold=0.5, error_rate_window=4
    )
    pattern = [ServerError("x"), ServerError("x"), "ok"] * 4
    a = ScriptedModel("a", script=pattern)
    registry = make_registry(a, monitor=monitor)
    for _ in pattern:
        await call(a)
        if breaker(registry, "a")["state"] == "open":
            break
    b = breaker(registry, "a")
    assert b["state"] == "open"
    assert b["consecutive_failures"] < 10
    assert b["error_rate"] >= 0.5


async def test_authentication_error_opens_at_once_for_max_cooldown() -> None:
    monitor = ModelHealthMonitor(failure_threshold=5, max_cooldown=600)
    events = recorder(monitor)
    a = ScriptedModel("a", default=AuthenticationError("bad key", status_code=401))
    registry = make_registry(a, monitor=monitor)
    assert not await call(a)
    b = breaker(registry, "a")
    assert b["state"] == "open" and b["consecutive_failures"] == 1
    assert b["retry_in"] == pytest.approx(600, abs=1)
    assert events == [("a", "opened")]
    status = await registry.get_model_health("a")
    assert any("AuthenticationError" in issue for issue in status.issues)


async def test_retry_after_is_respected_by_selection_and_active_checks() -> None:
    monitor = ModelHealthMonitor(failure_threshold=3, base_cooldown=10)
    a = ScriptedModel("a", script=[RateLimitError("slow down", retry_after=120)])
    b = ScriptedModel("b")
    registry = make_registry(a, b, monitor=monitor)
    assert not await call(a)  # one 429 with Retry-After is enough
    state = breaker(registry, "a")
    assert state["state"] == "open"
    assert state["retry_in"] == pytest.approx(120, abs=1)  # not the 10 s base cool-down
    status = await registry.get_model_health("a")
    assert any("Retry-After" in issue for issue in status.issues)
    registry._core.advance_clock(60)
    assert all(registry.select_model() is b for _ in range(20))
    assert a not in monitor.due_models()  # no active probe before Retry-After either
    assert await monitor.run_checks() == {}
    assert a.health_checks == 0
    registry._core.advance_clock(61)
    assert a in monitor.due_models()
    assert registry.select_model(exclude_models=["b"]) is a
    assert breaker(registry, "a")["state"] == "half_open"


async def test_no_model_is_probed_while_every_one_is_inside_its_retry_after() -> None:
    monitor = ModelHealthMonitor(failure_threshold=3, base_cooldown=10)
    a = ScriptedModel("a", script=[RateLimitError("slow down", retry_after=120)])
    b = ScriptedModel("b", script=[RateLimitError("slow down", retry_after=300)])
    registry = make_registry(a, b, monitor=monitor)
    assert not await call(a)
    assert not await call(b)
    with pytest.raises(NoEligibleModelsError) as caught:
        registry.select_model()  # fails fast instead of probing the soonest
    assert caught.value.retry_in == pytest.approx(120, abs=1)
    assert "Retry-After" in caught.value.reasons["a"]
    assert a.calls == b.calls == 1
    registry._core.advance_clock(121)  # a's window is over: the usual probe resumes
    assert registry.select_model() is a
    assert breaker(registry, "a")["state"] == "half_open"


async def test_one_callback_and_one_log_line_per_transition(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = ModelHealthMonitor(failure_threshold=2, recovery_threshold=1, base_cooldown=5)
    events = recorder(monitor)

    def broken(model: Model, state: str) -> None:
        raise RuntimeError("callback bug")

    monitor.on_transition(broken)  # a failing callback is logged, never raised
    a = ScriptedModel("a", script=[ServerError("x")] * 12)
    b = ScriptedModel("b")
    registry = make_registry(a, b, monitor=monitor)
    caplog.set_level(logging.INFO, logger="orchestrator.models.health_monitor")
    for _ in range(12):  # many failures while open: still one "opened"
        await call(a)
    for _ in range(50):  # many requests routed elsewhere: no transitions
        await call(registry.select_model())
    registry._core.advance_clock(600)
    assert registry.select_model(exclude_models=["b"]) is a
    assert await call(a)
    assert events == [("a", "opened"), ("a", "half_open"), ("a", "closed")]
    messages = [r.getMessage() for r in caplog.records if r.name.endswith("health_monitor")]
    assert sum(m.startswith("circuit opened for a") for m in messages) == 1
    assert sum(m == "circuit half_open for a" for m in messages) == 1
    assert sum(m == "circuit closed for a" for m in messages) == 1
    assert sum("callback failed" in m for m in messages) == 3
    assert "ServerError" in next(m for m in messages if m.startswith("circuit opened"))

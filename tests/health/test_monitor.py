"""The monitor: settings, active checks (which models, timeouts, failures),
the background task's lifecycle, and HealthStatus."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from health_scripted import HANG, ScriptedModel, breaker, make_registry

from orchestrator.errors import ProviderConnectionError, ServerError
from orchestrator.models.health_monitor import HealthStatus, ModelHealthMonitor
from orchestrator.models.model_registry import ModelRegistry


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": -2}, "failure_threshold"),
        ({"failure_threshold": 1.5}, "failure_threshold"),
        ({"failure_threshold": True}, "failure_threshold"),
        ({"recovery_threshold": 0}, "recovery_threshold"),
        ({"check_interval": -1}, "check_interval"),
        ({"check_interval": 0}, "check_interval"),
        ({"check_interval": float("nan")}, "check_interval"),
        ({"check_timeout": 0}, "check_timeout"),
        ({"idle_after": -5}, "idle_after"),
        ({"base_cooldown": 60, "max_cooldown": 30}, "max_cooldown"),
        ({"error_rate_threshold": 0}, "error_rate_threshold"),
        ({"error_rate_threshold": 1.5}, "error_rate_threshold"),
        ({"error_rate_window": 0}, "error_rate_window"),
        ({"latency_factor": 1.0}, "latency_factor"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=f"invalid {match}"):
        ModelHealthMonitor(**kwargs)


def test_a_monitor_serves_one_registry() -> None:
    monitor = ModelHealthMonitor()
    ModelRegistry(health_monitor=monitor)
    with pytest.raises(ValueError, match="already attached to another registry"):
        ModelRegistry(health_monitor=monitor)
    with pytest.raises(TypeError, match="not callable"):
        monitor.on_transition("print")  # type: ignore[arg-type]


async def test_unattached_monitor_cannot_start() -> None:
    with pytest.raises(RuntimeError, match="not attached"):
        await ModelHealthMonitor().start()


async def test_checks_only_open_half_open_and_idle_models() -> None:
    monitor = ModelHealthMonitor(check_interval=60, failure_threshold=1, base_cooldown=10)
    busy, broken, quiet = ScriptedModel("busy"), ScriptedModel("broken"), ScriptedModel("quiet")
    registry = make_registry(busy, broken, quiet, monitor=monitor)
    assert monitor.due_models() == []  # nothing is idle yet, nothing is open
    broken.script.append(ServerError("x"))
    with pytest.raises(ServerError):
        await broken.generate_response("hi")
    assert monitor.due_models() == [broken]
    registry._core.advance_clock(59)
    await busy.generate_response("hi")
    registry._core.advance_clock(2)  # quiet: no outcome for 61 s; busy had one 2 s ago
    assert {m.name for m in monitor.due_models()} == {"broken", "quiet"}
    assert await monitor.run_checks() == {"broken": True, "quiet": True}
    assert busy.health_checks == 0
    # A passing check moves an open breaker to half-open; only requests close it.
    assert breaker(registry, "broken")["state"] == "half_open"
    assert breaker(registry, "quiet")["state"] == "closed"
    status = await registry.get_model_health("quiet")
    assert status.last_check is not None and abs(status.last_check - time.time()) < 5
    assert status.last_check_healthy is True


async def test_failed_or_raising_check_of_an_idle_model_opens_it() -> None:
    monitor = ModelHealthMonitor(check_interval=30)
    down = ScriptedModel("down", health=False)
    raising = ScriptedModel("raising", health=ProviderConnectionError("refused"))
    registry = make_registry(down, raising, ScriptedModel("fine"), monitor=monitor)
    transitions: list[tuple[str, str]] = []
    monitor.on_transition(lambda model, state: transitions.append((model.name, state)))
    registry._core.advance_clock(31)
    result = await monitor.run_checks()  # never raises, whatever the checks do
    assert result == {"down": False, "raising": False, "fine": True}
    assert breaker(registry, "down")["state"] == "open"
    assert breaker(registry, "raising")["state"] == "open"
    assert sorted(transitions) == [("down", "opened"), ("raising", "opened")]
    assert all(registry.select_model() is registry.get_model("fine") for _ in range(10))
    status = await registry.get_model_health("raising")
    assert not status.healthy and status.last_check_healthy is False
    assert any("raised ProviderConnectionError" in issue for issue in status.issues)
    # Another failing check while open extends the cool-down, with no new transition.
    registry._core.advance_clock(29)
    await monitor.run_checks([registry.get_model("down")])
    assert breaker(registry, "down")["retry_in"] > 20
    assert len(transitions) == 2


async def test_hanging_health_check_times_out_and_never_blocks_selection() -> None:
    monitor = ModelHealthMonitor(check_interval=30, check_timeout=0.2)
    hung = ScriptedModel("hung", health=HANG)
    registry = make_registry(hung, ScriptedModel("ok"), monitor=monitor)
    registry._core.advance_clock(31)
    round_ = asyncio.ensure_future(monitor.run_checks())
    await asyncio.sleep(0.01)
    assert hung.health_checks == 1 and not round_.done()  # the check is hanging now
    selected = [registry.select_model() for _ in range(50)]
    assert len(selected) == 50 and not round_.done()  # selected while the check still hangs
    assert await round_ == {"hung": False, "ok": True}
    status = await registry.get_model_health("hung")
    assert status.state == "open"
    assert any("timed out after 0.2s" in issue for issue in status.issues)
    await monitor.stop()  # cancels the abandoned check
    await asyncio.sleep(0)
    assert {t for t in asyncio.all_tasks() if not t.done()} == {asyncio.current_task()}


async def test_background_task_checks_and_stops_with_the_registry() -> None:
    monitor = ModelHealthMonitor(check_interval=0.05, idle_after=10, failure_threshold=1)
    flaky = ScriptedModel("flaky", script=[ServerError("x")])
    registry = make_registry(flaky, ScriptedModel("steady"), monitor=monitor)
    with pytest.raises(ServerError):
        await flaky.generate_response("hi")
    async with registry as entered:
        assert entered is registry and monitor.running
        assert any(t.get_name() == "orchestrator-health-monitor" for t in asyncio.all_tasks())
        status = await registry.get_model_health("flaky")
        assert status.next_probe_in is not None and status.next_probe_in <= 0.05
        for _ in range(100):
            await asyncio.sleep(0.02)
            if flaky.health_checks:
                break
        assert flaky.health_checks >= 1  # open, so checked in the background
        assert breaker(registry, "flaky")["state"] == "half_open"
        await registry.start()  # idempotent
    assert not monitor.running
    assert {t for t in asyncio.all_tasks() if not t.done()} == {asyncio.current_task()}
    checks = flaky.health_checks
    await asyncio.sleep(0.15)
    assert flaky.health_checks == checks  # nothing runs after shutdown
    await registry.aclose()  # stopping twice is fine
    await registry.start()  # and it can start again
    assert monitor.running
    await registry.aclose()
    assert not monitor.running


def test_created_outside_an_event_loop_then_run_in_one() -> None:
    monitor = ModelHealthMonitor(check_interval=0.02, idle_after=0.01)
    model = ScriptedModel("m")
    registry = make_registry(model, monitor=monitor)  # no loop exists here

    async def main() -> list[asyncio.Task[Any]]:
        async with registry:
            registry._core.advance_clock(1)  # idle now
            for _ in range(100):
                await asyncio.sleep(0.01)
                if model.health_checks:
                    break
        return [t for t in asyncio.all_tasks() if not t.done() and t is not asyncio.current_task()]

    assert asyncio.run(main()) == []
    assert model.health_checks >= 1
    assert asyncio.run(main()) == []  # a second loop works too


async def test_health_status_fields() -> None:
    monitor = ModelHealthMonitor(failure_threshold=3, error_rate_window=4)
    model = ScriptedModel("m")
    registry = make_registry(model, monitor=monitor)
    status = await registry.get_model_health("m")
    assert isinstance(status, HealthStatus)
    assert status.healthy and status.state == "closed" and status.issues == []
    assert (status.consecutive_failures, status.consecutive_successes) == (0, 0)
    assert status.error_rate == 0.0 and status.latency_p50 is None
    assert status.last_check is None and status.next_probe_in is None
    await model.generate_response("hi")
    model.script.extend([ServerError("x"), ServerError("x")])
    for _ in range(2):
        with pytest.raises(ServerError):
            await model.generate_response("hi")
    status = await registry.get_model_health("m")
    assert status.healthy and status.consecutive_failures == 2
    assert status.error_rate > 0 and status.latency_p50 is not None
    assert any(issue.startswith("recent error rate") for issue in status.issues)
    with pytest.raises(ServerError):
        model.script.append(ServerError("x"))
        await model.generate_response("hi")
    status = await registry.get_model_health("m")
    assert not status.healthy and status.next_probe_in == pytest.approx(status.retry_in)


async def test_latency_far_above_the_models_own_normal_is_an_issue() -> None:
    monitor = ModelHealthMonitor(latency_factor=3.0)
    registry = make_registry(ScriptedModel("m"), ScriptedModel("fast"), monitor=monitor)
    for _ in range(60):
        registry.report_outcome("m", True, 0.2)
        registry.report_outcome("fast", True, 0.02)
    assert (await registry.get_model_health("m")).issues == []
    for _ in range(20):
        registry.report_outcome("m", True, 1.5)
        registry.report_outcome("fast", True, 0.05)  # 2.5x, but only 30 ms: not flagged
    status = await registry.get_model_health("m")
    assert status.healthy  # slow, not broken
    assert status.recent_latency_p50 == pytest.approx(1.5)
    assert status.baseline_latency_p50 == pytest.approx(0.2)
    assert status.issues == [
        "slow: latency p50 1.50s over the last 20 calls is 7.5x its usual 0.20s"
    ]
    assert (await registry.get_model_health("fast")).issues == []


def test_a_loop_closed_without_stopping_does_not_wedge_the_monitor() -> None:
    monitor = ModelHealthMonitor(check_interval=30)
    registry = make_registry(ScriptedModel("m"), monitor=monitor)

    async def start_only() -> None:
        await registry.start()

    async def start_and_stop() -> bool:
        async with registry:
            return monitor.running

    asyncio.run(start_only())  # the loop ends (and cancels the task) without aclose
    assert not monitor.running
    assert asyncio.run(start_and_stop())
    assert not monitor.running

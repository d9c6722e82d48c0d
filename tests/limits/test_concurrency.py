"""Limits hold under concurrency (LiteLLM #5783, #10555: limits ignored when
requests arrive together): OS threads and asyncio tasks selecting at once
get exactly ``rpm`` admissions in one window, and every other one is refused
with the reason."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from orchestrator.errors import NoEligibleModelsError
from orchestrator.models.model_registry import ModelRegistry
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(60)

RPM = 40
THREADS = 8
PER_THREAD = 30
TASKS = 120
REASON = f"rate_limit: {RPM}/{RPM} requests in the last minute (rpm)"


async def test_limits_hold_when_threads_and_tasks_select_at_once() -> None:
    registry = ModelRegistry()
    registry.core.use_virtual_clock()  # one window for the whole test
    registry.register_model(ScriptedModel("a", rpm=RPM))
    admitted: list[str] = []
    refused: list[str] = []
    record = threading.Lock()
    start = threading.Barrier(THREADS + 1)

    def attempt() -> None:
        try:
            model = registry.select_model()
        except NoEligibleModelsError as exc:
            with record:
                refused.append(exc.reasons["a"])
        else:
            with record:
                admitted.append(model.name)

    def thread_body() -> None:
        start.wait()
        for _ in range(PER_THREAD):
            contextvars.Context().run(attempt)  # one task's context per selection

    async def task_body() -> None:
        await asyncio.sleep(0)
        attempt()

    threads = [threading.Thread(target=thread_body) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    start.wait()
    await asyncio.gather(*(asyncio.create_task(task_body()) for _ in range(TASKS)))
    for thread in threads:
        thread.join()
    assert len(admitted) == RPM
    assert len(refused) == THREADS * PER_THREAD + TASKS - RPM
    assert all(reason.startswith(REASON) for reason in refused)
    assert registry.rate_limits("a")["requests"] == RPM


async def test_concurrent_generate_calls_send_exactly_rpm_requests() -> None:
    model = ScriptedModel("a", rpm=10, delay=0.01)
    registry = ModelRegistry()
    registry.core.use_virtual_clock()
    registry.register_model(model)
    results = await asyncio.gather(
        *(registry.generate(f"q{i}") for i in range(50)), return_exceptions=True
    )
    answered = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, NoEligibleModelsError)]
    assert (len(answered), len(refused), model.calls) == (10, 40, 10)

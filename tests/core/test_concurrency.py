"""Many OS threads and many asyncio tasks selecting and reporting at once:
every outcome is counted exactly once and nothing stays pending."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from orchestrator.models.model_registry import ModelRegistry
from tests.conftest import ScriptedModel

THREADS = 8
ROUNDS_PER_THREAD = 2_000
TASKS = 200
CALLS_PER_TASK = 10


def test_threads_and_tasks_select_and_report_at_once() -> None:
    registry = ModelRegistry()
    for i in range(6):
        registry.register_model(ScriptedModel(f"m{i}"))
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS + 1)

    def worker(seed: int) -> None:
        try:
            start.wait()
            for i in range(ROUNDS_PER_THREAD):
                selection = registry.select()
                registry.report_outcome(selection, (i + seed) % 3 != 0, 0.01 * (i % 7))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    async def task_body() -> None:
        for _ in range(CALLS_PER_TASK):
            model = registry.select_model()
            await model.generate_response("ping")
            await asyncio.sleep(0)

    async def tasks() -> None:
        await asyncio.gather(*(task_body() for _ in range(TASKS)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    start.wait()
    asyncio.run(tasks())
    for t in threads:
        t.join()
    assert errors == []
    stats = registry.statistics()
    expected = THREADS * ROUNDS_PER_THREAD + TASKS * CALLS_PER_TASK
    assert int(np.sum(stats["trials"])) == expected
    assert int(np.sum(stats["pending"])) == 0
    assert registry._core.outstanding_tickets() == 0
    model_calls = sum(registry.get_model(f"m{i}").calls for i in range(6))  # type: ignore[attr-defined]
    assert model_calls == TASKS * CALLS_PER_TASK


async def test_in_flight_requests_spread_over_models() -> None:
    registry = ModelRegistry()
    for i in range(4):
        registry.register_model(ScriptedModel(f"m{i}", delay=0.05))
    picked: list[str] = []

    async def one() -> None:
        model = registry.select_model()
        picked.append(model.name)
        await model.generate_response("x")

    await asyncio.gather(*(one() for _ in range(8)))
    assert sorted(picked) == sorted([f"m{i}" for i in range(4)] * 2)
    assert sum(registry.get_metrics(f"m{i}").requests for i in range(4)) == 8

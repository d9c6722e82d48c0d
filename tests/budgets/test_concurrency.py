"""Exactness under concurrency: 8 threads selecting and reporting and 100
asyncio tasks generating, all spending $0.01 requests against one $1.00
budget. Exactly 100 requests are admitted, the spend is exactly $1.00, and
at no moment is more reserved and spent than the limit (LiteLLM #5783,
#10555: limits ignored under concurrency)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from orchestrator.core.budgets import BudgetScope
from orchestrator.core.model import ModelCost
from orchestrator.errors import NoEligibleModelsError
from orchestrator.models.model_registry import ModelRegistry
from tests.budgets.conftest import MeteredModel, registry_of

pytestmark = pytest.mark.timeout(60)

#: $0.01 a request whatever its size (requests are priced at 0 tokens each way).
FLAT = ModelCost(per_request=0.01)


def within_limit(registry: ModelRegistry) -> bool:
    [state] = registry.budgets()
    return state.spent_nanos + state.reserved_nanos <= state.limit_nanos


async def test_threads_and_tasks_spend_exactly_one_dollar() -> None:
    models = [MeteredModel(f"m{i}", "openai", cost=FLAT) for i in range(4)]
    registry = registry_of(*models)
    registry.add_budget(BudgetScope(provider="openai"), 1.00, "day")
    admitted = [0] * 9  # one counter per thread, the last for the tasks
    overspent: list[str] = []
    start = threading.Barrier(9)

    def worker(k: int) -> None:
        start.wait()
        while True:
            try:
                selection = registry.select(input_tokens=0, output_tokens=0)
            except NoEligibleModelsError:
                return
            admitted[k] += 1
            if not within_limit(registry):
                overspent.append(f"thread {k}")
            registry.report_outcome(selection, True, 0.01, cost=0.01)

    async def task() -> None:
        while True:
            try:
                await registry.generate("hello", input_tokens=0, output_tokens=0)
            except NoEligibleModelsError:
                return
            admitted[8] += 1
            if not within_limit(registry):
                overspent.append("task")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    await asyncio.to_thread(start.wait)
    await asyncio.gather(*(task() for _ in range(100)))
    for thread in threads:
        thread.join()
    [state] = registry.budgets()
    assert overspent == []
    assert sum(admitted) == 100
    assert sum(m.calls for m in models) == admitted[8], "every task's call was one admitted"
    assert (state.spent_nanos, state.reserved_nanos) == (1_000_000_000, 0)
    assert state.spent_usd == 1.0 and state.remaining_nanos == 0
    assert registry.core.budget_holds() == 0

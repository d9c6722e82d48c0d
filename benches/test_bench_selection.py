"""Selection speed at 10, 100, 1,000 and 10,000 models, every contender on the
same fleet (``bench_common.fleet``) in the same run.

Groups (pytest-benchmark ``group``), one per size:

* ``select n=N``: one pick for the request ``bench_common.REQUEST``
  (capabilities, max_cost, context_length): our ``select_model``; the same
  algorithm in plain Python (``baseline.py``); LiteLLM's ``Router.select``
  (its non-deprecated async pick) under four routing strategies, and its
  synchronous ``get_available_deployment`` (simple-shuffle; the sync path
  does not serve every strategy). LiteLLM does not filter by capability,
  cost or context, so it does less work per pick.
* ``round n=N``: one pick plus one reported outcome: our ``select`` +
  ``report_outcome``; the baseline's; our ``select_many`` + ``report_many``
  (per request, batches of 100); MABWiser's UCB1 and Thompson sampling
  ``predict`` + ``partial_fit`` with one reward.

Each ``select_model`` runs in a fresh ``contextvars.Context`` (what one task
of a server sees, since it holds its ticket there); its cost is included.
Tickets of ``select_model`` calls that are never reported stay pending, as
in-flight requests would. ``select`` + ``report_outcome`` rounds hold no
ticket in the context and run directly, like the baseline.
Async contenders run ``operations_per_round`` calls in one coroutine per
round; ``benches/run.py`` divides by it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from bench_common import (
    FULL,
    QUICK,
    REQUEST,
    SIZES,
    build_baseline,
    build_registry,
    in_fresh_context,
    litellm_router,
)

LITELLM_STRATEGIES = (
    "simple-shuffle",
    "latency-based-routing",
    "cost-based-routing",
    "usage-based-routing-v2",
)
LITELLM_SIZES = tuple(n for n in SIZES if n <= 1000 or FULL)
BATCH = 100
MESSAGES = [{"role": "user", "content": "Write a function that reverses a list."}]


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _time_once(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _pedantic_budget(benchmark: Any, fn: Callable[[], Any], budget_s: float) -> Any:
    """Time a slow contender: warm up, then as many rounds as fit ``budget_s``
    (3 to 100), one call each."""
    per_call = min(_time_once(fn), _time_once(fn))
    rounds = max(3, min(100, int(budget_s / max(per_call, 1e-6))))
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


# ----- select ---------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_select_orchestrator(benchmark: Any, n: int) -> None:
    registry = build_registry(n)
    benchmark.group = f"select n={n}"
    benchmark.extra_info.update(contender="orchestrator select_model", models=n)
    model = benchmark(in_fresh_context, registry.select_model, **REQUEST)
    assert model.capabilities.code_generation


@pytest.mark.parametrize("n", SIZES)
def test_select_plain_python(benchmark: Any, n: int) -> None:
    registry = build_baseline(n)
    benchmark.group = f"select n={n}"
    benchmark.extra_info.update(contender="plain-Python baseline select", models=n)
    if n >= 10000:
        selection = _pedantic_budget(benchmark, lambda: registry.select(**REQUEST), 2.0)
    else:
        selection = benchmark(registry.select, **REQUEST)
    assert "code_generation" in selection.model.capabilities


@pytest.mark.parametrize("outstanding", [0, 100_000, 1_000_000])
def test_select_with_outstanding_tickets(benchmark: Any, outstanding: int) -> None:
    """Selection cost does not grow with unreported selections: tickets live
    in an O(1) ring whose expiry never scans the outstanding ones."""
    registry = build_registry(100)
    while registry.core.outstanding_tickets() < outstanding:
        registry.select_many(10_000)
    select = registry.select
    benchmark.group = "select n=100 by outstanding tickets"
    benchmark.extra_info.update(
        contender=f"orchestrator select, {outstanding:,} outstanding", models=100
    )
    selection = benchmark(select, **REQUEST)
    assert selection.model.capabilities.code_generation


@pytest.mark.parametrize("strategy", LITELLM_STRATEGIES)
@pytest.mark.parametrize("n", LITELLM_SIZES)
def test_select_litellm(
    benchmark: Any, loop: asyncio.AbstractEventLoop, n: int, strategy: str
) -> None:
    router = litellm_router(n, strategy)
    request = {"messages": MESSAGES}
    probe = loop.run_until_complete(router.select("bench", request))
    assert probe["model_name"] == "bench"
    per_call = _time_once(lambda: loop.run_until_complete(router.select("bench", request)))
    calls = max(1, min(20, int(0.005 / max(per_call, 1e-6))))

    async def batch() -> None:
        for _ in range(calls):
            await router.select("bench", request)

    benchmark.group = f"select n={n}"
    benchmark.extra_info.update(
        contender=f"LiteLLM Router.select ({strategy})",
        models=n,
        operations_per_round=calls,
    )
    budget = 1.0 if QUICK else 2.5
    rounds = max(3, min(200, int(budget / max(per_call * calls, 1e-6))))
    benchmark.pedantic(
        lambda: loop.run_until_complete(batch()), rounds=rounds, iterations=1, warmup_rounds=2
    )


@pytest.mark.parametrize("n", LITELLM_SIZES)
def test_select_litellm_sync(benchmark: Any, n: int) -> None:
    router = litellm_router(n, "simple-shuffle")
    benchmark.group = f"select n={n}"
    benchmark.extra_info.update(
        contender="LiteLLM get_available_deployment (simple-shuffle, sync)", models=n
    )
    pick = lambda: router.get_available_deployment(model="bench", messages=MESSAGES)  # noqa: E731
    assert pick()["model_name"] == "bench"
    if n >= 1000:
        _pedantic_budget(benchmark, pick, 2.0)
    else:
        benchmark(pick)


# ----- select and report ----------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_round_orchestrator(benchmark: Any, n: int) -> None:
    registry = build_registry(n)
    select, report = registry.select, registry.report_outcome

    def one_round() -> None:
        selection = select(**REQUEST)
        report(selection, True, 0.5, output_tokens=200)

    benchmark.group = f"round n={n}"
    benchmark.extra_info.update(contender="orchestrator select + report_outcome", models=n)
    benchmark(one_round)  # select() holds no ticket in the context: no fresh context needed
    assert registry.core.outstanding_tickets() == 0


@pytest.mark.parametrize("n", SIZES)
def test_round_plain_python(benchmark: Any, n: int) -> None:
    registry = build_baseline(n)
    select, report = registry.select, registry.report_outcome

    def one_round() -> None:
        selection = select(**REQUEST)
        report(selection, True, 0.5, output_tokens=200)

    benchmark.group = f"round n={n}"
    benchmark.extra_info.update(contender="plain-Python baseline select + report", models=n)
    if n >= 10000:
        _pedantic_budget(benchmark, one_round, 2.0)
    else:
        benchmark(one_round)
    assert not registry.tickets


@pytest.mark.parametrize("n", SIZES)
def test_round_orchestrator_batch(benchmark: Any, n: int) -> None:
    registry = build_registry(n)
    successes = [True] * BATCH
    latencies = [0.5] * BATCH
    tokens = [200] * BATCH

    def one_batch() -> None:
        selections = registry.select_many(BATCH, **REQUEST)
        registry.report_many(selections, successes, latencies, output_tokens=tokens)

    benchmark.group = f"round n={n}"
    benchmark.extra_info.update(
        contender=f"orchestrator select_many + report_many (batch of {BATCH})",
        models=n,
        operations_per_round=BATCH,
    )
    if n >= 10000:
        _pedantic_budget(benchmark, one_batch, 2.0)
    else:
        benchmark(one_batch)
    assert registry.core.outstanding_tickets() == 0


def _mabwiser(n: int, policy: str) -> Callable[[], None]:
    from mabwiser.mab import MAB, LearningPolicy

    arms = list(range(n))
    if policy == "ucb1":
        mab = MAB(arms, LearningPolicy.UCB1(alpha=1.0), seed=7)
        mab.fit(np.array(arms * 5), np.full(5 * n, 0.8))
        reward: float = 0.8
    else:
        mab = MAB(arms, LearningPolicy.ThompsonSampling(), seed=7)
        mab.fit(np.array(arms * 5), np.ones(5 * n))
        reward = 1

    def one_round() -> None:
        arm = mab.predict()
        mab.partial_fit([arm], [reward])

    return one_round


@pytest.mark.parametrize("policy", ["ucb1", "thompson"])
@pytest.mark.parametrize("n", SIZES)
def test_round_mabwiser(benchmark: Any, n: int, policy: str) -> None:
    one_round = _mabwiser(n, policy)
    benchmark.group = f"round n={n}"
    name = "UCB1" if policy == "ucb1" else "Thompson sampling"
    benchmark.extra_info.update(contender=f"MABWiser {name} predict + partial_fit", models=n)
    if n >= 1000:
        _pedantic_budget(benchmark, one_round, 1.5 if QUICK else 3.0)
    else:
        benchmark(one_round)

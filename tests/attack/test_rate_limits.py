"""Attacks on rate limits (``rpm``/``tpm``) under the contextual strategy and
in long mixed runs: exactly ``rpm`` admissions when threads and asyncio tasks
select at once, and no reservation left behind by cache hits, cancellations,
expired selections, failures and refusals."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import threading

import pytest

from orchestrator.core.cache import ModelCache
from orchestrator.core.model import ModelCost
from orchestrator.errors import FailoverError, NoEligibleModelsError, ServerError
from orchestrator.models.model_registry import ContextualSelector, ModelRegistry
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(120)

RPM = 25
THREADS = 6
PER_THREAD = 20
TASKS = 60
#: The mixed run: enough calls of each kind that one leaked reservation shows.
MIXED_CALLS = 1_000


def contextual_registry(*models: ScriptedModel, pending_timeout: float = 600.0) -> ModelRegistry:
    """A contextual registry on the core's virtual clock (one window unless advanced)."""
    registry = ModelRegistry(
        model_selector=ContextualSelector(hash_bits=10), pending_timeout=pending_timeout
    )
    registry.core.use_virtual_clock()
    for model in models:
        registry.register_model(model)
    return registry


def priced(name: str, usd_per_million: float, **options: object) -> ScriptedModel:
    cost = ModelCost(input_per_million=usd_per_million, output_per_million=usd_per_million)
    return ScriptedModel(name, cost=cost, **options)  # type: ignore[arg-type]


async def test_contextual_selection_admits_exactly_rpm_across_threads_and_tasks() -> None:
    """Two limited models, prompts and willingness_to_pay varying per call:
    every model admits exactly its rpm, whatever the router prefers."""
    registry = contextual_registry(priced("cheap", 1.0, rpm=RPM), priced("strong", 9.0, rpm=RPM))
    admitted: dict[str, int] = {"cheap": 0, "strong": 0}
    refusals: list[NoEligibleModelsError] = []
    record = threading.Lock()
    start = threading.Barrier(THREADS + 1)

    def attempt(i: int) -> None:
        try:
            selection = registry.select(prompt=f"question {i}", willingness_to_pay=0.01 + i % 7)
        except NoEligibleModelsError as exc:
            with record:
                refusals.append(exc)
        else:
            with record:
                admitted[selection.model.name] += 1

    def thread_body(offset: int) -> None:
        start.wait()
        for i in range(PER_THREAD):
            contextvars.Context().run(attempt, offset + i)

    async def task_body(i: int) -> None:
        await asyncio.sleep(0)
        attempt(i)

    threads = [threading.Thread(target=thread_body, args=(t * 100,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    start.wait()
    await asyncio.gather(*(task_body(10_000 + i) for i in range(TASKS)))
    for thread in threads:
        thread.join()
    assert admitted == {"cheap": RPM, "strong": RPM}
    assert len(refusals) == THREADS * PER_THREAD + TASKS - 2 * RPM
    assert all("rate_limit" in exc.reasons["cheap"] for exc in refusals)
    assert registry.rate_limits("cheap")["requests"] == RPM
    assert registry.rate_limits("strong")["requests"] == RPM


def test_select_many_under_contextual_stops_at_the_limit_and_records_only_admitted() -> None:
    registry = contextual_registry(priced("a", 1.0, rpm=3))
    picked = registry.select_many(10, prompt="hi")
    assert len(picked) == 3
    assert len({s.request_id for s in picked}) == 3
    with pytest.raises(NoEligibleModelsError, match="rate_limit"):
        registry.select_many(1, prompt="hi")


async def test_no_reservation_leaks_after_a_thousand_mixed_calls() -> None:
    """Sends, failures, cache hits, cancelled and expired selections and tasks
    cancelled before their call, mixed at random within one window: the
    window holds exactly the requests that reached a model, and once the
    forgotten selections expire nothing is pending."""
    flaky = priced("flaky", 1.0, rpm=10**6, tpm=2**40)
    cached = priced("cached", 1.0, rpm=10**6, tpm=2**40)
    cached.enable_caching(ModelCache())
    registry = contextual_registry(flaky, cached, pending_timeout=1.0)
    rng = random.Random(7)
    kinds = [0] * 6
    for i in range(MIXED_CALLS):
        kind = rng.randrange(6)
        kinds[kind] += 1
        if kind in (0, 1):  # a real call, answered or failing (sent either way)
            flaky.fail = ServerError("boom") if kind == 1 else None
            with contextlib.suppress(ServerError, FailoverError, NoEligibleModelsError):
                await registry.generate(f"call {i}", exclude_models=["cached"], retry_budget=0)
        elif kind == 2:  # served from the cache after the first time: nothing sent
            await registry.generate("the same question", exclude_models=["flaky"])
        elif kind == 3:  # selected, then cancelled before any call
            registry.cancel(registry.select(prompt=f"cancel {i}"))
        elif kind == 4:  # selected and forgotten: expires after pending_timeout
            registry.select(prompt=f"forgotten {i}", willingness_to_pay=0.5)
        else:  # a task cancelled before its call starts
            task = asyncio.ensure_future(registry.generate(f"cancelled {i}"))
            if i % 2:  # half of them get as far as their first await
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    registry.core.advance_clock(1.5)  # past pending_timeout, well inside the window
    assert min(kinds) > 100 and cached.calls > 0 and flaky.calls > 0
    for model in (flaky, cached):
        assert registry.get_metrics(model.name).pending == 0, model.name
        assert registry.rate_limits(model.name)["requests"] == model.calls, model.name


@pytest.mark.parametrize("strategy", ["ucb", "contextual"])
def test_expired_selections_stop_counting_in_every_reading_before_the_next_selection(
    strategy: str,
) -> None:
    """Reproduction (fixed): three selections of an ``rpm=3`` model, never
    reported, past ``pending_timeout``: ``select_model()`` succeeds (the
    selection path expires them), but ``explain_selection()`` still said
    ``3/3 requests ... next slot in 58.5 s`` with no model chosen,
    ``scores()`` gave ``-inf``, ``rate_limits()`` 3 requests and
    ``get_metrics().pending`` 3: every reading disagreed with the next
    selection until some selection happened to expire the tickets."""
    registry = ModelRegistry(selection_strategy=strategy, pending_timeout=1.0)
    registry.core.use_virtual_clock()
    registry.register_model(ScriptedModel("a", rpm=3))
    for _ in range(3):
        registry.select(prompt="forgotten")
    registry.core.advance_clock(1.5)
    explanation = registry.explain_selection(prompt="next")
    assert (explanation.chosen, explanation.retry_in) == ("a", None)
    assert registry.scores(prompt="next")[1][0] > -float("inf")
    assert registry.rate_limits("a")["requests"] == 0
    assert registry.get_metrics("a").pending == 0
    assert registry.statistics()["pending"][0] == 0
    assert registry.select_model(prompt="next").name == "a"

"""Every call path spends against budgets (LiteLLM #38176: provider budgets
that miss some endpoints). Each test is one path: generate, stream (cost
known at the end), a stream closed early, embed, select_many with
report_many, failover retries, and cache hits (cost 0)."""

from __future__ import annotations

import pytest

from orchestrator.core.budgets import BudgetScope
from orchestrator.core.cache import ModelCache
from orchestrator.core.model import MeasuredStream
from orchestrator.errors import NoEligibleModelsError
from orchestrator.models.model_registry import ModelRegistry
from tests.budgets.conftest import MeteredModel, call_cost, registry_of

pytestmark = pytest.mark.timeout(30)


def spent_nanos(registry: ModelRegistry) -> int:
    [state] = registry.budgets()
    assert state.reserved_nanos == 0, "nothing is left reserved"
    return state.spent_nanos


def nanos(usd: float) -> int:
    return round(usd * 1e9)


def budgeted(*models: MeteredModel, limit_usd: float = 1.0) -> ModelRegistry:
    registry = registry_of(*models)
    registry.add_budget(BudgetScope(provider="openai"), limit_usd, "day")
    return registry


async def test_38176_generate_spends_the_reported_usage() -> None:
    registry = budgeted(MeteredModel("a"))
    await registry.generate("hello")
    assert spent_nanos(registry) == nanos(call_cost(10, 30))


async def test_38176_a_stream_spends_when_it_ends() -> None:
    registry = budgeted(MeteredModel("a", chunks=4))
    stream = registry.stream("hello")
    chunks = [chunk async for chunk in stream]
    assert chunks == ["ok"] * 4
    assert spent_nanos(registry) == nanos(call_cost(10, 40))


async def test_38176_a_stream_closed_early_spends_what_it_used() -> None:
    model = MeteredModel("a", chunks=5)
    registry = budgeted(model)
    registry.select_model()  # then the caller streams from the model itself
    stream = model.stream_response("hello")
    assert isinstance(stream, MeasuredStream)
    assert await stream.__anext__() == "ok"
    assert await stream.__anext__() == "ok"
    await stream.aclose()
    # Two chunks of the five: 10 input and 20 output tokens, not the estimate.
    assert spent_nanos(registry) == nanos(call_cost(10, 20))
    assert registry.core.budget_holds() == 0


async def test_38176_embeddings_spend_like_generations() -> None:
    model = MeteredModel("a")
    registry = budgeted(model)
    registry.select_model(capabilities=["embeddings"])
    vectors = await model.embed(["one", "two", "three"])
    assert len(vectors) == 3
    assert spent_nanos(registry) == nanos(call_cost(30, 0))
    # Called without a selection it still counts.
    await model.embed(["four"])
    assert spent_nanos(registry) == nanos(call_cost(30, 0)) + nanos(call_cost(10, 0))


async def test_38176_cached_embeddings_spend_only_for_the_texts_that_missed() -> None:
    model = MeteredModel("a")
    model.enable_caching(ModelCache())
    registry = budgeted(model)
    await model.embed(["one", "two"])
    first = spent_nanos(registry)
    registry.select_model()
    await model.embed(["one", "two"])  # every text from the cache: no call
    assert (model.calls, spent_nanos(registry)) == (1, first)
    assert registry.core.budget_holds() == 0
    await model.embed(["one", "three"])
    assert spent_nanos(registry) == first + nanos(call_cost(10, 0))


def test_38176_select_many_spends_what_report_many_reports() -> None:
    registry = budgeted(MeteredModel("a"), MeteredModel("b"), limit_usd=0.05)
    # input_tokens=0, output_tokens=0: the expected cost is the $0.01 fee.
    selections = registry.select_many(6, input_tokens=0, output_tokens=0)
    assert len(selections) == 5, "five expected costs of $0.01 reserve the budget"
    with pytest.raises(NoEligibleModelsError) as info:
        registry.select_many(1, input_tokens=0, output_tokens=0)
    assert all(r.startswith("budget: provider openai day") for r in info.value.reasons.values())
    registry.report_many(selections, [True] * 5, [0.1] * 5, costs=[0.004] * 5)
    assert spent_nanos(registry) == 5 * nanos(0.004)
    assert len(registry.select_many(12, input_tokens=0, output_tokens=0)) == 3, (
        "the $0.03 left fits three"
    )


async def test_38176_every_failover_attempt_spends() -> None:
    broken, working = MeteredModel("a", fail=True), MeteredModel("b")
    registry = budgeted(broken, working)
    result = await registry.generate("hello")
    assert [a.model for a in result.attempts] == ["a", "b"]
    # The failed attempt was sent (10 input tokens), then b answered.
    assert spent_nanos(registry) == nanos(call_cost(10, 0)) + nanos(call_cost(10, 30))


async def test_38176_a_cache_hit_costs_nothing_and_returns_its_reservation() -> None:
    model = MeteredModel("a")
    model.enable_caching(ModelCache())
    registry = budgeted(model)
    await registry.generate("same question")
    await registry.generate("same question")
    stream = registry.stream("same question")
    assert [chunk async for chunk in stream]
    assert model.calls == 1
    assert spent_nanos(registry) == nanos(call_cost(10, 30))
    assert registry.core.budget_holds() == 0


async def test_38176_a_tenant_budget_counts_on_every_model_and_path() -> None:
    registry = registry_of(MeteredModel("a", "openai"), MeteredModel("b", "anthropic"))
    registry.add_budget(BudgetScope(tenant="acme"), 0.05, "month", name="acme")
    await registry.generate("hello", tenant="acme")
    stream = registry.stream("hello", tenant="acme")
    assert [chunk async for chunk in stream]
    await registry.generate("hello")  # no tenant: not acme's
    await registry.generate("hello", tenant="other")
    [state] = registry.budgets()
    assert state.spent_nanos == 2 * nanos(call_cost(10, 30))
    assert state.scope == BudgetScope(tenant="acme")


async def test_38176_a_tag_budget_counts_every_model_carrying_the_tag() -> None:
    eu_a, eu_b = MeteredModel("a", tags=["eu"]), MeteredModel("b", "anthropic", tags=["eu"])
    other = MeteredModel("c", "anthropic")
    registry = registry_of(eu_a, eu_b, other)
    registry.add_budget(BudgetScope(tag="eu"), 1.0, "day")
    await registry.generate("hello", tags=["eu"])
    await registry.generate("hello", tags=["eu"])
    await registry.generate("hello", exclude_models=["a", "b"])
    assert spent_nanos(registry) == 2 * nanos(call_cost(10, 30)), "a and b, not c"
    assert (eu_a.calls, eu_b.calls, other.calls) == (1, 1, 1)

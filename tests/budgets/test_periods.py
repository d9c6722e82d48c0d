"""Calendar UTC periods: a budget resets on its boundary (a month on the
1st at 00:00 UTC), a spent day budget fails at once, and a spent minute
budget is waited for within the request's deadline."""

from __future__ import annotations

import datetime

import pytest

from orchestrator.core.budgets import BudgetScope
from orchestrator.core.model import ModelCost
from orchestrator.errors import NoEligibleModelsError
from orchestrator.models.model_registry import ModelRegistry
from tests.budgets.conftest import MeteredModel, registry_of

pytestmark = pytest.mark.timeout(30)

FLAT = ModelCost(per_request=0.01)
UTC = datetime.UTC
#: 2026-12-31 23:59:59 UTC: the minute, hour, day and month all end in 1 s.
LAST_SECOND = datetime.datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def spend_all(registry: ModelRegistry) -> None:
    """One $0.01 call through a selection, reported."""
    selection = registry.select(input_tokens=0, output_tokens=0)
    registry.report_outcome(selection, True, 0.1, cost=0.01)


@pytest.mark.parametrize("period", ["minute", "hour", "day", "month"])
def test_every_period_resets_on_its_utc_boundary(period: str) -> None:
    registry = registry_of(MeteredModel("a", cost=FLAT))
    registry.core.set_wall_clock(LAST_SECOND)
    registry.add_budget(BudgetScope(model="a"), 0.01, period)  # type: ignore[arg-type]
    spend_all(registry)
    [state] = registry.budgets()
    assert state.resets_at == datetime.datetime(2027, 1, 1, tzinfo=UTC)
    with pytest.raises(NoEligibleModelsError):
        spend_all(registry)
    registry.core.advance_clock(1.0)
    [state] = registry.budgets()
    assert (state.spent_nanos, state.reserved_nanos) == (0, 0), "a new period"
    spend_all(registry)
    with pytest.raises(NoEligibleModelsError):
        spend_all(registry)


def test_a_month_lasts_until_the_first_of_the_next() -> None:
    registry = registry_of(MeteredModel("a", cost=FLAT))
    feb = datetime.datetime(2028, 2, 10, 12, 0, tzinfo=UTC)
    registry.core.set_wall_clock(feb.timestamp())
    registry.add_budget(BudgetScope(model="a"), 1.0, "month")
    [state] = registry.budgets()
    assert state.resets_at == datetime.datetime(2028, 3, 1, tzinfo=UTC)
    assert state.resets_in == (state.resets_at - feb).total_seconds()


async def test_a_spent_day_budget_fails_at_once_with_its_reason() -> None:
    registry = registry_of(MeteredModel("a", cost=FLAT))
    registry.add_budget(BudgetScope(provider="openai"), 0.01, "day")
    await registry.generate("hello", input_tokens=0, output_tokens=0)
    with pytest.raises(NoEligibleModelsError) as info:
        await registry.generate("hello", input_tokens=0, output_tokens=0, deadline=30.0)
    assert info.value.retry_in is None
    assert info.value.reasons["a"].startswith(
        "budget: provider openai day $0.01/$0.01 spent (reserved $0.00), resets in "
    )


async def test_a_spent_minute_budget_is_waited_for_within_the_deadline() -> None:
    model = MeteredModel("a", cost=FLAT)
    registry = ModelRegistry()  # the real clock: failover waits in real time
    registry.register_model(model)
    registry.add_budget(BudgetScope(model="a"), 0.01, "minute")
    # Half a second before the next whole minute (UTC).
    minute_end = (registry.core.unix_time() // 60 + 1) * 60
    registry.core.set_wall_clock(minute_end - 0.5)
    await registry.generate("hello", input_tokens=0, output_tokens=0)
    explanation = registry.explain_selection(input_tokens=0, output_tokens=0)
    assert explanation.chosen is None and explanation.retry_in is not None
    result = await registry.generate("hello", input_tokens=0, output_tokens=0, deadline=10.0)
    assert result.model == "a" and model.calls == 2
    [state] = registry.budgets()
    assert state.spent_nanos == 10_000_000, "the second call is in the next minute"

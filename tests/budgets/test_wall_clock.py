"""Wall-clock changes. Rate-limit windows follow the core's monotonic clock,
so a step of the UTC clock (``set_wall_clock``: a host whose clock was
corrected) leaves a full window full with the same next slot, backwards or
forwards; budgets' calendar periods follow the UTC time. A UTC time outside
1970 to 9999-11-30 is refused naming ``unix_time`` and changes nothing (one
beyond it was taken, and every ``budgets()`` after it failed in
``datetime``: "year 10000 is out of range")."""

from __future__ import annotations

import datetime
import math

import pytest

from orchestrator.core.budgets import BudgetScope
from orchestrator.errors import NoEligibleModelsError
from tests.conftest import ScriptedModel, virtual_registry

pytestmark = pytest.mark.timeout(30)

#: 9999-11-30 23:59:59 UTC, the latest time accepted.
LATEST = datetime.datetime(9999, 11, 30, 23, 59, 59, tzinfo=datetime.UTC).timestamp()


@pytest.mark.parametrize("step", [-3600.0, -86_400.0 * 365, 86_400.0, 31 * 86_400.0])
def test_a_wall_clock_step_moves_no_rate_limit_window(step: float) -> None:
    registry = virtual_registry(ScriptedModel("a", rpm=2, tpm=1000))
    registry.select(input_tokens=100, output_tokens=100)
    registry.core.advance_clock(10.0)
    registry.select(input_tokens=100, output_tokens=100)
    registry.core.set_wall_clock(registry.core.unix_time() + step)
    with pytest.raises(NoEligibleModelsError) as info:
        registry.select_model()
    assert info.value.reasons["a"] == (
        "rate_limit: 2/2 requests in the last minute (rpm), next slot in 50.0 s"
    )
    limits = registry.rate_limits("a")
    assert (limits["requests"], limits["tokens"]) == (2, 400)
    # Past the boundary: the virtual clock starts at a real reading, so a sum
    # landing exactly on it may round either way.
    registry.core.advance_clock(50.5)
    assert registry.select().model.name == "a", "the oldest left on the monotonic clock"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (-1.0, ValueError),
        (LATEST + 1, ValueError),
        (1e300, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (True, TypeError),
        ("0", TypeError),
    ],
)
def test_an_impossible_utc_time_is_refused_and_changes_nothing(
    value: object, error: type[Exception]
) -> None:
    registry = virtual_registry(ScriptedModel("a"))
    registry.add_budget(BudgetScope(model="a"), 1.0, "month")
    [before] = registry.budgets()
    with pytest.raises(error, match="invalid unix_time"):
        registry.core.set_wall_clock(value)
    [after] = registry.budgets()
    assert after.resets_at == before.resets_at


@pytest.mark.parametrize("period", ["minute", "hour", "day", "month"])
def test_the_extreme_utc_times_accepted_give_readable_periods(period: str) -> None:
    registry = virtual_registry(ScriptedModel("a"))
    registry.add_budget(BudgetScope(model="a"), 1.0, period)  # type: ignore[arg-type]
    registry.core.set_wall_clock(LATEST)
    [state] = registry.budgets()
    assert state.resets_at == datetime.datetime(9999, 12, 1, tzinfo=datetime.UTC)
    registry.core.set_wall_clock(0.0)
    [state] = registry.budgets()
    assert state.resets_at > datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    assert state.resets_in > 0

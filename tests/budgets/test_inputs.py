"""Bad budget and tenant values raise a clear error naming the field and
the value, at every entry point, and change nothing."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.core.budgets import BudgetScope
from orchestrator.core.model import ModelConstraints
from tests.budgets.conftest import MeteredModel, registry_of

pytestmark = pytest.mark.timeout(30)


class LyingStr(str):
    """A str subclass whose text is not what it says."""

    def __str__(self) -> str:
        return "someone else"


@pytest.mark.parametrize(
    ("tenant", "error", "shown"),
    [
        ("", ValueError, "(1 to 256 bytes of UTF-8 without control characters)"),
        ("x" * 257, ValueError, "(1 to 256 bytes of UTF-8"),
        ("é" * 129, ValueError, "(1 to 256 bytes of UTF-8"),
        ("a\x00b", ValueError, "without control characters"),
        ("\ud800", ValueError, "not valid Unicode"),
        (b"acme", TypeError, "a str is required, got bytes"),
        (LyingStr("acme"), TypeError, "got LyingStr"),
        (7, TypeError, "a str is required, got int"),
        (["acme"], TypeError, "got list"),
    ],
)
def test_a_bad_tenant_is_named_at_every_entry_point(tenant: Any, error: type, shown: str) -> None:
    registry = registry_of(MeteredModel("a"))
    calls: list[Callable[[], object]] = [
        lambda: registry.select_model(tenant=tenant),
        lambda: registry.select(tenant=tenant),
        lambda: registry.select_many(2, tenant=tenant),
        lambda: registry.explain_selection(tenant=tenant),
        lambda: registry.scores(tenant=tenant),
    ]
    for call in calls:
        with pytest.raises(error) as info:
            call()
        assert "invalid tenant" in str(info.value) and shown in str(info.value)
    if isinstance(tenant, LyingStr):
        # pydantic keeps the text itself, as an exact str: nothing can lie.
        assert type(ModelConstraints(tenant=tenant).tenant) is str
    else:
        with pytest.raises((error, ValidationError)):
            ModelConstraints(tenant=tenant)
    assert registry.core.outstanding_tickets() == 0


@pytest.mark.parametrize(
    ("limit", "error", "shown"),
    [
        (math.nan, ValueError, "invalid limit_usd: NaN"),
        (math.inf, ValueError, "invalid limit_usd: inf"),
        (-1.0, ValueError, "invalid limit_usd: -1"),
        (0, ValueError, "invalid limit_usd: 0"),
        # Budgets count nano-USD: a limit that rounds to 0 would refuse everything.
        (
            1e-12,
            ValueError,
            "invalid limit_usd: 0.000000000001 (a finite number of USD, at least one",
        ),
        (1e10, ValueError, "invalid limit_usd: 10000000000"),
        (True, TypeError, "invalid limit_usd: True (a number is required, got bool)"),
        ("5", TypeError, "invalid limit_usd: '5'"),
        (None, TypeError, "invalid limit_usd: None"),
    ],
)
def test_a_bad_limit_names_the_field_and_the_value(limit: Any, error: type, shown: str) -> None:
    registry = registry_of(MeteredModel("a"))
    with pytest.raises(error) as info:
        registry.add_budget(BudgetScope(provider="openai"), limit, "day")
    assert str(info.value).startswith(shown)
    assert registry.budgets() == []


def test_bad_periods_scopes_and_names_are_refused() -> None:
    registry = registry_of(MeteredModel("a"))
    scope = BudgetScope(provider="openai")
    with pytest.raises(ValueError, match=r'invalid period: "week" \(one of minute, hour'):
        registry.add_budget(scope, 1.0, "week")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="invalid scope: expected BudgetScope"):
        registry.add_budget("openai", 1.0, "day")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="exactly one of"):
        BudgetScope(provider="openai", tenant="acme")
    with pytest.raises(ValidationError, match="exactly one of"):
        BudgetScope()
    with pytest.raises(ValidationError):
        BudgetScope(provider=b"openai")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid name"):
        registry.add_budget(scope, 1.0, "day", name="")
    registry.add_budget(scope, 1.0, "day", name="daily")
    with pytest.raises(ValueError, match="a budget of that name exists"):
        registry.add_budget(scope, 2.0, "day", name="daily")
    with pytest.raises(ValueError, match="no budget of that name"):
        registry.remove_budget("weekly")
    assert [b.name for b in registry.budgets()] == ["daily"]
    registry.remove_budget("daily")
    assert registry.budgets() == []


def test_an_allowance_narrows_a_budget_and_is_strict() -> None:
    registry = registry_of(MeteredModel("a"))
    registry.add_budget(BudgetScope(provider="openai"), 1.0, "day", name="p")
    registry.core.set_budget_allowance("p", 10_000_000)
    [state] = registry.budgets()
    assert (state.allowance_nanos, state.remaining_nanos) == (10_000_000, 10_000_000)
    registry.select_model(input_tokens=0, output_tokens=0)
    with pytest.raises(Exception, match="budget: provider openai day"):
        registry.select_model(input_tokens=0, output_tokens=0)
    for bad, error in [(-1, ValueError), (2**64, ValueError), (1.0, TypeError), (True, TypeError)]:
        with pytest.raises(error, match="invalid allowance_nanos"):
            registry.core.set_budget_allowance("p", bad)
    registry.core.set_budget_allowance("p", None)
    assert registry.budgets()[0].allowance_nanos is None

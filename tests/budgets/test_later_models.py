"""A budget's scope is matched by name, so a budget added before its models
covers each model registered later that it names (a model scope by its
logical name or one deployment, a provider, a tag), as the README says, and
covers nothing else."""

from __future__ import annotations

import pytest

from orchestrator.core.budgets import BudgetScope
from orchestrator.core.model import ModelCost
from orchestrator.errors import NoEligibleModelsError
from orchestrator.models.model_registry import ModelRegistry
from tests.budgets.conftest import registry_of
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(30)

FLAT = ModelCost(per_request=0.01)


def spend(registry: ModelRegistry, model: str) -> None:
    """One $0.01 call of the registered ``model`` through a selection, reported."""
    others = [m.name for m in registry.list_models() if m.name != model]
    selection = registry.select(input_tokens=0, output_tokens=0, exclude_models=others)
    registry.report_outcome(selection, True, 0.1, cost=0.01)


@pytest.mark.parametrize(
    ("scope", "covered", "other"),
    [
        (BudgetScope(model="gpt-4o"), "gpt-4o@eu", "mini"),
        (BudgetScope(model="gpt-4o@eu"), "gpt-4o@eu", "gpt-4o@us"),
        (BudgetScope(provider="azure"), "gpt-4o@eu", "gpt-4o@us"),
        (BudgetScope(tag="eu"), "gpt-4o@eu", "gpt-4o@us"),
    ],
)
def test_a_budget_added_first_covers_the_models_registered_later(
    scope: BudgetScope, covered: str, other: str
) -> None:
    registry = registry_of()
    registry.add_budget(scope, 0.01, "day")
    for model in (
        ScriptedModel("gpt-4o", provider="azure", deployment="eu", cost=FLAT, tags=["eu"]),
        ScriptedModel("gpt-4o", provider="openai", deployment="us", cost=FLAT),
        ScriptedModel("mini", provider="openai", cost=FLAT),
    ):
        registry.register_model(model)
    spend(registry, covered)
    with pytest.raises(NoEligibleModelsError) as info:
        spend(registry, covered)
    assert info.value.reasons[covered].startswith(f"budget: {scope}")
    spend(registry, other)  # not covered: its spend is not capped
    [state] = registry.budgets()
    assert state.spent_nanos == 10_000_000


def test_a_misspelt_scope_covers_nothing_and_is_listed() -> None:
    registry = registry_of(ScriptedModel("gpt-4o", cost=FLAT))
    registry.add_budget(BudgetScope(model="gtp-4o"), 0.01, "day")
    for _ in range(3):
        spend(registry, "gpt-4o")
    [state] = registry.budgets()
    assert (state.scope, state.spent_nanos) == (BudgetScope(model="gtp-4o"), 0)

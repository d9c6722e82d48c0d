"""One name per strategy, defined once in the core: the registry, the
configuration and the CLI accept exactly ``_core.STRATEGY_NAMES`` (no
undocumented ``cost_based`` alias), an unknown name gets "did you mean",
and the API document's selector classes keep working."""

from __future__ import annotations

import pytest

from orchestrator import _core
from orchestrator.config.schema import STRATEGIES
from orchestrator.models.model_registry import (
    SELECTORS,
    CostBasedSelector,
    ModelRegistry,
    ThompsonSelector,
    UCBModelSelector,
)
from orchestrator.models.selectors import selector_for

pytestmark = pytest.mark.timeout(30)


def test_every_entry_point_accepts_the_core_names_and_nothing_else() -> None:
    names = [name for name, _, _ in _core.STRATEGY_NAMES]
    assert names == [
        "ucb",
        "discounted_ucb",
        "thompson",
        "discounted_thompson",
        "cost",
        "performance",
    ]
    # The core's names, then prompt-aware routing (a router beside the table,
    # not a table strategy).
    assert list(SELECTORS) == [*names, "contextual"] == list(STRATEGIES)
    for name, strategy, discount in _core.STRATEGY_NAMES:
        selector = selector_for(name)
        assert selector.strategy == strategy
        assert getattr(selector, "discount", 1.0) == discount


@pytest.mark.parametrize(
    ("name", "hint"),
    [("cost_based", "cost"), ("thompsen", "thompson"), ("discounted-ucb", "discounted_ucb")],
)
def test_an_unknown_strategy_is_refused_with_did_you_mean(name: str, hint: str) -> None:
    with pytest.raises(
        ValueError, match=f"invalid selection_strategy: '{name}' \\(did you mean '{hint}'\\?\\)"
    ):
        ModelRegistry(selection_strategy=name)
    with pytest.raises(ValueError, match="strategy"):
        _core.SelectionCore(name)


def test_a_preset_discount_is_a_default_that_an_argument_overrides() -> None:
    assert repr(SELECTORS["discounted_ucb"]()) == repr(UCBModelSelector(discount=0.999))
    assert repr(SELECTORS["discounted_thompson"](discount=0.9)) == repr(
        ThompsonSelector(discount=0.9)
    )


def test_the_api_documents_selector_classes_still_work() -> None:
    assert ModelRegistry(model_selector=CostBasedSelector()).strategy == "cost"
    assert ModelRegistry(selection_strategy="cost").strategy == "cost"

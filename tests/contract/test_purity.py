"""Explanations and scores are pure (finding 8): they issue no ticket and draw
nothing, a Thompson explanation shows the draws the next selection uses (so
its ``chosen`` is its top score and is what ``select_model`` then picks), and
a seeded run is the same whatever else is called in between."""

from __future__ import annotations

import math

import pytest

from orchestrator.models.model_registry import ModelRegistry, ThompsonSelector
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(60)


def thompson(seed: int = 7, models: int = 5) -> ModelRegistry:
    registry = ModelRegistry(model_selector=ThompsonSelector(min_trials=1, seed=seed))
    for i in range(models):
        registry.register_model(ScriptedModel(f"m{i}"))
    for i in range(models * 4):  # enough outcomes that no trial is forced
        selection = registry.select()
        registry.report_outcome(selection, i % 3 != 0, 0.1 + 0.05 * (i % models))
    return registry


def test_thompson_explanations_show_the_draw_the_selection_uses() -> None:
    registry = thompson()
    for _ in range(200):
        explanation = registry.explain_selection()
        eligible = [c for c in explanation.candidates if c.eligible]
        assert not any(c.forced for c in eligible)
        top = max(eligible, key=lambda c: c.score or -math.inf)
        assert explanation.chosen == top.name
        assert registry.explain_selection() == explanation  # peeking draws nothing
        selection = registry.select()
        assert selection.model.name == explanation.chosen
        registry.report_outcome(selection, True, 0.2)


def test_explaining_and_scoring_change_nothing() -> None:
    registry = thompson()
    before = (registry.core.outstanding_tickets(), registry.statistics()["trials"].tolist())
    for _ in range(50):
        registry.explain_selection()
        registry.scores()
    after = (registry.core.outstanding_tickets(), registry.statistics()["trials"].tolist())
    assert after == before


def test_a_seeded_run_is_reproducible_whatever_else_is_called() -> None:
    def run(peek: bool) -> list[str]:
        registry = thompson(seed=42)
        picks = []
        for i in range(100):
            if peek:
                registry.explain_selection()
                registry.scores()
            selection = registry.select()
            picks.append(selection.model.name)
            registry.report_outcome(selection, i % 4 != 0, 0.1)
        return picks

    assert run(peek=False) == run(peek=True)

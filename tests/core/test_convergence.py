"""With fixed seeds, UCB settles on the best of several simulated models
while every model still gets its min_trials."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.core.model import ModelCost
from orchestrator.models.model_registry import (
    ModelRegistry,
    PerformanceSelector,
    UCBModelSelector,
)
from tests.conftest import ScriptedModel

SUCCESS = [0.55, 0.70, 0.95, 0.60, 0.80]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ucb_settles_on_the_best_model(seed: int) -> None:
    rng = np.random.default_rng(seed)
    registry = ModelRegistry(model_selector=UCBModelSelector(exploration_factor=1.0, min_trials=5))
    for i in range(len(SUCCESS)):
        registry.register_model(ScriptedModel(f"m{i}", cost=ModelCost()))
    registry._core.configure_breaker(failure_threshold=10_000, error_rate_threshold=1.0)
    picks = []
    for _ in range(3000):
        selection = registry.select()
        arm = int(selection.model.name[1:])
        ok = bool(rng.random() < SUCCESS[arm])
        registry.report_outcome(selection, ok, 0.5, error_class="none" if ok else "server_error")
        picks.append(arm)
    counts = np.bincount(picks, minlength=len(SUCCESS))
    assert counts.min() >= 5
    assert int(np.argmax(counts)) == 2
    assert np.mean(np.array(picks[-1000:]) == 2) > 0.6


def test_performance_selector_exploits_after_min_trials() -> None:
    registry = ModelRegistry(model_selector=PerformanceSelector(min_trials=3))
    for i in range(3):
        registry.register_model(ScriptedModel(f"m{i}"))
    latencies = {"m0": 3.0, "m1": 0.2, "m2": 1.0}
    for _ in range(60):
        selection = registry.select()
        registry.report_outcome(selection, True, latencies[selection.model.name])
    assert registry.get_metrics("m1").requests == 60 - 6

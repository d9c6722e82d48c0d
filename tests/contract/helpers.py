"""What the contract tests share: a small fleet and a fingerprint of
everything a rejected call must leave as it was."""

from __future__ import annotations

from typing import Any

import numpy as np

from orchestrator.models.model_registry import ModelRegistry
from tests.conftest import ScriptedModel


def fleet(*names: str, strategy: str = "ucb") -> ModelRegistry:
    """A registry of scripted models with these names."""
    registry = ModelRegistry(selection_strategy=strategy)
    for name in names:
        registry.register_model(ScriptedModel(name))
    return registry


def state(registry: ModelRegistry) -> tuple[Any, ...]:
    """Names, trials, pending and successes of every model, and the
    registry's outstanding tickets and bound sessions."""
    stats = registry.statistics()
    return (
        tuple(stats["name"]),
        tuple(np.nan_to_num(stats["trials"])),
        tuple(np.nan_to_num(stats["pending"])),
        tuple(np.nan_to_num(stats["successes"])),
        registry.core.outstanding_tickets(),
        registry.core.session_counts()[0],
    )

"""Registering and unregistering under the contextual strategy while the
router learns: the router's weights live in model lanes (a new model takes a
free lane reset to the prior), so churn must leave exactly the state a
freshly built registry with the same models and the same learned state has.
"""

from __future__ import annotations

import random

import pytest

from orchestrator.models.model_registry import ContextualSelector, ModelRegistry
from tests.routing.test_registry import priced

pytestmark = pytest.mark.timeout(120)

PROBES = ["compute the integral of x^3 dx", "say hello to my friend", "", "fix this python bug"]


def selector() -> ContextualSelector:
    return ContextualSelector(hash_bits=10, exploration="greedy", willingness_to_pay=0.1)


def predictions(registry: ModelRegistry, prompt: str) -> dict[str, tuple[object, ...]]:
    """Every candidate's prediction for ``prompt``, by model name."""
    return {
        c.name: (c.estimate, c.uncertainty, c.score, c.observations)
        for c in registry.explain_selection(prompt=prompt).candidates
    }


def test_churn_interleaved_with_learning_leaves_a_freshly_built_router() -> None:
    rng = random.Random(7)
    churned = ModelRegistry(model_selector=selector())
    prices: dict[str, float] = {}

    def register() -> str:
        name = f"m{len(prices)}"
        prices[name] = rng.choice([1.0, 5.0, 50.0])
        churned.register_model(priced(name, prices[name]))
        return name

    for _ in range(20):
        register()
    for step in range(120):
        names = [model.name for model in churned]
        action = rng.randrange(5)
        if action == 0:
            register()
        elif action == 1 and len(names) > 2:
            churned.unregister_model(rng.choice(names))
        elif action == 2:
            subset = rng.sample(names, k=min(3, len(names)))
            prompts = [f"prompt {step} {i} {rng.choice(PROBES)}" for i in range(8)]
            churned.calibrate(prompts, {m: [rng.random() for _ in prompts] for m in subset})
        else:
            selection = churned.select(prompt=f"{rng.choice(PROBES)} {step}")
            assert selection.request_id is not None
            churned.report_quality(selection.request_id, rng.random())
    late = [register() for _ in range(3)]

    fresh = ModelRegistry(model_selector=selector())
    for model in churned:
        fresh.register_model(priced(model.name, prices[model.name]))
    fresh.load_router_state(churned.router_state())
    assert fresh.router_state() == churned.router_state()
    for prompt in PROBES:
        assert predictions(churned, prompt) == predictions(fresh, prompt)
        for name in late:
            estimate, _, _, observations = predictions(churned, prompt)[name]
            assert (estimate, observations) == (0.5, 0), "a new model starts at the prior"


def test_a_model_registered_again_starts_at_the_prior_in_its_old_lane() -> None:
    registry = ModelRegistry(model_selector=selector())
    for name, price in {"cheap": 5.0, "strong": 50.0, "other": 1.0}.items():
        registry.register_model(priced(name, price))
    prior = predictions(registry, "q")["strong"]
    registry.calibrate(["q"] * 30, {"strong": [1.0] * 30, "cheap": [0.0] * 30})
    assert predictions(registry, "q")["strong"] != prior
    registry.unregister_model("strong")
    registry.register_model(priced("strong", 50.0))
    assert predictions(registry, "q")["strong"] == prior
    assert predictions(registry, "q")["cheap"][3] == 30

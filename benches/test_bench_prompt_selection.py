"""``select_model(prompt=...)`` against ``select_model()`` at 100 models, in
the same run (issue 13's target: the prompt costs at most 3x).

Group ``select_model by prompt, 100 models`` (the fleet and request of
``bench_common``: capabilities, max_cost, context_length):

* our ``select_model()`` under UCB (the non-contextual hot path);
* our contextual registry's ``select_model()`` without a prompt (the
  router's prompt-independent estimate), and with a 200 B and a 2 KB prompt
  (featurize + score every eligible model + choose + claim, one core call,
  the decision recorded for feedback), the router calibrated on 1,000
  synthetic prompts first;
* the plain-Python baseline: its ``select`` (the same filter and bandit pick)
  plus the plain-Python featurize-and-score of the routing benchmarks over
  the 100 models (``PlainPythonRouter``), for a 200 B prompt.

Each ``select_model`` runs in a fresh ``contextvars.Context``, as one task of
a server would.
"""

from __future__ import annotations

from array import array
from typing import Any

import pytest

from bench_common import REQUEST, build_baseline, build_registry, in_fresh_context
from orchestrator.models.model_registry import ContextualSelector, ModelRegistry
from test_bench_routing import HASH_BITS, PlainPythonRouter, training_table, two_kb_prompt

pytestmark = pytest.mark.timeout(600)

MODELS = 100
GROUP = f"select_model by prompt, {MODELS} models"


class PlainPythonRouterOver(PlainPythonRouter):
    """:class:`PlainPythonRouter` over ``models`` models, with zero weights
    in flat float arrays (the same work per decision, without drawing 6.5
    million random weights into Python lists)."""

    def __init__(self, models: int) -> None:
        self.buckets = 2**HASH_BITS
        self.weights = [array("d", bytes(8 * self.buckets)) for _ in range(models)]
        self.costs = [0.0001 * (i + 1) for i in range(models)]


def contextual_registry() -> ModelRegistry:
    """The bench fleet under the contextual strategy, calibrated on 1,000 prompts."""
    registry = build_registry(MODELS, "contextual", warm=False)
    names = [model.name for model in registry]
    prompts, qualities = training_table(1000, names)
    registry.calibrate(prompts, qualities)
    assert isinstance(registry.model_selector, ContextualSelector)
    assert registry.model_selector.hash_bits == HASH_BITS
    return registry


def test_select_model_without_prompt_ucb(benchmark: Any) -> None:
    registry = build_registry(MODELS)
    benchmark.group = GROUP
    benchmark.extra_info.update(contender="orchestrator select_model() (ucb)", models=MODELS)
    model = benchmark(in_fresh_context, registry.select_model, **REQUEST)
    assert model.capabilities.code_generation


def test_select_model_contextual_without_prompt(benchmark: Any) -> None:
    registry = contextual_registry()
    benchmark.group = GROUP
    benchmark.extra_info.update(
        contender="orchestrator select_model() (contextual, no prompt)", models=MODELS
    )
    model = benchmark(in_fresh_context, registry.select_model, **REQUEST)
    assert model.capabilities.code_generation


@pytest.mark.parametrize("prompt_bytes", [200, 2048])
def test_select_model_with_prompt(benchmark: Any, prompt_bytes: int) -> None:
    registry = contextual_registry()
    prompt = two_kb_prompt()[:prompt_bytes]
    benchmark.group = GROUP
    benchmark.extra_info.update(
        contender=f"orchestrator select_model(prompt={prompt_bytes} B) (contextual)",
        models=MODELS,
    )
    model = benchmark(in_fresh_context, registry.select_model, prompt=prompt, **REQUEST)
    assert model.capabilities.code_generation


def test_select_with_prompt_plain_python(benchmark: Any) -> None:
    baseline = build_baseline(MODELS)
    router = PlainPythonRouterOver(MODELS)
    prompt = two_kb_prompt()[:200]

    def select_by_prompt() -> int:
        baseline.select(**REQUEST)
        return router.decide(prompt)

    benchmark.group = GROUP
    benchmark.extra_info.update(
        contender="plain-Python baseline select + featurize + score (200 B)", models=MODELS
    )
    assert 0 <= benchmark(select_by_prompt) < MODELS


def test_register_and_unregister_at_200_models_contextual(benchmark: Any) -> None:
    """Registering a model under the contextual strategy takes a free weight
    lane and resets it to the prior (``Posteriors::add_model``), under the
    core's lock: what a selection racing a registration waits for at 200
    models."""
    registry = build_registry(200, "contextual", warm=False)
    extra = next(iter(registry))
    registry.unregister_model(extra.name)

    def churn() -> None:
        registry.register_model(extra)
        registry.unregister_model(extra.name)

    benchmark.group = "contextual registration, 200 models"
    benchmark.extra_info.update(contender="register + unregister one model", models=200)
    benchmark.pedantic(churn, rounds=5, iterations=1, warmup_rounds=1)
    assert len(registry) == 199

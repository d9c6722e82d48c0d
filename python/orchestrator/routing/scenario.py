"""The ``prompt_mix`` simulation scenario: prompts of several kinds where a
different model is best for each kind (:mod:`orchestrator.routing.synthetic`).

:func:`run_prompt_mix` routes the same seeded stream of requests through a
real :class:`~orchestrator.models.model_registry.ModelRegistry` per policy:
``selection_strategy="contextual"`` (the prompt is passed to ``select``), the
same contextual registry blind to the prompt (no prompt: each model's mean
quality decides), every non-contextual strategy of the registry (their
reward is the reported quality), and each model alone. Each request is
``select`` then ``report_outcome(..., quality=...)`` — bandit feedback: only
the chosen model's quality is revealed. Each policy is scored by expected
value — the kind's success probability minus cost / willingness_to_pay —
against the oracle that knows every kind's rates; ``regret`` is the
cumulative shortfall, sampled ``checkpoints`` times to show how fast each
policy learns. ``orchestrator simulate --scenario prompt_mix`` calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from orchestrator import _core
from orchestrator.integrations.simulated_model import ModelProfile, SimulatedModel
from orchestrator.models.model_registry import ModelRegistry, RewardWeights
from orchestrator.models.selectors import ContextualSelector, ModelSelector, selector_for
from orchestrator.routing.synthetic import MODEL_COSTS, SUCCESS, prompt_mix

#: Tokens a request is priced for when none are given (the core's default request size).
_DEFAULT_REQUEST_TOKENS = _core.DEFAULT_INPUT_TOKENS + _core.DEFAULT_OUTPUT_TOKENS

#: The registry's non-contextual strategies the scenario compares against.
BANDIT_STRATEGIES = ("ucb", "thompson", "performance", "cost")

#: Reward of the non-contextual strategies: the reported quality (success is always true).
_QUALITY_REWARD = RewardWeights(success=1.0, latency=0.0, cost=0.0, quality=1.0)


@dataclass(frozen=True)
class PolicyRun:
    policy: str
    mean_quality: float
    """Mean expected quality of the chosen models."""
    mean_cost: float
    regret: list[float]
    """Cumulative regret in expected value after each checkpoint."""
    choices: dict[str, int]


def _expected_value(kind: str, model: str, willingness_to_pay: float) -> float:
    return SUCCESS[kind][model] - MODEL_COSTS[model] / willingness_to_pay


def _registry(selector: ModelSelector, seed: int) -> ModelRegistry:
    """A registry of the synthetic models, priced so a default request costs
    each model's ``MODEL_COSTS``."""
    registry = ModelRegistry(model_selector=selector, reward_weights=_QUALITY_REWARD)
    registry.seed(seed)
    for name, cost in MODEL_COSTS.items():
        per_million = cost * 1e6 / _DEFAULT_REQUEST_TOKENS
        profile = ModelProfile(name, input_per_million=per_million, output_per_million=per_million)
        registry.register_model(SimulatedModel(name, profile, seed=seed))
    return registry


def run_prompt_mix(
    requests: int = 5000,
    *,
    seed: int = 0,
    willingness_to_pay: float = 0.2,
    checkpoints: int = 10,
    progress: Optional[Callable[[int], None]] = None,
) -> list[PolicyRun]:
    """Every policy on the same ``requests`` prompts (see the module docstring);
    ``progress`` is called with the number of requests routed so far."""
    if requests < checkpoints or checkpoints < 1:
        raise ValueError(f"invalid requests: {requests!r} (need ≥ checkpoints = {checkpoints})")
    if not willingness_to_pay > 0:
        raise ValueError(f"invalid willingness_to_pay: {willingness_to_pay!r} (must be > 0)")
    mix = prompt_mix(requests, seed=seed)
    models = list(MODEL_COSTS)

    def routed(strategy: ModelSelector, sees_prompt: bool) -> Callable[[int], str]:
        registry = _registry(strategy, seed)

        def choose(row: int) -> str:
            prompt = mix.prompts[row] if sees_prompt else None
            selection = registry.select(prompt=prompt, willingness_to_pay=willingness_to_pay)
            name = selection.model.name
            registry.report_outcome(selection, True, 0.5, quality=mix.qualities[name][row])
            return name

        return choose

    def always(model: str) -> Callable[[int], str]:
        return lambda _row: model

    contextual = ContextualSelector(seed=seed, willingness_to_pay=willingness_to_pay)
    policies: dict[str, Callable[[int], str]] = {
        "contextual": routed(contextual, True),
        "contextual without prompt": routed(contextual, False),
        **{name: routed(selector_for(name), False) for name in BANDIT_STRATEGIES},
        **{f"always {model}": always(model) for model in models},
    }
    every = requests // checkpoints
    runs = []
    done = 0
    for name, choose in policies.items():
        regret, quality, cost = 0.0, 0.0, 0.0
        curve: list[float] = []
        counts = dict.fromkeys(models, 0)
        for row, kind in enumerate(mix.kinds):
            model = choose(row)
            counts[model] += 1
            best = max(_expected_value(kind, m, willingness_to_pay) for m in models)
            regret += best - _expected_value(kind, model, willingness_to_pay)
            quality += SUCCESS[kind][model]
            cost += MODEL_COSTS[model]
            if (row + 1) % every == 0:
                curve.append(regret)
                done += every
                if progress is not None:
                    progress(done)
        runs.append(PolicyRun(name, quality / requests, cost / requests, curve, counts))
    return runs

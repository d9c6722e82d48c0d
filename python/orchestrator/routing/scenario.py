"""The ``prompt_mix`` simulation scenario: prompts of several kinds where a
different model is best for each kind (:mod:`orchestrator.routing.synthetic`).

:func:`run_prompt_mix` routes the same seeded stream of requests with the
contextual router (Thompson sampling, learning from bandit feedback), with
the same learner blind to the prompt (a non-contextual Bayesian bandit: it
sees an empty prompt), and with each model alone. Each is scored by
expected value — the kind's success probability minus cost /
willingness_to_pay — against the oracle that knows every kind's rates;
``regret`` is the cumulative shortfall, sampled ``checkpoints`` times to
show how fast each policy learns. ``orchestrator simulate --scenario
prompt_mix`` calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.routing.router import ContextualRouter
from orchestrator.routing.selector import ContextualSelector
from orchestrator.routing.synthetic import MODEL_COSTS, SUCCESS, prompt_mix


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


def run_prompt_mix(
    requests: int = 5000,
    *,
    seed: int = 0,
    willingness_to_pay: float = 0.2,
    checkpoints: int = 10,
) -> list[PolicyRun]:
    """Every policy on the same ``requests`` prompts (see the module docstring)."""
    if requests < checkpoints or checkpoints < 1:
        raise ValueError(f"invalid requests: {requests!r} (need ≥ checkpoints = {checkpoints})")
    if not willingness_to_pay > 0:
        raise ValueError(f"invalid willingness_to_pay: {willingness_to_pay!r} (must be > 0)")
    mix = prompt_mix(requests, seed=seed)
    models = list(MODEL_COSTS)
    selector = ContextualSelector(seed=seed, willingness_to_pay=willingness_to_pay)

    def learner(sees_prompt: bool) -> Callable[[int], str]:
        router = ContextualRouter(models, costs=MODEL_COSTS, selector=selector)

        def choose(row: int) -> str:
            prompt = mix.prompts[row] if sees_prompt else ""
            decision = router.decide(prompt)
            assert decision.request_id is not None
            router.report_quality(decision.request_id, mix.qualities[decision.model][row])
            return decision.model

        return choose

    def always(model: str) -> Callable[[int], str]:
        return lambda _row: model

    policies: dict[str, Callable[[int], str]] = {
        "contextual": learner(True),
        "non-contextual": learner(False),
        **{f"always {model}": always(model) for model in models},
    }
    every = requests // checkpoints
    runs = []
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
        runs.append(PolicyRun(name, quality / requests, cost / requests, curve, counts))
    return runs

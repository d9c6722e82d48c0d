"""Replayable simulation of LLM providers, driving a real :class:`ModelRegistry`.

Used by ``orchestrator simulate`` and by the selection-quality benchmark. The
API below is stable; extend it, do not change it.

Truth
    :class:`ModelProfile` (from :mod:`orchestrator.integrations.simulated_model`)
    is one simulated model: success probability, a lognormal latency (median
    ``latency_s``, shape ``latency_sigma``), prices per million tokens, a
    lognormal output length and a quality score in [0, 1] (observed with noise).
    :class:`Change` alters one model's truth for a window of the run, given as
    fractions of the run (``0.5, 1.0`` is the second half): an absolute
    ``success_rate`` (``0`` is an outage), a ``latency_factor``
    (slow-down) or a new ``quality`` (drift).

Scenarios
    :class:`Scenario` is models + changes + the request stream (inter-arrival
    time, input tokens, share of repeated prompts, ``max_cost``). Built in
    (:data:`SCENARIOS`, :func:`get_scenario`): ``default`` (the README demo),
    ``stationary``, ``drift``, ``outage``, ``price_constrained``.

Running
    ``run(scenario, strategy, seed=..., requests=..., cache=...)`` returns a
    :class:`SimulationResult`. ``strategy`` is a registry strategy name
    (``"ucb"``, ``"discounted_ucb"``, ``"cost"``, ``"performance"``), a
    :class:`ModelSelector`, ``"oracle"``, ``"random"``, or any :class:`Policy`
    (an object with ``choose(t) -> arm`` and ``update(arm, reward)``; arms
    index ``scenario.models``; :func:`eligible_arms` lists those allowed by
    the scenario's constraints). Registry strategies run through a real
    registry: ``select`` + ``report_outcome`` per request, the core clock
    advanced by each simulated inter-arrival time, so breaker cool-downs pass
    in virtual time. With ``cache`` (a :class:`~orchestrator.core.cache.ModelCache`)
    each request goes through the real cache, so its hit rate is real.

Determinism
    Every random draw of the environment (arrivals, prompts, each model's
    success, latency, tokens and quality for every request) is made up front
    from ``numpy.random.default_rng(seed)``, so every strategy meets the same
    world for the same seed (common random numbers) and a run is replayable.

Rewards
    :func:`reward` is the registry's formula (:class:`RewardWeights`, as in the
    Rust core). ``expected_reward[t]`` is the chosen model's true expected
    reward at request ``t``, ``oracle_reward[t]`` the best eligible model's,
    and ``regret = oracle_reward - expected_reward`` (pseudo-regret, >= 0).
"""

from orchestrator.integrations.simulated_model import ModelProfile, SimulatedModel
from orchestrator.simulation.policies import FunctionPolicy, OraclePolicy, Policy, RandomPolicy
from orchestrator.simulation.results import ModelSummary, SimulationResult
from orchestrator.simulation.runner import CACHE_LATENCY_S, eligible_arms, run
from orchestrator.simulation.scenarios import (
    SCENARIOS,
    Change,
    Scenario,
    expected_rewards,
    get_scenario,
    reward,
)

__all__ = [
    "CACHE_LATENCY_S",
    "SCENARIOS",
    "Change",
    "FunctionPolicy",
    "ModelProfile",
    "ModelSummary",
    "OraclePolicy",
    "Policy",
    "RandomPolicy",
    "Scenario",
    "SimulatedModel",
    "SimulationResult",
    "eligible_arms",
    "expected_rewards",
    "get_scenario",
    "reward",
    "run",
]

"""Running a scenario: every request through a real registry (or a :class:`Policy`),
with the world's random draws made up front so every strategy meets the same world."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Union

import numpy as np

from orchestrator.core.cache import ModelCache
from orchestrator.core.model import CallResult
from orchestrator.errors import ProviderConnectionError, ServerError
from orchestrator.integrations.simulated_model import SimulatedModel
from orchestrator.models.model_registry import (
    SELECTORS,
    ModelRegistry,
    ModelSelector,
    RewardWeights,
)
from orchestrator.simulation.policies import OraclePolicy, Policy, RandomPolicy
from orchestrator.simulation.results import SimulationResult
from orchestrator.simulation.scenarios import (
    FloatArray,
    IntArray,
    Scenario,
    expected_rewards,
    get_scenario,
    reward,
    truth_matrix,
)

if TYPE_CHECKING:
    from orchestrator.models.health_monitor import ModelHealthMonitor

logger = logging.getLogger(__name__)

#: Latency of an answer served from the cache, in seconds.
CACHE_LATENCY_S = 0.001


def _registry_for(
    scenario: Scenario,
    selector: Optional[ModelSelector],
    weights: RewardWeights,
    health_monitor: Optional[ModelHealthMonitor],
    seed: int,
) -> tuple[ModelRegistry, list[SimulatedModel]]:
    registry = ModelRegistry(
        model_selector=selector, health_monitor=health_monitor, reward_weights=weights
    )
    if getattr(selector, "seed", None) is None:
        registry.seed(seed)  # sampling strategies draw from the run's seed too
    models = [SimulatedModel(p.name, p, seed=seed + i) for i, p in enumerate(scenario.models)]
    for model in models:
        registry.register_model(model)
    return registry, models


def eligible_arms(scenario: Scenario) -> list[int]:
    """Indices of the models that satisfy the scenario's constraints
    (``max_cost`` and ``capabilities``), by the registry's own rule."""
    registry, _ = _registry_for(scenario, None, RewardWeights(), None, 0)
    explanation = registry.explain_selection(
        capabilities=list(scenario.capabilities) or None,
        max_cost=scenario.max_cost,
        input_tokens=scenario.budget_tokens[0],
        output_tokens=scenario.budget_tokens[1],
    )
    names = {c.name for c in explanation.candidates if c.eligible}
    return [i for i, p in enumerate(scenario.models) if p.name in names]


@dataclass
class _World:
    gaps: FloatArray
    input_tokens: IntArray
    prompt_ids: IntArray
    uniform: FloatArray
    z_latency: FloatArray
    z_output: FloatArray
    z_quality: FloatArray


def _draw_world(scenario: Scenario, n: int, seed: int, repeat_share: float) -> _World:
    rng = np.random.default_rng(seed)
    k = len(scenario.models)
    gaps = rng.exponential(scenario.interarrival_s, n)
    tokens_in = np.maximum(
        1, np.rint(scenario.input_tokens * np.exp(scenario.input_sigma * rng.standard_normal(n)))
    ).astype(np.int64)
    repeat = rng.random(n) < repeat_share
    pick = rng.random(n)
    uniform = rng.random((n, k))
    z_latency = rng.standard_normal((n, k))
    z_output = rng.standard_normal((n, k))
    z_quality = rng.standard_normal((n, k))
    prompt_ids = np.empty(n, dtype=np.int64)
    fresh = 0
    for t in range(n):
        if repeat[t] and fresh > 0:
            # Popular prompts repeat more: skew towards the first of the pool.
            available = min(fresh, scenario.prompt_pool)
            prompt_ids[t] = int(pick[t] ** 2 * available)
        else:
            prompt_ids[t] = fresh
            fresh += 1
    return _World(gaps, tokens_in, prompt_ids, uniform, z_latency, z_output, z_quality)


def _strategy_name(strategy: Union[str, ModelSelector, Policy]) -> str:
    if isinstance(strategy, str):
        return strategy
    if isinstance(strategy, ModelSelector):
        return strategy.strategy or type(strategy).__name__
    return type(strategy).__name__


def run(
    scenario: Union[Scenario, str] = "default",
    strategy: Union[str, ModelSelector, Policy] = "ucb",
    *,
    seed: int = 0,
    requests: Optional[int] = None,
    cache: Optional[ModelCache] = None,
    repeat_share: Optional[float] = None,
    reward_weights: Optional[RewardWeights] = None,
    health_monitor: Optional[ModelHealthMonitor] = None,
    progress: Optional[Callable[[int], None]] = None,
    progress_every: int = 100,
) -> SimulationResult:
    """Run ``requests`` simulated requests of ``scenario`` with ``strategy``.

    ``progress(done)`` is called every ``progress_every`` requests and at the
    end. ``repeat_share`` overrides the scenario's share of repeated prompts
    (they only matter with a ``cache``).
    """
    if isinstance(scenario, str):
        scenario = get_scenario(scenario)
    n = int(requests if requests is not None else scenario.requests)
    if n <= 0:
        raise ValueError(f"requests must be > 0, got {n}")
    weights = reward_weights or RewardWeights()
    share = scenario.repeat_share if repeat_share is None else float(repeat_share)
    if not 0.0 <= share < 1.0:
        raise ValueError(f"repeat_share must be in [0, 1), got {share}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    eligible = eligible_arms(scenario)
    if not eligible:
        raise ValueError(f"scenario {scenario.name}: no model satisfies its constraints")

    world = _draw_world(scenario, n, seed, share)
    expected = expected_rewards(scenario, n, weights)
    p_success, lat_median, quality_mean = truth_matrix(scenario, n)
    oracle = expected[:, eligible].max(axis=1)

    policy: Optional[Policy] = None
    selector: Optional[ModelSelector] = None
    if isinstance(strategy, str) and strategy == "oracle":
        policy = OraclePolicy(expected, eligible)
    elif isinstance(strategy, str) and strategy == "random":
        policy = RandomPolicy(eligible, seed=seed + 7919)
    elif isinstance(strategy, str):
        if strategy not in SELECTORS:
            known = ", ".join([*SELECTORS, "oracle", "random"])
            raise ValueError(f"unknown strategy {strategy!r}; choose one of {known}")
        selector = SELECTORS[strategy]()
    elif isinstance(strategy, ModelSelector):
        selector = strategy
    elif isinstance(strategy, Policy):
        policy = strategy
    else:
        raise TypeError(f"invalid strategy: {strategy!r}")

    registry, models = _registry_for(
        scenario, selector or SELECTORS["ucb"](), weights, health_monitor, seed
    )
    index = {m.name: i for i, m in enumerate(models)}
    capabilities = list(scenario.capabilities) or None

    chosen = np.empty(n, dtype=np.int64)
    rewards = np.empty(n)
    success = np.empty(n, dtype=np.bool_)
    dead = np.zeros(n, dtype=np.bool_)
    costs = np.zeros(n)
    latencies = np.empty(n)
    hits = np.zeros(n, dtype=np.bool_)
    clock = np.cumsum(world.gaps)
    loop = asyncio.new_event_loop() if cache is not None else None
    profiles = scenario.models
    eligible_set = set(eligible)

    # Virtual time only: the same seed gives the same numbers however long the run takes.
    registry.core.use_virtual_clock()
    try:
        for t in range(n):
            if t:
                registry.core.advance_clock(float(world.gaps[t]))
            selection = None
            if policy is None:
                selection = registry.select(
                    capabilities,
                    scenario.max_cost,
                    input_tokens=scenario.budget_tokens[0],
                    output_tokens=scenario.budget_tokens[1],
                )
                arm = index[selection.model.name]
            else:
                arm = int(policy.choose(t))
                if arm not in eligible_set:
                    raise ValueError(
                        f"policy chose arm {arm}, which is not eligible in scenario "
                        f"{scenario.name} (eligible: {eligible})"
                    )
            profile = profiles[arm]
            ok = bool(world.uniform[t, arm] < p_success[t, arm])
            down = p_success[t, arm] == 0.0
            lat = float(
                lat_median[t, arm] * math.exp(profile.latency_sigma * world.z_latency[t, arm])
            )
            out_tokens = max(
                1,
                round(
                    profile.output_tokens * math.exp(scenario.output_sigma * world.z_output[t, arm])
                ),
            )
            in_tokens = int(world.input_tokens[t])
            q = min(
                1.0,
                max(0.0, quality_mean[t, arm] + profile.quality_noise * world.z_quality[t, arm]),
            )
            price = profile.cost.price(in_tokens, out_tokens)
            hit = False
            if cache is not None and loop is not None:
                hit, ok = _through_cache(
                    loop, cache, models[arm], f"simulated prompt #{world.prompt_ids[t]}",
                    ok, down, in_tokens, out_tokens, price, lat,
                )  # fmt: skip
            if hit:
                ok, lat, price = True, CACHE_LATENCY_S, 0.0
                if selection is not None:
                    registry.cancel(selection)
            elif not ok:
                price = 0.0
                if down:
                    lat = 0.02
            r = float(reward(weights, ok, lat, price, q))
            if not hit:
                if selection is not None:
                    registry.report_outcome(
                        selection,
                        ok,
                        lat,
                        error_class="none" if ok else ("connection" if down else "server_error"),
                        input_tokens=in_tokens if ok else 0,
                        output_tokens=out_tokens if ok else 0,
                        cost=price,
                        quality=q if ok else None,
                    )
                elif policy is not None:
                    policy.update(arm, r)
            chosen[t] = arm
            rewards[t] = r
            success[t] = ok
            dead[t] = down and not hit
            costs[t] = price
            latencies[t] = lat
            hits[t] = hit
            if progress is not None and (t + 1) % progress_every == 0:
                progress(t + 1)
    finally:
        if loop is not None:
            loop.close()
    if progress is not None and n % progress_every:
        progress(n)

    chosen_expected = expected[np.arange(n), chosen]
    if isinstance(strategy, str) and strategy == "oracle":
        oracle_realised = rewards
    else:
        oracle_realised = _oracle_rewards(scenario, seed, n, share, weights, cache is not None)
    return SimulationResult(
        scenario=scenario.name,
        strategy=_strategy_name(strategy),
        seed=seed,
        model_names=scenario.model_names,
        chosen=chosen,
        reward=rewards,
        expected_reward=chosen_expected,
        oracle_reward=oracle,
        regret=np.maximum(oracle - chosen_expected, 0.0),
        success=success,
        dead=dead,
        cost=costs,
        latency=latencies,
        cache_hit=hits,
        time_s=clock,
        oracle_realised_reward=oracle_realised,
        eligible=eligible,
        registry=registry if policy is None else None,
    )


def _oracle_rewards(
    scenario: Scenario,
    seed: int,
    requests: int,
    repeat_share: float,
    weights: RewardWeights,
    cached: bool,
) -> FloatArray:
    """What the oracle realised in the same world: a run of ``strategy="oracle"``
    with the same seed, and a fresh in-memory cache if the run had a cache, so
    ``run(..., "oracle")`` reports exactly these rewards."""
    cache = ModelCache(backend="memory", max_size=requests) if cached else None
    result = run(
        scenario, "oracle", seed=seed, requests=requests, cache=cache,
        repeat_share=repeat_share, reward_weights=weights,
    )  # fmt: skip
    return result.reward


def _through_cache(
    loop: asyncio.AbstractEventLoop,
    cache: ModelCache,
    model: SimulatedModel,
    prompt: str,
    ok: bool,
    down: bool,
    in_tokens: int,
    out_tokens: int,
    price: float,
    latency: float,
) -> tuple[bool, bool]:
    """Look the prompt up in the real cache; on a miss, "call" the model.
    Returns ``(hit, success)``."""
    called = False

    async def compute() -> CallResult:
        nonlocal called
        called = True
        if not ok:
            error = ProviderConnectionError if down else ServerError
            raise error("simulated failure", model=model.name)
        text = f"[{model.name}] answer to {prompt}"
        return CallResult(text, model.name, in_tokens, out_tokens, price, latency)

    try:
        loop.run_until_complete(cache.generate(model, prompt, {}, compute, False))
    except (ServerError, ProviderConnectionError):
        return False, False
    return not called, ok or not called

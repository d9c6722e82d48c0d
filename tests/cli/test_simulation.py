"""The simulator: deterministic, regret against a correct oracle, the registry's reward."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator import simulation as sim
from orchestrator.core.cache import ModelCache
from orchestrator.models.model_registry import RewardWeights


def test_same_seed_same_run_and_other_seed_differs() -> None:
    a = sim.run("default", "ucb", seed=3, requests=800)
    b = sim.run("default", "ucb", seed=3, requests=800)
    c = sim.run("default", "ucb", seed=4, requests=800)
    for name in ("chosen", "reward", "regret", "cost", "dead", "success"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.to_dict() == b.to_dict()
    assert not np.array_equal(a.reward, c.reward)


@pytest.mark.parametrize("scenario", list(sim.SCENARIOS))
def test_regret_is_non_negative_and_the_oracle_has_none(scenario: str) -> None:
    learned = sim.run(scenario, "ucb", seed=1, requests=1000)
    oracle = sim.run(scenario, "oracle", seed=1, requests=1000)
    assert (learned.regret >= 0).all()
    assert learned.cumulative_regret > 0
    assert oracle.cumulative_regret == 0.0
    # The oracle follows the truth: its expected reward is the best eligible one.
    expected = sim.expected_rewards(sim.get_scenario(scenario), 1000)
    best = expected[:, oracle.eligible].max(axis=1)
    np.testing.assert_allclose(oracle.expected_reward, best)
    np.testing.assert_allclose(learned.oracle_reward, best)


def test_expected_rewards_match_what_each_model_earns() -> None:
    scenario = sim.get_scenario("stationary")
    expected = sim.expected_rewards(scenario, 1)[0]
    for arm in range(len(scenario.models)):
        policy = sim.FunctionPolicy(lambda t, a=arm: a, lambda arm, reward: None)
        result = sim.run(scenario, policy, seed=11, requests=4000)
        assert result.mean_reward == pytest.approx(expected[arm], abs=0.012)


def test_rewards_use_the_registry_formula() -> None:
    # The mean reward the Rust core keeps for each model equals the mean of
    # sim.reward() over the same outcomes.
    weights = RewardWeights()
    scenario = sim.get_scenario("stationary")
    registry, models = sim.runner._registry_for(scenario, None, weights, None, 5)
    mine = np.zeros(len(models))
    for t in range(200):
        arm = t % len(models)
        ok = t % 7 != 0
        latency, cost, quality = 0.2 + t / 100, 0.001 * t, (t % 10) / 10
        registry.report_outcome(
            models[arm].name, ok, latency, cost=cost, quality=quality if ok else None
        )
        mine[arm] += sim.reward(weights, ok, latency, cost, quality) / 40
    stats = registry.statistics()
    for arm, model in enumerate(models):
        core_mean = stats["mean_reward"][stats["name"].index(model.name)]
        assert core_mean == pytest.approx(mine[arm], rel=1e-9)
    # And a whole run's rewards agree with its registry's statistics.
    result = sim.run(scenario, "ucb", seed=5, requests=600)
    assert result.registry is not None
    stats = result.registry.statistics()
    for i, name in enumerate(result.model_names):
        mask = result.chosen == i
        assert stats["trials"][stats["name"].index(name)] == mask.sum()
        core_mean = stats["mean_reward"][stats["name"].index(name)]
        assert core_mean == pytest.approx(result.reward[mask].mean(), rel=1e-9)
    assert (result.reward[~result.success] == 0).all()


def test_outage_is_routed_around() -> None:
    scenario = sim.get_scenario("outage")
    n = 4000
    result = sim.run(scenario, "ucb", seed=2, requests=n)
    rand = sim.run(scenario, "random", seed=2, requests=n)
    window = slice(int(0.45 * n), int(0.55 * n))
    assert not result.dead[: window.start].any() and not result.dead[window.stop :].any()
    assert 0 < result.dead_hits < rand.dead_hits / 4
    dead_arm = scenario.model_names.index("balanced-m")
    assert (result.chosen[window] == dead_arm).mean() < 0.1


def test_cache_hits_are_real() -> None:
    cache = ModelCache(backend="memory")
    result = sim.run("default", "performance", seed=1, requests=1500, cache=cache)
    stats = cache.get_statistics()
    assert result.cache_hit.sum() == stats.hits > 0
    assert result.cache_hit_rate == pytest.approx(stats.hit_rate, abs=1e-9)
    assert (result.cost[result.cache_hit] == 0).all()
    assert not sim.run("default", "performance", seed=1, requests=1500).cache_hit.any()


def test_price_constraint_is_the_registrys() -> None:
    scenario = sim.get_scenario("price_constrained")
    eligible = sim.eligible_arms(scenario)
    assert scenario.model_names.index("premium-xl") not in eligible
    expected = sim.expected_rewards(scenario, 1)[0]
    assert int(np.argmax(expected)) == scenario.model_names.index("premium-xl")
    for strategy in ("ucb", "performance", "cost"):
        result = sim.run(scenario, strategy, seed=0, requests=500)
        assert set(np.unique(result.chosen)) <= set(eligible)


def test_a_policy_that_breaks_the_constraint_is_refused() -> None:
    policy = sim.FunctionPolicy(lambda t: 0, lambda arm, reward: None)
    with pytest.raises(ValueError, match="not eligible"):
        sim.run("price_constrained", policy, requests=10)


def test_generic_policy_sees_rewards() -> None:
    seen: list[tuple[int, float]] = []
    policy = sim.FunctionPolicy(lambda t: t % 5, lambda arm, r: seen.append((arm, r)))
    result = sim.run("stationary", policy, seed=9, requests=50)
    assert [a for a, _ in seen] == list(result.chosen)
    np.testing.assert_allclose([r for _, r in seen], result.reward)
    assert result.strategy == "FunctionPolicy"


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        sim.get_scenario("nope")
    with pytest.raises(ValueError, match="unknown strategy"):
        sim.run("default", "greedy", requests=10)
    with pytest.raises(ValueError, match="requests must be > 0"):
        sim.run("default", "ucb", requests=0)

"""Selection quality on the simulator (:mod:`orchestrator.simulation`): the
cumulative (pseudo-)regret and failed requests of each of our strategies and
of MABWiser's UCB1 and Thompson sampling, on the same seeds (the simulator
draws every model's outcome for every request up front, so every policy
meets the same world).

Not a timing benchmark: it records results to
``benches/results/quality.json`` (``benches/run.py`` turns them into tables
and charts) and asserts only sanity.

MABWiser policies are given the scenario's eligible arms
(:func:`~orchestrator.simulation.eligible_arms`): MABWiser has no notion of
``max_cost``, so it gets the filtering for free. UCB1 is MABWiser's default
(``alpha=1``); it plays every arm once, then predicts and ``partial_fit``\\s
the reward in [0, 1]. Thompson sampling (Beta-Bernoulli) needs binary
rewards, so each reward ``r`` is turned into a Bernoulli(``r``) draw (the
standard reduction) from a seeded generator.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Optional

import numpy as np

from bench_common import QUICK, RESULTS_DIR
from orchestrator import simulation
from orchestrator.models.model_registry import SELECTORS

SCENARIOS = ("stationary", "drift", "outage", "price_constrained")
OURS = tuple(
    s
    for s in ("ucb", "discounted_ucb", "thompson", "discounted_thompson", "performance", "cost")
    if s in SELECTORS
)
PEERS = ("mabwiser_ucb1", "mabwiser_thompson")
SEEDS = 5 if QUICK else 20
REQUESTS: Optional[int] = 2000 if QUICK else None  # None: the scenario's own (5,000)


class MABWiserPolicy:
    """A :class:`orchestrator.simulation.Policy` over MABWiser."""

    def __init__(self, arms: Sequence[int], kind: str, seed: int) -> None:
        from mabwiser.mab import MAB, LearningPolicy

        self.arms = list(arms)
        self.kind = kind
        learning = (
            LearningPolicy.UCB1(alpha=1.0)
            if kind == "mabwiser_ucb1"
            else LearningPolicy.ThompsonSampling()
        )
        self.mab = MAB(self.arms, learning, seed=seed)
        self.rng = np.random.default_rng(seed + 104729)
        self.fitted = False
        self.init_decisions: list[int] = []
        self.init_rewards: list[float] = []

    def choose(self, t: int) -> int:
        if not self.fitted:
            return self.arms[len(self.init_decisions) % len(self.arms)]
        return int(self.mab.predict())

    def update(self, arm: int, reward: float) -> None:
        value: float = reward
        if self.kind == "mabwiser_thompson":
            value = float(self.rng.random() < reward)
        if not self.fitted:
            self.init_decisions.append(arm)
            self.init_rewards.append(value)
            if len(self.init_decisions) == len(self.arms):
                self.mab.fit(self.init_decisions, self.init_rewards)
                self.fitted = True
            return
        self.mab.partial_fit([arm], [value])


def run_one(scenario: str, strategy: str, seed: int) -> dict[str, Any]:
    """One simulated run; returns its totals."""
    import logging

    logging.getLogger("orchestrator").setLevel(logging.ERROR)
    scen = simulation.get_scenario(scenario)
    policy: Any = strategy
    if strategy in PEERS:
        policy = MABWiserPolicy(simulation.eligible_arms(scen), strategy, seed)
    result = simulation.run(scen, policy, seed=seed, requests=REQUESTS)
    return {
        "scenario": scenario,
        "strategy": strategy,
        "seed": seed,
        "requests": result.requests,
        "cumulative_regret": result.cumulative_regret,
        "failures": result.failures,
        "dead_hits": result.dead_hits,
        "mean_reward": result.mean_reward,
        "mean_oracle_reward": result.mean_oracle_reward,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean, standard deviation, median and quartiles per scenario and strategy."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for scenario in SCENARIOS:
        out[scenario] = {}
        for strategy in OURS + PEERS:
            rows = [r for r in runs if r["scenario"] == scenario and r["strategy"] == strategy]
            if not rows:
                continue
            regret = np.array([r["cumulative_regret"] for r in rows])
            failures = np.array([r["failures"] for r in rows], dtype=float)
            out[scenario][strategy] = {
                "seeds": len(rows),
                "requests": rows[0]["requests"],
                "regret_mean": float(regret.mean()),
                "regret_std": float(regret.std(ddof=1)) if len(rows) > 1 else 0.0,
                "regret_median": float(np.median(regret)),
                "regret_q1": float(np.percentile(regret, 25)),
                "regret_q3": float(np.percentile(regret, 75)),
                "failures_mean": float(failures.mean()),
                "failures_std": float(failures.std(ddof=1)) if len(rows) > 1 else 0.0,
                "mean_reward": float(np.mean([r["mean_reward"] for r in rows])),
            }
    return out


def test_selection_quality() -> None:
    jobs = [(s, p, seed) for s in SCENARIOS for p in OURS + PEERS for seed in range(SEEDS)]
    workers = max(1, min(2, os.cpu_count() or 1))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        runs = list(pool.map(run_one, *zip(*jobs), chunksize=4))
    for r in runs:
        assert r["cumulative_regret"] >= 0.0, r
        assert 0 <= r["failures"] <= r["requests"], r
        assert r["mean_reward"] <= r["mean_oracle_reward"] + 0.05, r
    summary = summarise(runs)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "quality.json").write_text(
        json.dumps(
            {
                "seeds": SEEDS,
                "requests": runs[0]["requests"],
                "summary": summary,
                "runs": runs,
            },
            indent=1,
        )
    )

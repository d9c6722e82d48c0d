"""What a simulated run produced: per-request arrays and per-model summaries."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from orchestrator.simulation.scenarios import BoolArray, FloatArray, IntArray

if TYPE_CHECKING:
    from orchestrator.models.model_registry import ModelRegistry


@dataclass(frozen=True)
class ModelSummary:
    """One model's share of a run."""

    name: str
    requests: int
    share: float
    mean_reward: float
    mean_expected_reward: float
    success_rate: float
    dead_hits: int
    cache_hits: int
    cost: float


@dataclass
class SimulationResult:
    """Per-request arrays of a run (index ``t``) and summaries."""

    scenario: str
    strategy: str
    seed: int
    model_names: list[str]
    chosen: IntArray
    reward: FloatArray
    expected_reward: FloatArray
    oracle_reward: FloatArray
    regret: FloatArray
    success: BoolArray
    dead: BoolArray
    cost: FloatArray
    latency: FloatArray
    cache_hit: BoolArray
    time_s: FloatArray
    #: The reward the oracle (best eligible model by truth) realised at each request,
    #: in the same world and with a cache if the run had one.
    oracle_realised_reward: FloatArray
    eligible: list[int] = field(default_factory=list)
    #: The registry that made the choices (``None`` for a :class:`Policy`).
    registry: Optional[ModelRegistry] = field(default=None, compare=False, repr=False)

    @property
    def requests(self) -> int:
        return len(self.chosen)

    @property
    def cumulative_regret(self) -> float:
        return float(self.regret.sum())

    @property
    def mean_reward(self) -> float:
        return float(self.reward.mean()) if self.requests else 0.0

    @property
    def mean_oracle_realised_reward(self) -> float:
        """Mean of :attr:`oracle_realised_reward`: what ``strategy="oracle"`` earns."""
        return float(self.oracle_realised_reward.mean()) if self.requests else 0.0

    @property
    def mean_oracle_reward(self) -> float:
        return float(self.oracle_reward.mean()) if self.requests else 0.0

    @property
    def dead_hits(self) -> int:
        return int(self.dead.sum())

    @property
    def failures(self) -> int:
        return int((~self.success).sum())

    @property
    def cache_hit_rate(self) -> float:
        return float(self.cache_hit.mean()) if self.requests else 0.0

    @property
    def total_cost(self) -> float:
        return float(self.cost.sum())

    def summary(self) -> list[ModelSummary]:
        """Per-model totals, in scenario order."""
        rows = []
        for i, name in enumerate(self.model_names):
            mask = self.chosen == i
            n = int(mask.sum())
            rows.append(
                ModelSummary(
                    name=name,
                    requests=n,
                    share=n / self.requests if self.requests else 0.0,
                    mean_reward=float(self.reward[mask].mean()) if n else float("nan"),
                    mean_expected_reward=(
                        float(self.expected_reward[mask].mean()) if n else float("nan")
                    ),
                    success_rate=float(self.success[mask].mean()) if n else float("nan"),
                    dead_hits=int(self.dead[mask].sum()),
                    cache_hits=int(self.cache_hit[mask].sum()),
                    cost=float(self.cost[mask].sum()),
                )
            )
        return rows

    def timeline(self, bins: int = 50) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """``(x, reward, oracle, share)`` per bin: x is the bin's middle as a
        fraction of the run, share has shape (bins, models)."""
        bins = max(1, min(bins, self.requests))
        edges = np.linspace(0, self.requests, bins + 1).astype(np.int64)
        x = np.empty(bins)
        rew = np.empty(bins)
        ora = np.empty(bins)
        share = np.zeros((bins, len(self.model_names)))
        for b in range(bins):
            lo, hi = int(edges[b]), int(max(edges[b + 1], edges[b] + 1))
            x[b] = (lo + hi) / 2 / self.requests
            rew[b] = self.reward[lo:hi].mean()
            ora[b] = self.oracle_reward[lo:hi].mean()
            counts = np.bincount(self.chosen[lo:hi], minlength=len(self.model_names))
            share[b] = counts / counts.sum()
        return x, rew, ora, share

    def binned(self, values: FloatArray, bins: int = 50) -> FloatArray:
        """Means of a per-request array over the same bins as :meth:`timeline`."""
        bins = max(1, min(bins, self.requests))
        edges = np.linspace(0, self.requests, bins + 1).astype(np.int64)
        return np.array(
            [values[int(lo) : int(max(hi, lo + 1))].mean() for lo, hi in itertools.pairwise(edges)]
        )

    def to_dict(self) -> dict[str, Any]:
        """Totals and per-model summaries, JSON-ready."""
        return {
            "scenario": self.scenario,
            "strategy": self.strategy,
            "seed": self.seed,
            "requests": self.requests,
            "mean_reward": self.mean_reward,
            "mean_oracle_reward": self.mean_oracle_reward,
            "mean_oracle_realised_reward": self.mean_oracle_realised_reward,
            "cumulative_regret": self.cumulative_regret,
            "failures": self.failures,
            "dead_hits": self.dead_hits,
            "cache_hit_rate": self.cache_hit_rate,
            "total_cost": self.total_cost,
            "models": [vars(s) for s in self.summary()],
        }

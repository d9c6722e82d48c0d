"""Replayable simulation of LLM providers, driving a real :class:`ModelRegistry`.

Used by ``orchestrator simulate`` and by the selection-quality benchmark. The
API below is stable; extend it, do not change it.

Truth
    :class:`ModelProfile` is one simulated model: success probability, a
    lognormal latency (median ``latency_s``, shape ``latency_sigma``), prices
    per million tokens, a lognormal output length and a quality score in
    [0, 1] (observed with noise). :class:`Change` alters one model's truth for
    a window of the run, given as fractions of the run (``0.5, 1.0`` is the
    second half): an absolute ``success_rate`` (``0`` is an outage), a
    ``latency_factor`` (slow-down) or a new ``quality`` (drift).

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

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Optional, Protocol, Union, runtime_checkable

import numpy as np
import numpy.typing as npt

from orchestrator.core.model import CallResult, Model, ModelCapabilities, ModelCost, Prompt
from orchestrator.errors import ProviderConnectionError, ServerError
from orchestrator.models.model_registry import (
    SELECTORS,
    ModelRegistry,
    ModelSelector,
    RewardWeights,
)

if TYPE_CHECKING:
    from orchestrator.core.cache import ModelCache
    from orchestrator.models.health_monitor import ModelHealthMonitor

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

__all__ = [
    "SCENARIOS",
    "Change",
    "FunctionPolicy",
    "ModelProfile",
    "ModelSummary",
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

_GRID = 64  # quantile points per random variable for expectations
_Z = np.array([NormalDist().inv_cdf((i + 0.5) / _GRID) for i in range(_GRID)])
#: Latency of an answer served from the cache, in seconds.
CACHE_LATENCY_S = 0.001


# ----- truth ---------------------------------------------------------------------


@dataclass(frozen=True)
class ModelProfile:
    """The truth of one simulated model (before any :class:`Change`)."""

    name: str
    success_rate: float = 0.98
    latency_s: float = 1.0
    latency_sigma: float = 0.35
    input_per_million: float = 1.0
    output_per_million: float = 2.0
    output_tokens: float = 300.0
    quality: float = 0.8
    quality_noise: float = 0.08
    capabilities: tuple[str, ...] = ("text_generation", "chat", "supports_streaming")
    context_length: int = 128_000
    speed: Optional[float] = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.success_rate <= 1.0:
            raise ValueError(f"{self.name}: success_rate must be in [0, 1]")
        if self.latency_s <= 0 or self.latency_sigma < 0 or self.output_tokens <= 0:
            raise ValueError(f"{self.name}: latency_s and output_tokens must be > 0")
        if not 0.0 <= self.quality <= 1.0:
            raise ValueError(f"{self.name}: quality must be in [0, 1]")

    @property
    def cost(self) -> ModelCost:
        return ModelCost(
            input_per_million=self.input_per_million, output_per_million=self.output_per_million
        )

    @property
    def model_capabilities(self) -> ModelCapabilities:
        flags = {name: True for name in self.capabilities}
        return ModelCapabilities(context_length=self.context_length, **flags)


@dataclass(frozen=True)
class Change:
    """A change of one model's truth during ``[start, end)`` (fractions of the run)."""

    model: str
    start: float
    end: float
    success_rate: Optional[float] = None
    latency_factor: float = 1.0
    quality: Optional[float] = None
    label: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.start < self.end <= 1.0:
            raise ValueError(f"change of {self.model}: need 0 <= start < end <= 1")


@dataclass(frozen=True)
class Scenario:
    """Models, their changes, and the request stream."""

    name: str
    description: str
    models: tuple[ModelProfile, ...]
    changes: tuple[Change, ...] = ()
    requests: int = 5000
    max_cost: Optional[float] = None
    #: The request size ``max_cost`` is checked for (passed to ``select``).
    budget_tokens: tuple[int, int] = (1000, 500)
    capabilities: tuple[str, ...] = ()
    interarrival_s: float = 0.5
    input_tokens: float = 400.0
    input_sigma: float = 0.6
    output_sigma: float = 0.4
    repeat_share: float = 0.0
    prompt_pool: int = 200

    def __post_init__(self) -> None:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"scenario {self.name}: model names must be unique and non-empty")
        for change in self.changes:
            if change.model not in names:
                raise ValueError(f"scenario {self.name}: change of unknown model {change.model!r}")
        if not 0.0 <= self.repeat_share < 1.0:
            raise ValueError(f"scenario {self.name}: repeat_share must be in [0, 1)")

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]


def reward(
    weights: RewardWeights,
    success: Union[bool, BoolArray],
    latency: Union[float, FloatArray],
    cost: Union[float, FloatArray],
    quality: Union[float, FloatArray, None],
) -> Any:
    """The registry's reward of outcomes (scalars or numpy arrays): 0 for a
    failure, else the weighted mean of success, latency, cost and quality terms."""
    total = weights.success + weights.latency * weights.latency_ref_s / (
        weights.latency_ref_s + np.asarray(latency, dtype=np.float64)
    )
    total = total + weights.cost * weights.cost_ref_usd / (
        weights.cost_ref_usd + np.asarray(cost, dtype=np.float64)
    )
    weight = weights.success + weights.latency + weights.cost
    if quality is not None:
        total = total + weights.quality * np.asarray(quality, dtype=np.float64)
        weight += weights.quality
    value = np.clip(total / weight, 0.0, 1.0) * np.asarray(success, dtype=np.float64)
    return float(value) if np.ndim(value) == 0 else value


def _truth(
    scenario: Scenario, index: int, fraction: float
) -> tuple[float, float, float]:  # success, latency median, quality
    profile = scenario.models[index]
    success, latency, quality = profile.success_rate, profile.latency_s, profile.quality
    for change in scenario.changes:
        if change.model == profile.name and change.start <= fraction < change.end:
            if change.success_rate is not None:
                success = change.success_rate
            latency *= change.latency_factor
            if change.quality is not None:
                quality = change.quality
    return success, latency, quality


def _expected(
    scenario: Scenario,
    profile: ModelProfile,
    success: float,
    latency: float,
    quality: float,
    weights: RewardWeights,
) -> float:
    lat = latency * np.exp(profile.latency_sigma * _Z)
    e_lat = float(np.mean(weights.latency_ref_s / (weights.latency_ref_s + lat)))
    tokens_in = scenario.input_tokens * np.exp(scenario.input_sigma * _Z)
    tokens_out = profile.output_tokens * np.exp(scenario.output_sigma * _Z)
    cost = (
        tokens_in[:, None] * profile.input_per_million
        + tokens_out[None, :] * profile.output_per_million
    ) / 1e6
    e_cost = float(np.mean(weights.cost_ref_usd / (weights.cost_ref_usd + cost)))
    e_q = float(np.mean(np.clip(quality + profile.quality_noise * _Z, 0.0, 1.0)))
    total = (
        weights.success + weights.latency * e_lat + weights.cost * e_cost + weights.quality * e_q
    )
    weight = weights.success + weights.latency + weights.cost + weights.quality
    return success * total / weight


def expected_rewards(
    scenario: Scenario, requests: int, weights: Optional[RewardWeights] = None
) -> FloatArray:
    """True expected reward of every model at every request: shape (requests, models)."""
    weights = weights or RewardWeights()
    k = len(scenario.models)
    bounds = {0, requests}
    for change in scenario.changes:
        bounds.update({math.ceil(change.start * requests), math.ceil(change.end * requests)})
    edges = sorted(b for b in bounds if 0 <= b <= requests)
    out = np.empty((requests, k), dtype=np.float64)
    for lo, hi in itertools.pairwise(edges):
        if hi <= lo:
            continue
        fraction = lo / requests
        for i, profile in enumerate(scenario.models):
            s, lat, q = _truth(scenario, i, fraction)
            out[lo:hi, i] = _expected(scenario, profile, s, lat, q, weights)
    return out


def _truth_matrix(scenario: Scenario, requests: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    k = len(scenario.models)
    success = np.empty((requests, k))
    latency = np.empty((requests, k))
    quality = np.empty((requests, k))
    bounds = {0, requests}
    for change in scenario.changes:
        bounds.update({math.ceil(change.start * requests), math.ceil(change.end * requests)})
    edges = sorted(bounds)
    for lo, hi in itertools.pairwise(edges):
        for i in range(k):
            s, lat, q = _truth(scenario, i, lo / requests)
            success[lo:hi, i], latency[lo:hi, i], quality[lo:hi, i] = s, lat, q
    return success, latency, quality


# ----- scenarios -------------------------------------------------------------------


def _five_models() -> tuple[ModelProfile, ...]:
    return (
        ModelProfile("frontier-xl", 0.985, 2.4, 0.35, 5.0, 15.0, 350, 0.95, speed=60),
        ModelProfile("balanced-m", 0.98, 1.0, 0.35, 0.5, 1.5, 350, 0.86, speed=90),
        ModelProfile("fast-s", 0.97, 0.35, 0.30, 0.15, 0.6, 300, 0.72, speed=180),
        ModelProfile("local-7b", 0.90, 0.8, 0.45, 0.0, 0.0, 300, 0.55, speed=70),
        ModelProfile("reasoner-r", 0.96, 8.0, 0.40, 3.0, 12.0, 450, 0.97, speed=30),
    )


def _default() -> Scenario:
    return Scenario(
        name="default",
        description=(
            "Five models with different prices, speeds and quality; fast-s slows down "
            "sixfold from 30% to 55% of the run and balanced-m (the best) is down "
            "from 60% to 70%; a fifth of prompts repeat."
        ),
        models=_five_models(),
        changes=(
            Change("fast-s", 0.30, 0.55, latency_factor=6.0, label="slow-down"),
            Change("balanced-m", 0.60, 0.70, success_rate=0.0, label="outage"),
        ),
        requests=5000,
        repeat_share=0.2,
    )


def _stationary() -> Scenario:
    return Scenario(
        name="stationary",
        description="Five models with different success rates and latencies; nothing changes.",
        models=_five_models(),
        requests=5000,
    )


def _drift() -> Scenario:
    return Scenario(
        name="drift",
        description="Five models; the best (balanced-m) degrades halfway through the run.",
        models=_five_models(),
        changes=(
            Change(
                "balanced-m",
                0.5,
                1.0,
                success_rate=0.8,
                latency_factor=2.5,
                quality=0.7,
                label="drift",
            ),
        ),
        requests=5000,
    )


def _outage() -> Scenario:
    return Scenario(
        name="outage",
        description="Five models; the best (balanced-m) fails completely for a tenth of the run.",
        models=_five_models(),
        changes=(Change("balanced-m", 0.45, 0.55, success_rate=0.0, label="outage"),),
        requests=5000,
    )


def _price_constrained() -> Scenario:
    premium = ModelProfile("premium-xl", 0.995, 0.5, 0.3, 10.0, 40.0, 350, 0.99, speed=150)
    return Scenario(
        name="price_constrained",
        description=(
            "Six models; the best (premium-xl) costs more than max_cost=$0.01 per request, "
            "so the right answer is the best of the others."
        ),
        models=(premium, *_five_models()),
        max_cost=0.01,
        requests=5000,
    )


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "default": _default,
    "stationary": _stationary,
    "drift": _drift,
    "outage": _outage,
    "price_constrained": _price_constrained,
}


def get_scenario(name: str) -> Scenario:
    """The built-in scenario called ``name`` (see :data:`SCENARIOS`)."""
    try:
        return SCENARIOS[name]()
    except KeyError:
        raise ValueError(
            f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}"
        ) from None


# ----- simulated models ------------------------------------------------------------


class SimulatedModel(Model):
    """A model that answers from its :class:`ModelProfile`, with no network.

    Calls fail with probability ``1 - success_rate``; ``sleep_scale`` scales
    the simulated latency into a real ``asyncio.sleep`` (0: no sleeping).
    """

    def __init__(
        self,
        name: str,
        profile: Optional[ModelProfile] = None,
        *,
        seed: int = 0,
        sleep_scale: float = 0.0,
        priced: bool = True,
    ) -> None:
        profile = replace(profile, name=name) if profile else ModelProfile(name)
        super().__init__(
            name,
            "simulated",
            profile.model_capabilities,
            profile.cost if priced else None,
            speed=profile.speed,
        )
        self.profile = profile
        self.sleep_scale = float(sleep_scale)
        self._rng = np.random.default_rng(seed)

    def _draw(self, prompt: Prompt) -> tuple[str, int, float]:
        p = self.profile
        latency = float(p.latency_s * np.exp(p.latency_sigma * self._rng.standard_normal()))
        if self._rng.random() >= p.success_rate:
            raise ServerError("simulated failure", model=self.name, status_code=503)
        tokens = max(1, round(p.output_tokens * float(np.exp(0.4 * self._rng.standard_normal()))))
        text = prompt if isinstance(prompt, str) else str(prompt[-1].get("content", ""))
        answer = (
            f"[{self.name}] simulated answer to {text[:60]!r}: quality {p.quality:.2f}, "
            f"{tokens} tokens, {latency:.2f}s."
        )
        return answer, tokens, latency

    async def generate_response(self, prompt: Prompt, **kwargs: Any) -> str:
        """A simulated answer (or a :class:`ServerError`)."""
        answer, tokens, latency = self._draw(prompt)
        if self.sleep_scale > 0:
            await asyncio.sleep(latency * self.sleep_scale)
        Model.record_usage(output_tokens=tokens)
        return answer

    async def stream_response(self, prompt: Prompt, **kwargs: Any) -> AsyncIterator[str]:
        """The simulated answer, word by word."""
        answer, tokens, latency = self._draw(prompt)
        words = answer.split(" ")
        for i, word in enumerate(words):
            if self.sleep_scale > 0:
                await asyncio.sleep(latency * self.sleep_scale / len(words))
            yield word if i == 0 else " " + word
        Model.record_usage(output_tokens=tokens)

    async def health_check(self) -> bool:
        return self.profile.success_rate > 0


# ----- policies --------------------------------------------------------------------


@runtime_checkable
class Policy(Protocol):
    """A non-registry selection policy: arms index ``scenario.models``."""

    def choose(self, t: int) -> int: ...

    def update(self, arm: int, reward: float) -> None: ...


@dataclass
class FunctionPolicy:
    """A :class:`Policy` from two callables."""

    choose_fn: Callable[[int], int]
    update_fn: Callable[[int, float], None]

    def choose(self, t: int) -> int:
        return self.choose_fn(t)

    def update(self, arm: int, reward: float) -> None:
        self.update_fn(arm, reward)


class RandomPolicy:
    """Uniformly random among ``arms``."""

    def __init__(self, arms: Sequence[int], seed: int = 0) -> None:
        self.arms = list(arms)
        self._rng = np.random.default_rng(seed)

    def choose(self, t: int) -> int:
        return self.arms[int(self._rng.integers(len(self.arms)))]

    def update(self, arm: int, reward: float) -> None:
        return None


class _OraclePolicy:
    def __init__(self, expected: FloatArray, eligible: Sequence[int]) -> None:
        self._expected = expected[:, list(eligible)]
        self._eligible = list(eligible)

    def choose(self, t: int) -> int:
        return self._eligible[int(np.argmax(self._expected[t]))]

    def update(self, arm: int, reward: float) -> None:
        return None


# ----- results ---------------------------------------------------------------------


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

    def to_dict(self) -> dict[str, Any]:
        """Totals and per-model summaries, JSON-ready."""
        return {
            "scenario": self.scenario,
            "strategy": self.strategy,
            "seed": self.seed,
            "requests": self.requests,
            "mean_reward": self.mean_reward,
            "mean_oracle_reward": self.mean_oracle_reward,
            "cumulative_regret": self.cumulative_regret,
            "failures": self.failures,
            "dead_hits": self.dead_hits,
            "cache_hit_rate": self.cache_hit_rate,
            "total_cost": self.total_cost,
            "models": [vars(s) for s in self.summary()],
        }


# ----- running ---------------------------------------------------------------------


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
    p_success, lat_median, quality_mean = _truth_matrix(scenario, n)
    oracle = expected[:, eligible].max(axis=1)

    policy: Optional[Policy] = None
    selector: Optional[ModelSelector] = None
    if isinstance(strategy, str) and strategy == "oracle":
        policy = _OraclePolicy(expected, eligible)
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
        eligible=eligible,
        registry=registry if policy is None else None,
    )


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

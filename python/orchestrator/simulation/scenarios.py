"""Scenarios: simulated models, the changes of their truth during a run, the request
stream, and the true expected reward of every model at every request.

:class:`Change` alters one model's truth for a window of the run, given as fractions
of the run (``0.5, 1.0`` is the second half): an absolute ``success_rate`` (``0`` is
an outage), a ``latency_factor`` (slow-down) or a new ``quality`` (drift).
:class:`Scenario` is models + changes + the request stream (inter-arrival time, input
tokens, share of repeated prompts, ``max_cost``). Built in (:data:`SCENARIOS`,
:func:`get_scenario`): ``default`` (the README demo), ``stationary``, ``drift``,
``outage``, ``price_constrained``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Optional, Union

import numpy as np
import numpy.typing as npt

from orchestrator.integrations.simulated_model import ModelProfile
from orchestrator.models.model_registry import RewardWeights

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_GRID = 64  # quantile points per random variable for expectations
_Z = np.array([NormalDist().inv_cdf((i + 0.5) / _GRID) for i in range(_GRID)])


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


def truth_matrix(scenario: Scenario, requests: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Success probability, median latency and mean quality of every model at every
    request, each of shape (requests, models)."""
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

"""Curve, APGR and CPT of a router on an evaluation table.

A point of the curve is the router's mean quality and mean cost over the
rows at one willingness to pay. Its *cost share* is the mean cost normalised
between the cheapest model alone (0) and the best model alone (1); with two
models it is the share of calls sent to the strong one, as in RouteLLM.
PGR (performance gap recovered) normalises quality the same way. APGR is the
trapezoid area under PGR against cost share, with the two models alone
added as the end points (0, 0) and (1, 1). CPT(p) is the smallest cost
share, in percent, at which the curve reaches PGR p.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.evaluation.table import EvalError, EvalTable


@dataclass(frozen=True)
class CurvePoint:
    willingness_to_pay: float
    cost_share: float
    quality: float


@dataclass(frozen=True)
class Reference:
    """The cheapest model and the best (highest mean quality) model alone."""

    cheapest: str
    best: str
    cheapest_cost: float
    best_cost: float
    cheapest_quality: float
    best_quality: float

    @classmethod
    def of(cls, table: EvalTable, costs: Mapping[str, float]) -> Reference:
        means = {model: sum(values) / len(values) for model, values in table.qualities.items()}
        cheapest = min(table.models, key=lambda m: (costs[m], -means[m]))
        best = max(table.models, key=lambda m: (means[m], -costs[m]))
        if best == cheapest or means[best] <= means[cheapest]:
            raise EvalError(
                f"invalid table: the cheapest model {cheapest!r} is also the best, "
                "so there is no quality gap to recover"
            )
        if costs[best] <= costs[cheapest]:
            raise EvalError(
                f"invalid costs: the best model {best!r} costs no more than the cheapest"
            )
        return cls(cheapest, best, costs[cheapest], costs[best], means[cheapest], means[best])

    def cost_share(self, cost: float) -> float:
        """A model's cost normalised: 0 for the cheapest, 1 for the best model."""
        return (cost - self.cheapest_cost) / (self.best_cost - self.cheapest_cost)

    def recovered(self, quality: float) -> float:
        """PGR of a mean quality."""
        return (quality - self.cheapest_quality) / (self.best_quality - self.cheapest_quality)


def curve_point(
    table: EvalTable,
    costs: Mapping[str, float],
    reference: Reference,
    choices: Sequence[str],
    willingness_to_pay: float,
) -> CurvePoint:
    """The point of one operating point's choices (one model name per row)."""
    if len(choices) != len(table):
        raise EvalError(f"invalid decisions: {len(choices)} choices for {len(table)} rows")
    shares = math.fsum(reference.cost_share(costs[model]) for model in choices)
    quality = math.fsum(table.qualities[model][row] for row, model in enumerate(choices))
    n = len(table)
    return CurvePoint(willingness_to_pay, shares / n, quality / n)


def _normalised(points: Sequence[CurvePoint], reference: Reference) -> list[tuple[float, float]]:
    """(cost share clipped to [0, 1], PGR) with the end points, by cost share."""
    inner = [(min(max(p.cost_share, 0.0), 1.0), reference.recovered(p.quality)) for p in points]
    return sorted([(0.0, 0.0), *inner, (1.0, 1.0)])


def apgr(points: Sequence[CurvePoint], reference: Reference) -> float:
    """Area under PGR against cost share (trapezoid rule, end points added)."""
    curve = _normalised(points, reference)
    return sum((x1 - x0) * (y0 + y1) / 2.0 for (x0, y0), (x1, y1) in itertools.pairwise(curve))


def call_to_best_for_recovery(
    points: Sequence[CurvePoint], reference: Reference, target: float
) -> float:
    """CPT: the cost share (percent) where the curve first reaches PGR ``target``,
    interpolated linearly between operating points."""
    curve = _normalised(points, reference)
    for (x0, y0), (x1, y1) in itertools.pairwise(curve):
        if y1 >= target:
            if y0 >= target:
                return 100.0 * x0
            return 100.0 * (x0 + (x1 - x0) * (target - y0) / (y1 - y0))
    return 100.0


def random_router_apgr(
    table: EvalTable, costs: Mapping[str, float], reference: Reference, points: int, seed: int
) -> float:
    """APGR of a router that sends each row to the best model with
    probability k/(points-1), else to the cheapest."""
    rng = random.Random(seed)
    curve = []
    for k in range(points):
        share = k / (points - 1)
        choices = [
            reference.best if rng.random() < share else reference.cheapest
            for _ in range(len(table))
        ]
        curve.append(curve_point(table, costs, reference, choices, float("nan")))
    return apgr(curve, reference)

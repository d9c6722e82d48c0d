"""The ``calibrated`` and ``online`` evaluation protocols.

``calibrated``: rows are split into K seeded folds; each row is decided by a
router calibrated on the other folds only (greedy decisions). The operating
points are quantiles of the rows' break-even willingness to pay, so they
spread evenly from "always the cheapest model" to "always the model with the
highest predicted quality".

``online``: the rows in a seeded random order, each decided before its
outcome is revealed, and only the chosen model's quality is reported back
(bandit feedback, single pass, no calibration), once per operating point.
The operating points cover the quality differences a decision can weigh,
geometrically from above 1 (always the cheapest) down to 0.01, and a last
point that ignores cost.
"""

from __future__ import annotations

import dataclasses
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Optional

from orchestrator.evaluation.metrics import (
    CurvePoint,
    Reference,
    apgr,
    call_to_best_for_recovery,
    curve_point,
    random_router_apgr,
)
from orchestrator.evaluation.table import EvalError, EvalTable, check_costs
from orchestrator.routing import ContextualRouter, ContextualSelector, Decision

Protocol = Literal["calibrated", "online"]

Progress = Callable[[int], None]
"""Called with the number of decisions just made."""

ONLINE_SMALLEST_GAP = 1e-2
"""The smallest quality difference the online operating points weigh against
cost before the last point, which ignores cost (differences below 0.01 of
quality are not worth resolving)."""


MAX_POINTS = 1000
"""Most operating points one evaluation draws: a cost curve needs tens, and
each point decides every row again (work and memory grow with points × rows)."""


@dataclass(frozen=True)
class EvalResult:
    protocol: Protocol
    models: list[str]
    reference: Reference
    curve: list[CurvePoint]
    decisions: list[list[str]]
    """``decisions[point][row]``: the model chosen for the row at that operating point."""
    apgr: float
    cpt50: float
    cpt80: float
    random_apgr: float
    decision_us: float
    """Median microseconds of one routing decision (featurize + score + choose)."""

    def summary(self) -> dict[str, object]:
        """The ``--json`` document."""
        return {
            "protocol": self.protocol,
            "apgr": self.apgr,
            "cpt50": self.cpt50,
            "cpt80": self.cpt80,
            "random_apgr": self.random_apgr,
            "curve": [dataclasses.asdict(point) for point in self.curve],
            "decision_us": self.decision_us,
            "cheapest_model": self.reference.cheapest,
            "best_model": self.reference.best,
        }


def total_decisions(rows: int, points: int) -> int:
    """Decisions an evaluation makes, for a progress bar."""
    return rows * points


def _folds(rows: int, folds: int, seed: int) -> list[list[int]]:
    order = list(range(rows))
    random.Random(seed).shuffle(order)
    return [sorted(order[k::folds]) for k in range(folds)]


def _calibrated_grid(
    predictions: Sequence[Sequence[float]], costs: Sequence[float], points: int
) -> list[float]:
    """Willingness-to-pay values at quantiles of the rows' break-even values."""
    cheapest = min(range(len(costs)), key=costs.__getitem__)
    switch: list[float] = []
    ceiling = 0.0
    for predicted in predictions:
        row = [
            (costs[m] - costs[cheapest]) / (predicted[m] - predicted[cheapest])
            for m in range(len(costs))
            if predicted[m] > predicted[cheapest] and costs[m] > costs[cheapest]
        ]
        pairs = [
            (costs[a] - costs[b]) / (predicted[a] - predicted[b])
            for a in range(len(costs))
            for b in range(len(costs))
            if costs[a] > costs[b] and predicted[a] > predicted[b]
        ]
        if row:
            switch.append(min(row))
            ceiling = max(ceiling, *pairs)
    if not switch:
        return [1.0] * points
    switch.sort()
    floor = switch[0] / 2.0
    inner = [
        switch[min(len(switch) - 1, len(switch) * k // (points - 1))] for k in range(1, points - 1)
    ]
    return [floor, *inner, ceiling * 2.0]


def _online_grid(costs: Sequence[float], points: int) -> list[float]:
    """Willingness-to-pay values whose quality thresholds run from above 1 to ~0."""
    spread = sorted({c - min(costs) for c in costs if c > min(costs)})
    smallest, largest = spread[0], spread[-1]
    start = 1.01 * largest / smallest
    grid = [
        largest / (start * ONLINE_SMALLEST_GAP ** (k / (points - 2))) for k in range(points - 1)
    ]
    return [*grid, largest * 1e6]


def evaluate(
    table: EvalTable,
    costs: Mapping[str, float],
    *,
    protocol: Protocol = "calibrated",
    folds: int = 2,
    seed: int = 0,
    points: int = 11,
    selector: Optional[ContextualSelector] = None,
    progress: Optional[Progress] = None,
) -> EvalResult:
    """Evaluate the contextual router on ``table`` (see the module docstring)."""
    check_costs(table, costs)
    if protocol not in ("calibrated", "online"):
        raise EvalError(f"invalid protocol: {protocol!r}; choose 'calibrated' or 'online'")
    if isinstance(points, bool) or not isinstance(points, int) or not 3 <= points <= MAX_POINTS:
        raise EvalError(f"invalid points: {points!r} (need 3 to {MAX_POINTS} operating points)")
    if protocol == "calibrated" and (
        isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= len(table)
    ):
        raise EvalError(f"invalid folds: {folds!r} (need 2 ≤ folds ≤ {len(table)} rows)")
    try:
        seeded = ContextualSelector(seed=seed)  # the core's check of a seed, named
    except (TypeError, ValueError) as exc:
        raise EvalError(str(exc)) from None
    reference = Reference.of(table, costs)
    models = table.models
    model_costs = {model: costs[model] for model in models}
    selector = selector or seeded
    tick = progress or (lambda _: None)
    timings: list[int] = []
    if protocol == "calibrated":
        grid, decisions = _run_calibrated(
            table, model_costs, folds, seed, points, selector, tick, timings
        )
    else:
        grid, decisions = _run_online(table, model_costs, seed, points, selector, tick, timings)
    curve = [
        curve_point(table, costs, reference, choices, wtp) for wtp, choices in zip(grid, decisions)
    ]
    return EvalResult(
        protocol=protocol,
        models=models,
        reference=reference,
        curve=curve,
        decisions=decisions,
        apgr=apgr(curve, reference),
        cpt50=call_to_best_for_recovery(curve, reference, 0.5),
        cpt80=call_to_best_for_recovery(curve, reference, 0.8),
        random_apgr=random_router_apgr(table, costs, reference, points, seed),
        decision_us=statistics.median(timings) / 1000.0,
    )


def _timed_decide(
    router: ContextualRouter, prompt: str, wtp: float, record: bool, timings: list[int]
) -> Decision:
    """One decision, its nanoseconds appended to ``timings``."""
    started = time.perf_counter_ns()
    decision = router.decide(prompt, willingness_to_pay=wtp, record=record)
    timings.append(time.perf_counter_ns() - started)
    return decision


def _run_calibrated(
    table: EvalTable,
    costs: Mapping[str, float],
    folds: int,
    seed: int,
    points: int,
    selector: ContextualSelector,
    tick: Progress,
    timings: list[int],
) -> tuple[list[float], list[list[str]]]:
    greedy = dataclasses.replace(selector, exploration="greedy")
    routers: list[tuple[list[int], ContextualRouter]] = []
    predictions: list[list[float]] = []
    for held_out in _folds(len(table), folds, seed):
        held = set(held_out)
        training = table.subset([row for row in range(len(table)) if row not in held])
        router = ContextualRouter(table.models, costs=costs, selector=greedy)
        router.calibrate(training.prompts, training.qualities)
        routers.append((held_out, router))
        for row in held_out:
            predictions.append([p.quality for p in router.predict(table.prompts[row])])
    grid = _calibrated_grid(predictions, [costs[m] for m in table.models], points)
    decisions = [[""] * len(table) for _ in grid]
    for held_out, router in routers:
        for row in held_out:
            prompt = table.prompts[row]
            for point, wtp in enumerate(grid):
                decisions[point][row] = _timed_decide(router, prompt, wtp, False, timings).model
            tick(len(grid))
    return grid, decisions


def _run_online(
    table: EvalTable,
    costs: Mapping[str, float],
    seed: int,
    points: int,
    selector: ContextualSelector,
    tick: Progress,
    timings: list[int],
) -> tuple[list[float], list[list[str]]]:
    grid = _online_grid([costs[m] for m in table.models], points)
    order = list(range(len(table)))
    random.Random(seed).shuffle(order)
    decisions = [[""] * len(table) for _ in grid]
    for point, wtp in enumerate(grid):
        router = ContextualRouter(table.models, costs=costs, selector=selector)
        for row in order:
            decision = _timed_decide(router, table.prompts[row], wtp, True, timings)
            assert decision.request_id is not None
            router.report_quality(decision.request_id, table.qualities[decision.model][row])
            decisions[point][row] = decision.model
        tick(len(table))
    return grid, decisions

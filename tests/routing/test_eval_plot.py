"""The plot ``orchestrator eval -o`` draws (issue 13: "the router's curve, the
random router's line, each model alone"), read back from the figure: the
router's line through every operating point, the random router's straight
line from the cheapest model alone to the best model alone, and one point per
model at its cost share and mean quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.lines import Line2D

from orchestrator.evaluation import evaluate, load_table
from orchestrator.evaluation.plot import curve_figure
from tests.routing.test_eval import COSTS, write_table

pytestmark = pytest.mark.timeout(60)


def data(line: Line2D) -> tuple[list[float], list[float]]:
    """A line's x and y values."""
    return np.asarray(line.get_xdata()).tolist(), np.asarray(line.get_ydata()).tolist()


def test_the_plot_shows_the_curve_the_random_router_and_each_model(tmp_path: Path) -> None:
    table = load_table(write_table(tmp_path / "t.csv", rows=60), list(COSTS))
    result = evaluate(table, COSTS, points=5)
    [axes] = curve_figure(result, table, COSTS).axes
    lines = {str(line.get_label()): line for line in axes.get_lines()}
    [router] = [line for label, line in lines.items() if label.startswith("contextual router")]
    assert data(router) == (
        [p.cost_share for p in result.curve],
        [p.quality for p in result.curve],
    )
    [random_line] = [line for label, line in lines.items() if label.startswith("random router")]
    reference = result.reference
    assert data(random_line) == (
        [0.0, 1.0],
        [reference.cheapest_quality, reference.best_quality],
    )
    points = {
        str(c.get_label()): tuple(np.asarray(c.get_offsets())[0].tolist())
        for c in axes.collections
        if isinstance(c, PathCollection)
    }
    assert points == {
        f"{model} alone": (
            pytest.approx(reference.cost_share(COSTS[model])),
            pytest.approx(sum(table.qualities[model]) / len(table)),
        )
        for model in COSTS
    }

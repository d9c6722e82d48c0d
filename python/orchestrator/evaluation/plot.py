"""The plot of ``orchestrator eval -o``: the router's quality against cost
share, the random router's line between the cheapest and the best model, and
each model alone. Its own module so that only a command writing a plot
imports matplotlib."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from matplotlib.figure import Figure

from orchestrator.evaluation.protocol import EvalResult
from orchestrator.evaluation.table import EvalTable


def image_formats() -> dict[str, str]:
    """The image suffixes (without the dot) matplotlib writes, with their names."""
    formats: dict[str, str] = Figure().canvas.get_supported_filetypes()
    return formats


def curve_figure(result: EvalResult, table: EvalTable, costs: Mapping[str, float]) -> Figure:
    """The curve plot: the router's quality against cost share, the random
    router's line between the cheapest and the best model, and each model
    alone (a labelled point)."""
    reference = result.reference
    figure = Figure(figsize=(7, 4.5))
    axes = figure.subplots()
    shares = [point.cost_share for point in result.curve]
    qualities = [point.quality for point in result.curve]
    axes.plot(
        shares,
        qualities,
        marker="o",
        label=f"contextual router ({result.protocol}), APGR {result.apgr:.3f}",
    )
    axes.plot(
        [0.0, 1.0],
        [reference.cheapest_quality, reference.best_quality],
        linestyle="--",
        color="grey",
        label=f"random router, APGR {result.random_apgr:.3f}",
    )
    for model, values in table.qualities.items():
        axes.scatter(
            [reference.cost_share(costs[model])],
            [sum(values) / len(values)],
            marker="s",
            s=60,
            zorder=3,
            label=f"{model} alone",
        )
    axes.set_xlabel("cost share (0 = cheapest model alone, 1 = best model alone)")
    axes.set_ylabel("mean quality")
    axes.set_title(f"Quality vs cost: CPT(50%) {result.cpt50:.1f}%, CPT(80%) {result.cpt80:.1f}%")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return figure


def plot_result(
    result: EvalResult, table: EvalTable, costs: Mapping[str, float], output: Path
) -> Path:
    """Write the curve plot to ``output`` (its suffix says the format) and return the path."""
    curve_figure(result, table, costs).savefig(output, dpi=120)
    return output

"""The picture of a simulated run: reward over time against the oracle, and each
model's share of the traffic. Each model keeps its colour in every scenario."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never open a window

import matplotlib.pyplot as plt
from matplotlib import colormaps

from orchestrator.routing.scenario import PolicyRun
from orchestrator.simulation import SCENARIOS, Scenario, SimulationResult


def model_colours(names: list[str]) -> list[tuple[float, float, float, float]]:
    """One colour per model name, the same in every scenario: the built-in
    scenarios' models take the first colours in order of first appearance."""
    known: list[str] = []
    for build in SCENARIOS.values():
        known.extend(n for n in build().model_names if n not in known)
    known.extend(n for n in names if n not in known)
    palette = colormaps["tab10"]
    return [palette(known.index(n) % palette.N) for n in names]


def plot_simulation(result: SimulationResult, scenario: Scenario, output: Path) -> Path:
    """Draw ``result`` into ``output`` (PNG, SVG or PDF); returns its absolute path."""
    x, reward, oracle, share = result.timeline(bins=60)
    realised = result.binned(result.oracle_realised_reward, bins=60)
    x = x * result.requests
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6.5), sharex=True, gridspec_kw={"height_ratios": [1, 1.2]}
    )
    for change in scenario.changes:
        for axis in (top, bottom):
            axis.axvspan(change.start * result.requests, change.end * result.requests,
                         color="0.85", zorder=0)  # fmt: skip
        top.text(
            (change.start + change.end) / 2 * result.requests, 1.0,
            f"{change.model}\n{change.label}", ha="center", va="top", fontsize=8,
        )  # fmt: skip
    top.plot(x, oracle, color="0.4", linestyle=":", linewidth=1.2,
             label="oracle, expected (mean of the best model's truth, no cache)")  # fmt: skip
    top.plot(x, realised, color="black", linestyle="--", linewidth=1.2,
             label="oracle, realised (same requests, draws and cache)")  # fmt: skip
    top.plot(x, reward, color="tab:blue", linewidth=1.8, label=f"{result.strategy}, realised")
    top.set_ylabel("mean reward")
    low = float(min(reward.min(), oracle.min(), realised.min()))
    top.set_ylim(max(0.0, low - 0.1), 1.02)
    top.legend(loc="lower left", fontsize=7)
    top.set_title(
        f"orchestrator simulate: {result.scenario}, {result.strategy}, seed {result.seed} "
        f"(regret {result.cumulative_regret:.1f}, dead-model hits {result.dead_hits}, "
        f"cache hits {result.cache_hit_rate:.0%})",
        fontsize=10,
    )
    bottom.stackplot(
        x, share.T, labels=result.model_names, colors=model_colours(result.model_names), alpha=0.9
    )
    bottom.set_ylabel("traffic share")
    bottom.set_ylim(0, 1)
    bottom.set_xlabel("request")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output.resolve()


def plot_prompt_mix(runs: list[PolicyRun], requests: int, output: Path) -> Path:
    """Each policy's cumulative regret over the requests of ``prompt_mix``
    (how fast it learns), into ``output``; returns its absolute path."""
    figure, axis = plt.subplots(figsize=(10, 6), dpi=100)
    for run in runs:
        step = requests / len(run.regret)
        xs = [step * (i + 1) for i in range(len(run.regret))]
        width = 2.5 if run.policy == "contextual" else 1.2
        axis.plot(xs, run.regret, label=run.policy, linewidth=width)
    axis.set_xlabel("requests")
    axis.set_ylabel("cumulative regret (expected value)")
    axis.set_yscale("symlog")
    axis.set_title("prompt_mix: the contextual strategy against every other policy")
    axis.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    figure.savefig(output)
    plt.close(figure)
    return output.resolve()

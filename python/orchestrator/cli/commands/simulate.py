"""``orchestrator simulate``: a real registry over simulated models, no API key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orchestrator import simulation
from orchestrator.cli.app import EXIT_USAGE, CLIError, app
from orchestrator.cli.output import (
    console,
    err_console,
    money,
    number,
    print_table,
    table,
    write_json,
)
from orchestrator.core.cache import ModelCache
from orchestrator.models.model_registry import SELECTORS
from orchestrator.routing.scenario import PolicyRun, run_prompt_mix

#: Where the plot goes unless ``--output`` says otherwise (the working directory).
DEFAULT_PLOT = Path("orchestrator-simulation.png")
#: The seed of the README's example and of scripts/demo.sh.
DEFAULT_SEED = 0


#: The registry's strategy names, then the simulation's own baselines.
STRATEGIES = [*SELECTORS, "random", "oracle"]
PLOT_SUFFIXES = (".png", ".svg", ".pdf")
#: The scenario of prompt-aware routing: every policy runs through its own registry.
PROMPT_MIX = "prompt_mix"
SCENARIO_NAMES = [*simulation.SCENARIOS, PROMPT_MIX]
#: Requests of ``--scenario prompt_mix`` unless ``--requests`` says otherwise.
PROMPT_MIX_REQUESTS = 5000


def check_output(option: str, path: Path, suffixes: tuple[str, ...]) -> None:
    """Refuse an output path that cannot be written as asked (directories are never
    created: a typo in a path should not leave a new folder behind)."""
    if path.suffix.lower() not in suffixes:
        raise CLIError(f"{option} must end in {' or '.join(suffixes)}, got {path}", EXIT_USAGE)
    if path.is_dir():
        raise CLIError(f"{option} {path}: is a directory", EXIT_USAGE)
    if not path.parent.is_dir():
        raise CLIError(f"{option} {path}: the directory {path.parent} does not exist", EXIT_USAGE)


def progress_bar() -> Progress:
    """The progress bar of a simulation, on stderr."""
    return Progress(
        TextColumn("[bold]simulating[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


@app.command()
def simulate(
    scenario: Annotated[
        str,
        typer.Option("--scenario", "-s", help="One of: " + ", ".join(SCENARIO_NAMES) + "."),
    ] = "default",
    strategy: Annotated[
        str, typer.Option("--strategy", help=f"One of: {', '.join(STRATEGIES)}.")
    ] = "thompson",
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Random seed: same seed, same numbers.")
    ] = DEFAULT_SEED,
    requests: Annotated[
        Optional[int],
        typer.Option(
            "--requests",
            "-n",
            min=1,
            max=1_000_000,
            help="Requests to simulate. Default: the scenario's (5000 for every built-in one).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the plot (.png, .svg or .pdf).")
    ] = DEFAULT_PLOT,
    cache: Annotated[
        bool, typer.Option("--cache/--no-cache", help="Serve repeated prompts from a cache.")
    ] = True,
    json_path: Annotated[
        Optional[Path],
        typer.Option("--json", help="Also write the totals and per-model numbers as JSON."),
    ] = None,
) -> None:
    """Simulate requests through a real registry (no API key).

    Shows each model's traffic, reward and regret against an oracle, through
    slow-downs and outages, with the cache and the cost. ``--scenario
    prompt_mix`` compares the contextual strategy with every other one on
    prompts of several kinds (``--strategy`` does not apply).
    """
    if scenario not in SCENARIO_NAMES:
        raise CLIError(
            f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIO_NAMES)}",
            EXIT_USAGE,
        )
    if strategy not in STRATEGIES:
        raise CLIError(
            f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}", EXIT_USAGE
        )
    check_output("--output", output, PLOT_SUFFIXES)
    if json_path is not None:
        check_output("--json", json_path, (".json",))
    if scenario == PROMPT_MIX:
        simulate_prompt_mix(seed, requests or PROMPT_MIX_REQUESTS, output, json_path)
        return
    world = simulation.get_scenario(scenario)
    total = requests or world.requests
    model_cache = ModelCache(backend="memory", max_size=100_000) if cache else None
    with progress_bar() as progress:
        task = progress.add_task(f"{scenario} with {strategy}", total=total)
        result = simulation.run(
            world,
            strategy,
            seed=seed,
            requests=total,
            cache=model_cache,
            progress=lambda done: progress.update(task, completed=done),
            progress_every=max(1, total // 200),
        )
    print_simulation(world, result, model_cache is not None)
    # matplotlib takes about half a second to import: only this command needs it.
    from orchestrator.cli.plot import plot_simulation

    console.print(f"plot: {plot_simulation(result, world, output)}")
    if json_path is not None:
        write_json(json_path, result.to_dict())
        console.print(f"numbers: {json_path.resolve()}")


def print_simulation(
    scenario: simulation.Scenario, result: simulation.SimulationResult, cached: bool
) -> None:
    """The per-model table and the oracle footer."""
    console.print(f"[bold]{scenario.name}[/bold]: {scenario.description}")
    rows = table(
        f"{result.requests:,} requests, strategy {result.strategy}, seed {result.seed}",
        ["model", "traffic", "mean reward", "regret", "dead hits", "cache hits", "cost"],
        numeric=["traffic", "mean reward", "regret", "dead hits", "cache hits", "cost"],
    )
    for i, row in enumerate(result.summary()):
        regret = float(result.regret[result.chosen == i].sum())
        name = row.name if i in result.eligible else f"{row.name} (over max_cost)"
        rows.add_row(
            name,
            f"{row.share:.1%}",
            number(row.mean_reward, ".3f"),
            f"{regret:.1f}",
            str(row.dead_hits),
            str(row.cache_hits),
            money(row.cost),
        )
    rows.add_section()
    rows.add_row(
        "all",
        "100.0%",
        f"{result.mean_reward:.3f}",
        f"{result.cumulative_regret:.1f}",
        str(result.dead_hits),
        f"{result.cache_hit_rate:.1%}" if cached else "off",
        money(result.total_cost),
        style="bold",
    )
    print_table(rows)
    console.print(
        f"oracle (knew every model's truth): mean reward {result.mean_oracle_realised_reward:.3f} "
        f"realised on the same requests{' and cache' if cached else ''} "
        f"(= --strategy oracle), {result.mean_oracle_reward:.3f} expected. "
        f"Regret = the oracle's expected reward - the chosen model's, summed over requests "
        f"({result.cumulative_regret / result.requests:.4f} per request); "
        f"failed requests {result.failures}."
    )


def simulate_prompt_mix(seed: int, requests: int, output: Path, json_path: Optional[Path]) -> None:
    """Run :func:`~orchestrator.routing.scenario.run_prompt_mix` with a
    progress bar; print the policies' table, plot their regret curves."""
    policies = 9  # contextual (with and without the prompt), 4 bandits, 3 single models
    checkpoints = 10 if requests >= 10 else 1
    with progress_bar() as progress:
        task = progress.add_task(f"{PROMPT_MIX}, every policy", total=requests * policies)
        runs = run_prompt_mix(
            requests,
            seed=seed,
            checkpoints=checkpoints,
            progress=lambda done: progress.update(task, completed=done),
        )
    print_prompt_mix(runs, requests, seed)
    # matplotlib takes about half a second to import: only this command needs it.
    from orchestrator.cli.plot import plot_prompt_mix

    console.print(f"plot: {plot_prompt_mix(runs, requests, output)}")
    if json_path is not None:
        write_json(
            json_path,
            {
                "scenario": PROMPT_MIX,
                "seed": seed,
                "requests": requests,
                "policies": [run.__dict__ for run in runs],
            },
        )
        console.print(f"numbers: {json_path.resolve()}")


def print_prompt_mix(runs: list[PolicyRun], requests: int, seed: int) -> None:
    """One row per policy: regret, quality, cost, traffic, and how fast it learns."""
    console.print(
        f"[bold]{PROMPT_MIX}[/bold]: math, chat, code and translation prompts; small is best "
        "for chat, coder for code, large for the rest (value = quality - cost / 0.2 USD)"
    )
    models = list(runs[0].choices)
    rows = table(
        f"{requests:,} requests, seed {seed}, each policy through its own registry",
        ["policy", "regret", "first tenth", "last tenth", "mean quality", "mean cost", *models],
        numeric=["regret", "first tenth", "last tenth", "mean quality", "mean cost", *models],
    )
    for run in runs:
        first = run.regret[0]
        last = run.regret[-1] - (run.regret[-2] if len(run.regret) > 1 else 0.0)
        rows.add_row(
            run.policy,
            f"{run.regret[-1]:.1f}",
            f"{first:.1f}",
            f"{last:.1f}",
            f"{run.mean_quality:.3f}",
            money(run.mean_cost),
            *(f"{run.choices[m] / requests:.1%}" for m in models),
        )
    print_table(rows)
    best_other = min(
        (run for run in runs if not run.policy.startswith("contextual")), key=lambda r: r.regret[-1]
    )
    contextual = runs[0]
    console.print(
        f"contextual regret {contextual.regret[-1]:.1f} vs {best_other.regret[-1]:.1f} for the "
        f"best non-contextual policy ({best_other.policy}), at "
        f"{money(contextual.mean_cost)} vs {money(best_other.mean_cost)} per request. "
        "Regret = the oracle's expected value - the chosen model's, summed; "
        "'first/last tenth' = regret added in the first and last tenth of the requests."
    )

"""``orchestrator models`` and ``orchestrator select``: the registered models and
which one a request would go to."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from orchestrator.cli import context
from orchestrator.cli.app import CLIError, app
from orchestrator.cli.output import console, money, number, print_table, table
from orchestrator.models.model_registry import NoEligibleModelsError


@app.command()
def models() -> None:
    """List the registered models, their tags and the routing aliases.

    From the configuration file, else the providers found in the environment.
    A deployment shows as ``name@deployment``; tags and aliases are listed
    under the table (as columns they would squeeze it past 80 columns).
    """
    registry = context.registry()
    rows = table(
        f"{len(registry)} models, strategy {registry.strategy}",
        ["name", "provider", "context", "$/M in", "$/M out", "speed", "capabilities"],
        numeric=["context", "$/M in", "$/M out", "speed"],
    )
    for model in registry:
        cost = model.cost
        length = model.capabilities.context_length
        rows.add_row(
            model.name,
            model.provider,
            f"{length:,}" if length else "?",
            "unpriced" if cost is None else f"{cost.input_per_million:g}",
            "unpriced" if cost is None else f"{cost.output_per_million:g}",
            "?" if model.speed is None else f"{model.speed:g}",
            ", ".join(model.capabilities.names()),
        )
    print_table(rows)
    tagged = [model for model in registry if model.tags]
    if tagged:
        console.print("tags:", highlight=False)
        for model in tagged:
            console.print(
                f"  {escape(model.name)}: {escape(', '.join(model.tags))}", highlight=False
            )
    aliases = registry.aliases()
    if aliases:
        console.print("routing aliases:", highlight=False)
        for alias, members in aliases.items():
            console.print(
                f"  {escape(alias)} → {escape(', '.join(registry.alias_members(alias)))}"
                f"  [dim](as given: {escape(', '.join(members))})[/dim]",
                highlight=False,
            )


@app.command()
def select(
    capability: context.CapabilityOption = None,
    max_cost: context.MaxCostOption = None,
    min_speed: context.MinSpeedOption = None,
    context_length: context.ContextOption = None,
    exclude: context.ExcludeOption = None,
    explain: Annotated[
        bool,
        typer.Option("--explain", "-e", help="Show every model's verdict.", show_default=False),
    ] = False,
) -> None:
    """Show which model a request would go to, and why.

    With --explain, every model's verdict, score and cost per request.
    """
    constraints = context.constraints(capability, max_cost, min_speed, context_length, exclude)
    registry = context.registry()
    explanation = registry.explain_selection(**constraints)
    chosen = explanation.chosen
    if chosen is None and any(c.eligible for c in explanation.candidates):
        chosen = registry.select_model(**constraints).name
    if explain:
        rows = table(
            f"strategy {explanation.strategy}",
            ["model", "verdict", "score", "estimate", "bonus", "trials", "cost/request"],
            numeric=["score", "estimate", "bonus", "trials", "cost/request"],
        )
        for c in explanation.candidates:
            if not c.eligible:
                verdict = f"rejected: {c.constraint} ({c.reason})"
            elif c.name == chosen:
                verdict = "chosen" + (" (forced trial)" if c.forced else "")
            else:
                verdict = "eligible" + (" (forced trial)" if c.forced else "")
            rows.add_row(
                c.name,
                verdict,
                number(c.score, ".4f"),
                number(c.estimate, ".4f"),
                number(c.exploration_bonus, ".4f"),
                str(c.trials),
                money(c.expected_cost),
            )
        print_table(rows)
        if explanation.all_breakers_open:
            console.print("every eligible model's circuit is open; probing the soonest to recover")
    if chosen is None:
        raise CLIError(str(NoEligibleModelsError(explanation)) + "; relax the constraints")
    model = registry.get_model(chosen)
    console.print(f"selected: [bold]{model.name}[/bold] ({model.provider})")

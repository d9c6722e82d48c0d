"""``orchestrator stats``: the fleet's totals, per model, from the shared state
(``[state]`` in the configuration), as every worker delivered them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from orchestrator.cli import context
from orchestrator.cli.app import EXIT_CONFIG, EXIT_FAILED, CLIError, app
from orchestrator.cli.output import console, money, number, one_line, print_table, table, write_json
from orchestrator.config import state_url_of
from orchestrator.models.shared_fleet import FleetRow

_NUMBERS = ["trials", "successes", "failures", "mean reward", "tokens in", "tokens out", "cost"]


@app.command()
def stats(
    json_path: Annotated[
        Optional[Path], typer.Option("--json", help="Also write the totals as JSON.")
    ] = None,
) -> None:
    """Show the fleet's totals per model, from the shared state.

    Every worker of the configuration's [state] namespace adds to them.
    """
    loaded = context.load(require_file=True)
    if state_url_of(loaded) == "local":
        raise CLIError(
            f"no shared state in {loaded.path}: add a [state] table with url or url_env",
            EXIT_CONFIG,
        )
    registry = context.registry()
    try:
        shared = registry.shared_state
        if shared is None:
            raise CLIError("the registry has no shared state", EXIT_CONFIG)
        try:
            rows = shared.fleet_rows()
        except Exception as exc:  # redis errors: the store is down or refuses us
            raise CLIError(
                f"cannot read the fleet's totals: {one_line(exc)}", EXIT_FAILED
            ) from None
    finally:
        registry.close()
    print_fleet(rows, loaded.config.state.namespace)
    if json_path is not None:
        write_json(json_path, [row.as_dict() for row in rows])
        console.print(f"numbers: {json_path.resolve()}")


def print_fleet(rows: list[FleetRow], namespace: str) -> None:
    """The fleet's table: one row per model."""
    shown = table(f"fleet totals, namespace {namespace}", ["model", *_NUMBERS], numeric=_NUMBERS)
    for row in rows:
        shown.add_row(
            row.name,
            f"{row.trials:,}",
            f"{row.successes:,}",
            f"{row.failures:,}",
            number(row.mean_reward, ".3f"),
            f"{row.input_tokens:,}",
            f"{row.output_tokens:,}",
            money(row.total_cost_usd),
        )
    print_table(shown)

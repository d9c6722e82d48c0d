"""``orchestrator eval``: evaluate the contextual router on an evaluation table
(the work is :func:`orchestrator.evaluation.command.run_eval`'s)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from orchestrator.cli.app import EXIT_USAGE, CLIError, app
from orchestrator.cli.output import console
from orchestrator.evaluation.command import run_eval
from orchestrator.evaluation.table import EvalError


@app.command("eval")
def evaluate(
    data: Annotated[Path, typer.Argument(help="The evaluation table (CSV).", show_default=False)],
    cost: Annotated[
        list[str],
        typer.Option(
            "--cost", metavar="MODEL=USD", help="Cost per request of a model (repeatable)."
        ),
    ],
    protocol: Annotated[
        str, typer.Option("--protocol", help="calibrated or online.")
    ] = "calibrated",
    folds: Annotated[int, typer.Option("--folds", min=2, help="Cross-validation folds.")] = 2,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed.")] = 0,
    points: Annotated[
        int, typer.Option("--points", min=3, help="Operating points on the cost curve.")
    ] = 11,
    json_out: Annotated[
        Optional[Path], typer.Option("--json", help="Also write the results as JSON.")
    ] = None,
    decisions_out: Annotated[
        Optional[Path], typer.Option("--decisions", help="Also write every decision as CSV.")
    ] = None,
    plot_out: Annotated[
        Optional[Path], typer.Option("-o", "--output", help="Where to write the plot (PNG).")
    ] = None,
) -> None:
    """Evaluate the router on a table of prompts and outcomes.

    Prints the cost-quality curve of the contextual router against every single
    model; --json, --decisions and -o write it to files.
    """
    if protocol not in ("calibrated", "online"):
        raise CLIError(f"--protocol must be calibrated or online, got {protocol!r}", EXIT_USAGE)
    chosen: Literal["calibrated", "online"] = "online" if protocol == "online" else "calibrated"
    try:
        run_eval(
            data, cost, protocol=chosen, folds=folds, seed=seed, points=points,
            json_out=json_out, decisions_out=decisions_out, plot_out=plot_out, console=console,
        )  # fmt: skip
    except EvalError as exc:
        raise CLIError(str(exc), EXIT_USAGE) from None

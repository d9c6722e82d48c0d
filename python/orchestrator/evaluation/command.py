"""``orchestrator eval``: evaluate the contextual router on an evaluation table.

The CLI calls :func:`run_eval` with its parsed arguments; ``python -m
orchestrator.evaluation`` runs :func:`main`, the same command on argparse.
Rich (the ``[cli]`` extra) is imported here, for the table and the progress
bar; matplotlib only once a plot is asked for (``evaluation/plot.py``: it
takes about half a second to import, which every other command would pay).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.evaluation.protocol import EvalResult, Protocol, evaluate, total_decisions
from orchestrator.evaluation.table import EvalError, load_table, parse_costs

logger = logging.getLogger("orchestrator.evaluation")

EXIT_USAGE = 2


def write_decisions(result: EvalResult, path: Path) -> None:
    """One line per (operating point, row): point, willingness_to_pay, row, model."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["point", "willingness_to_pay", "row", "model"])
        for point, (curve_point, choices) in enumerate(zip(result.curve, result.decisions)):
            for row, model in enumerate(choices):
                writer.writerow([point, repr(curve_point.willingness_to_pay), row, model])


def check_output(option: str, path: Optional[Path]) -> None:
    """Refuse an output that cannot be written before the evaluation runs
    (on a large table it runs for minutes), not after: its directory must
    exist, it must not be a directory, and a plot must have an image suffix
    matplotlib writes."""
    if path is None:
        return
    if path.is_dir():
        raise EvalError(f"invalid {option} {str(path)!r}: it is a directory")
    if not path.parent.is_dir():
        raise EvalError(f"invalid {option} {str(path)!r}: no directory {str(path.parent)!r}")
    if option == "-o":
        from orchestrator.evaluation.plot import image_formats  # matplotlib: see the docstring

        formats = image_formats()
        if path.suffix.lstrip(".").lower() not in formats:
            raise EvalError(
                f"invalid -o {str(path)!r}: not an image file name "
                f"(an image suffix: {', '.join('.' + f for f in sorted(formats))})"
            )


def print_result(result: EvalResult, console: Console) -> None:
    table = Table(title=f"orchestrator eval ({result.protocol})")
    table.add_column("point", justify="right")
    table.add_column("willingness_to_pay", justify="right")
    table.add_column("cost share", justify="right")
    table.add_column("quality", justify="right")
    for point, curve_point in enumerate(result.curve):
        table.add_row(
            str(point),
            f"{curve_point.willingness_to_pay:.6g}",
            f"{100 * curve_point.cost_share:.1f}%",
            f"{curve_point.quality:.4f}",
        )
    console.print(table)
    reference = result.reference
    console.print(
        f"APGR {result.apgr:.4f} (random {result.random_apgr:.4f})  "
        f"CPT(50%) {result.cpt50:.2f}%  CPT(80%) {result.cpt80:.2f}%  "
        f"decision {result.decision_us:.2f} µs median\n"
        f"cheapest {reference.cheapest} = {reference.cheapest_quality:.4f}, "
        f"best {reference.best} = {reference.best_quality:.4f}"
    )


def run_eval(
    data: Path,
    cost: Sequence[str],
    *,
    protocol: Protocol = "calibrated",
    folds: int = 2,
    seed: int = 0,
    points: int = 11,
    json_out: Optional[Path] = None,
    decisions_out: Optional[Path] = None,
    plot_out: Optional[Path] = None,
    console: Optional[Console] = None,
) -> EvalResult:
    """The command: ``cost`` holds the ``MODEL=USD`` items of ``--cost``.
    Raises :class:`EvalError` on a bad table or argument."""
    console = console or Console()
    for option, path in (("--json", json_out), ("--decisions", decisions_out), ("-o", plot_out)):
        check_output(option, path)
    costs = parse_costs(cost)
    table = load_table(data, list(costs))
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(
            f"{protocol} routing of {len(table)} rows", total=total_decisions(len(table), points)
        )
        result = evaluate(
            table,
            costs,
            protocol=protocol,
            folds=folds,
            seed=seed,
            points=points,
            progress=lambda done: progress.advance(task, done),
        )
    print_result(result, console)
    if json_out is not None:
        json_out.write_text(json.dumps(result.summary(), indent=2) + "\n", encoding="utf-8")
    if decisions_out is not None:
        write_decisions(result, decisions_out)
    if plot_out is not None:
        from orchestrator.evaluation.plot import plot_result

        plot_result(result, table, costs, plot_out)
        console.print(f"plot written to {plot_out}")
    return result


def parser() -> argparse.ArgumentParser:
    """The command's arguments, exactly as the contract of issue 13 states them."""
    parsed = argparse.ArgumentParser(prog="orchestrator eval", description=__doc__)
    parsed.add_argument("data", type=Path, metavar="DATA.csv")
    parsed.add_argument("--cost", action="append", required=True, metavar="MODEL=USD")
    parsed.add_argument("--protocol", choices=["calibrated", "online"], default="calibrated")
    parsed.add_argument("--folds", type=int, default=2)
    parsed.add_argument("--seed", type=int, default=0)
    parsed.add_argument("--points", type=int, default=11)
    parsed.add_argument("--json", type=Path, dest="json_out", metavar="OUT.json")
    parsed.add_argument("--decisions", type=Path, dest="decisions_out", metavar="OUT.csv")
    parsed.add_argument("-o", type=Path, dest="plot_out", metavar="PLOT.png")
    return parsed


def main(argv: Optional[Sequence[str]] = None) -> int:
    arguments = parser().parse_args(argv)
    try:
        run_eval(
            arguments.data,
            arguments.cost,
            protocol=arguments.protocol,
            folds=arguments.folds,
            seed=arguments.seed,
            points=arguments.points,
            json_out=arguments.json_out,
            decisions_out=arguments.decisions_out,
            plot_out=arguments.plot_out,
        )
    except (EvalError, OSError) as exc:
        print(f"orchestrator eval: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0

"""``orchestrator eval``'s progress bar: it counts every decision of both
protocols, during the run, up to its total, and the command shows it filled
before the results table."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.evaluation import evaluate, load_table
from orchestrator.evaluation.command import run_eval
from orchestrator.evaluation.protocol import Protocol, total_decisions
from tests.routing.test_eval import COSTS, cost_arguments, write_table

pytestmark = pytest.mark.timeout(120)

ROWS = 40
POINTS = 4


@pytest.mark.parametrize("protocol", ["calibrated", "online"])
def test_progress_counts_every_decision_up_to_its_total(tmp_path: Path, protocol: Protocol) -> None:
    table = load_table(write_table(tmp_path / "t.csv", rows=ROWS), list(COSTS))
    ticks: list[int] = []
    result = evaluate(table, COSTS, protocol=protocol, points=POINTS, progress=ticks.append)
    assert sum(ticks) == total_decisions(ROWS, POINTS) == sum(map(len, result.decisions))
    assert len(ticks) > 1, "the bar moves during the run, not once at its end"


def test_the_command_shows_the_bar_filled_and_the_table(tmp_path: Path) -> None:
    console = Console(record=True, force_terminal=True, width=120)
    path = write_table(tmp_path / "t.csv", rows=ROWS)
    run_eval(path, cost_arguments()[1::2], points=POINTS, console=console)
    shown = console.export_text()
    total = total_decisions(ROWS, POINTS)
    assert f"calibrated routing of {ROWS} rows" in shown
    assert f"{total}/{total}" in shown
    assert "orchestrator eval (calibrated)" in shown and "APGR" in shown

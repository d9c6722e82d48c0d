"""``orchestrator eval`` and ``orchestrator serve`` through the command (their work
is orchestrator.evaluation's and orchestrator.server's, tested there)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Run, one_line_error
from tests.routing.test_eval import cost_arguments, write_table


@pytest.mark.timeout(200)
def test_eval_writes_its_results(run: Run, tmp_path: Path) -> None:
    table = write_table(tmp_path / "table.csv", rows=200)
    out = tmp_path / "r.json"
    result = run("eval", str(table), *cost_arguments(), "--json", str(out), timeout=180)
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(out.read_text()), dict)


def test_eval_with_bad_costs_is_one_line_with_exit_2(run: Run, tmp_path: Path) -> None:
    table = write_table(tmp_path / "table.csv", rows=20)
    result = run("eval", str(table), "--cost", "large=0.02")
    assert result.returncode == 2
    assert "--cost" in one_line_error(result)


def test_serve_and_eval_help(run: Run) -> None:
    for command in ("serve", "eval"):
        result = run(command, "--help", env={"COLUMNS": "80"})
        assert result.returncode == 0, result.stderr
        assert "<bool>" not in result.stdout and "..." not in result.stdout.split("\n", 1)[1]
    assert "[server] extra" in run("serve", "--help").stdout

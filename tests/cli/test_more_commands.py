"""``orchestrator eval``, ``serve`` and ``stats`` through the command (their work is
orchestrator.evaluation's, orchestrator.server's and the shared state's, tested there)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis as redis_client

from tests.cli.conftest import Run, one_line_error, write
from tests.redis_server import RedisServer
from tests.routing.test_eval import cost_arguments, write_table
from tests.shared.test_budget_leases import CENT_NANOS, cent_spender, redis_spend, spend


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


def test_stats_shows_the_fleet_totals_every_worker_delivered(run: Run, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        check_fleet_totals(run, tmp_path, redis)
    finally:
        redis.kill()


def check_fleet_totals(run: Run, tmp_path: Path, redis: RedisServer) -> None:
    """Three worker processes answer one request each; stats shows the three."""
    config = write(
        tmp_path / "fleet.toml",
        f'[state]\nurl = "{redis.url}"\nnamespace = "cli-stats"\n\n'
        '[[models]]\nprovider = "simulated"\nname = "sim-a"\n',
    )
    for _ in range(3):  # three workers, one request each
        asked = run("--config", str(config), "ask", "What is UCB?", "--no-cache")
        assert asked.returncode == 0, asked.stderr
    numbers = tmp_path / "fleet.json"
    result = run("stats", "--config", str(config), "--json", str(numbers))
    assert result.returncode == 0, result.stderr
    rows = json.loads(numbers.read_text())
    assert [(r["name"], r["trials"]) for r in rows] == [("sim-a", 3)]
    assert "sim-a" in result.stdout and "fleet totals, namespace cli-stats" in result.stdout


def test_stats_without_shared_state_says_what_to_add(run: Run, tmp_path: Path) -> None:
    config = write(tmp_path / "local.toml", '[[models]]\nprovider = "simulated"\nname = "a"\n')
    result = run("--config", str(config), "stats")
    assert result.returncode == 3
    assert "add a [state] table" in one_line_error(result)


def test_budgets_shows_the_fleets_spend_without_joining_it(run: Run, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        worker = cent_spender(redis.url, "cli-budgets")
        assert spend(worker, 7) == 7
        worker.close()  # its unused lease goes back: Redis counts $0.07
        config = write(
            tmp_path / "fleet.toml",
            f'[state]\nurl = "{redis.url}"\nnamespace = "cli-budgets"\n\n'
            '[[models]]\nprovider = "simulated"\nname = "sim-a"\n\n'
            '[[budgets]]\nname = "fleet"\nprovider = "sim"\nlimit_usd = 1.0\nperiod = "day"\n',
        )
        for _ in range(2):  # reading twice changes nothing
            result = run("budgets", "--config", str(config))
            assert result.returncode == 0, result.stderr
            assert "fleet spent" in result.stdout and "$0.0700" in result.stdout
        assert redis_spend(redis.url, "cli-budgets") == 7 * CENT_NANOS
        client = redis_client.Redis.from_url(redis.url)
        try:
            workers = client.hgetall("orchestrator:{cli-budgets}:budget-workers:fleet")
        finally:
            client.close()
        assert len(workers) == 1, "the command did not count itself a worker"
    finally:
        redis.kill()
    down = run("budgets", "--config", str(config))
    assert down.returncode != 0 and "cannot read the fleet's budgets at redis://" in down.stderr

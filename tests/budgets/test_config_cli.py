"""``[[budgets]]`` in the configuration (range-checked, strict, one
``file:line: key: problem`` per mistake, "did you mean" for a period) and
``orchestrator budgets``, which lists them or says there are none."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import ConfigError, load_config
from orchestrator.core.budgets import BudgetScope
from orchestrator.models.model_registry import ModelRegistry
from tests.cli.conftest import Run, cli_env, run

__all__ = ["cli_env", "run"]  # the CLI fixtures, used here by name

pytestmark = pytest.mark.timeout(60)

MODEL = '[[models]]\nprovider = "simulated"\nname = "m"\n\n[[budgets]]\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "budgets.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ('provider = "p"\nlimit_usd = 0\nperiod = "day"',
         "7: budgets[0].limit_usd: must be in (0, 1000000000] USD (got 0)"),
        ('provider = "p"\nlimit_usd = nan\nperiod = "day"',
         "7: budgets[0].limit_usd: must be a finite number in (0, 1000000000] USD (got nan)"),
        ('provider = "p"\nlimit_usd = true\nperiod = "day"',
         "7: budgets[0].limit_usd: must be a number (got true)"),
        ('provider = "p"\nlimit_usd = "5"\nperiod = "day"',
         "7: budgets[0].limit_usd: must be a number (got '5')"),
        ('provider = "p"\nlimit_usd = 1\nperiod = "dya"',
         "8: budgets[0].period: unknown period 'dya' (did you mean 'day'?); "
         "choose one of minute, hour, day, month"),
        ('provider = "p"\nmodel = "m"\nlimit_usd = 1\nperiod = "day"',
         "5: budgets[0]: a budget scope names exactly one of model=, provider=, tag=, "
         "tenant= (got model, provider)"),
        ('limit_usd = 1\nperiod = "day"',
         "5: budgets[0]: a budget scope names exactly one of model=, provider=, tag=, "
         "tenant= (got none)"),
        ('tag = "EU"\nlimit_usd = 1\nperiod = "day"',
         '6: budgets[0].tag: "EU" (a tag is 1 to 64 characters of a-z, 0-9, _ . : -'),
        ('provider = "p"\nlimit_usd = 1\nperiod = "day"\nwindow = "rolling"',
         "9: budgets[0].window: unknown key"),
    ],
)  # fmt: skip
def test_bad_budgets_are_named_with_their_line(tmp_path: Path, lines: str, problem: str) -> None:
    path = write(tmp_path, MODEL + lines + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"{path}:{problem}"), info.value.problems


def test_a_repeated_budget_name_is_found(tmp_path: Path) -> None:
    budget = 'provider = "p"\nlimit_usd = 1\nperiod = "day"\n'
    path = write(tmp_path, MODEL + budget + "\n[[budgets]]\n" + budget)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f'{path}:11: budgets[1].provider: invalid name: "provider p day" '
        "(a budget of that name exists)"
    ]


def test_configured_budgets_reach_the_registry(tmp_path: Path) -> None:
    text = (
        MODEL + 'provider = "simulated"\nlimit_usd = 5\nperiod = "day"\n\n'
        '[[budgets]]\nname = "acme"\ntenant = "acme"\nlimit_usd = 0.25\nperiod = "month"\n'
    )
    registry = ModelRegistry.from_config(write(tmp_path, text))
    first, second = registry.budgets()
    assert (first.name, first.scope, first.limit_nanos) == (
        "provider simulated day",
        BudgetScope(provider="simulated"),
        5_000_000_000,
    )
    assert (second.name, second.scope, second.period) == (
        "acme",
        BudgetScope(tenant="acme"),
        "month",
    )
    assert second.resets_at.day == 1 and second.resets_at.hour == 0


def test_the_cli_lists_budgets_or_says_there_are_none(tmp_path: Path, run: Run) -> None:
    text = MODEL + 'provider = "simulated"\nlimit_usd = 5\nperiod = "day"\n'
    listed = run("budgets", "--config", str(write(tmp_path, text)))
    assert listed.returncode == 0, listed.stderr
    assert "provider simulated day" in listed.stdout and "$5.0000" in listed.stdout
    assert "UTC" in listed.stdout
    none = tmp_path / "none.toml"
    none.write_text('[[models]]\nprovider = "simulated"\nname = "m"\n')
    empty = run("budgets", "--config", str(none))
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.startswith("no budgets configured")

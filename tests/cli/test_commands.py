"""Help, configuration errors, ``models``, ``select``, ``health`` and ``cache``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import EXAMPLE_CONFIG, Run, one_line_error, write

SUBCOMMANDS = [
    [],
    ["simulate"],
    ["models"],
    ["select"],
    ["ask"],
    ["health"],
    ["cache"],
    ["cache", "stats"],
    ["cache", "clear"],
]


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=lambda c: " ".join(c) or "main")
def test_help(run: Run, command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: orchestrator" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_help_lists_every_subcommand(run: Run) -> None:
    out = run("--help").stdout
    for name in ("simulate", "models", "select", "ask", "health", "cache"):
        assert name in out
    assert "--config" in out and "--debug" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["frobnicate"], "No such command 'frobnicate'"),
        (["models", "--colour"], "No such option: --colour"),
        (["--nope"], "No such option: --nope"),
        (["simulate", "--seed", "x"], "--seed"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(run: Run, args: list[str], expected: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    line = one_line_error(result)
    assert expected in line
    assert "orchestrator --help" in line


def test_no_arguments_shows_help(run: Run) -> None:
    result = run()
    assert result.returncode == 2
    assert "simulate" in result.stdout + result.stderr


SIM = '[[models]]\nprovider = "simulated"\nname = "sim-a"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[models]\nprovider = "x"\n', r"bad.toml:1: invalid TOML"),
        (SIM + '[[models]]\nprovider = "openia"\nname = "b"\n', "bad.toml:5: models[1].provider: "
         "unknown provider 'openia' (did you mean 'openai'?)"),
        ('[[models]]\nprovider = "openai"\nname = "gpt-4o"\napi_key_env = "NO_SUCH_VAR_X"\n',
         "bad.toml:4: models[0].api_key_env: environment variable NO_SUCH_VAR_X is not set"),
        ('[[models]]\nprovider = "openai"\nname = "gpt-4o"\napi_key = "sk-live"\n',
         "bad.toml:4: models[0].api_key: never put a key in the file"),
        ('[selection]\nstrategy = "greedy"\n' + SIM, "bad.toml:2: selection.strategy:"),
        ('[selection]\nstrategy = "cost"\nexploration_factor = 1\n' + SIM,
         "bad.toml:3: selection.exploration_factor: does not apply to strategy 'cost'"),
        (SIM + "cost = { input_per_million = -1 }\n",
         "bad.toml:4: models[0].cost.input_per_million: must be in [0, 100000] USD (got -1)"),
        (SIM + 'colour = "red"\n', "bad.toml:4: models[0].colour: unknown key"),
        (SIM + SIM, "bad.toml:6: models[1].name: duplicate model name 'sim-a'"),
        ("[cache]\nenabled = true\n", "bad.toml: models: no models declared"),
    ],
    ids=[
        "bad-toml", "unknown-provider", "missing-key-env", "key-in-file", "bad-strategy",
        "param-for-other-strategy", "negative-price", "unknown-key", "duplicate", "no-models",
    ],
)  # fmt: skip
def test_config_errors_name_file_line_key_and_problem(
    run: Run, tmp_path: Path, text: str, expected: str
) -> None:
    config = write(tmp_path / "bad.toml", text)
    result = run("--config", str(config), "models")
    assert result.returncode == 3, result.stderr
    line = one_line_error(result)
    assert line.startswith(f"error: {config.parent}/")
    assert expected in line, line


@pytest.mark.parametrize("command", [["select"], ["ask", "hi"], ["health"]])
def test_every_command_reports_config_errors(run: Run, tmp_path: Path, command: list[str]) -> None:
    config = write(tmp_path / "bad.toml", SIM + 'colour = "red"\n')
    result = run("--config", str(config), *command)
    assert result.returncode == 3, result.stderr
    assert "bad.toml:4: models[0].colour: unknown key" in one_line_error(result)


def test_missing_config_file(run: Run, tmp_path: Path) -> None:
    result = run("--config", str(tmp_path / "nowhere.toml"), "models")
    assert result.returncode == 3
    line = one_line_error(result)
    assert "nowhere.toml: file not found" in line
    assert "--config" in line


def test_debug_shows_the_traceback(run: Run, tmp_path: Path) -> None:
    result = run("--debug", "--config", str(tmp_path / "nowhere.toml"), "models")
    assert result.returncode == 3
    assert "Traceback" in result.stderr
    assert "file not found" in result.stderr


def test_no_config_and_no_keys_says_what_is_missing(run: Run) -> None:
    result = run("models")
    assert result.returncode == 3
    line = one_line_error(result)
    for hint in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "ollama", "simulate"):
        assert hint in line


def test_environment_discovery_without_config(run: Run) -> None:
    result = run("models", env={"OPENAI_API_KEY": "sk-test"})
    assert result.returncode == 0, result.stderr
    assert "gpt-4o-mini" in result.stdout
    assert "openai: using gpt-4o-mini (OPENAI_API_KEY is set)" in result.stderr
    assert "anthropic: skipped, set ANTHROPIC_API_KEY" in result.stderr


def test_default_config_file_in_the_working_directory(run: Run, tmp_path: Path) -> None:
    write(tmp_path / "orchestrator.toml", SIM)
    result = run("models", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sim-a" in result.stdout


def test_models_on_the_example_config(run: Run) -> None:
    result = run("--config", str(EXAMPLE_CONFIG), "models")
    assert result.returncode == 0, result.stderr
    for name in ("sim-balanced", "sim-fast", "sim-frontier"):
        assert name in result.stdout
    assert "3 models, strategy ucb" in result.stdout
    # Real providers are optional in the example and skipped without their keys.
    assert "skipped gpt-4o-mini: OPENAI_API_KEY is not set" in result.stderr
    with_key = run("--config", str(EXAMPLE_CONFIG), "models", env={"OPENAI_API_KEY": "sk-x"})
    assert with_key.returncode == 0, with_key.stderr
    assert "gpt-4o-mini" in with_key.stdout and "4 models" in with_key.stdout


DEPLOYED = """
[[models]]
provider = "simulated"
name = "sim-a"
deployment = "eu"
tags = ["eu", "zero-retention"]

[[models]]
provider = "simulated"
name = "sim-a"
deployment = "us"

[[models]]
provider = "simulated"
name = "sim-b"

[[aliases]]
name = "[red]cheap"
models = ["sim-a", "sim-b"]
"""


def test_models_shows_deployments_tags_and_aliases(run: Run, tmp_path: Path) -> None:
    """Deployments by their registered names, each tagged model's tags, and
    every alias with the models it stands for now; a name that looks like
    rich markup is printed as written."""
    config = write(tmp_path / "deployed.toml", DEPLOYED)
    result = run("--config", str(config), "models", env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "sim-a@eu" in out and "sim-a@us" in out and "3 models" in out
    assert "sim-a@eu: eu, zero-retention" in out
    assert "sim-a@us:" not in out  # no tags, no line
    assert "[red]cheap → sim-a@eu, sim-a@us, sim-b  (as given: sim-a, sim-b)" in out
    assert all(len(line) <= 80 for line in out.splitlines()), out


def test_models_without_tags_or_aliases_prints_no_empty_sections(run: Run, tmp_path: Path) -> None:
    result = run("--config", str(write(tmp_path / "one.toml", SIM)), "models")
    assert result.returncode == 0, result.stderr
    assert "sim-a" in result.stdout
    assert "tags:" not in result.stdout and "routing aliases:" not in result.stdout


def test_select_explain_on_the_example_config(run: Run) -> None:
    result = run(
        "--config", str(EXAMPLE_CONFIG), "select", "--capability", "vision",
        "--max-cost", "0.05", "--explain",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "selected: sim-frontier (simulated)" in out
    assert "strategy ucb" in out
    # Every model's verdict, with the constraint that excluded it.
    assert "sim-balanced" in out and "sim-fast" in out
    assert out.count("rejected") == 2
    assert "capabilities" in out and "vision" in out
    assert "chosen" in out


def test_select_with_no_eligible_model_fails(run: Run) -> None:
    result = run("--config", str(EXAMPLE_CONFIG), "select", "--max-cost", "0.000001")
    assert result.returncode == 1
    line = one_line_error(result)
    assert "no registered model satisfies the request" in line
    assert "max_cost" in line
    bad = run("--config", str(EXAMPLE_CONFIG), "select", "--capability", "telepathy")
    assert bad.returncode == 2
    assert "unknown capability 'telepathy'" in one_line_error(bad)


def test_health(run: Run, tmp_path: Path) -> None:
    result = run("--config", str(EXAMPLE_CONFIG), "health")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("closed") == 3
    dead = write(
        tmp_path / "dead.toml",
        SIM + '\n[[models]]\nprovider = "simulated"\nname = "sim-dead"\n'
        "options = { success_rate = 0.0 }\n",
    )
    result = run("--config", str(dead), "health")
    assert result.returncode == 1
    assert "failed" in result.stdout
    assert "1 of 2 models unhealthy" in one_line_error(result)


def test_cache_stats_and_clear(run: Run, tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.toml",
        '[cache]\nenabled = true\nbackend = "disk"\npath = "answers.sqlite"\n\n' + SIM,
    )
    for _ in range(2):
        asked = run("--config", str(config), "ask", "What is UCB?")
        assert asked.returncode == 0, asked.stderr
    assert "(from cache)" in asked.stderr
    assert (tmp_path / "answers.sqlite").exists()  # relative to the config file
    stats = run("--config", str(config), "cache", "stats")
    assert stats.returncode == 0, stats.stderr
    assert "disk" in stats.stdout and "entries" in stats.stdout
    cleared = run("--config", str(config), "cache", "clear")
    assert cleared.returncode == 0, cleared.stderr
    assert "cache cleared" in cleared.stdout
    again = run("--config", str(config), "ask", "What is UCB?")
    assert "(from cache)" not in again.stderr


def test_cache_commands_need_a_configured_cache(run: Run, tmp_path: Path) -> None:
    result = run("cache", "stats")
    assert result.returncode == 3
    assert "no configuration" in one_line_error(result)
    config = write(tmp_path / "c.toml", SIM)
    result = run("--config", str(config), "cache", "clear")
    assert result.returncode == 3
    assert "enabled = true" in one_line_error(result)

"""The rough edges a new user hit (issue 12), each pinned: tables that fit the
terminal, strict JSON, --config after the command, a quiet Ctrl-C, help texts,
probe reasons, cache statistics, plot paths and the oracle figure."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Run, one_line_error, write
from tests.servers.openai_server import OpenAIServer

SIM = '[[models]]\nprovider = "simulated"\nname = "sim-a"\n'
LONG_NAMES = "".join(
    f'[[models]]\nprovider = "simulated"\nname = "{name}"\n'
    f"cost = {{ input_per_million = {price}, output_per_million = {price * 4} }}\n\n"
    for name, price in (
        ("a-rather-long-simulated-model-name-balanced", 1234.5678),
        ("another-long-simulated-model-name-fast", 0.25),
    )
)


def is_subsequence(needle: str, haystack: str) -> bool:
    """Whether the characters of ``needle`` appear in ``haystack`` in order."""
    rest = iter(haystack)
    return all(char in rest for char in needle)


@pytest.mark.parametrize("columns", ["80", "60"])
def test_simulate_table_fits_the_terminal_and_keeps_numbers_whole(
    run: Run, tmp_path: Path, columns: str
) -> None:
    result = run(
        "simulate", "--requests", "300", "-o", str(tmp_path / "p.png"),
        "--json", str(tmp_path / "n.json"), env={"COLUMNS": columns},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "n.json").read_text())
    lines = result.stdout.splitlines()
    assert all(len(line) <= int(columns) for line in lines), result.stdout
    assert "…" not in result.stdout
    flat = " ".join(result.stdout.split())
    assert f"{data['mean_reward']:.3f}" in flat
    assert f"{data['cumulative_regret']:.1f}" in flat


@pytest.mark.parametrize("columns", ["80", "60"])
def test_models_table_wraps_names_and_keeps_prices_whole(
    run: Run, tmp_path: Path, columns: str
) -> None:
    config = write(tmp_path / "long.toml", LONG_NAMES)
    result = run("--config", str(config), "models", env={"COLUMNS": columns})
    assert result.returncode == 0, result.stderr
    assert all(len(line) <= int(columns) for line in result.stdout.splitlines()), result.stdout
    assert "…" not in result.stdout
    assert "1234.57" in result.stdout and "4938.27" in result.stdout
    for name in (
        "a-rather-long-simulated-model-name-balanced",
        "another-long-simulated-model-name-fast",
    ):
        assert is_subsequence(name, result.stdout), name  # folded over lines, never cut


def test_json_writes_null_not_nan(run: Run, tmp_path: Path) -> None:
    numbers = tmp_path / "n.json"
    # price_constrained: premium-xl is over max_cost, never chosen, its mean reward unknown.
    result = run(
        "simulate", "-s", "price_constrained", "-n", "200", "-o", str(tmp_path / "p.png"),
        "--json", str(numbers),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = numbers.read_text()
    assert "NaN" not in text
    premium = next(m for m in json.loads(text)["models"] if m["name"] == "premium-xl")
    assert premium["requests"] == 0
    assert premium["mean_reward"] is None


def test_config_is_accepted_after_the_command(run: Run, tmp_path: Path) -> None:
    config = write(tmp_path / "one.toml", SIM)
    before = run("--config", str(config), "models")
    after = run("models", "--config", str(config))
    short = run("models", "-c", str(config))
    assert before.returncode == after.returncode == short.returncode == 0, after.stderr
    assert "sim-a" in after.stdout
    assert before.stdout == after.stdout == short.stdout


def test_plot_into_a_missing_directory_is_refused(run: Run, tmp_path: Path) -> None:
    target = tmp_path / "nonexistent" / "dir" / "x.png"
    result = run("simulate", "-n", "50", "-o", str(target))
    assert result.returncode == 2
    line = one_line_error(result)
    assert "--output" in line and "does not exist" in line
    assert not (tmp_path / "nonexistent").exists()


def test_strategy_oracle_agrees_with_the_footer(run: Run, tmp_path: Path) -> None:
    footers = []
    for strategy in ("thompson", "oracle"):
        numbers = tmp_path / f"{strategy}.json"
        result = run(
            "simulate", "--strategy", strategy, "-n", "600", "--seed", "3",
            "-o", str(tmp_path / f"{strategy}.png"), "--json", str(numbers),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        footers.append(json.loads(numbers.read_text()))
    thompson, oracle = footers
    assert oracle["mean_reward"] == oracle["mean_oracle_realised_reward"]
    assert thompson["mean_oracle_realised_reward"] == oracle["mean_reward"]


def test_each_model_keeps_its_colour_across_scenarios() -> None:
    from orchestrator.cli.plot import model_colours
    from orchestrator.simulation import get_scenario

    colours: dict[str, object] = {}
    for scenario in ("default", "price_constrained", "drift"):
        names = get_scenario(scenario).model_names
        for name, colour in zip(names, model_colours(names), strict=True):
            assert colours.setdefault(name, colour) == colour, name
    assert len(set(map(str, colours.values()))) == len(colours)


def test_help_texts_are_clean(run: Run) -> None:
    commands = [[], ["simulate"], ["models"], ["select"], ["ask"], ["health"], ["cache"]]
    texts = [run(*command, "--help", env={"COLUMNS": "80"}).stdout for command in commands]
    for text in texts:
        body = "\n".join(line for line in text.splitlines() if not line.startswith("Usage:"))
        assert "<bool>" not in body
        assert not re.search(r"\w \.(\s|$)", body), body  # "file ." from eaten markup
        assert "..." not in body, body  # no summary cut mid-sentence
    main, simulate, health = texts[0], texts[1], texts[5]
    assert "Default: ./orchestrator.toml" in main
    assert "5000" in simulate.split("--requests", 1)[1].split("\n  -", 1)[0]
    assert "cost_based" not in simulate
    assert "--no-probe skips it" in health


def test_commands_that_draw_nothing_do_not_import_matplotlib(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """matplotlib takes most of a second to import: ``--help``, ``models`` and
    every other command but ``simulate`` and ``eval -o`` start without it."""
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['orchestrator', 'models', '--help']\n"
        "try:\n"
        "    runpy.run_module('orchestrator', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('matplotlib loaded:', 'matplotlib' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=cli_env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    assert result.stdout.rstrip().endswith("matplotlib loaded: False"), result.stdout


def test_version_names_the_distribution(run: Run) -> None:
    result = run("--version")
    assert result.returncode == 0
    assert re.fullmatch(r"orchestrator-router \S+\n", result.stdout)


def test_health_shows_why_a_probe_failed(run: Run, tmp_path: Path) -> None:
    with OpenAIServer(api_key="sk-loopback", reply="hi") as server:
        server.start()
        config = write(
            tmp_path / "h.toml",
            f'[[models]]\nprovider = "openai"\nname = "gpt-4o-mini"\n'
            f'base_url = "{server.url}/no-such-prefix"\napi_key_env = "LOOPBACK_KEY"\n',
        )
        result = run("--config", str(config), "health", env={"LOOPBACK_KEY": "sk-loopback"})
    assert result.returncode == 1
    assert "404" in result.stdout, result.stdout
    assert "sk-loopback" not in result.stdout + result.stderr


def test_cache_stats_never_show_a_raw_none(run: Run, tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.toml",
        '[cache]\nenabled = true\nbackend = "disk"\npath = "answers.sqlite"\n\n' + SIM,
    )
    assert run("--config", str(config), "ask", "What is UCB?").returncode == 0
    stats = run("--config", str(config), "cache", "stats")
    assert stats.returncode == 0, stats.stderr
    assert "None" not in stats.stdout
    assert "entries" in stats.stdout


@pytest.fixture
def silent_server() -> Iterator[socket.socket]:
    """A loopback port that accepts connections and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield listener
    finally:
        listener.close()


def test_ctrl_c_exits_quietly_with_130(
    tmp_path: Path, cli_env: dict[str, str], silent_server: socket.socket
) -> None:
    port = silent_server.getsockname()[1]
    config = write(
        tmp_path / "stall.toml",
        f'[[models]]\nprovider = "openai"\nname = "gpt-4o-mini"\n'
        f'base_url = "http://127.0.0.1:{port}/v1"\n',
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "--config", str(config), "ask", "hello"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**cli_env, "PYTHONFAULTHANDLER": "1"},  # SIGABRT dumps every thread
        cwd=tmp_path,
    )
    try:
        silent_server.settimeout(60)
        connection, _ = silent_server.accept()  # the request is in flight now
        os.kill(process.pid, signal.SIGINT)
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGABRT)
            _, stuck = process.communicate(timeout=20)
            pytest.fail(f"still running 60 s after Ctrl-C; its threads:\n{stuck[-8000:]}")
        connection.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert "Traceback" not in err
    assert "never awaited" not in err
    assert "RuntimeWarning" not in err


#: A command's async part, interrupted by a SIGINT that the kernel hands to
#: another thread than the main one (as it may hand a process's signal to
#: any thread, numpy's BLAS threads included).
SIGINT_ON_ANOTHER_THREAD = """
import asyncio, signal, sys, threading, time
from orchestrator.cli.context import run

def interrupt_from_here():
    time.sleep(0.5)
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)
    time.sleep(600)

threading.Thread(target=interrupt_from_here, daemon=True).start()
try:
    run(asyncio.sleep(600))
except KeyboardInterrupt:
    sys.exit(130 if signal.getsignal(signal.SIGINT) is signal.default_int_handler else 1)
"""


def test_ctrl_c_received_by_another_thread_still_interrupts(cli_env: dict[str, str]) -> None:
    """The main thread sleeps in the event loop; without the loop's wake-up
    pipe it would sleep the full 600 s (and this test time out)."""
    done = subprocess.run(
        [sys.executable, "-c", SIGINT_ON_ANOTHER_THREAD],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 130, done.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["models", "--config", "a.toml"], ["--config", "a.toml", "models"]),
        (["models", "-c", "a.toml", "--debug"], ["-c", "a.toml", "--debug", "models"]),
        (["ask", "--config=a.toml", "hi"], ["--config=a.toml", "ask", "hi"]),
        (["--debug", "health"], ["--debug", "health"]),
        (["ask", "--", "--config", "x"], ["ask", "--", "--config", "x"]),
        (["cache", "stats", "-c", "a.toml"], ["-c", "a.toml", "cache", "stats"]),
    ],
)
def test_global_options_after_the_command_move_before_it(
    args: list[str], expected: list[str]
) -> None:
    from orchestrator.cli.main import hoist_global_options

    commands = {"models", "ask", "health", "cache"}
    assert hoist_global_options(args, commands) == expected

"""``orchestrator ask`` against the loopback OpenAI-compatible server and simulated models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Run, one_line_error, write
from tests.servers.openai_server import OpenAIServer

KEY = "sk-loopback-test"
REPLY = "Bandits balance exploration and exploitation."


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(api_key=KEY, reply=REPLY) as srv:
        srv.start()
        yield srv


def _config(tmp_path: Path, server: OpenAIServer, *, dead_first: bool = False) -> Path:
    dead = (
        '[[models]]\nprovider = "openai"\nname = "gpt-4"\n'
        'base_url = "http://127.0.0.1:9/v1"\napi_key_env = "LOOPBACK_KEY"\n'
        "cost = { input_per_million = 1.0, output_per_million = 2.0 }\n\n"
    )
    good = (
        f'[[models]]\nprovider = "openai"\nname = "gpt-4o-mini"\nbase_url = "{server.url}"\n'
        'api_key_env = "LOOPBACK_KEY"\n'
        "cost = { input_per_million = 150.0, output_per_million = 600.0 }\n"
    )
    return write(tmp_path / "loopback.toml", (dead if dead_first else "") + good)


def test_ask_streams_the_answer_and_reports_usage(
    run: Run, tmp_path: Path, server: OpenAIServer
) -> None:
    config = _config(tmp_path, server)
    result = run("--config", str(config), "ask", "What is a bandit?", env={"LOOPBACK_KEY": KEY})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == REPLY
    footer = result.stderr.strip().splitlines()[-1]
    assert "model gpt-4o-mini (openai)" in footer
    assert "tokens" in footer and " in / " in footer and " out" in footer
    assert "cost $" in footer and "latency" in footer
    assert footer.split("cost ")[1].split()[0] != "$0"
    # The server saw a streamed chat completion carrying the key from the environment.
    request = server.requests[-1]
    assert request.path.endswith("/chat/completions")
    assert request.json()["stream"] is True


def test_ask_without_streaming(run: Run, tmp_path: Path, server: OpenAIServer) -> None:
    config = _config(tmp_path, server)
    result = run("--config", str(config), "ask", "--no-stream", "hello", env={"LOOPBACK_KEY": KEY})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == REPLY
    assert server.requests[-1].json().get("stream") in (None, False)


def test_ask_fails_over_from_a_dead_endpoint(
    run: Run, tmp_path: Path, server: OpenAIServer
) -> None:
    config = _config(tmp_path, server, dead_first=True)
    result = run("--config", str(config), "ask", "hi", env={"LOOPBACK_KEY": KEY})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == REPLY
    assert "failed over from gpt-4: connection" in result.stderr
    assert "model gpt-4o-mini (openai)" in result.stderr


def test_ask_with_a_wrong_key_is_one_line(run: Run, tmp_path: Path, server: OpenAIServer) -> None:
    config = _config(tmp_path, server)
    result = run("--config", str(config), "ask", "hi", env={"LOOPBACK_KEY": "sk-wrong"})
    assert result.returncode == 1
    line = one_line_error(result)
    assert "401" in line
    assert "sk-wrong" not in result.stderr + result.stdout


def test_ask_when_every_model_fails(run: Run, tmp_path: Path) -> None:
    config = write(
        tmp_path / "dead.toml",
        "".join(
            f'[[models]]\nprovider = "simulated"\nname = "dead-{i}"\n'
            "options = { success_rate = 0.0 }\n\n"
            for i in range(2)
        ),
    )
    result = run("--config", str(config), "ask", "hi")
    assert result.returncode == 1
    line = one_line_error(result)
    assert "every model failed" in line
    assert "dead-0" in line and "dead-1" in line


def test_ask_a_simulated_model_and_the_cache(run: Run, tmp_path: Path) -> None:
    config = write(
        tmp_path / "sim.toml",
        '[cache]\nenabled = true\nbackend = "disk"\npath = "cache.sqlite"\n\n'
        '[[models]]\nprovider = "simulated"\nname = "sim-a"\n'
        "cost = { input_per_million = 1.0, output_per_million = 2.0 }\n",
    )
    first = run("--config", str(config), "ask", "Explain caching")
    assert first.returncode == 0, first.stderr
    assert "[sim-a] simulated answer to 'Explain caching'" in first.stdout
    assert "model sim-a (simulated)" in first.stderr
    assert "(from cache)" not in first.stderr
    second = run("--config", str(config), "ask", "Explain caching")
    assert second.stdout == first.stdout
    assert "(from cache)" in second.stderr
    assert "cost $0 " in second.stderr

"""``orchestrator cache stats`` reads entries and bytes from the store itself:
a disk cache or a Redis written by earlier processes shows their real counts,
and a store that cannot count says so in words, never ``None``."""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli.conftest import Run, write
from tests.redis_server import RedisServer

SIM = '[[models]]\nprovider = "simulated"\nname = "sim-a"\n'


def statistic(output: str, name: str) -> str:
    """The value column of one row of the statistics table."""
    found = re.search(rf"^\s*{name}\s+(\S+)\s*$", output, re.MULTILINE)
    assert found, output
    return found.group(1)


def ask_twice_then_stats(run: Run, config: Path) -> str:
    for question in ("What is UCB?", "What is Thompson sampling?"):
        asked = run("--config", str(config), "ask", question)
        assert asked.returncode == 0, asked.stderr
    stats = run("--config", str(config), "cache", "stats")
    assert stats.returncode == 0, stats.stderr
    assert "None" not in stats.stdout + stats.stderr
    return stats.stdout


def test_disk_counts_come_from_the_file(run: Run, tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.toml",
        '[cache]\nenabled = true\nbackend = "disk"\npath = "answers.sqlite"\n\n' + SIM,
    )
    output = ask_twice_then_stats(run, config)
    assert statistic(output, "entries") == "2"
    assert int(statistic(output, "bytes")) > 0


def test_redis_counts_come_from_the_server(
    run: Run, tmp_path: Path, redis_server: RedisServer
) -> None:
    config = write(
        tmp_path / "c.toml",
        f'[cache]\nenabled = true\nbackend = "redis"\nredis_url = "{redis_server.url}"\n\n' + SIM,
    )
    output = ask_twice_then_stats(run, config)
    assert statistic(output, "entries") == "2"
    assert int(statistic(output, "bytes")) > 0
    cleared = run("--config", str(config), "cache", "clear")
    assert cleared.returncode == 0, cleared.stderr
    again = run("--config", str(config), "cache", "stats")
    assert statistic(again.stdout, "entries") == "0"
    assert statistic(again.stdout, "bytes") == "0"


def test_an_unreachable_store_is_unknown_with_its_reason(
    run: Run, tmp_path: Path, redis_server: RedisServer
) -> None:
    url = redis_server.url
    redis_server.kill()
    config = write(
        tmp_path / "c.toml",
        f'[cache]\nenabled = true\nbackend = "redis"\nredis_url = "{url}"\n\n' + SIM,
    )
    stats = run("--config", str(config), "cache", "stats")
    assert stats.returncode == 0, stats.stderr
    assert statistic(stats.stdout, "entries") == "unknown"
    assert statistic(stats.stdout, "bytes") == "unknown"
    assert "None" not in stats.stdout + stats.stderr
    assert "entries and bytes unknown: the store could not count them" in stats.stderr
    assert "Connect" in stats.stderr or "connect" in stats.stderr, stats.stderr

"""Attacks on reading the fleet's budget spend (``read_fleet_budgets``,
``registry.budgets(fleet=True)``) from a real Redis: counters forged or
corrupted in Redis, and arguments of the wrong type or range. Each must be
a clear exception naming what was wrong, never a bare ``ValueError`` from
``int()``, never a silently accepted number."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from orchestrator.errors import SharedStateError
from orchestrator.models.shared_budgets import budget_keys
from orchestrator.models.shared_state import namespace_prefix, read_fleet_budgets
from tests.cli.conftest import Run, cli_env, one_line_error, run, write  # noqa: F401 (fixtures)
from tests.redis_server import RedisServer
from tests.shared.test_budget_leases import cent_spender, spend

pytestmark = pytest.mark.timeout(60)

PERIOD_END = 1_900_000_000


def forge_total(url: str, namespace: str, name: str, ends: int, value: bytes) -> str:
    """Write ``value`` as the fleet total of budget ``name``'s period; its key."""
    key = budget_keys(namespace_prefix(namespace), name, ends)[1]
    client = redis.Redis.from_url(url)
    try:
        client.hset(key, "total", value)
    finally:
        client.close()
    return key


FORGED = [
    b"abc",
    b"1.5",
    b"1e9",
    b"nan",
    b" 12",
    b"1_000",
    "\u0661\u0662".encode(),  # Arabic-Indic digits: int() reads them as 12
    b"\xff\xfe",
    b"9" * 40,  # beyond any counter Redis can hold (signed 64 bits)
]


@pytest.mark.parametrize("value", FORGED)
def test_a_forged_counter_total_is_refused_naming_its_key(
    redis_server: RedisServer, value: bytes
) -> None:
    key = forge_total(redis_server.url, "forged", "fleet", PERIOD_END, value)
    with pytest.raises(SharedStateError, match="corrupt budget counter") as raised:
        read_fleet_budgets(redis_server.url, "forged", [("fleet", PERIOD_END)])
    assert key in str(raised.value)


def test_a_counter_total_redis_can_hold_is_read(redis_server: RedisServer) -> None:
    """The edges of what Redis's HINCRBY keeps are numbers, not corruption."""
    for value in (0, 2**63 - 1, -(2**63)):
        forge_total(redis_server.url, "edges", "fleet", PERIOD_END, str(value).encode())
        assert read_fleet_budgets(redis_server.url, "edges", [("fleet", PERIOD_END)]) == {
            "fleet": value
        }


def test_a_registry_reading_a_forged_total_names_it(redis_server: RedisServer) -> None:
    """``registry.budgets(fleet=True)`` on the same forged counter."""
    registry = cent_spender(redis_server.url, "forged-live")
    try:
        assert spend(registry, 1) == 1
        (state,) = registry.budgets()
        ends = round(state.resets_at.timestamp())
        key = forge_total(redis_server.url, "forged-live", state.name, ends, b"lots")
        with pytest.raises(SharedStateError, match="corrupt budget counter") as raised:
            registry.budgets(fleet=True)
        assert key in str(raised.value) and "'lots'" in str(raised.value)
    finally:
        registry.close()


@pytest.mark.parametrize(
    ("periods", "error", "named"),
    [
        ("fleet", TypeError, "invalid periods: 'fleet'"),
        (None, TypeError, "invalid periods: None"),
        ([("fleet",)], TypeError, r"invalid periods\[0\]: \('fleet',\)"),
        ([("fleet", "x")], TypeError, r"invalid periods\[0\]"),
        ([("fleet", 1.5)], TypeError, r"invalid periods\[0\]"),
        ([("fleet", True)], TypeError, r"invalid periods\[0\]"),
        ([(1, 100)], TypeError, r"invalid periods\[0\]"),
        ([("fleet", 100), ("fleet", -1)], ValueError, r"invalid periods\[1\]"),
    ],
)
def test_periods_of_the_wrong_shape_are_refused_naming_the_entry(
    redis_server: RedisServer, periods: object, error: type[Exception], named: str
) -> None:
    with pytest.raises(error, match=named):
        read_fleet_budgets(redis_server.url, "shapes", periods)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        (-1, ValueError),
        (0, ValueError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        ("2", TypeError),
        (True, TypeError),
    ],
)
def test_a_bad_timeout_is_refused_naming_it(
    redis_server: RedisServer, timeout: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="invalid timeout"):
        read_fleet_budgets(redis_server.url, "t", [("fleet", 100)], timeout=timeout)  # type: ignore[arg-type]


def test_orchestrator_budgets_on_a_forged_total_is_one_line_naming_it(
    run: Run,  # noqa: F811 (the CLI fixture)
    tmp_path: Path,
    redis_server: RedisServer,
) -> None:
    """``orchestrator budgets`` with ``[state]``: a forged total is the
    command's one error line, not a traceback."""
    today_ends = (int(time.time()) // 86_400 + 1) * 86_400
    key = forge_total(redis_server.url, "cli-forged", "fleet", today_ends, b"12abc")
    config = write(
        tmp_path / "fleet.toml",
        f'[state]\nurl = "{redis_server.url}"\nnamespace = "cli-forged"\n\n'
        '[[models]]\nprovider = "simulated"\nname = "sim-a"\n\n'
        '[[budgets]]\nname = "fleet"\nprovider = "sim"\nlimit_usd = 1.0\nperiod = "day"\n',
    )
    result = run("budgets", "--config", str(config))
    assert result.returncode != 0
    line = one_line_error(result)
    assert "corrupt budget counter" in line and key in line and "'12abc'" in line

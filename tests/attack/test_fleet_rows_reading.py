"""Attacks on reading the fleet's per-model totals (``read_fleet_rows``,
``orchestrator stats``) from a real Redis whose totals hash was forged: a
value that is not a finite number must be a :class:`SharedStateError`
naming the field, never a NaN or infinite row, never a bare ``ValueError``."""

from __future__ import annotations

import pytest
import redis

from orchestrator.errors import SharedStateError
from orchestrator.models.shared_state import namespace_prefix, read_fleet_rows
from tests.redis_server import RedisServer

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("m:requests", b"nan"),
        ("m:requests", b"abc"),
        ("m:cost", b"inf"),
        ("m:reward_sum", b"-inf"),
        ("m:cost", b"\xff"),
    ],
)
def test_a_forged_fleet_total_is_refused_naming_its_field(
    redis_server: RedisServer, field: str, value: bytes
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.hset(
            f"{namespace_prefix('rows')}:totals", mapping={"m:successes": b"1", field: value}
        )
    finally:
        client.close()
    with pytest.raises(SharedStateError, match="corrupt fleet total") as raised:
        read_fleet_rows(redis_server.url, "rows")
    assert repr(field) in str(raised.value)


def test_fleet_totals_that_are_numbers_are_read(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.hset(
            f"{namespace_prefix('fine')}:totals",
            mapping={"m:requests": b"3", "m:successes": b"2", "m:cost": b"0.25"},
        )
    finally:
        client.close()
    (row,) = read_fleet_rows(redis_server.url, "fine")
    assert (row.name, row.trials, row.successes, row.total_cost_usd) == ("m", 3, 2, 0.25)

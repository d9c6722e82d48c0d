"""Four worker processes share statistics through a real Redis: the shared
totals equal what they recorded, exactly, even across a Redis crash."""

from __future__ import annotations

import time

from tests.shared.conftest import RedisServer
from tests.shared.helpers import run_workers, totals
from tests.shared.workers import RATES

ROUNDS = 5_000


def assert_exact(results: list[dict], url: str, namespace: str) -> None:
    shared = totals(url, namespace)
    for name in RATES:
        requests = sum(r["requests"][name] for r in results)
        successes = sum(r["successes"][name] for r in results)
        assert shared.get(f"{name}:requests", 0) == requests, name
        assert shared.get(f"{name}:successes", 0) == successes, name
    assert sum(shared[f"{n}:requests"] for n in RATES) == ROUNDS * len(results)


def test_four_workers_add_up_exactly(redis_server: RedisServer, namespace: str) -> None:
    kwargs = {"url": redis_server.url, "namespace": namespace, "rounds": ROUNDS}
    results = run_workers("count_rounds", [kwargs] * 4)
    assert_exact(results, redis_server.url, namespace)
    shared = totals(redis_server.url, namespace)
    for r in results:
        assert r["warnings"] == []
        assert r["resets"] == 0
        # After its final sync, each worker's view of the others is the
        # total minus its own outcomes (the last worker to sync sees all).
        for name in RATES:
            others, _, _ = r["shared_view"][name]
            assert others <= shared[f"{name}:requests"] - r["requests"][name]
    last = max(results, key=lambda r: sum(r["shared_view"][n][0] for n in RATES))
    for name in RATES:
        assert last["shared_view"][name][0] == shared[f"{name}:requests"] - last["requests"][name]


def test_redis_killed_for_five_seconds_counts_every_outcome_once(
    redis_server: RedisServer, namespace: str
) -> None:
    kwargs = {"url": redis_server.url, "namespace": namespace, "rounds": ROUNDS, "pace": 0.0025}
    outage: dict[str, float] = {}

    def crash_and_restart() -> None:
        time.sleep(3.0)
        outage["down"] = time.monotonic()
        redis_server.kill()  # no persistence: Redis comes back empty
        time.sleep(5.0)
        redis_server.start()
        outage["up"] = time.monotonic()

    results = run_workers("count_rounds", [kwargs] * 4, while_running=crash_and_restart)
    assert outage["up"] - outage["down"] >= 5.0
    assert_exact(results, redis_server.url, namespace)
    for r in results:
        unreachable = [m for m in r["warnings"] if "unreachable" in m]
        assert len(unreachable) == 1, r["warnings"]  # logged once per outage
        assert "Traceback" not in "".join(r["warnings"])
    # Redis came back empty: every worker re-added what it had delivered.
    assert sum(r["resets"] for r in results) == 4

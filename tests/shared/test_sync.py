"""Four worker processes share statistics through a real Redis: the shared
totals equal what they recorded, exactly, even across a Redis crash."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.redis_server import RedisServer
from tests.shared.helpers import Snapshot, run_workers, spool_files, totals
from tests.shared.workers import RATES, make_registry

ROUNDS = 5_000


def assert_exact(results: list[dict[str, Any]], url: str, namespace: str) -> None:
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


def test_older_snapshot_and_a_worker_stopped_in_the_outage_lose_no_outcome(
    redis_server: RedisServer, namespace: str, spool_dir: Path
) -> None:
    """Four workers; Redis is snapshotted, runs on, is killed, and comes back
    from the older snapshot; one worker stops during the outage. The fleet's
    totals are exactly what the workers recorded."""
    common = {"url": redis_server.url, "namespace": namespace, "pace": 0.0025}
    common["spool_dir"] = str(spool_dir)
    survivors = [{**common, "rounds": ROUNDS}] * 3
    stopper = {**common, "rounds": 1_000, "stop_in_outage": True}
    snapshot = Snapshot(redis_server)
    seen: dict[str, int] = {}

    def snapshot_outage_rollback() -> None:
        time.sleep(1.5)
        snapshot.take()
        seen["at_snapshot"] = int(sum(totals(redis_server.url, namespace).values()))
        time.sleep(2.5)
        redis_server.kill()
        deadline = time.monotonic() + 30
        while not spool_files(spool_dir):  # the stopper has closed in the outage
            assert time.monotonic() < deadline, "the stopped worker wrote no spool"
            time.sleep(0.05)
        time.sleep(1.0)
        snapshot.restore()

    results = run_workers(
        "count_rounds", [*survivors, stopper], while_running=snapshot_outage_rollback
    )
    assert seen["at_snapshot"] > 0
    fleet = totals(redis_server.url, namespace)
    for name in RATES:
        assert fleet.get(f"{name}:requests", 0) == sum(r["requests"][name] for r in results)
        assert fleet.get(f"{name}:successes", 0) == sum(r["successes"][name] for r in results)
    assert sum(fleet[f"{n}:requests"] for n in RATES) == 3 * ROUNDS + 1_000
    assert results[3]["spools_written"] == 1
    assert sum(r["spools_delivered"] for r in results[:3]) == 1
    assert spool_files(spool_dir) == []
    for r in results[:3]:
        assert r["restores"] == 1  # the rollback is seen and repaired once per worker
        assert len([m for m in r["warnings"] if "fewer of this worker" in m]) == 1
        assert len([m for m in r["warnings"] if "unreachable" in m]) == 1
    # The public view agrees with the hash, model by model.
    reader = make_registry(redis_server.url, namespace)
    assert reader.shared_state is not None
    view = reader.shared_state.fleet_statistics()
    for name, trials in zip(view["name"], view["trials"]):
        assert trials == sum(r["requests"][name] for r in results)
    reader.shared_state.close()

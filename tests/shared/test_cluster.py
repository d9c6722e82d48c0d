"""The shared state on a real Redis Cluster (three masters): exact totals
across workers and breaker trips between them, through a cluster client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.models.model_registry import ModelRegistry
from tests.redis_server import RedisCluster
from tests.shared.workers import make_registry


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    nodes = RedisCluster(tmp_path)
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()


def shared(registry: ModelRegistry):  # type: ignore[no-untyped-def]
    assert registry.shared_state is not None
    return registry.shared_state


def test_workers_share_totals_and_breakers_through_a_cluster(
    cluster: RedisCluster, namespace: str
) -> None:
    a = make_registry(cluster.url, namespace, tolerant=False)
    b = make_registry(cluster.url, namespace, tolerant=False)
    assert shared(a).wait_subscribed() and shared(b).wait_subscribed()
    for _ in range(25):
        a.report_outcome("m1", True, 0.2)
    for _ in range(15):
        b.report_outcome("m1", True, 0.2)
    for registry in (a, b, a):
        assert shared(registry).sync_now()
    slot_a = a._binding(a.get_model("m1")).slot
    assert a._core.shared(slot_a)[0] == 15  # b's outcomes, seen by a
    client = redis.RedisCluster.from_url(cluster.url.replace("redis+cluster", "redis"))
    try:
        totals = client.hgetall(f"orchestrator:{{{namespace}}}:totals")
    finally:
        client.close()
    assert int(totals[b"m1:requests"]) == 40

    for _ in range(3):
        a.report_outcome("m4", False, 0.2, error_class="server_error")  # opens a's breaker
    slot_b = b._binding(b.get_model("m4")).slot
    deadline = time.monotonic() + 2
    while b._core.breaker(slot_b)["state"] != "open" and time.monotonic() < deadline:
        time.sleep(0.005)
    assert b._core.breaker(slot_b)["state"] == "open"
    for registry in (a, b):
        registry.close()


def test_a_flushed_cluster_gets_its_outcomes_back_and_removal_reaches_every_ledger(
    cluster: RedisCluster, namespace: str
) -> None:
    a = make_registry(cluster.url, namespace)
    b = make_registry(cluster.url, namespace)
    for _ in range(6):
        a.report_outcome("m2", True, 0.2)
        b.report_outcome("m0", True, 0.2)
    for registry in (a, b):
        assert shared(registry).sync_now()
    for node in cluster.nodes:
        assert node.command(b"FLUSHALL") == b"+OK"
    for registry in (a, b):
        assert shared(registry).sync_now()
    assert shared(a).stats.restored_outcomes == 6 and shared(b).stats.restored_outcomes == 6
    rows = {row.name: row.trials for row in shared(a).fleet_rows()}
    assert rows == {"m0": 6, "m2": 6}
    a.unregister_model("m0")  # deletes m0 from the totals and from b's ledger too
    assert shared(a).sync_now()
    assert {row.name for row in shared(b).fleet_rows()} == {"m2"}
    for registry in (a, b):
        registry.close()

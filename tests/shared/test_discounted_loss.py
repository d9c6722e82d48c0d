"""Redis losing only the discounted sums: the ``discounted`` hash is a key of
its own, so an ``allkeys-*`` eviction or a restore of that key alone takes it
away (or back to an older copy) while the totals and ledgers stay. Each worker
sees the hash's marker of its last batch behind its ledger and restores its
share exactly once, with one warning; the sums come back exactly."""

from __future__ import annotations

import logging

import pytest
import redis

from orchestrator.models.model_registry import ModelRegistry
from tests.redis_server import RedisServer
from tests.shared.helpers import read_hash, report, shared_of, totals
from tests.shared.workers import make_registry

pytestmark = pytest.mark.timeout(60)

LOGGER = "orchestrator.models.shared_state"
WARNING = "share of the discounted sums"


def sums(url: str, namespace: str) -> dict[str, float]:
    """The discounted sums themselves (not the workers' shares and markers)."""
    held = read_hash(url, namespace, "discounted")
    return {k: v for k, v in held.items() if not k.startswith(("w/", "seq/"))}


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]


def workers(url: str, namespace: str) -> tuple[ModelRegistry, ModelRegistry]:
    a = make_registry(url, namespace, discount=0.99)
    b = make_registry(url, namespace, discount=0.99)
    report(a, "m0", True, 5)
    report(b, "m0", False, 4)
    assert shared_of(a).sync_now() and shared_of(b).sync_now()
    return a, b


def assert_same_sums(after: dict[str, float], before: dict[str, float]) -> None:
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key] == pytest.approx(value, rel=1e-12), key


def test_a_discounted_hash_evicted_alone_is_restored_once(
    redis_server: RedisServer, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    a, b = workers(redis_server.url, namespace)
    before, counted = sums(redis_server.url, namespace), totals(redis_server.url, namespace)
    client = redis.Redis.from_url(redis_server.url)
    assert client.delete(shared_of(a).keys["disc"]) == 1  # as allkeys-lru evicts one key
    client.close()
    for _ in range(3):  # the first sync repairs; the later ones find nothing to do
        assert shared_of(a).sync_now() and shared_of(b).sync_now()
    assert_same_sums(sums(redis_server.url, namespace), before)
    assert totals(redis_server.url, namespace) == counted  # the totals were never touched
    assert len(warnings(caplog)) == 2  # one per worker, once
    assert [shared_of(r).stats.discounted_restores for r in (a, b)] == [1, 1]
    assert [shared_of(r).stats.restored_outcomes for r in (a, b)] == [0, 0]
    slot = b._binding(b.get_model("m0")).slot
    assert b._core.shared(slot)[0] == pytest.approx(5, rel=1e-9)  # a's 5, seen by b
    for r in (a, b):
        shared_of(r).close()


def test_an_older_discounted_hash_is_repaired_exactly(
    redis_server: RedisServer, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    a, b = workers(redis_server.url, namespace)
    key = shared_of(a).keys["disc"]
    client = redis.Redis.from_url(redis_server.url)
    older = client.hgetall(key)
    report(a, "m0", True, 7)
    assert shared_of(a).sync_now()
    before = sums(redis_server.url, namespace)
    client.delete(key)
    for field, value in older.items():  # the hash alone rolled back to its older copy
        client.hset(key, field, value)
    client.close()
    assert sums(redis_server.url, namespace)["m0:n"] < before["m0:n"]
    for _ in range(2):
        assert shared_of(a).sync_now() and shared_of(b).sync_now()
    assert_same_sums(sums(redis_server.url, namespace), before)
    assert len(warnings(caplog)) == 1  # only a lost part of its share
    assert totals(redis_server.url, namespace)["m0:requests"] == 16
    for r in (a, b):
        shared_of(r).close()

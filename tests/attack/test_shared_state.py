"""Attacks on the shared state (``state="redis://..."``) with a real
redis-server on a loopback port: keys that Redis loses one at a time, the
way ``maxmemory-policy allkeys-lru`` evicts them, must not make the fleet's
totals disagree with what the workers reported."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.models.model_registry import ModelRegistry
from orchestrator.models.shared_spool import SPOOL_DIR_ENV
from tests.conftest import ScriptedModel
from tests.redis_server import RedisServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def redis_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh redis-server (no persistence) and a spool folder of this test."""
    monkeypatch.setenv(SPOOL_DIR_ENV, str(tmp_path / "spool"))
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server.url
    finally:
        server.kill()


def fleet_trials(registry: ModelRegistry) -> float:
    """The fleet's trials of the first model, after one more sync."""
    shared = registry.shared_state
    assert shared is not None
    shared.sync_now()
    return float(shared.fleet_statistics()["trials"][0])


def report(registry: ModelRegistry, count: int) -> None:
    for _ in range(count):
        registry.report_outcome(registry.select(), True, 0.1)
    shared = registry.shared_state
    assert shared is not None
    shared.sync_now()


def test_an_evicted_ledger_does_not_double_count_the_fleet(redis_url: str) -> None:
    """Reproduction: one worker reports 10 outcomes and syncs; Redis loses
    ONLY the worker's ledger hash (``orchestrator:{ns}:ledger:<worker>``),
    as ``maxmemory-policy allkeys-lru`` does when the cache shares the
    Redis; the worker reports 1 more: the fleet shows 21 trials instead of 11
    and logs "held 10 fewer ... restored them". The RESTORE script
    (shared_scripts.py) treats a missing ledger as "the totals hold none of
    mine" although the totals still hold all of it."""
    registry = ModelRegistry(state=redis_url, state_namespace=f"ev-{uuid.uuid4().hex[:8]}")
    registry.register_model(ScriptedModel("a"))
    try:
        report(registry, 10)
        assert fleet_trials(registry) == 10
        client = redis.Redis.from_url(redis_url)
        ledgers = [k for k in client.keys("*") if b":ledger:" in k]
        assert len(ledgers) == 1
        client.delete(*ledgers)
        report(registry, 1)
        assert fleet_trials(registry) == 11
    finally:
        registry.close()


def test_a_flushed_redis_is_restored_exactly_once(redis_url: str) -> None:
    """FLUSHALL after 10 synced outcomes, then 1 more: the fleet shows
    exactly 11 (promise kept: a wholly lost namespace is restored once)."""
    registry = ModelRegistry(state=redis_url, state_namespace=f"fl-{uuid.uuid4().hex[:8]}")
    registry.register_model(ScriptedModel("a"))
    try:
        report(registry, 10)
        redis.Redis.from_url(redis_url).flushall()
        report(registry, 1)
        assert fleet_trials(registry) == 11
    finally:
        registry.close()


def test_two_workers_add_up_after_one_loses_its_ledger(redis_url: str) -> None:
    """Two registries of one namespace report 7 and 5 outcomes; worker 1's
    ledger is evicted; each reports 1 more: the fleet must show 14."""
    namespace = f"two-{uuid.uuid4().hex[:8]}"
    first = ModelRegistry(state=redis_url, state_namespace=namespace)
    second = ModelRegistry(state=redis_url, state_namespace=namespace)
    for registry in (first, second):
        registry.register_model(ScriptedModel("a"))
    try:
        report(first, 7)
        report(second, 5)
        client = redis.Redis.from_url(redis_url)
        ledgers = sorted(k for k in client.keys("*") if b":ledger:" in k)
        assert len(ledgers) == 2
        client.delete(ledgers[0])
        report(first, 1)
        report(second, 1)
        assert fleet_trials(first) == fleet_trials(second) == 14
    finally:
        first.close()
        second.close()


def test_a_sleeping_generator_does_not_stall_the_sync_thread(redis_url: str) -> None:
    """With ``state=redis://...`` the sync thread shares the core: a
    ``capabilities`` generator that sleeps 0.5 s (and selects from inside
    itself) while another thread selects and reports, then a sync: every
    outcome reaches the fleet (promise kept: no lock is held while Python
    code runs)."""
    registry = ModelRegistry(
        state=redis_url, state_namespace=f"dl-{uuid.uuid4().hex[:8]}", sync_interval=0.05
    )
    registry.register_model(ScriptedModel("a"))
    done: list[int] = []

    def slow() -> Iterator[str]:
        registry.select_model()
        time.sleep(0.5)
        yield "chat"

    def reporter() -> None:
        for _ in range(200):
            registry.report_outcome(registry.select(), True, 0.01)
        done.append(200)

    worker = threading.Thread(target=reporter)
    try:
        worker.start()
        selection = registry.select(capabilities=slow())  # type: ignore[arg-type]
        registry.report_outcome(selection, True, 0.01)
        worker.join(30)
        assert done == [200]
        assert fleet_trials(registry) == 201
    finally:
        registry.close()

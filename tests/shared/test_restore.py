"""Outcomes Redis lost are put back exactly once: a Redis restored from an
older snapshot, or emptied, is repaired from each worker's ledger, and a worker
that stops during an outage leaves a spool the next worker delivers once."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from orchestrator.models.model_registry import ModelRegistry
from orchestrator.models.shared_state import SharedState, SharedStateError, read_fleet_rows
from tests.redis_server import RedisServer
from tests.shared.helpers import (
    HangingProxy,
    Snapshot,
    read_hash,
    report,
    shared_of,
    spool_files,
    thread_names,
    totals,
)
from tests.shared.workers import RATES, SimModel, make_registry

LOGGER = "orchestrator.models.shared_state"


def counts(url: str, namespace: str, name: str) -> tuple[float, float, float, float]:
    t = totals(url, namespace)
    return (
        t.get(f"{name}:requests", 0),
        t.get(f"{name}:successes", 0),
        t.get(f"{name}:failures_other", 0),
        t.get(f"{name}:output_tokens", 0),
    )


def warnings_with(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and needle in r.getMessage()
    ]


def test_redis_restored_from_an_older_snapshot_gets_its_lost_outcomes_back_once(
    redis_server: RedisServer, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    # Only sync_now() syncs here: a background cycle between the restore and
    # the check of what Redis lost would repair it before it is seen.
    a = make_registry(redis_server.url, namespace, sync_interval=3600)
    b = make_registry(redis_server.url, namespace, sync_interval=3600)
    report(a, "m1", True, 10)
    report(b, "m1", True, 6)
    assert shared_of(a).sync_now() and shared_of(b).sync_now()
    snapshot = Snapshot(redis_server)
    snapshot.take()
    report(a, "m1", True, 5)
    report(a, "m1", False, 3)
    assert shared_of(a).sync_now()
    assert counts(redis_server.url, namespace, "m1") == (24, 21, 3, 96)

    snapshot.restore()  # Redis comes back without a's last 8 outcomes
    assert counts(redis_server.url, namespace, "m1") == (16, 16, 0, 64)
    assert shared_of(a).sync_now()  # nothing new to deliver: seen at read-back
    assert shared_of(b).sync_now()  # b lost nothing
    assert counts(redis_server.url, namespace, "m1") == (24, 21, 3, 96)
    assert shared_of(a).stats.restores == 1
    assert shared_of(a).stats.restored_outcomes == 8
    assert shared_of(b).stats.restores == 0
    assert len(warnings_with(caplog, "fewer of this worker's outcomes")) == 1

    for _ in range(3):  # exactly once: no further restore, no further warning
        assert shared_of(a).sync_now() and shared_of(b).sync_now()
    assert counts(redis_server.url, namespace, "m1") == (24, 21, 3, 96)
    assert len(warnings_with(caplog, "fewer of this worker's outcomes")) == 1
    # Each worker's view of the others is consistent again.
    slot = a._binding(a.get_model("m1")).slot
    assert a._core.shared(slot)[0] == 6
    for r in (a, b):
        shared_of(r).close()


def test_a_snapshot_that_lost_a_batch_in_flight_is_repaired_before_it(
    redis_server: RedisServer, namespace: str
) -> None:
    a = make_registry(redis_server.url, namespace)
    report(a, "m2", True, 4)
    assert shared_of(a).sync_now()
    snapshot = Snapshot(redis_server)
    snapshot.take()
    report(a, "m2", True, 2)
    assert shared_of(a).sync_now()
    snapshot.restore()
    report(a, "m2", False, 5)  # delivered to a Redis that is two outcomes behind
    assert shared_of(a).sync_now()
    assert counts(redis_server.url, namespace, "m2") == (11, 6, 5, 44)
    assert shared_of(a).stats.restored_outcomes == 2
    shared_of(a).close()


def test_a_flushed_redis_gets_every_worker_outcome_back(
    redis_server: RedisServer, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    a = make_registry(redis_server.url, namespace)
    b = make_registry(redis_server.url, namespace)
    report(a, "m3", True, 7)
    report(b, "m3", False, 2)
    assert shared_of(a).sync_now() and shared_of(b).sync_now()
    assert redis_server.command(b"FLUSHALL") == b"+OK"
    assert shared_of(a).sync_now() and shared_of(b).sync_now()
    assert counts(redis_server.url, namespace, "m3") == (9, 7, 2, 36)
    assert len(warnings_with(caplog, "fewer of this worker's outcomes")) == 2
    for r in (a, b):
        shared_of(r).close()


def test_a_worker_stopped_in_an_outage_spools_and_the_next_worker_delivers_once(
    tmp_path: Path, namespace: str, spool_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    server = RedisServer(tmp_path)
    server.start()
    try:
        a = make_registry(server.url, namespace)
        report(a, "m0", True, 10)
        assert shared_of(a).sync_now()
        report(a, "m0", False, 7)
        server.kill()  # no persistence: Redis will come back empty
        assert not shared_of(a).sync_now()
        shared_of(a).close()
        assert thread_names() == set()  # close() left no thread behind
        (path,) = spool_files(spool_dir)
        assert path.suffix == ".json"
        spool = json.loads(path.read_text())
        assert spool["seq"] == 1 and len(spool["pending"]) == 1
        assert spool["ledger"]["ints"]["m0:requests"] == 10
        assert spool["pending"][0]["ints"]["m0:requests"] == 7
        assert len(warnings_with(caplog, "spooled")) == 1

        server.start()
        b = make_registry(server.url, namespace)
        c = make_registry(server.url, namespace)
        assert shared_of(b).sync_now() and shared_of(c).sync_now()
        # The 10 Redis lost with its restart and the 7 never delivered, once.
        assert counts(server.url, namespace, "m0") == (17, 10, 7, 68)
        assert spool_files(spool_dir) == []
        assert shared_of(b).stats.spools_delivered + shared_of(c).stats.spools_delivered == 1
        assert shared_of(b).sync_now() and shared_of(c).sync_now()
        assert counts(server.url, namespace, "m0") == (17, 10, 7, 68)
        # b's view counts the stopped worker's outcomes as another worker's.
        slot = b._binding(b.get_model("m0")).slot
        assert b._core.shared(slot)[0] == 17
        # The stopped worker's ledger is gone once its spool is delivered.
        client = redis.Redis.from_url(server.url)
        workers = client.smembers(f"orchestrator:{{{namespace}}}:workers")
        assert spool["ledger_key"].encode() not in workers
        assert not client.exists(spool["ledger_key"])
        client.close()
        for r in (b, c):
            shared_of(r).close()
    finally:
        server.kill()


def test_a_batch_applied_before_its_reply_was_lost_is_not_spooled_twice(
    redis_server: RedisServer, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = make_registry(redis_server.url, namespace)
    shared = shared_of(a)
    report(a, "m4", True, 3)
    real_apply = shared._apply

    def apply_then_lose_reply(ledger, seq, counters):  # type: ignore[no-untyped-def]
        real_apply(ledger, seq, counters)
        raise redis.exceptions.ConnectionError("reply lost")

    monkeypatch.setattr(shared, "_apply", apply_then_lose_reply)
    assert not shared.sync_now()  # applied in Redis; the worker thinks Redis is down
    report(a, "m4", False, 2)
    shared.close()  # in an outage: everything not confirmed goes to the spool
    b = make_registry(redis_server.url, namespace)
    assert shared_of(b).sync_now()
    assert counts(redis_server.url, namespace, "m4") == (5, 3, 2, 20)
    shared_of(b).close()


def test_a_closed_worker_that_delivered_everything_leaves_no_spool_or_ledger(
    redis_server: RedisServer, namespace: str, spool_dir: Path
) -> None:
    a = make_registry(redis_server.url, namespace)
    report(a, "m1", True, 3)
    shared_of(a).close()
    assert thread_names() == set()
    assert spool_files(spool_dir) == []
    assert counts(redis_server.url, namespace, "m1") == (3, 3, 0, 12)
    client = redis.Redis.from_url(redis_server.url)
    assert client.smembers(f"orchestrator:{{{namespace}}}:workers") == set()
    assert client.keys(f"orchestrator:{{{namespace}}}:ledger:*") == []
    client.close()
    assert [f for f in totals(redis_server.url, namespace) if f.startswith("seq/")] == []


def evict_ledger(url: str, registry: ModelRegistry) -> None:
    """Delete only the worker's ledger, as ``allkeys-lru`` evicts one key."""
    client = redis.Redis.from_url(url)
    assert client.delete(shared_of(registry).keys["ledger"]) == 1
    client.close()


@pytest.mark.parametrize("discount", [1.0, 0.9])
def test_a_ledger_evicted_alone_is_rebuilt_and_nothing_counts_twice(
    redis_server: RedisServer, namespace: str, caplog: pytest.LogCaptureFixture, discount: float
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    a = make_registry(redis_server.url, namespace, discount=discount)
    b = make_registry(redis_server.url, namespace, discount=discount)
    report(a, "m1", True, 6)
    report(b, "m1", False, 2)
    assert shared_of(a).sync_now() and shared_of(b).sync_now()
    evict_ledger(redis_server.url, a)
    assert shared_of(a).sync_now()  # seen at read-back: the ledger is rebuilt
    report(a, "m1", True, 1)
    assert shared_of(a).sync_now() and shared_of(b).sync_now()
    assert counts(redis_server.url, namespace, "m1") == (9, 7, 2, 36)
    if discount < 1:  # 9 outcomes, at most one bucket old (counted twice: 15)
        weighted = read_hash(redis_server.url, namespace, "discounted")["m1:n"]
        assert 9 * discount - 1e-9 <= weighted <= 9 + 1e-9
    assert len(warnings_with(caplog, "lost this worker's ledger")) == 1
    assert warnings_with(caplog, "fewer of this worker's outcomes") == []
    assert shared_of(a).stats.restored_outcomes == 0
    for r in (a, b):
        shared_of(r).close()


def test_a_ledger_lost_with_totals_of_another_seq_is_unknown_not_zero(
    redis_server: RedisServer, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The totals say they hold fewer of the worker's batches than it
    delivered, and its ledger is gone: nothing is added on a guess (its
    whole share again would count most of it twice); a warning says so."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    a = make_registry(redis_server.url, namespace)
    for _ in range(3):
        report(a, "m1", True, 2)
        assert shared_of(a).sync_now()
    marker = [f for f in totals(redis_server.url, namespace) if f.startswith("seq/")]
    assert len(marker) == 1
    client = redis.Redis.from_url(redis_server.url)
    client.hset(shared_of(a).keys["totals"], marker[0], "1")
    client.close()
    evict_ledger(redis_server.url, a)
    assert shared_of(a).sync_now()
    assert counts(redis_server.url, namespace, "m1") == (6, 6, 0, 24)
    assert len(warnings_with(caplog, "may be off")) == 1
    report(a, "m1", True, 1)
    assert shared_of(a).sync_now()
    assert counts(redis_server.url, namespace, "m1") == (7, 7, 0, 28)
    shared_of(a).close()


@pytest.mark.parametrize(("policy", "warned"), [("allkeys-lru", 1), ("volatile-lru", 0)])
def test_an_evicting_redis_is_named_at_connect(
    redis_server: RedisServer,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
    policy: str,
    warned: int,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    assert redis_server.command(b"CONFIG", b"SET", b"maxmemory-policy", policy.encode()) == b"+OK"
    a = make_registry(redis_server.url, namespace)
    assert len(warnings_with(caplog, f"maxmemory-policy {policy}")) == warned
    shared_of(a).close()


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b'{"format": 1}',
        b'{"format": 1, "worker": "w", "ledger_key": "elsewhere", "seq": 0, "ref": null,'
        b' "ledger": {}, "pending": []}',
        b'{"format": 1, "worker": "w", "ledger_key": "LEDGER", "seq": 0, "ref": null,'
        b' "ledger": {}, "pending": [{"ints": {"m0:requests": 1.5}}]}',
        b'{"format": 1, "worker": "w", "ledger_key": "LEDGER", "seq": -1, "ref": null,'
        b' "ledger": {}, "pending": []}',
    ],
)
def test_a_file_that_is_not_a_spool_is_set_aside_with_a_warning(
    redis_server: RedisServer,
    namespace: str,
    content: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="orchestrator.models.shared_spool")
    a = make_registry(redis_server.url, namespace)
    shared = shared_of(a)
    shared.spool_folder.mkdir(parents=True)
    ledger = f"orchestrator:{{{namespace}}}:ledger:w".encode()
    (shared.spool_folder / "w.json").write_bytes(content.replace(b"LEDGER", ledger))
    assert shared.sync_now()
    assert [p.name for p in spool_files(shared.spool_folder)] == ["w.json.bad"]
    assert len(warnings_with(caplog, "ignoring spool file")) == 1
    assert totals(redis_server.url, namespace) == {}
    shared.close()


def test_fleet_statistics_are_the_sum_of_every_worker(
    redis_server: RedisServer, namespace: str
) -> None:
    a = make_registry(redis_server.url, namespace)
    b = make_registry(redis_server.url, namespace)
    report(a, "m0", True, 4)
    report(b, "m0", False, 1)
    report(b, "m2", True, 2)
    assert shared_of(a).sync_now() and shared_of(b).sync_now()
    fleet = shared_of(a).fleet_statistics()
    assert fleet["name"] == ["m0", "m2"]
    assert list(fleet["trials"]) == [5, 2]
    assert list(fleet["successes"]) == [4, 2]
    assert list(fleet["failures"]) == [1, 0]
    assert list(fleet["output_tokens"]) == [20, 8]
    own = a.statistics()
    assert own["trials"][own["name"].index("m0")] == 4  # one worker's own view
    rows = {row.name: row for row in shared_of(b).fleet_rows()}
    assert rows["m0"].failures_by_class == {"other": 1}
    assert set(RATES) >= set(rows)
    assert all(v is not None for v in rows["m2"].as_dict().values())
    for r in (a, b):
        shared_of(r).close()


def test_close_while_redis_hangs_leaves_no_thread_and_spools(
    redis_server: RedisServer, namespace: str, spool_dir: Path
) -> None:
    proxy = HangingProxy(redis_server.port)
    try:
        a = make_registry(proxy.url, namespace, sync_interval=0.05)
        report(a, "m1", True, 6)
        assert shared_of(a).sync_now()
        report(a, "m1", False, 2)
        proxy.hang()  # the sync thread's next command blocks on a silent socket
        started = shared_of(a).stats.cycles
        deadline = time.monotonic() + 10
        while shared_of(a).stats.cycles <= started + 1:  # a cycle began after the hang
            assert time.monotonic() < deadline
            time.sleep(0.01)
        shared_of(a).close()
        assert thread_names() == set()
        (path,) = spool_files(spool_dir)
        spool = json.loads(path.read_text())
        assert sum(p["ints"].get("m1:requests", 0) for p in spool["pending"]) == 2
        proxy.resume()  # the next worker reaches the same Redis the same way
        b = make_registry(proxy.url, namespace)
        assert shared_of(b).sync_now()
        assert counts(redis_server.url, namespace, "m1") == (8, 6, 2, 32)
        assert spool_files(spool_dir) == []
        shared_of(b).close()
    finally:
        proxy.close()


def test_fleet_rows_can_be_read_without_a_registry(
    redis_server: RedisServer, namespace: str
) -> None:
    a = make_registry(redis_server.url, namespace)
    report(a, "m3", True, 2)
    assert shared_of(a).sync_now()
    rows = read_fleet_rows(redis_server.url, namespace)
    assert [(r.name, r.trials, r.successes) for r in rows] == [("m3", 2, 2)]
    assert read_fleet_rows(redis_server.url, "no-such-namespace") == []
    shared_of(a).close()
    redis_server.kill()
    with pytest.raises(SharedStateError, match="cannot read the fleet's totals"):
        read_fleet_rows(redis_server.url, namespace, timeout=0.5)


def discounted(url: str, namespace: str) -> dict[str, float]:
    return read_hash(url, namespace, "discounted")


def test_a_rollback_restores_the_discounted_sums_too(
    redis_server: RedisServer, namespace: str
) -> None:
    # Only sync_now() syncs (a background cycle could repair the rollback
    # before the test sees it).
    a = make_registry(redis_server.url, namespace, sync_interval=3600, discount=0.99)
    b = make_registry(redis_server.url, namespace, sync_interval=3600, discount=0.99)
    report(a, "m0", True, 5)
    report(b, "m0", False, 4)
    assert shared_of(a).sync_now() and shared_of(b).sync_now()
    snapshot = Snapshot(redis_server)
    snapshot.take()
    report(a, "m0", True, 7)
    assert shared_of(a).sync_now()
    before = discounted(redis_server.url, namespace)
    snapshot.restore()
    assert discounted(redis_server.url, namespace)["m0:n"] < before["m0:n"]
    assert shared_of(a).sync_now() and shared_of(b).sync_now()
    after = discounted(redis_server.url, namespace)
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key] == pytest.approx(value, rel=1e-12), key
    slot = b._binding(b.get_model("m0")).slot
    assert b._core.shared(slot)[0] == pytest.approx(12, rel=1e-9)  # a's 12, seen by b
    for r in (a, b):
        shared_of(r).close()


def test_concurrent_workers_deliver_a_spool_once(
    redis_server: RedisServer, namespace: str, spool_dir: Path
) -> None:
    a = make_registry(redis_server.url, namespace)
    report(a, "m1", True, 9)
    shared_of(a)._outage = True  # as if Redis had just gone: close() spools, no delivery
    shared_of(a).close()
    assert len(spool_files(spool_dir)) == 1
    workers = [make_registry(redis_server.url, namespace) for _ in range(4)]
    barrier = threading.Barrier(len(workers))

    def deliver(registry: ModelRegistry) -> None:
        barrier.wait()
        assert shared_of(registry).sync_now()

    threads = [threading.Thread(target=deliver, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts(redis_server.url, namespace, "m1") == (9, 9, 0, 36)
    assert sum(shared_of(w).stats.spools_delivered for w in workers) == 1
    for w in workers:
        shared_of(w).close()


def test_a_claim_left_by_a_dead_process_is_taken_over(
    redis_server: RedisServer, namespace: str, spool_dir: Path
) -> None:
    a = make_registry(redis_server.url, namespace)
    report(a, "m2", False, 3)
    shared_of(a)._outage = True
    shared_of(a).close()
    (path,) = spool_files(spool_dir)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    path.rename(path.with_name(f"{path.name}.claimed-{int(dead.stdout)}-0dead"))
    b = make_registry(redis_server.url, namespace)
    assert shared_of(b).sync_now()
    assert counts(redis_server.url, namespace, "m2") == (3, 0, 3, 12)
    assert spool_files(spool_dir) == []
    shared_of(b).close()


def test_a_claim_not_delivered_is_released_at_close(
    tmp_path: Path, namespace: str, spool_dir: Path
) -> None:
    server = RedisServer(tmp_path)
    server.start()
    try:
        a = make_registry(server.url, namespace)
        report(a, "m3", True, 2)
        shared_of(a)._outage = True
        shared_of(a).close()
        b = make_registry(server.url, namespace)
        real = shared_of(b)._deliver_spool

        def fail_once(spool):  # type: ignore[no-untyped-def]
            server.kill()
            real(spool)

        shared_of(b)._deliver_spool = fail_once  # type: ignore[method-assign]
        assert not shared_of(b).sync_now()  # claimed, then Redis went away
        assert [p.name.split(".json")[1] for p in spool_files(spool_dir)] == [
            f".claimed-{os.getpid()}-{shared_of(b)._token}"
        ]
        shared_of(b).close()  # gives the claim back (and spools nothing of its own)
        assert [p.suffix for p in spool_files(spool_dir)] == [".json"]
        server.start()
        c = make_registry(server.url, namespace)
        assert shared_of(c).sync_now()
        assert counts(server.url, namespace, "m3") == (2, 2, 0, 8)
        shared_of(c).close()
    finally:
        server.kill()


def test_an_unwritable_spool_is_an_error_naming_the_lost_outcomes(
    redis_server: RedisServer, namespace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    registry = ModelRegistry(health_monitor=None)
    shared = SharedState(registry, redis_server.url, namespace=namespace, spool_dir=blocker)
    registry._shared = shared
    for name in RATES:
        registry.register_model(SimModel(name))
    report(registry, "m4", True, 4)
    shared._outage = True
    shared.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "4 outcomes of this worker are lost" in errors[0], errors
    assert thread_names() == set()


def test_a_failover_to_a_lagging_replica_gets_the_missing_outcomes_back(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    replica_dir = tmp_path / "replica"
    replica_dir.mkdir()
    replica = RedisServer(replica_dir, extra=("--replicaof", "127.0.0.1", str(redis_server.port)))
    replica.start()
    proxy = HangingProxy(redis_server.port)
    try:
        a = make_registry(proxy.url, namespace)
        report(a, "m4", True, 5)
        assert shared_of(a).sync_now()
        deadline = time.monotonic() + 10
        while replica.info("replication").get("master_link_status") != "up" or (
            int(replica.info("replication").get("slave_repl_offset", "0"))
            < int(redis_server.info("replication")["master_repl_offset"])
        ):
            assert time.monotonic() < deadline, "the replica did not catch up"
            time.sleep(0.05)
        assert replica.command(b"REPLICAOF", b"NO", b"ONE") == b"+OK"  # it stops following
        report(a, "m4", False, 3)
        assert shared_of(a).sync_now()  # reaches the old master only
        redis_server.kill()
        proxy.fail_over(replica.port)
        assert counts(replica.url, namespace, "m4") == (5, 5, 0, 20)
        while not shared_of(a).sync_now():  # the cut connection fails once
            assert time.monotonic() < deadline + 10
        assert counts(replica.url, namespace, "m4") == (8, 5, 3, 32)
        assert shared_of(a).stats.restored_outcomes == 3
        shared_of(a).close()
    finally:
        proxy.close()
        replica.kill()

"""Whatever happens to Redis between syncs (older snapshots, flushes, empty
restarts, lost replies, a worker stopping in an outage), once it is reachable
again the totals are exactly what the workers reported: no outcome lost,
none counted twice."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.redis_server import RedisServer
from tests.shared.helpers import Snapshot, shared_of, totals
from tests.shared.workers import make_registry

STEPS = ["report_a", "report_b", "sync_a", "sync_b", "snapshot", "rollback", "flush",
         "restart_empty", "lose_reply_a"]  # fmt: skip


class Fleet:
    """Two workers on one Redis, and what each reported."""

    def __init__(self, server: RedisServer, namespace: str) -> None:
        self.server = server
        self.namespace = namespace
        self.snapshot = Snapshot(server)
        self.snapshot_taken = False
        self.workers = {n: make_registry(server.url, namespace) for n in "ab"}
        self.reported = {"m0": 0, "m1": 0}

    def report(self, worker: str) -> None:
        model = "m0" if worker == "a" else "m1"
        for _ in range(3):
            self.workers[worker].report_outcome(model, True, 0.2)
        self.reported[model] += 3

    def step(self, step: str, monkeypatch: pytest.MonkeyPatch) -> None:
        if step.startswith("report_"):
            self.report(step[-1])
        elif step.startswith("sync_"):
            shared_of(self.workers[step[-1]]).sync_now()
        elif step == "snapshot":
            self.snapshot.take()
            self.snapshot_taken = True
        elif step == "rollback" and self.snapshot_taken:
            self.snapshot.restore()
        elif step == "flush":
            assert self.server.command(b"FLUSHALL") == b"+OK"
        elif step == "restart_empty":
            self.server.kill()
            (self.server.dir / "dump.rdb").unlink(missing_ok=True)
            self.snapshot_taken = False
            self.server.start()
        elif step == "lose_reply_a":
            shared = shared_of(self.workers["a"])
            real = shared._apply

            def apply_once_then_lose_reply(*args: Any) -> list[Any]:
                monkeypatch.setattr(shared, "_apply", real)
                real(*args)
                raise redis.exceptions.ConnectionError("reply lost")

            monkeypatch.setattr(shared, "_apply", apply_once_then_lose_reply)

    def stop_a_in_an_outage(self) -> None:
        """Worker a closes while Redis looks down: its outcomes go to the spool."""
        shared = shared_of(self.workers["a"])
        shared._outage = True
        shared.close()
        self.workers["a"] = make_registry(self.server.url, self.namespace)

    def settle(self) -> dict[str, float]:
        for _ in range(3):
            for registry in self.workers.values():
                attempts = [shared_of(registry).sync_now() for _ in range(2)]
                assert attempts[-1], "a sync after a lost reply must succeed"
        return totals(self.server.url, self.namespace)

    def close(self) -> None:
        for registry in self.workers.values():
            shared_of(registry).close()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(st.sampled_from(STEPS), min_size=1, max_size=10),
    stop_a=st.booleans(),
)
@pytest.mark.timeout(600)
def test_totals_are_exactly_what_was_reported_whatever_redis_does(
    steps: list[str], stop_a: bool, monkeypatch: pytest.MonkeyPatch, namespace: str
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder))
        server.start()
        monkeypatch.setenv("ORCHESTRATOR_SPOOL_DIR", str(Path(folder) / "spool"))
        fleet = Fleet(server, namespace)
        try:
            for step in steps:
                fleet.step(step, monkeypatch)
            if stop_a:
                fleet.report("a")
                fleet.stop_a_in_an_outage()
            fleet.report("a")
            fleet.report("b")
            seen = fleet.settle()
            assert {m: seen.get(f"{m}:requests", 0) for m in fleet.reported} == fleet.reported
            assert {m: seen.get(f"{m}:successes", 0) for m in fleet.reported} == fleet.reported
        finally:
            fleet.close()
            server.kill()

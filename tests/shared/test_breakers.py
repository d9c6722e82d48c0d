"""One worker's breaker trip reaches the other workers within a second."""

from __future__ import annotations

import logging

from tests.redis_server import RedisServer
from tests.shared.helpers import run_workers

logger = logging.getLogger(__name__)


def test_trip_propagates_within_one_second(redis_server: RedisServer, namespace: str) -> None:
    kwargs = {
        "url": redis_server.url,
        "namespace": namespace,
        "fail_after": 1.5,
        "duration": 3.5,
    }
    results = run_workers("breaker_worker", [kwargs] * 4)
    first, others = results[0], results[1:]
    assert first["tripped"] is not None, "worker 0 never tripped its breaker"
    assert first["state"] == "open"
    tripped = first["tripped"]
    opened, stopped = [], []
    for r in others:
        # The others saw no failure themselves; worker 0's message opened
        # their breaker, and they stopped selecting the model.
        assert r["state"] == "open"
        assert r["received"] >= 1
        assert r["opened"] is not None and r["opened"] >= first["fail_at"]
        opened.append(r["opened"] - tripped)
        stopped.append(max(r["best_picks"]) - tripped)
        # Until the outage the model was the best, so it was used heavily.
        # (Counted against worker 0's clock: each worker's own fail_at is
        # taken after the barrier, so it may fall after the trip arrived.)
        before = [t for t in r["best_picks"] if first["fail_at"] - 0.5 <= t < first["fail_at"]]
        assert len(before) > 10, len(before)
    logger.warning(
        "breaker propagation: opened %s s, last selection %s s after worker 0's trip",
        [round(x, 4) for x in opened],
        [round(x, 4) for x in stopped],
    )
    assert max(opened) < 1.0, opened
    assert max(stopped) < 1.0, stopped

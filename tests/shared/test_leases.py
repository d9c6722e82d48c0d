"""Rate limits exact across workers: leases of windows a real Redis holds.

The core's rate-limit window is shortened to a few seconds
(``set_rate_limit_window``, a core parameter): the windows are real, only
shorter, so a test covers two windows in seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Union

import pytest
import redis

from orchestrator.models.shared_leases import LEASE
from tests.redis_server import RedisServer
from tests.shared.helpers import run_workers, shared_of
from tests.shared.lease_workers import REQUEST_TOKENS, Tally, limited_registry, select_for

logger = logging.getLogger(__name__)


def most_in_any_window(selecting: list[float], admitted: list[float], window: float) -> int:
    """The most admissions that certainly fell in one window of ``window``
    seconds. Admission ``k`` happened between ``selecting[k]`` and
    ``admitted[k]`` (Python brackets the core's instant; a thread paused
    after its ``select`` returned would otherwise seem admitted later, and
    two admissions a window apart seem closer), so a set is certainly
    within one window when its latest ``admitted`` minus its earliest
    ``selecting`` is less than ``window``."""
    spans = sorted(zip(admitted, selecting))
    most = 0
    start = 0
    for i, (end_at, _) in enumerate(spans):
        while spans[start][0] <= end_at - window:
            start += 1  # ended a window before: began earlier still
        inside = sum(1 for _, begun in spans[start : i + 1] if begun > end_at - window)
        most = max(most, inside)
    return most


def admissions(results: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Every worker's ``selecting_at`` and ``admitted_at``, in matching order."""
    return (
        [t for r in results for t in r["selecting_at"]],
        [t for r in results for t in r["admitted_at"]],
    )


def window_total(url: str, namespace: str, kind: str) -> int:
    """What Redis's window of model ``m`` holds for ``kind`` now."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        value = client.hget(f"orchestrator:{{{namespace}}}:lease:m:{kind}:amounts", "total")
    finally:
        client.close()
    return int(value or 0)


def run_limited(
    server: RedisServer, namespace: str, workers: int, **kwargs: Any
) -> list[dict[str, Any]]:
    per_worker = [{"url": server.url, "namespace": namespace, **kwargs}] * workers
    return run_workers("tests.shared.lease_workers:limited_worker", per_worker, timeout=90)


def assert_counts_add_up(results: list[dict[str, Any]]) -> None:
    for r in results:
        assert r["attempted"] == len(r["admitted_at"]) + r["refused"] + r["cancelled"]


@pytest.mark.timeout(120)
def test_four_processes_share_rpm_120_within_one_slice_per_worker(
    redis_server: RedisServer, namespace: str, record_property: Any
) -> None:
    window = 6.0
    results = run_limited(redis_server, namespace, 4, rpm=120, window=window, seconds=2.2 * window)
    assert_counts_add_up(results)
    selecting, times = admissions(results)
    most = most_in_any_window(selecting, times, window)
    slices = sum(r["largest_lease"]["requests"] for r in results)
    bound = 120 + slices
    logger.info("rpm=120, 4 workers: %d admitted in the busiest window (bound %d)", most, bound)
    record_property("busiest_window", most)
    record_property("bound", bound)
    assert most <= bound < 2 * 120
    assert all(r["warnings"] == [] for r in results)
    assert len(times) <= 3 * 120 + slices, "at most three windows' worth in 2.2 windows"


@pytest.mark.timeout(120)
def test_litellm_40291_tpm_holds_for_the_fleet_not_per_replica(
    redis_server: RedisServer, namespace: str, record_property: Any
) -> None:
    # LiteLLM checked tpm in each replica's memory: 4 replicas sent 4 × tpm.
    window, tpm = 6.0, 6_000
    results = run_limited(redis_server, namespace, 4, tpm=tpm, window=window, seconds=1.5 * window)
    assert_counts_add_up(results)
    tokens = most_in_any_window(*admissions(results), window) * REQUEST_TOKENS
    bound = tpm + sum(r["largest_lease"]["tokens"] for r in results)
    logger.info("tpm=%d, 4 workers: %d tokens in the busiest window (bound %d)", tpm, tokens, bound)
    record_property("busiest_window_tokens", tokens)
    assert tokens <= bound < 2 * tpm


@pytest.mark.timeout(60)
def test_litellm_8430_redis_counts_what_was_admitted_with_cancellations(
    redis_server: RedisServer, namespace: str
) -> None:
    # Two workers, 8 threads each, every third selection cancelled (a cache hit)
    # and every call reporting fewer tokens than it reserved.
    workers = [
        limited_registry(redis_server.url, namespace, 60.0, rpm=100_000, tpm=10**9)
        for _ in range(2)
    ]
    tallies = [Tally() for _ in range(16)]

    def run(registry: Any, tally: Tally) -> None:
        select_for(registry, 1.0, tally, cancel_every=3)

    threads = [
        threading.Thread(target=run, args=(workers[i % 2], tally))
        for i, tally in enumerate(tallies)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    admitted = sum(len(t.admitted_at) for t in tallies)
    assert sum(t.cancelled for t in tallies) > 0
    for registry in workers:
        assert shared_of(registry).sync_now()
    held = [registry.core.shared_limits(0) for registry in workers]
    assert all(h is not None for h in held)
    in_leases = sum(h["requests_available"] for h in held if h is not None)
    assert window_total(redis_server.url, namespace, "requests") == admitted + in_leases
    for registry in workers:
        registry.close()
    assert window_total(redis_server.url, namespace, "requests") == admitted
    assert window_total(redis_server.url, namespace, "tokens") == admitted * REQUEST_TOKENS


@pytest.mark.timeout(60)
def test_litellm_5609_no_counter_outlives_two_windows(
    redis_server: RedisServer, namespace: str
) -> None:
    window = 1.0
    registry = limited_registry(redis_server.url, namespace, window, rpm=50, tpm=5_000)
    select_for(registry, 0.5, Tally())
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        keys = client.keys(f"orchestrator:{{{namespace}}}:lease*")
        assert len(keys) == 5, keys  # grants and amounts per kind, the model's workers
        for key in keys:
            assert 0 < client.pttl(key) <= window * 1000, key
        registry.close()  # the last write: it gives the leases back
        written = float(client.time()[0]) + client.time()[1] / 1e6
        while float(client.time()[0]) + client.time()[1] / 1e6 < written + 2 * window:
            time.sleep(0.05)
        assert [key for key in keys if client.exists(key)] == []
    finally:
        client.close()


@pytest.mark.timeout(90)
def test_redis_killed_mid_run_falls_back_to_each_workers_share_then_recovers_empty(
    redis_server: RedisServer, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="orchestrator.models.shared_state")
    window, rpm = 3.0, 60
    workers = [limited_registry(redis_server.url, namespace, window, rpm=rpm) for _ in range(2)]
    for registry in workers:  # both know of each other before the outage
        assert shared_of(registry).sync_now()
    before, during, after = ([Tally() for _ in workers] for _ in range(3))

    def phase(tallies: list[Tally], seconds: float) -> None:
        threads = [
            threading.Thread(target=select_for, args=(registry, seconds, tally))
            for registry, tally in zip(workers, tallies)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    phase(before, window / 2)
    redis_server.kill()
    phase(during, 2 * window)
    for registry in workers:
        assert not shared_of(registry).connected
        state = registry.core.shared_limits(0)
        assert state is not None and state["fallback"] == (rpm // 2, None)
    outage = [m for m in caplog.messages if "unreachable" in m]
    assert len(outage) == 2, "one warning per worker"
    for d in during:  # the local log, lease admissions included, holds the share
        assert 0 < most_in_any_window(d.selecting_at, d.admitted_at, window) <= rpm // 2

    redis_server.start()  # empty
    for registry in workers:
        assert shared_of(registry).sync_now()
        state = registry.core.shared_limits(0)
        assert state is not None and state["fallback"] is None
    # What the share admitted is charged dated at the recovery, so it holds
    # the window for up to one more window: then leases come back.
    phase(after, 2 * window)
    assert all(len(t.admitted_at) > 0 for t in after)
    everyone = [tally.as_dict() for tallies in (before, during, after) for tally in tallies]
    slices = sum(shared_of(r).leases.stats.largest_lease["requests"] for r in workers)
    assert most_in_any_window(*admissions(everyone), window) <= rpm + slices
    assert len([m for m in caplog.messages if "unreachable" in m]) == 2
    for registry in workers:
        registry.close()


@pytest.mark.timeout(30)
def test_a_retried_exchange_is_applied_once(redis_server: RedisServer, namespace: str) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    script = client.register_script(LEASE)
    keys = [f"orchestrator:{{{namespace}}}:lease:m:requests", "", ""]
    keys[1], keys[2] = f"{keys[0]}:amounts", f"orchestrator:{{{namespace}}}:lease-workers:m"

    def exchange(call: str, want: int, *returns: int) -> list[int]:
        args: list[Union[str, int]] = ["w", call, 10, 60_000, want, 0, 0, len(returns) // 2]
        args += returns
        return [int(v) for v in script(keys=keys, args=args)]

    try:
        first = exchange("1", 4)
        assert first[1] == 4 and first[3] == 4 and first[-1] == 0
        assert exchange("1", 4) == [*first[:-1], 1], "a retry gets the first reply, flagged"
        grant = first[0]
        assert exchange("2", 0, grant, 3)[3] == 1
        assert (
            exchange("2", 0, grant, 3)[-1] == 1
            and window_total(redis_server.url, namespace, "requests") == 1
        )
        assert exchange("3", 0, grant, 5)[3] == 0, "a grant gives back no more than it holds"
        assert exchange("4", 20)[1] == 10, "never more than the limit"
    finally:
        client.close()


@pytest.mark.timeout(30)
def test_limits_given_after_registration_are_shared(
    redis_server: RedisServer, namespace: str
) -> None:
    registry = limited_registry(redis_server.url, namespace, 60.0)
    assert registry.core.shared_limits(0) is None
    model = registry.get_model("m")
    model.rpm = 5
    registry.update_model(model)
    state = registry.core.shared_limits(0)
    assert state is not None and state["requests_available"] == 1, "slow start: a lease of 1"
    registry.close()

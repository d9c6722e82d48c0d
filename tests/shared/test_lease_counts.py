"""Exact counts across 4 processes (issue 14: "4 processes through a real
Redis with exact counts"; LiteLLM #8430: Redis counters drifting from the
real count). Four worker processes select against one model with ``rpm=120``
and ``tpm=12000`` (100-token requests) in a single 60 s window, as fast as
they can, each cancelling every third selection (a cache hit). The fleet
sends at most the limit (in the first window no worker held a lease before
it began), and once the workers have closed, Redis's window holds exactly
the requests and tokens sent: cancelled selections and unused leases all
came back, none counted twice."""

from __future__ import annotations

import pytest

from tests.redis_server import RedisServer
from tests.shared.lease_workers import REQUEST_TOKENS
from tests.shared.test_leases import assert_counts_add_up, run_limited, window_total

RPM = 120


@pytest.mark.timeout(120)
def test_four_processes_stay_within_the_limit_and_redis_counts_exactly_what_they_sent(
    redis_server: RedisServer, namespace: str
) -> None:
    results = run_limited(
        redis_server,
        namespace,
        4,
        rpm=RPM,
        tpm=RPM * REQUEST_TOKENS,
        window=60.0,
        seconds=3.0,
        cancel_every=3,
    )
    assert_counts_add_up(results)
    sent = sum(len(r["admitted_at"]) for r in results)
    assert sum(r["cancelled"] for r in results) > 0
    assert 0 < sent <= RPM, [len(r["admitted_at"]) for r in results]
    assert window_total(redis_server.url, namespace, "requests") == sent
    assert window_total(redis_server.url, namespace, "tokens") == sent * REQUEST_TOKENS
    assert all(r["warnings"] == [] for r in results)

"""Slow start of a shared token lease counts in requests. A fresh worker of a
model with ``tpm=12000`` sending 100-token requests used to double its
token lease from 1, one exchange and one of the lease's eight grants (each
held until it expires, a quarter of the window) per doubling: it sent 7
requests in its first quarter window, then waited, though the window allowed
120. Now the lease doubles from the first refused request's size and reaches
its slice in a few exchanges; requests start at 1 as before."""

from __future__ import annotations

from typing import Optional

import pytest

from orchestrator.errors import NoEligibleModelsError
from orchestrator.models.model_registry import ModelRegistry
from tests.redis_server import RedisServer
from tests.shared.helpers import shared_of
from tests.shared.lease_workers import limited_registry, report_sent, select_request

pytestmark = pytest.mark.timeout(60)

SENT = 60


def exchanges_to_send(registry: ModelRegistry, requests: int) -> int:
    """Select (and report) ``requests`` requests, syncing once each time one
    is refused; the syncs it took (the sync thread runs once a minute here)."""
    sent = syncs = 0
    while sent < requests and syncs < 100:
        try:
            selection = select_request(registry)
        except NoEligibleModelsError:
            assert shared_of(registry).sync_now()
            syncs += 1
            continue
        report_sent(registry, selection)
        sent += 1
    return syncs


@pytest.mark.parametrize(("rpm", "tpm"), [(None, 12_000), (120, None), (120, 12_000)])
def test_a_fresh_worker_reaches_its_slice_in_a_few_exchanges(
    redis_server: RedisServer, namespace: str, rpm: Optional[int], tpm: Optional[int]
) -> None:
    registry = limited_registry(
        redis_server.url, namespace, 60.0, rpm=rpm, tpm=tpm, sync_interval=60.0
    )
    try:
        assert exchanges_to_send(registry, SENT) <= 8
        largest = shared_of(registry).leases.stats.largest_lease
        if tpm is not None:
            assert largest["tokens"] == tpm // 4, "one worker's slice: a quarter of the window"
        if rpm is not None:
            assert largest["requests"] == rpm // 4
    finally:
        registry.close()

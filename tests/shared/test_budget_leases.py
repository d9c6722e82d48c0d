"""Spend budgets exact across workers: 4 processes spend $0.01 requests
against one $1.00 budget through a real Redis."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis

from orchestrator.core.budgets import BudgetScope
from orchestrator.errors import NoEligibleModelsError, SharedStateError
from orchestrator.models.model_registry import ModelRegistry
from orchestrator.models.shared_state import read_fleet_budgets
from tests.redis_server import RedisServer
from tests.shared.helpers import run_workers, shared_of
from tests.shared.lease_workers import CENT_TOKENS, cent_model

logger = logging.getLogger(__name__)

CENT_NANOS = 10_000_000
DOLLAR_NANOS = 100 * CENT_NANOS


def redis_spend(url: str, namespace: str) -> int:
    """What Redis counts as spent (granted, less what came back) in the budget's period."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        keys = client.keys(f"orchestrator:{{{namespace}}}:budget:fleet:*:spend:amounts")
        assert len(keys) == 1, keys
        assert 0 < client.pttl(keys[0]) <= 86_400_000
        return int(client.hget(keys[0], "total") or 0)
    finally:
        client.close()


@pytest.mark.timeout(120)
def test_four_processes_spend_at_most_one_request_over_a_shared_dollar(
    redis_server: RedisServer, namespace: str, record_property: Any
) -> None:
    per_worker = [{"url": redis_server.url, "namespace": namespace, "seconds": 4.0}] * 4
    results = run_workers("tests.shared.lease_workers:budget_worker", per_worker, timeout=90)
    for r in results:
        assert r["attempted"] == len(r["admitted_at"]) + r["refused"] + r["cancelled"]
        assert r["spent_nanos"] == len(r["admitted_at"]) * CENT_NANOS
    spent = sum(r["spent_nanos"] for r in results)
    logger.info("4 workers, $1.00 budget, $0.01 requests: spent $%.2f", spent / 1e9)
    record_property("spent_usd", spent / 1e9)
    assert spent <= DOLLAR_NANOS + 4 * CENT_NANOS
    # A lease's rest below one request's cost cannot be spent until returned.
    assert spent > DOLLAR_NANOS - 4 * CENT_NANOS
    assert redis_spend(redis_server.url, namespace) == spent, "Redis counts what was spent"


def cent_spender(url: str, namespace: str) -> Any:
    """A registry sharing ``url`` with one $0.01-a-request model and a $1.00 day budget."""
    registry = ModelRegistry(state=url, state_namespace=namespace, sync_interval=0.05)
    registry.register_model(cent_model())
    registry.add_budget(BudgetScope(provider="sim"), 1.0, "day", name="fleet")
    return registry


def spend(registry: Any, requests: int) -> int:
    """Try ``requests`` $0.01 calls; how many were admitted."""
    admitted = 0
    for _ in range(requests):
        try:
            selection = registry.select(input_tokens=CENT_TOKENS, output_tokens=CENT_TOKENS)
        except NoEligibleModelsError:
            continue
        registry.report_outcome(
            selection, True, 0.01, input_tokens=CENT_TOKENS, output_tokens=CENT_TOKENS
        )
        admitted += 1
    return admitted


@pytest.mark.timeout(60)
def test_a_redis_outage_spends_each_workers_share_and_is_charged_when_back(
    redis_server: RedisServer, namespace: str
) -> None:
    workers = [cent_spender(redis_server.url, namespace) for _ in range(2)]
    assert all(spend(registry, 10) > 0 for registry in workers)
    for registry in workers:  # each hears from the counter: 2 workers share it
        shared_of(registry).budget_leases.refresh_all()
        assert shared_of(registry).sync_now()
    redis_server.kill()
    for registry in workers:
        assert not shared_of(registry).sync_now()
        (state,) = registry.budgets()
        assert state.allowance_nanos == DOLLAR_NANOS // 2, "the share: $1.00 / 2 workers"
        spend(registry, 100)
        assert registry.budgets()[0].spent_nanos == DOLLAR_NANOS // 2
    redis_server.start()  # empty: what was spent is charged back
    for registry in workers:
        assert shared_of(registry).sync_now()
    for registry in workers:
        spend(registry, 100)
    spent = sum(registry.budgets()[0].spent_nanos for registry in workers)
    # A worker that recovered first may be granted a slice before the other
    # charged its outage spend: at most one slice per worker over.
    assert DOLLAR_NANOS <= spent <= DOLLAR_NANOS + 2 * (DOLLAR_NANOS // (4 * 2))
    for registry in workers:
        registry.close()
    assert redis_spend(redis_server.url, namespace) == spent, "Redis counts what was spent"


@pytest.mark.timeout(60)
def test_the_fleets_spend_is_read_from_redis_without_a_lease(
    redis_server: RedisServer, namespace: str
) -> None:
    workers = [cent_spender(redis_server.url, namespace) for _ in range(2)]
    spent_here = []
    for registry, requests in zip(workers, (3, 5)):
        assert spend(registry, requests) == requests
        assert shared_of(registry).sync_now()
        spent_here.append(registry.budgets()[0].spent_nanos)
    assert spent_here == [3 * CENT_NANOS, 5 * CENT_NANOS]
    (live,) = workers[0].budgets(fleet=True)
    # Unused leases count until they come back: at least what was spent.
    assert live.fleet_nanos is not None
    assert 8 * CENT_NANOS <= live.fleet_nanos <= 8 * CENT_NANOS + 2 * (DOLLAR_NANOS // 4)
    assert live.fleet_usd == live.fleet_nanos / 1e9
    assert workers[0].budgets()[0].fleet_nanos is None, "read only when asked"
    for registry in workers:
        registry.close()
    (state,) = workers[0].budgets()
    period = [("fleet", round(state.resets_at.timestamp()))]
    assert read_fleet_budgets(redis_server.url, namespace, period) == {"fleet": 8 * CENT_NANOS}
    assert redis_spend(redis_server.url, namespace) == 8 * CENT_NANOS, "the read took nothing"
    assert read_fleet_budgets(redis_server.url, namespace, [("fleet", 1)]) == {"fleet": 0}
    with pytest.raises(TypeError, match="invalid fleet: 1"):
        workers[0].budgets(fleet=1)  # type: ignore[arg-type]
    redis_server.kill()
    with pytest.raises(SharedStateError, match="cannot read the fleet's budgets at redis://"):
        read_fleet_budgets(redis_server.url, namespace, period, timeout=0.5)
    local = ModelRegistry()
    local.register_model(cent_model())
    local.add_budget(BudgetScope(provider="sim"), 1.0, "day", name="fleet")
    assert local.budgets(fleet=True)[0].fleet_nanos is None, "no shared state: unknown"

"""A deployment's qualified name is its identity everywhere a model's name
is: the shared Redis totals and the response cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.models.model_registry import ModelRegistry
from orchestrator.models.shared_spool import SPOOL_DIR_ENV
from tests.conftest import ScriptedModel
from tests.redis_server import RedisServer
from tests.shared.helpers import totals


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test writes to the user's cache folder."""
    monkeypatch.setenv(SPOOL_DIR_ENV, str(tmp_path / "spool"))
    return tmp_path / "spool"


def test_shared_totals_are_kept_per_deployment(redis_server: RedisServer) -> None:
    workers = [
        ModelRegistry(state=redis_server.url, state_namespace="deployments") for _ in range(2)
    ]
    for registry in workers:
        registry.register_model(ScriptedModel("gpt-4o", deployment="eu"))
        registry.register_model(ScriptedModel("gpt-4o", deployment="us"))
    for _ in range(3):
        workers[0].report_outcome("gpt-4o@eu", True, 0.1)
    workers[1].report_outcome("gpt-4o@us", False, 0.1, error_class="server_error")
    for registry in workers:
        assert registry.shared_state is not None
        registry.shared_state.sync_now()
    shared = totals(redis_server.url, "deployments")
    assert shared["gpt-4o@eu:requests"] == 3
    assert shared["gpt-4o@us:requests"] == 1
    assert shared["gpt-4o@us:successes"] == 0
    fleet = workers[1].statistics(scope="fleet")
    by_name = dict(zip(fleet["name"], fleet["trials"]))
    assert (by_name["gpt-4o@eu"], by_name["gpt-4o@us"]) == (3, 1)
    for registry in workers:
        registry.close()


async def test_each_deployment_has_its_own_cache_entries() -> None:
    registry = ModelRegistry(cache_responses=True)
    eu = registry.register_model(ScriptedModel("gpt-4o", deployment="eu"))
    us = registry.register_model(ScriptedModel("gpt-4o", deployment="us"))
    assert eu.cache_identity() != us.cache_identity()
    assert (await eu.generate_response("hi")) == "gpt-4o@eu: hi"
    assert (await us.generate_response("hi")) == "gpt-4o@us: hi"
    assert (await eu.generate_response("hi")) == "gpt-4o@eu: hi"
    assert (eu.calls, us.calls) == (1, 1)
    await registry.aclose()

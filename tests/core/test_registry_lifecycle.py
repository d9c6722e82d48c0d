"""What a registry closes: its response cache's threads and files, whoever
built the cache; a closed cache reopens on its next use."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from orchestrator.config.building import RegistryParts
from orchestrator.core.cache import ModelCache
from orchestrator.models.health_monitor import ModelHealthMonitor
from orchestrator.models.model_registry import ModelRegistry, RewardWeights, UCBModelSelector
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(60)

DISK_THREAD = "orchestrator-cache-disk"


def disk_threads() -> int:
    """Live worker threads of disk cache stores."""
    return sum(t.name.startswith(DISK_THREAD) for t in threading.enumerate())


def parts_with(cache: ModelCache) -> RegistryParts:
    """What a configuration with a disk cache and one model builds."""
    return RegistryParts(
        model_selector=UCBModelSelector(),
        health_monitor=ModelHealthMonitor(),
        health_check_interval=300.0,
        cache_responses=cache,
        reward_weights=RewardWeights(),
        pending_timeout=600.0,
        models=[ScriptedModel("a")],
    )


async def test_aclose_closes_the_cache_a_configuration_built(tmp_path: Path) -> None:
    before = disk_threads()
    registry = ModelRegistry.from_parts(
        parts_with(ModelCache(backend="disk", path=tmp_path / "c.sqlite"))
    )
    await registry.generate("hello")
    assert disk_threads() == before + 1
    await registry.aclose()
    assert disk_threads() == before


async def test_aclose_closes_a_callers_cache_which_reopens_when_used(tmp_path: Path) -> None:
    """No thread is left after aclose(), and a cache the caller passed in (which
    the caller may share) reopens on its next use, still holding its entries."""
    before = disk_threads()
    cache = ModelCache(backend="disk", path=tmp_path / "c.sqlite")
    registry = ModelRegistry(cache_responses=cache)
    model = registry.register_model(ScriptedModel("a"))
    await registry.generate("hello")
    await registry.aclose()
    assert disk_threads() == before
    await registry.generate("hello")  # reopened, and served from the store
    assert model.calls == 1
    assert cache.get_statistics().hits == 1
    await cache.aclose()
    assert disk_threads() == before


def test_close_closes_the_cache_a_configuration_built(tmp_path: Path) -> None:
    before = disk_threads()
    registry = ModelRegistry.from_parts(
        parts_with(ModelCache(backend="disk", path=tmp_path / "c.sqlite"))
    )
    asyncio.run(registry.generate("hello"))
    assert disk_threads() == before + 1
    registry.close()
    assert disk_threads() == before

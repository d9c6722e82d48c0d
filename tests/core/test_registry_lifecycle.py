"""What a registry closes: the cache it built itself (``cache_responses=True``
or from a configuration), never a cache the caller passed in."""

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


async def test_aclose_leaves_a_callers_cache_open(tmp_path: Path) -> None:
    before = disk_threads()
    cache = ModelCache(backend="disk", path=tmp_path / "c.sqlite")
    registry = ModelRegistry(cache_responses=cache)
    registry.register_model(ScriptedModel("a"))
    await registry.generate("hello")
    await registry.aclose()
    assert disk_threads() == before + 1  # still the caller's to use and close
    assert (await registry.generate("hello")).text  # served from the open cache
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

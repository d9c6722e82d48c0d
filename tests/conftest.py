"""Shared test helpers: a scripted in-process model, and a real
``redis-server`` on a free loopback port for any test that asks for one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

import pytest

from orchestrator.core.model import Model, ModelCapabilities, ModelCost
from orchestrator.models.model_registry import ModelRegistry
from tests.redis_server import RedisServer

DEFAULT_COST = ModelCost(input_per_million=1.0, output_per_million=2.0)


class ScriptedModel(Model):
    """A model whose answers are scripted: succeeds unless ``fail`` is set,
    sleeps ``delay`` seconds, and counts its calls."""

    def __init__(
        self,
        name: str,
        *,
        capabilities: Optional[ModelCapabilities] = None,
        cost: Optional[ModelCost] = DEFAULT_COST,
        speed: Optional[float] = 100.0,
        fail: Optional[BaseException] = None,
        delay: float = 0.0,
        provider: str = "scripted",
        rpm: Optional[int] = None,
        tpm: Optional[int] = None,
        tags: Optional[Sequence[str]] = None,
        deployment: Optional[str] = None,
    ) -> None:
        super().__init__(
            name=name,
            provider=provider,
            capabilities=capabilities
            or ModelCapabilities(text_generation=True, chat=True, context_length=8192),
            cost=cost,
            speed=speed,
            rpm=rpm,
            tpm=tpm,
            tags=tags,
            deployment=deployment,
        )
        self.fail = fail
        self.delay = delay
        self.calls = 0

    async def generate_response(self, prompt: Any, **kwargs: Any) -> str:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        self.record_usage(input_tokens=10, output_tokens=20)
        return f"{self.name}: {prompt}"

    async def health_check(self) -> bool:
        return self.fail is None


def virtual_registry(*models: Model) -> ModelRegistry:
    """A registry of ``models`` on the core's virtual clock (rate-limit
    windows and budget periods move only when told)."""
    registry = ModelRegistry()
    registry.core.use_virtual_clock()
    for model in models:
        registry.register_model(model)
    return registry


@pytest.fixture
def scripted() -> type[ScriptedModel]:
    return ScriptedModel


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A ``redis-server`` this test owns (killable, restartable on its port)."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()

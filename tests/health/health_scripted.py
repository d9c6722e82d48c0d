"""Scripted test models for the health and failover tests: each call does
what the test says (answer, raise a given error, hang, cut a stream)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, Optional, Union

from orchestrator.core.model import Model, ModelCapabilities, ModelCost, Prompt
from orchestrator.errors import StreamCutError
from orchestrator.models.health_monitor import ModelHealthMonitor
from orchestrator.models.model_registry import ModelRegistry

HANG = "hang"


@dataclass(frozen=True)
class CutAfter:
    """Stream ``chunks`` chunks, then fail with :class:`StreamCutError`
    (or hang, with ``hang=True``)."""

    chunks: int
    hang: bool = False


Behaviour = Union[str, BaseException, CutAfter]


class ScriptedModel(Model):
    """A model whose calls follow a script, then ``default``.

    A behaviour is ``"ok"``, ``HANG`` (never answers), an exception instance
    (raised), or :class:`CutAfter` (streams only). ``health`` is what
    ``health_check`` does: ``True``/``False``, ``HANG`` or an exception.
    """

    def __init__(
        self,
        name: str,
        *,
        script: Iterable[Behaviour] = (),
        default: Behaviour = "ok",
        health: Union[bool, str, BaseException] = True,
        chunks: tuple[str, ...] = ("Hello", ", ", "world"),
    ) -> None:
        super().__init__(
            name,
            "test",
            ModelCapabilities(text_generation=True, chat=True, supports_streaming=True),
            ModelCost(input_per_million=1.0, output_per_million=2.0),
        )
        self.script: deque[Behaviour] = deque(script)
        self.default = default
        self.health = health
        self.chunks = chunks
        self.calls = 0
        self.health_checks = 0
        self.last_kwargs: dict[str, Any] = {}

    def next_behaviour(self) -> Behaviour:
        return self.script.popleft() if self.script else self.default

    async def generate_response(self, prompt: Prompt, **kwargs: Any) -> str:
        self.calls += 1
        self.last_kwargs = kwargs
        behaviour = self.next_behaviour()
        await asyncio.sleep(0)  # let concurrent requests interleave
        if behaviour == HANG:
            await asyncio.Event().wait()
        if isinstance(behaviour, BaseException):
            raise behaviour
        return f"{self.name} says hi"

    async def stream_response(self, prompt: Prompt, **kwargs: Any) -> AsyncIterator[str]:
        self.calls += 1
        behaviour = self.next_behaviour()
        await asyncio.sleep(0)
        if behaviour == HANG:
            await asyncio.Event().wait()
        if isinstance(behaviour, BaseException):
            raise behaviour
        for i, chunk in enumerate(self.chunks):
            if isinstance(behaviour, CutAfter) and i == behaviour.chunks:
                if behaviour.hang:
                    await asyncio.Event().wait()
                raise StreamCutError("stream cut", model=self.name)
            yield chunk

    async def health_check(self) -> bool:
        self.health_checks += 1
        if self.health == HANG:
            await asyncio.Event().wait()
        if isinstance(self.health, BaseException):
            raise self.health
        return bool(self.health)


def make_registry(
    *models: Model, monitor: Optional[ModelHealthMonitor] = None, **kwargs: Any
) -> ModelRegistry:
    """A registry with ``models`` registered and ``monitor`` attached."""
    registry = ModelRegistry(health_monitor=monitor or ModelHealthMonitor(), **kwargs)
    for model in models:
        registry.register_model(model)
    return registry


def breaker(registry: ModelRegistry, name: str) -> dict[str, Any]:
    """The core's breaker of the model called ``name``."""
    model = registry.get_model(name)
    result: dict[str, Any] = registry._core.breaker(registry._binding(model).slot)
    return result

"""A scripted model that declares tags (and, later, a deployment), for the
tests of deployments, aliases and tags."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Optional

from orchestrator.core.model import Model, ModelCapabilities, ModelCost

COST = ModelCost(input_per_million=1.0, output_per_million=2.0)


class Labelled(Model):
    """Answers ``"<name>: <prompt>"`` unless ``fail`` is set; counts its calls."""

    def __init__(
        self,
        name: str,
        *,
        tags: Optional[Sequence[str]] = None,
        fail: Optional[BaseException] = None,
        delay: float = 0.0,
    ) -> None:
        super().__init__(
            name,
            "scripted",
            ModelCapabilities(text_generation=True, chat=True, context_length=8192),
            COST,
            speed=100.0,
            tags=tags,
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

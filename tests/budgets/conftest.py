"""A metered model for budget tests: priced per token, with generation,
streaming and embeddings, reporting the usage a provider would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, Optional

from orchestrator.core.model import Model, ModelCapabilities, ModelCost
from orchestrator.errors import ServerError
from tests.conftest import virtual_registry

#: $1 per million input and output tokens, plus $0.01 per request.
PRICE = ModelCost(input_per_million=1.0, output_per_million=1.0, per_request=0.01)


class MeteredModel(Model):
    """Answers in ``chunks`` chunks of 10 output tokens after 10 input tokens;
    ``fail`` makes generation fail with a server error after the request."""

    def __init__(
        self,
        name: str,
        provider: str = "openai",
        *,
        cost: ModelCost = PRICE,
        chunks: int = 3,
        fail: bool = False,
        tags: Sequence[str] = (),
    ) -> None:
        super().__init__(
            name=name,
            provider=provider,
            capabilities=ModelCapabilities(
                text_generation=True,
                chat=True,
                embeddings=True,
                supports_streaming=True,
                context_length=8192,
            ),
            cost=cost,
            speed=100.0,
            tags=tags,
        )
        self.chunks = chunks
        self.fail = fail
        self.calls = 0

    async def generate_response(self, prompt: Any, **kwargs: Any) -> str:
        self.calls += 1
        if self.fail:
            self.record_usage(input_tokens=10, output_tokens=0)
            raise ServerError("upstream 500", model=self.name)
        self.record_usage(input_tokens=10, output_tokens=10 * self.chunks)
        return "ok" * self.chunks

    async def stream_response(self, prompt: Any, **kwargs: Any) -> AsyncIterator[str]:
        self.calls += 1
        for i in range(self.chunks):
            await asyncio.sleep(0)
            self.record_usage(input_tokens=10, output_tokens=10 * (i + 1))
            yield "ok"

    async def embed(self, texts: Sequence[str], **kwargs: Any) -> list[list[float]]:
        self.calls += 1
        self.record_usage(input_tokens=10 * len(texts), output_tokens=0)
        return [[1.0, 0.0] for _ in texts]

    async def health_check(self) -> bool:
        return True


def call_cost(input_tokens: int, output_tokens: int, cost: Optional[ModelCost] = PRICE) -> float:
    """What a call of these token counts costs at ``cost``."""
    assert cost is not None
    return cost.price(input_tokens, output_tokens)


#: A registry on the core's virtual clock (periods move only when told).
registry_of = virtual_registry

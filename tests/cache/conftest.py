"""Fixtures of the cache tests: a small test model (the real ``redis-server``
fixture is the suite's, in ``tests/conftest.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, Optional

import pytest

from orchestrator.core.model import Model, ModelCapabilities, ModelCost, Prompt
from orchestrator.errors import ServerError


class CountingModel(Model):
    """A test model that counts provider calls and answers deterministically."""

    def __init__(
        self,
        name: str = "test-model",
        provider: str = "test",
        *,
        delay: float = 0.0,
        embeddings: bool = True,
    ) -> None:
        super().__init__(
            name,
            provider,
            ModelCapabilities(chat=True, supports_streaming=True, embeddings=embeddings),
            ModelCost(input_per_million=1000.0, output_per_million=2000.0),
        )
        self.delay = delay
        self.calls = 0
        self.stream_calls = 0
        self.embedded: list[list[str]] = []
        self.fail_with: Optional[Exception] = None
        self.answer: Optional[str] = None
        #: Raise after this many chunks of a stream (a cut-off connection).
        self.stream_fail_after: Optional[int] = None

    async def generate_response(self, prompt: Prompt, **kwargs: Any) -> str:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with is not None:
            raise self.fail_with
        if self.answer is not None:
            return self.answer
        params = ",".join(f"{k}={kwargs[k]!r}" for k in sorted(kwargs))
        return f"{self.name} answer #{self.calls} to {prompt!r} ({params})"

    async def stream_response(self, prompt: Prompt, **kwargs: Any) -> AsyncIterator[str]:
        self.stream_calls += 1
        parts = ["streamed ", "answer ", f"#{self.stream_calls} ", f"to {prompt!r}"]
        for i, part in enumerate(parts):
            if self.stream_fail_after is not None and i == self.stream_fail_after:
                raise ServerError("connection reset mid-stream", model=self.name)
            await asyncio.sleep(0)
            yield part

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.embedded.append(list(texts))
        return [[float(len(t)), float(sum(map(ord, t)) % 997), 0.5] for t in texts]

    async def health_check(self) -> bool:
        return True


@pytest.fixture
def model() -> CountingModel:
    return CountingModel()


@pytest.fixture
def make_model() -> type[CountingModel]:
    """The test model class, for tests that need several models."""
    return CountingModel

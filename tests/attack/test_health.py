"""Attacks on the breakers and Retry-After: a provider that rate-limits every
model must be left alone for as long as it asked."""

from __future__ import annotations

import pytest

from orchestrator.errors import OrchestratorError
from orchestrator.integrations.openai_model import OpenAIModel
from orchestrator.models.model_registry import ModelRegistry
from tests.providers.conftest import fast
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(60)

KEY = "sk-attack-ZZZ0123456789abcdefXYZ"


async def test_retry_after_is_honoured_when_every_model_is_rate_limited() -> None:
    """Reproduction: two OpenAI models on one loopback server that answers
    every call 429 with ``Retry-After: 600``; after 3 failing
    ``registry.generate`` calls every circuit is open, yet the next 20 calls
    send 40 more requests upstream ("every eligible model's circuit is open;
    probing gpt-4o-mini, the soonest to recover"): the all-open fallback
    probes models that explicitly asked for 600 s of quiet. Behind the
    gateway that is one upstream call per client request against a provider
    that is rate limiting us. While every model is inside a Retry-After
    window, calls must fail fast (RateLimit/NoEligible with the retry-in)."""
    with OpenAIServer() as server:
        registry = ModelRegistry()
        for name in ("gpt-4", "gpt-4o-mini"):
            model = OpenAIModel(name, api_key=KEY, base_url=server.url)
            registry.register_model(fast(model, max_retries=0))
        server.add_fault(status=429, retry_after="600", times=-1)
        try:
            for _ in range(3):
                with pytest.raises(OrchestratorError):
                    await registry.generate("hi")
            sent = len(server.requests)
            for _ in range(20):
                with pytest.raises(OrchestratorError):
                    await registry.generate("hi")
            assert len(server.requests) == sent
        finally:
            await registry.aclose()

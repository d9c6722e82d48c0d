"""Fixtures of the gateway tests: loopback OpenAI servers and a gateway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.harness import UPSTREAM_KEY, ThreadGateway, config_text, model_table
from tests.servers import OpenAIServer


@pytest.fixture
def upstream() -> Iterator[OpenAIServer]:
    with OpenAIServer(api_key=UPSTREAM_KEY) as server:
        yield server


@pytest.fixture
def gateway(upstream: OpenAIServer) -> Iterator[ThreadGateway]:
    """One model with embeddings, a cache and a ``cheap`` alias; no keys."""
    text = config_text(
        [model_table("mini", upstream.url, embeddings=True)],
        """
        [cache]
        enabled = true
        [server]
        aliases = { cheap = { max_cost = 1.0 } }
        """,
    )
    with ThreadGateway(text) as running:
        yield running

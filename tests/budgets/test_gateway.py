"""The gateway passes each client key's tenant to selection, so a tenant's
budget counts its requests (chat and embeddings) and only its own; a client
cannot name a tenant in its request."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.server.conftest import upstream
from tests.server.harness import ThreadGateway, config_text, model_table
from tests.servers import OpenAIServer

__all__ = ["upstream"]  # the loopback provider fixture, used here by name

pytestmark = pytest.mark.timeout(60)

ACME_KEY = "gw-acme-0123456789abcdef"
GLOBEX_KEY = "gw-globex-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def gateway(upstream: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadGateway]:
    monkeypatch.setenv("ACME_GATEWAY_KEY", ACME_KEY)
    monkeypatch.setenv("GLOBEX_GATEWAY_KEY", GLOBEX_KEY)
    extra = """
    [server]
    api_keys = [
        { env = "ACME_GATEWAY_KEY", tenant = "acme" },
        { env = "GLOBEX_GATEWAY_KEY", tenant = "globex" },
    ]

    [[budgets]]
    name = "acme"
    tenant = "acme"
    limit_usd = 0.0005
    period = "day"
    """
    models = [model_table("mini", upstream.url, embeddings=True, price=1.0)]
    with ThreadGateway(config_text(models, extra)) as running:
        yield running


def chat(gateway: ThreadGateway, key: str, **body: object) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "auto", "messages": MESSAGES, "max_tokens": 100, **body},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_a_tenant_budget_counts_only_its_keys_requests(gateway: ThreadGateway) -> None:
    budget = gateway.gateway.registry.budgets
    assert chat(gateway, ACME_KEY).status_code == 200
    spent = budget()[0].spent_nanos
    assert spent > 0
    assert chat(gateway, GLOBEX_KEY).status_code == 200
    assert budget()[0].spent_nanos == spent, "globex's request is not acme's"
    embedded = httpx.post(
        f"{gateway.url}/v1/embeddings",
        json={"model": "auto", "input": ["one", "two"]},
        headers={"Authorization": f"Bearer {ACME_KEY}"},
        timeout=30,
    )
    assert embedded.status_code == 200
    assert budget()[0].spent_nanos > spent, "embeddings count too"
    while (answer := chat(gateway, ACME_KEY)).status_code == 200:
        pass
    assert answer.status_code == 400
    assert "budget: tenant acme day" in answer.json()["error"]["message"]
    assert chat(gateway, GLOBEX_KEY).status_code == 200
    [state] = budget()
    assert state.spent_nanos + state.reserved_nanos <= state.limit_nanos


def test_a_client_cannot_name_a_tenant(gateway: ThreadGateway) -> None:
    answer = chat(gateway, GLOBEX_KEY, orchestrator={"tenant": "acme"})
    assert answer.status_code == 400
    assert "tenant" in answer.json()["error"]["message"]

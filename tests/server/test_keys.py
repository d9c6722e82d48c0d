"""Client keys, tenants and the refusal to expose a keyless gateway."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from orchestrator.config import parse_config
from orchestrator.server.auth import KeyChecker, hash_key
from orchestrator.server.command import ServeError, resolve_settings
from orchestrator.server.settings import ApiKeyEntry
from tests.server.harness import ThreadGateway, config_text, model_table
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(60)

ACME_KEY = "gw-acme-0123456789abcdef"
GLOBEX_KEY = "gw-globex-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "What is our secret plan?"}]


@pytest.fixture
def keyed_gateway(
    upstream: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ThreadGateway]:
    monkeypatch.setenv("ACME_GATEWAY_KEY", ACME_KEY)
    extra = f"""
    [cache]
    enabled = true
    [server]
    api_keys = [
        {{ env = "ACME_GATEWAY_KEY", tenant = "acme" }},
        {{ hash = "{hash_key(GLOBEX_KEY)}", tenant = "globex" }},
    ]
    """
    with ThreadGateway(config_text([model_table("mini", upstream.url)], extra)) as gateway:
        yield gateway


def chat(gateway: ThreadGateway, key: str) -> httpx.Response:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model="auto", messages=MESSAGES
    ).http_response


def test_missing_and_wrong_keys_are_401(keyed_gateway: ThreadGateway) -> None:
    missing = httpx.post(f"{keyed_gateway.url}/v1/chat/completions", json={"model": "auto"})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        chat(keyed_gateway, "gw-wrong-0123456789abcdef")
    assert httpx.get(f"{keyed_gateway.url}/metrics").status_code == 401
    assert httpx.get(f"{keyed_gateway.url}/healthz").status_code == 200


def test_tenants_never_share_cache_entries(
    keyed_gateway: ThreadGateway, upstream: OpenAIServer
) -> None:
    assert chat(keyed_gateway, ACME_KEY).headers["x-orchestrator-cache"] == "miss"
    assert chat(keyed_gateway, ACME_KEY).headers["x-orchestrator-cache"] == "hit"
    assert chat(keyed_gateway, GLOBEX_KEY).headers["x-orchestrator-cache"] == "miss"
    assert chat(keyed_gateway, GLOBEX_KEY).headers["x-orchestrator-cache"] == "hit"
    assert len(upstream.requests) == 2  # one per tenant


def test_key_checker_compares_every_key_and_knows_the_tenant() -> None:
    checker = KeyChecker([ApiKeyEntry(hash=hash_key(ACME_KEY), tenant="acme")])
    assert checker.tenant_of(ACME_KEY.encode()) == "acme"
    assert checker.tenant_of(ACME_KEY.encode()[:-1]) is None
    with pytest.raises(ValueError, match="at least 16"):
        hash_key("short")


def test_keyless_public_bind_is_refused(
    upstream: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_TEST_UPSTREAM_KEY", "sk-x")
    loaded = parse_config(config_text([model_table("mini", upstream.url)]))
    with pytest.raises(ServeError, match=r"refusing to listen on 0\.0\.0\.0 without client keys"):
        resolve_settings(loaded, host="0.0.0.0")
    assert resolve_settings(loaded, host="127.0.0.1").host == "127.0.0.1"
    allowed = parse_config(
        config_text([model_table("mini", upstream.url)], "[server]\nallow_unauthenticated = true\n")
    )
    assert resolve_settings(allowed, host="0.0.0.0").host == "0.0.0.0"


def test_key_variable_unset_is_a_clear_error(
    upstream: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_GATEWAY_KEY", raising=False)
    loaded = parse_config(
        config_text(
            [model_table("mini", upstream.url)],
            '[server]\napi_keys = [{ env = "NOT_SET_GATEWAY_KEY" }]\n',
        )
    )
    with pytest.raises(
        ServeError,
        match=r"server.api_keys\[0\].env: environment variable NOT_SET_GATEWAY_KEY is not set",
    ):
        resolve_settings(loaded)


def test_feedback_only_for_the_tenants_own_requests(keyed_gateway: ThreadGateway) -> None:
    request_id = chat(keyed_gateway, ACME_KEY).headers["x-request-id"]
    url = f"{keyed_gateway.url}/v1/feedback"
    body = {"request_id": request_id, "quality": 1.0}
    stranger = httpx.post(url, json=body, headers={"authorization": f"Bearer {GLOBEX_KEY}"})
    assert stranger.status_code == 404
    owner = httpx.post(url, json=body, headers={"authorization": f"Bearer {ACME_KEY}"})
    assert owner.status_code == 200 and owner.json()["model"] == "mini"


def test_each_tenant_sees_only_its_own_decisions(keyed_gateway: ThreadGateway) -> None:
    """Decisions carry request ids (the keys of ``/v1/feedback``): each
    tenant's ``/v1/status`` lists its own, and no other tenant's."""
    ids = {key: chat(keyed_gateway, key).headers["x-request-id"] for key in (ACME_KEY, GLOBEX_KEY)}
    for key, tenant in ((ACME_KEY, "acme"), (GLOBEX_KEY, "globex")):
        status = httpx.get(
            f"{keyed_gateway.url}/v1/status", headers={"authorization": f"Bearer {key}"}
        ).json()
        assert [(d["request_id"], d["tenant"]) for d in status["decisions"]] == [(ids[key], tenant)]


def test_readiness_names_models_only_to_a_caller_with_a_key(keyed_gateway: ThreadGateway) -> None:
    """A probe without a key (or with a wrong one) learns ready or not; a
    tenant learns which models are eligible too."""
    url = f"{keyed_gateway.url}/readyz"
    for headers in ({}, {"authorization": "Bearer gw-wrong-0123456789abcdef"}):
        assert httpx.get(url, headers=headers).json() == {"ready": True}
    known = httpx.get(url, headers={"authorization": f"Bearer {GLOBEX_KEY}"}).json()
    assert known == {"ready": True, "eligible_models": ["mini"]}

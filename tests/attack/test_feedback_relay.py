"""Attacks on the gateway's feedback relay across workers (two gateways on
one real Redis, over loopback HTTP): forged messages on a worker's channel,
a worker that died, and another tenant's request ids."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from orchestrator.server.feedback_relay import owner_of
from tests.redis_server import RedisServer
from tests.server.harness import ThreadGateway, config_text, model_table
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(120)

KEY_A = "relay-tenant-a-0123456789abcdef"
KEY_B = "relay-tenant-b-0123456789abcdef"
AS_A = {"authorization": f"Bearer {KEY_A}"}
AS_B = {"authorization": f"Bearer {KEY_B}"}
CHAT = {"model": "auto", "messages": [{"role": "user", "content": "Say hello"}]}


@pytest.fixture
def config(
    upstream: OpenAIServer, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Two tenants' keys, the shared state on the test's Redis."""
    monkeypatch.setenv("RELAY_KEY_A", KEY_A)
    monkeypatch.setenv("RELAY_KEY_B", KEY_B)
    return config_text(
        [model_table("mini", upstream.url)],
        f"""
        [state]
        url = "{redis_server.url}"
        [server]
        api_keys = [
            {{ env = "RELAY_KEY_A", tenant = "a" }},
            {{ env = "RELAY_KEY_B", tenant = "b" }},
        ]
        """,
    )


@pytest.fixture
def pair(config: str) -> Iterator[tuple[ThreadGateway, ThreadGateway]]:
    with ThreadGateway(config) as first, ThreadGateway(config) as second:
        yield first, second


def answer_id(gateway: ThreadGateway, headers: dict[str, str] = AS_A) -> str:
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions", json=CHAT, headers=headers, timeout=30
    )
    assert answer.status_code == 200, answer.text
    request_id: str = answer.headers["x-request-id"]
    assert owner_of(request_id) == gateway.gateway.worker
    return request_id


def score(
    gateway: ThreadGateway, request_id: str, headers: dict[str, str] = AS_A, quality: object = 0.7
) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/feedback",
        json={"request_id": request_id, "quality": quality},
        headers=headers,
        timeout=30,
    )


def test_a_message_nested_too_deep_for_json_does_not_stop_the_listener(
    pair: tuple[ThreadGateway, ThreadGateway], redis_server: RedisServer
) -> None:
    """One forged message (JSON nested past the parser's recursion limit)
    must be dropped like any malformed one, not end the worker's listener
    (after which every score forwarded to it would be lost)."""
    first, second = pair
    relay = first.gateway.relay
    assert relay is not None
    channel = relay.channel(first.gateway.worker).encode()
    deep = b"[" * 100_000 + b"]" * 100_000
    assert redis_server.command(b"PUBLISH", channel, deep) == b":1"
    forged_dict = json.dumps({"kind": "score", "id": {"x": 1}, "tenant": None}).encode()
    assert redis_server.command(b"PUBLISH", channel, forged_dict) == b":1"
    scored = score(second, answer_id(first))
    assert scored.status_code == 200, scored.text


def test_another_tenants_id_is_unknown_on_every_worker(
    pair: tuple[ThreadGateway, ThreadGateway],
) -> None:
    first, second = pair
    request_id = answer_id(first, AS_A)
    for gateway in (second, first):  # forwarded, then local
        refused = score(gateway, request_id, AS_B)
        assert refused.status_code == 404, refused.text
    assert score(second, request_id, AS_A).status_code == 200, "tenant a's score still counts"


def test_a_forged_score_for_another_tenant_on_the_channel_is_not_given(
    pair: tuple[ThreadGateway, ThreadGateway], redis_server: RedisServer
) -> None:
    """A score published straight on the owner's channel with the wrong
    tenant is answered ``unknown`` and leaves the answer open for its tenant."""
    first, second = pair
    relay = first.gateway.relay
    assert relay is not None
    request_id = answer_id(first, AS_A)
    forged = {
        "kind": "score",
        "id": request_id,
        "tenant": "b",
        "quality": 0.1,
        "reply_to": second.gateway.worker,
        "token": "forged",
    }
    channel = relay.channel(first.gateway.worker).encode()
    assert redis_server.command(b"PUBLISH", channel, json.dumps(forged).encode()) == b":1"
    assert score(second, request_id, AS_A).status_code == 200, "the forged score was not taken"


@pytest.mark.parametrize("quality", [True, 1.5, -0.1, "0.5", None])
def test_a_bad_quality_is_refused_by_name_before_any_forward(
    pair: tuple[ThreadGateway, ThreadGateway], quality: object
) -> None:
    first, second = pair
    request_id = answer_id(first)
    refused = score(second, request_id, quality=quality)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "quality"
    assert score(second, request_id, quality=1).status_code == 200, "an int 1 is a quality"


def test_a_score_for_a_worker_that_died_is_unknown_not_a_hang(config: str) -> None:
    with ThreadGateway(config) as survivor:
        with ThreadGateway(config) as doomed:
            request_id = answer_id(doomed)
        refused = score(survivor, request_id)
        assert refused.status_code == 404, refused.text
        # The survivor still answers and scores its own.
        assert score(survivor, answer_id(survivor)).status_code == 200

"""The feedback relay under attack: two gateways (two workers' worth, in
threads) on one real Redis; malformed messages on a worker's channel, Redis
stopping and coming back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from orchestrator.server.feedback_relay import new_request_id, owner_of
from tests.redis_server import RedisServer
from tests.server.harness import ThreadGateway, config_text, model_table
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(120)

MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def pair(upstream: OpenAIServer, redis_server: RedisServer) -> Iterator[tuple[ThreadGateway, ...]]:
    text = config_text(
        [model_table("mini", upstream.url)], f'[state]\nurl = "{redis_server.url}"\n'
    )
    with ThreadGateway(text) as first, ThreadGateway(text) as second:
        yield first, second


def _answer_id(gateway: ThreadGateway) -> str:
    body = {"model": "auto", "messages": MESSAGES}
    answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    request_id: str = answer.headers["x-request-id"]
    assert owner_of(request_id) == gateway.gateway.worker
    return request_id


def _score(gateway: ThreadGateway, request_id: str, quality: float = 0.7) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/feedback",
        json={"request_id": request_id, "quality": quality},
        timeout=30,
    )


def test_request_ids_name_their_worker() -> None:
    request_id = new_request_id("0a1b2c3d")
    assert len(request_id) == 4 + 24 and owner_of(request_id) == "0a1b2c3d"
    for forged in ("req_nope", "req_0A1B2C3D" + "0" * 16, "req_" + "0" * 25, "x" + request_id):
        assert owner_of(forged) is None


def test_the_other_worker_gives_the_score_once(pair: tuple[ThreadGateway, ...]) -> None:
    first, second = pair
    request_id = _answer_id(first)
    scored = _score(second, request_id)
    assert scored.status_code == 200, scored.text
    assert scored.json() == {
        "request_id": request_id,
        "model": "mini",
        "accepted": True,
        "learned": False,  # not the contextual strategy: counted, not learned
    }
    assert owner_of(scored.headers["x-request-id"]) == second.gateway.worker
    for gateway in (first, second):
        assert _score(gateway, request_id).status_code == 409


def test_malformed_messages_on_a_workers_channel_are_dropped(
    pair: tuple[ThreadGateway, ...], redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = pair
    relay = first.gateway.relay
    assert relay is not None
    channel = relay.channel(first.gateway.worker).encode()
    junk: list[Any] = [
        "not json",
        [],
        {"kind": "score"},
        {"kind": "launch"},
        {
            "kind": "score",
            "id": "req_x",
            "tenant": None,
            "quality": float("nan"),
            "reply_to": "0" * 8,
            "token": "t",
        },
        {
            "kind": "score",
            "id": "req_x",
            "tenant": None,
            "quality": 0.5,
            "reply_to": "../../x",
            "token": "t",
        },
        {"kind": "verdict", "token": "nobody-waits", "verdict": "learned", "model": "mini"},
        {"kind": "verdict", "token": "t", "verdict": "everything", "model": None},
    ]
    for message in junk:
        text = message if isinstance(message, str) else json.dumps(message)
        assert redis_server.command(b"PUBLISH", channel, text.encode()) == b":1"
    # Still listening, and still scoring the other worker's forwards.
    request_id = _answer_id(first)
    scored = _score(second, request_id)
    assert scored.status_code == 200, scored.text
    dropped = [r for r in caplog.records if "dropped a malformed message" in r.getMessage()]
    assert len(dropped) == 7  # the verdict nobody waits for is ignored without a word


def test_redis_down_is_a_503_and_forwarding_resumes_when_it_is_back(
    pair: tuple[ThreadGateway, ...], redis_server: RedisServer
) -> None:
    first, second = pair
    before = _answer_id(first)
    redis_server.kill()
    refused = _score(second, before)
    assert refused.status_code == 503, refused.text
    error = refused.json()["error"]
    assert error["code"] == "feedback_relay_unavailable" and error["param"] == "request_id"
    assert refused.headers["retry-after"] == "1"
    # The owner itself still takes it, without Redis.
    assert _score(first, _answer_id(first)).status_code == 200
    redis_server.start()  # same port, empty
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        scored = _score(second, before)
        if scored.status_code != 503:
            break
        time.sleep(0.2)
    assert scored.status_code == 200, scored.text

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
import redis

from orchestrator.server.feedback_relay import Verdict, new_request_id, owner_of
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


def _score_until_answered(gateway: ThreadGateway, request_id: str) -> list[httpx.Response]:
    """Score ``request_id`` through ``gateway`` until it is not answered 503
    (for 30 s at most), as a client honouring ``Retry-After`` would; every answer."""
    answers = [_score(gateway, request_id)]
    deadline = time.monotonic() + 30
    while answers[-1].status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
        answers.append(_score(gateway, request_id))
    return answers


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
    scored = _score_until_answered(second, before)[-1]
    assert scored.status_code == 200, scored.text


@pytest.mark.parametrize("stalled", ["owner", "forwarder", "both"])
def test_workers_stalled_through_a_redis_restart_lose_no_score(
    pair: tuple[ThreadGateway, ...], redis_server: RedisServer, stalled: str
) -> None:
    """Redis restarts (empty) while a worker's event loop is blocked, so it
    learns of the loss only afterwards. The score is refused (503) until both
    workers listen again, then given once: never answered 404 (the owner
    deaf) nor 409 (kept by the owner while its verdict went to a forwarder
    not yet listening)."""
    first, second = pair
    request_id = _answer_id(first)
    for gateway in {"owner": [first], "forwarder": [second], "both": [first, second]}[stalled]:
        gateway.stall(1.5)
    time.sleep(0.1)
    redis_server.restart()
    statuses = [answer.status_code for answer in _score_until_answered(second, request_id)]
    assert statuses[-1] == 200 and set(statuses) <= {503, 200}, statuses
    assert _score(first, request_id).status_code == 409  # given once


def test_a_score_that_fails_to_be_given_does_not_end_the_owners_listener(
    pair: tuple[ThreadGateway, ...],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The owner's scoring raises something unforeseen (not Redis's error):
    the owner logs it and listens again, the score sent again is given, and
    so are later ones (a listener that died would leave every later score of
    its answers refused as unknown)."""
    first, second = pair
    relay = first.gateway.relay
    assert relay is not None
    give = relay._scorer
    calls = 0

    def failing_once(request_id: str, tenant: str | None, quality: float) -> Verdict:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")
        return give(request_id, tenant, quality)

    monkeypatch.setattr(relay, "_scorer", failing_once)
    statuses = [answer.status_code for answer in _score_until_answered(second, _answer_id(first))]
    assert statuses[-1] == 200 and calls == 2, statuses
    assert any("the listener failed" in r.getMessage() for r in caplog.records)
    assert _score(second, _answer_id(first)).status_code == 200


def test_a_score_sent_again_with_its_token_gets_the_same_verdict(
    pair: tuple[ThreadGateway, ...], redis_server: RedisServer
) -> None:
    """At-least-once delivery: the owner answers a token it has seen with the
    verdict it gave then (not "already given"), and gives the score once; a
    new token for the same answer is a second score, refused, and the same
    token for another tenant is no replay (that tenant does not own it)."""
    first, _ = pair
    relay = first.gateway.relay
    assert relay is not None
    request_id = _answer_id(first)
    listener = redis.Redis(port=redis_server.port).pubsub()
    listener.subscribe(relay.channel("0000beef"))
    assert listener.get_message(timeout=5)["type"] == "subscribe"

    def send(token: str, tenant: str | None = None) -> dict[str, Any]:
        score = {
            "kind": "score",
            "id": request_id,
            "tenant": tenant,
            "quality": 0.4,
            "reply_to": "0000beef",
            "token": token,
        }
        channel = relay.channel(first.gateway.worker).encode()
        assert redis_server.command(b"PUBLISH", channel, json.dumps(score).encode()) == b":1"
        reply = listener.get_message(timeout=10)
        assert reply is not None and reply["type"] == "message"
        verdict: dict[str, Any] = json.loads(reply["data"])
        return verdict

    given = send("t1")
    assert given == {"kind": "verdict", "token": "t1", "verdict": "counted", "model": "mini"}
    assert send("t1") == given
    assert send("t1", tenant="other")["verdict"] == "unknown"  # not a replay: another's answer
    assert send("t2")["verdict"] == "already_given"
    listener.close()

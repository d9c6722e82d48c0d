"""Attacks on ``orchestrator serve`` over real loopback HTTP: malformed and
hostile bodies, slow clients, tenants reading or steering each other's
traffic, and keys in responses or logs."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator

import httpx
import pytest

from orchestrator.errors import OrchestratorError
from orchestrator.integrations.openai_model import OpenAIModel
from orchestrator.models.model_registry import ModelRegistry
from tests.server.harness import (
    UPSTREAM_KEY,
    ThreadGateway,
    config_text,
    model_table,
)
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(60)

KEY_A = "tenant-a-key-0123456789abcdef"
KEY_B = "tenant-b-key-0123456789abcdef"
AS_A = {"authorization": f"Bearer {KEY_A}"}
AS_B = {"authorization": f"Bearer {KEY_B}"}
CHAT = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def tenants(upstream: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    """A gateway with two models, a cache, two tenants (a, b) and a 2 s
    request timeout; a client of it (send ``AS_A``/``AS_B`` headers)."""
    monkeypatch.setenv("ATTACK_KEY_A", KEY_A)
    monkeypatch.setenv("ATTACK_KEY_B", KEY_B)
    text = config_text(
        [model_table("mini", upstream.url), model_table("big", upstream.url, price=5.0)],
        """
        [cache]
        enabled = true
        [server]
        request_timeout = 2.0
        api_keys = [{ env = "ATTACK_KEY_A", tenant = "a" }, { env = "ATTACK_KEY_B", tenant = "b" }]
        """,
    )
    with ThreadGateway(text) as running, httpx.Client(base_url=running.url, timeout=20) as client:
        yield client


def post_raw(client: httpx.Client, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """A chat completion whose body is sent byte for byte."""
    return client.post(
        "/v1/chat/completions",
        content=body,
        headers={**headers, "content-type": "application/json"},
    )


def breaker_states(client: httpx.Client) -> dict[str, str]:
    """Each model's breaker state, from ``/v1/status``."""
    status = client.get("/v1/status", headers=AS_A).json()
    return {m["name"]: m["health"] for m in status["models"]}


def model_requests(client: httpx.Client) -> dict[str, int]:
    """Each model's request count, from ``/v1/status``."""
    status = client.get("/v1/status", headers=AS_A).json()
    return {m["name"]: m["requests"] for m in status["models"]}


def test_a_lone_surrogate_in_a_prompt_is_a_400_and_opens_no_circuit(
    tenants: httpx.Client,
) -> None:
    """Reproduction: 12 requests whose content is the JSON string
    ``"\\ud800"`` (valid JSON, not encodable as UTF-8). Each answers 500 and
    is counted as a FAILURE OF THE MODEL ("circuit opened for mini:
    UnicodeEncodeError: ... surrogates not allowed"): any client opens every
    breaker, for every tenant. The request must be a 400 naming
    ``messages[0].content``; no model is charged with a failure."""
    body = b'{"model":"auto","messages":[{"role":"user","content":"\\ud800"}]}'
    answers = [post_raw(tenants, body, AS_A) for _ in range(12)]
    assert {a.status_code for a in answers} == {400}
    assert "messages[0].content" in answers[0].json()["error"]["param"]
    assert set(breaker_states(tenants).values()) == {"closed"}


async def test_a_lone_surrogate_in_a_library_prompt_charges_no_model() -> None:
    """The same in-process: ``registry.generate("\\ud800")`` against a live
    loopback upstream must not count failures against the models (the error
    is the caller's), and so must not open their circuits. The adapter
    (integrations/_http) encodes the body and classifies the local
    UnicodeEncodeError as the model's failure."""
    with OpenAIServer(api_key=UPSTREAM_KEY) as server:
        registry = ModelRegistry()
        registry.register_model(OpenAIModel("gpt-4", api_key=UPSTREAM_KEY, base_url=server.url))
        for _ in range(6):
            with pytest.raises((OrchestratorError, ValueError, UnicodeError)):
                await registry.generate("\ud800")
        metrics = registry.get_metrics("gpt-4")
        await registry.aclose()
    assert metrics.failures == 0


def test_deeply_nested_json_is_a_400_not_a_500(tenants: httpx.Client) -> None:
    """Reproduction: a 200 KB body ``[[[[...]]]]`` nested 100,000 deep (well
    under max_body_bytes) answers 500 "internal gateway error" and logs a
    RecursionError traceback: ``wire.parse_json`` catches ValueError only."""
    answer = post_raw(tenants, b"[" * 100_000 + b"]" * 100_000, AS_A)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "body"


def test_a_huge_max_tokens_is_a_400_naming_max_tokens(tenants: httpx.Client) -> None:
    """Reproduction: ``"max_tokens": 10**100`` passes ``wire.parse_chat``
    (any int >= 1), then the core refuses ``output_tokens`` with a
    ValueError that the gateway answers as 500 "internal gateway error"."""
    answer = tenants.post(
        "/v1/chat/completions", json={**CHAT, "max_tokens": 10**100}, headers=AS_A
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "max_tokens"


def test_an_unknown_excluded_model_is_a_400_naming_exclude_models(
    tenants: httpx.Client,
) -> None:
    """Reproduction: ``"orchestrator": {"exclude_models": ["nope"]}`` answers
    500 "internal gateway error": the registry raises ValueError("invalid
    exclude_models: no model named ...") and ``Gateway._http`` maps every
    non-GatewayError to 500."""
    body = {**CHAT, "orchestrator": {"exclude_models": ["nope"]}}
    answer = tenants.post("/v1/chat/completions", json=body, headers=AS_A)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "orchestrator.exclude_models"


def test_feedback_for_another_tenants_request_is_refused(tenants: httpx.Client) -> None:
    """Reproduction: tenant a's answer has ``x-request-id``; tenant b posts
    ``/v1/feedback {"request_id": <a's id>, "quality": 0}`` and gets 200
    accepted: ``FeedbackBook`` keeps no tenant, so any tenant scores any
    other's requests (and reads their ids from ``/v1/status``)."""
    answer = tenants.post("/v1/chat/completions", json=CHAT, headers=AS_A)
    request_id = answer.headers["x-request-id"]
    feedback = {"request_id": request_id, "quality": 0.0}
    assert tenants.post("/v1/feedback", json=feedback, headers=AS_B).status_code == 404


def test_one_request_takes_one_feedback_and_it_is_not_a_new_request(
    tenants: httpx.Client,
) -> None:
    """Reproduction: one answered request, then 50 posts of feedback for its
    id: all 50 are accepted, and the model's ``requests`` grows from 1 to
    51 with 51 successes (``feedback_route`` calls
    ``registry.report_outcome(model, True, 0.0, quality=q)``: a new
    successful zero-latency call each time). One client can thus steer the
    router and fake traffic, latency and success rates for everyone."""
    answer = tenants.post("/v1/chat/completions", json=CHAT, headers=AS_A)
    model = answer.headers["x-orchestrator-model"]
    before = model_requests(tenants)[model]
    feedback = {"request_id": answer.headers["x-request-id"], "quality": 1.0}
    accepted = [
        tenants.post("/v1/feedback", json=feedback, headers=AS_A).status_code for _ in range(50)
    ]
    assert accepted.count(200) <= 1
    assert model_requests(tenants)[model] == before


def test_a_client_chosen_request_id_cannot_take_over_another_tenants_id(
    tenants: httpx.Client,
) -> None:
    """Tenants a and b both send ``x-request-id: shared-1``: the gateway
    answers each with an id of its own (distinct, not the client's), so no
    client can point a feedback key at another's answer (promise kept since
    gate's "own request ids only")."""
    ids = [
        tenants.post(
            "/v1/chat/completions", json=CHAT, headers={**who, "x-request-id": "shared-1"}
        ).headers["x-request-id"]
        for who in (AS_A, AS_B)
    ]
    assert "shared-1" not in ids
    assert ids[0] != ids[1]


def test_a_tenant_cannot_read_another_tenants_decisions(tenants: httpx.Client) -> None:
    """Reproduction: tenant a sends a request; tenant b's ``GET /v1/status``
    lists it in ``decisions`` with a's tenant name and request id."""
    answer = tenants.post("/v1/chat/completions", json=CHAT, headers=AS_A)
    seen_by_b = tenants.get("/v1/status", headers=AS_B).json()
    ids = {d["request_id"] for d in seen_by_b["decisions"]}
    assert answer.headers["x-request-id"] not in ids


def test_a_stalled_request_body_is_answered_or_closed(tenants: httpx.Client) -> None:
    """Reproduction (slow client, 127.0.0.1 only): send the headers of a
    POST with ``Content-Length: 1000`` and one byte of body, then nothing.
    With ``[server] request_timeout = 2`` the gateway neither answers
    (408) nor closes within 15 s: uvicorn has no body/header read timeout,
    so each slow client holds a connection and a task indefinitely."""
    port = int(str(tenants.base_url).rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as conn:
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {KEY_A}\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n{"
        )
        conn.sendall(head.encode())
        conn.settimeout(15)
        try:
            reply = conn.recv(200)
        except TimeoutError:
            reply = None
    assert reply is not None, "the gateway kept a stalled request open for 15 s"


def test_an_upstream_key_echoed_in_an_error_never_reaches_the_client_or_logs(
    upstream: OpenAIServer, tenants: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Every upstream answers 401 echoing the bearer key in its JSON error;
    the gateway's error response, headers and logs never show it (promise
    kept)."""
    caplog.set_level(logging.DEBUG)
    upstream.add_fault(status=401, echo="json", times=-1)
    answer = tenants.post("/v1/chat/completions", json=CHAT, headers=AS_A)
    assert answer.status_code >= 500
    shown = answer.text + json.dumps(dict(answer.headers))
    assert UPSTREAM_KEY not in shown
    assert UPSTREAM_KEY not in caplog.text


def test_gateway_keys_never_appear_in_logs_or_metrics(
    tenants: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Right and wrong client keys, in bearer and odd forms: no log record
    and no ``/metrics`` line contains them (promise kept)."""
    caplog.set_level(logging.DEBUG)
    for headers in (AS_A, {"authorization": f"Basic {KEY_B}"}, {"authorization": KEY_A}):
        tenants.post("/v1/chat/completions", json=CHAT, headers=headers)
    metrics = tenants.get("/metrics", headers=AS_A).text
    for key in (KEY_A, KEY_B):
        assert key not in caplog.text
        assert key not in metrics
    assert os.environ["ATTACK_KEY_A"] == KEY_A


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            b'{"model":"auto","messages":[{"role":"user","content":"hi"}],"temperature":1e400}',
            "temperature",
        ),
        (
            b'{"model":"auto","messages":[{"role":"user","content":"hi"}],'
            b'"orchestrator":{"max_cost":NaN}}',
            "orchestrator.max_cost",
        ),
        (b'{"model":"auto","messages":[{"role":"user","content":5}]}', "messages[0].content"),
        (b'{"model":"auto","messages":"hi"}', "messages"),
        (b'["not", "an", "object"]', "body"),
        (b'{"model": "auto", "messages": [', "body"),
    ],
)
def test_malformed_bodies_are_400s_naming_the_field(
    tenants: httpx.Client, body: bytes, param: str
) -> None:
    """Malformed or out-of-range values are OpenAI-style 400s whose
    ``param`` names the field (promise kept)."""
    answer = post_raw(tenants, body, AS_A)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


def test_readiness_tells_an_anonymous_caller_no_model_names(tenants: httpx.Client) -> None:
    """Reproduction: with client keys configured, an unauthenticated ``GET
    /readyz`` answers ``{"ready": true, "eligible_models": ["mini", "big"],
    ...}``: the fleet's model names and their health go to anyone who can
    reach the port (``_PUBLIC`` in server/app.py). Anonymous readiness needs
    only ready/not ready; the names belong behind a key."""
    answer = tenants.get("/readyz")
    assert answer.status_code == 200
    assert "mini" not in answer.text and "big" not in answer.text

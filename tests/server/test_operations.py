"""Health, readiness, Prometheus metrics, feedback and client disconnects."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.server.command import HTTP_PROTOCOL
from tests.server.harness import ThreadGateway, config_text, model_table
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(60)

MESSAGES = [{"role": "user", "content": "Say hello"}]


def test_health_and_readiness(gateway: ThreadGateway) -> None:
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/readyz")
    assert ready.status_code == 200 and ready.json()["eligible_models"] == ["mini"]


def test_metrics_parse_with_prometheus_client(gateway: ThreadGateway) -> None:
    c = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
    c.chat.completions.create(model="auto", messages=MESSAGES)
    c.chat.completions.create(model="auto", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="nope", messages=MESSAGES)
    httpx.get(f"{gateway.url}/no/such/route")
    text = httpx.get(f"{gateway.url}/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    route = ("route", "/v1/chat/completions")
    assert (
        samples[
            ("orchestrator_gateway_requests_total", (("model", "mini"), route, ("status", "200")))
        ]
        == 2
    )
    assert (
        samples[("orchestrator_gateway_errors_total", (("error_class", "model_not_found"), route))]
        == 1
    )
    assert samples[("orchestrator_gateway_cache_total", (("result", "hit"),))] == 1
    assert (
        samples[("orchestrator_gateway_tokens_total", (("direction", "output"), ("model", "mini")))]
        == 6 + 6  # the provider counted 6; the hit carries the same stored counts
    )
    assert samples[("orchestrator_gateway_overhead_seconds_count", (route,))] == 2
    assert samples[("orchestrator_model_breaker_state", (("model", "mini"),))] == 0
    assert samples[("orchestrator_cache_hits_total", ())] == 1
    assert (
        "orchestrator_gateway_requests_total",
        (("model", "-"), ("route", "other"), ("status", "404")),
    ) in samples


def test_feedback_for_a_request_id(gateway: ThreadGateway) -> None:
    c = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
    answer = c.chat.completions.create(model="auto", messages=MESSAGES)
    before = gateway.gateway.registry.get_metrics("mini")
    feedback = {"request_id": answer.id, "quality": 0.9}
    ok = httpx.post(f"{gateway.url}/v1/feedback", json=feedback)
    assert ok.json() == {
        "request_id": answer.id,
        "model": "mini",
        "accepted": True,
        "learned": False,
    }
    again = httpx.post(f"{gateway.url}/v1/feedback", json={**feedback, "quality": 0.1})
    assert again.status_code == 409 and again.json()["error"]["param"] == "request_id"
    assert gateway.gateway.registry.get_metrics("mini").requests == before.requests  # no new call
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'orchestrator_gateway_feedback_quality_count{model="mini"} 1.0' in metrics
    assert 'orchestrator_gateway_feedback_quality_sum{model="mini"} 0.9' in metrics
    unknown = httpx.post(
        f"{gateway.url}/v1/feedback", json={"request_id": "req_nope", "quality": 0.5}
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "request_id"
    bad = httpx.post(f"{gateway.url}/v1/feedback", json={"request_id": answer.id, "quality": 1.5})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "quality"


def test_feedback_teaches_a_contextual_registry(upstream: OpenAIServer) -> None:
    """Under the contextual strategy the prompt reaches selection, the
    caller's willingness_to_pay is used, and feedback is learned by the router."""
    text = config_text(
        [model_table("mini", upstream.url), model_table("maxi", upstream.url, price=20.0)],
        """
        [selection]
        strategy = "contextual"
        hash_bits = 12
        """,
    )
    with ThreadGateway(text) as gateway:
        c = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
        registry = gateway.gateway.registry
        learned_before = sum(
            c.observations or 0 for c in registry.explain_selection(prompt="Say hello").candidates
        )
        for stream in (False, True):
            if stream:
                chunks = c.chat.completions.create(model="auto", messages=MESSAGES, stream=True)
                answer_id = next(iter(chunks)).id
                for _ in chunks:
                    pass
            else:
                answer_id = c.chat.completions.create(
                    model="auto",
                    messages=MESSAGES,
                    extra_body={"orchestrator": {"willingness_to_pay": 0.5}},
                ).id
            ok = httpx.post(
                f"{gateway.url}/v1/feedback", json={"request_id": answer_id, "quality": 1.0}
            )
            assert ok.status_code == 200 and ok.json()["learned"] is True, ok.text
        learned = sum(
            c.observations or 0 for c in registry.explain_selection(prompt="Say hello").candidates
        )
        assert learned == learned_before + 2


#: A hang-up reaches the gateway by our protocol's callback under ``orchestrator
#: serve``, and by a watcher task under another ASGI server (uvicorn's own protocol).
BOTH_DISCONNECT_PATHS = pytest.mark.parametrize(
    "http",
    [HTTP_PROTOCOL, "httptools"],
    ids=["the protocol's disconnect callback", "a watcher task (another server)"],
)


@contextlib.contextmanager
def slow_gateway(http: str, **slowness: float) -> Iterator[tuple[OpenAIServer, ThreadGateway]]:
    """A gateway (served by ``http``) in front of one slow upstream model, ``slow``."""
    with (
        OpenAIServer(api_key=None, **slowness) as slow,
        ThreadGateway(config_text([model_table("slow", slow.url)]), http=http) as gateway,
    ):
        yield slow, gateway


@contextlib.contextmanager
def raw_chat(gateway: ThreadGateway, body: bytes) -> Iterator[socket.socket]:
    """A chat request sent on a raw connection, which leaving the block hangs up."""
    with socket.create_connection(("127.0.0.1", gateway.port)) as conn:
        conn.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
            + b"content-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        yield conn


def wait_until(condition: Callable[[], object], seconds: float = 10.0) -> None:
    """Poll ``condition`` until it holds or ``seconds`` pass; the caller asserts after."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


@BOTH_DISCONNECT_PATHS
def test_client_disconnect_mid_stream_cancels_the_upstream(http: str) -> None:
    with slow_gateway(http, chunk_delay=0.3) as (slow, gateway):
        body = b'{"model":"auto","stream":true,"messages":[{"role":"user","content":"long"}]}'
        with raw_chat(gateway, body) as conn:
            received = b""
            while b"data: " not in received:
                received += conn.recv(65536)
        wait_until(lambda: slow.streams_abandoned)
        assert slow.streams_abandoned == 1
        assert slow.streams_completed == 0
        assert gateway.gateway.registry.get_metrics("slow").requests == 0  # not an outcome


def test_malformed_requests_get_clear_errors(upstream: OpenAIServer) -> None:
    text = config_text([model_table("mini", upstream.url)], "[server]\nmax_body_bytes = 2048\n")
    with ThreadGateway(text) as gateway:
        url = f"{gateway.url}/v1/chat/completions"
        too_big = httpx.post(url, content=b"{" + b" " * 4096 + b"}")
        assert too_big.status_code == 413 and too_big.json()["error"]["param"] == "body"
        not_json = httpx.post(url, content=b"{model: auto}")
        assert (
            not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]
        )
        a_list = httpx.post(url, json=[1, 2])
        assert a_list.status_code == 400 and "JSON object" in a_list.json()["error"]["message"]
        unknown = httpx.post(url, json={"model": "auto", "messages": [], "tools": []})
        assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "messages"
        wrong_method = httpx.get(url)
        assert wrong_method.status_code == 405
        assert httpx.get(f"{gateway.url}/v2/anything").status_code == 404
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (
            "/v1/chat/completions",
            b'{"model":"auto","messages":[{"role":"user","content":"a\\udfff"}]}',
            "messages[0].content",
        ),
        (
            "/v1/chat/completions",
            b'{"model":"auto","messages":[{"role":"user","content":'
            b'[{"type":"text","text":"ok"},{"type":"text","text":"\\ud800"}]}]}',
            "messages[0].content[1]",
        ),
        (
            "/v1/chat/completions",
            b'{"model":"auto","messages":[{"role":"user","content":"hi"}],"stop":"\\ud800"}',
            "stop",
        ),
        (
            "/v1/chat/completions",
            b'{"model":"auto","messages":[{"role":"user","content":"hi"}],"stop":["x","\\ud800"]}',
            "stop[1]",
        ),
        ("/v1/embeddings", b'{"model":"auto","input":["ok","\\ud800"]}', "input[1]"),
    ],
)
def test_text_that_is_not_unicode_is_a_400_naming_it_and_charges_no_model(
    gateway: ThreadGateway, upstream: OpenAIServer, path: str, body: bytes, param: str
) -> None:
    """A lone surrogate escape is valid JSON but no provider body can carry
    it: the client's error, never a failure of the model."""
    answer = httpx.post(
        f"{gateway.url}{path}", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param
    assert "lone surrogate" in answer.json()["error"]["message"]
    assert upstream.requests == []
    assert gateway.gateway.registry.get_metrics("mini").failures == 0


def nested(depth: int) -> str:
    """A JSON object nested ``depth`` levels deep."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


@pytest.mark.parametrize(
    ("body", "headers", "param"),
    [
        (
            '{"model":"auto","messages":[{"role":"user","content":' + nested(29) + "}]}",
            {},
            "messages[0].content",
        ),  # 32 levels: parsed, then refused as content
        ('{"model":"auto","messages":[{"role":"user","content":' + nested(30) + "}]}", {}, "body"),
        ('{"model":"auto","messages":[{"role":"user","content":' + nested(900) + "}]}", {}, "body"),
        ("[" * 50_000 + "]" * 50_000, {}, "body"),
        (
            '{"model":"auto","messages":[{"role":"user","content":"hi"}],"max_tokens":4294967296}',
            {},
            "max_tokens",
        ),
        (
            '{"model":"auto","messages":[{"role":"user","content":"hi"}]}',
            {"x-orchestrator-exclude-models": "mini, nope"},
            "orchestrator.exclude_models",
        ),
    ],
)
def test_client_mistakes_beyond_the_parser_are_400s_not_500s(
    gateway: ThreadGateway,
    upstream: OpenAIServer,
    caplog: pytest.LogCaptureFixture,
    body: str,
    headers: dict[str, str],
    param: str,
) -> None:
    """Nesting past the bound (or past the stack), a size the router cannot
    price and an unknown excluded name are the client's mistakes: a 400
    naming the field, no traceback logged, nothing sent upstream."""
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=body.encode(),
        headers={**headers, "content-type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert upstream.requests == []


def test_a_stalled_body_is_a_408_and_the_connection_is_closed(upstream: OpenAIServer) -> None:
    """A client that announces more body than it sends is answered 408 once
    ``request_timeout`` has passed, and its connection is closed."""
    text = config_text([model_table("mini", upstream.url)], "[server]\nrequest_timeout = 0.5\n")
    with ThreadGateway(text) as gateway:
        with socket.create_connection(("127.0.0.1", gateway.port)) as conn:
            conn.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
                b"content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"
            )
            conn.settimeout(20)
            reply = b""
            while chunk := conn.recv(4096):  # until the gateway closes
                reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408")
        assert b"connection: close" in head.lower()
        assert b'"code":"request_timeout"' in body  # chunked: not parsed here
        assert gateway.gateway.registry.get_metrics("mini").requests == 0
    assert upstream.requests == []


def test_a_body_that_arrives_in_parts_is_read_whole(upstream: OpenAIServer) -> None:
    """A body whose end comes later than its head (so the server cannot say
    it has all arrived) is still read to its end within ``request_timeout``."""
    body = b'{"model":"auto","messages":[{"role":"user","content":"in two parts"}]}'
    text = config_text([model_table("mini", upstream.url)], "[server]\nrequest_timeout = 5\n")
    with (
        ThreadGateway(text) as gateway,
        socket.create_connection(("127.0.0.1", gateway.port)) as conn,
    ):
        conn.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (len(body), body[:20])
        )
        time.sleep(0.3)
        conn.sendall(body[20:])
        conn.settimeout(20)
        reply = b""
        while chunk := conn.recv(4096):  # until the gateway closes
            reply += chunk
    head, _, answer = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), reply[:300]
    assert json.loads(answer)["choices"][0]["message"]["content"]
    assert [r.json()["messages"][-1]["content"] for r in upstream.requests] == ["in two parts"]


@BOTH_DISCONNECT_PATHS
def test_client_hanging_up_during_a_call_ends_it_as_a_499(http: str) -> None:
    with slow_gateway(http, answer_delay=1.5) as (slow, gateway):
        body = b'{"model":"auto","messages":[{"role":"user","content":"slow"}]}'
        with raw_chat(gateway, body):
            wait_until(lambda: slow.requests)
            assert slow.requests  # the upstream call is in flight
        samples = gateway.gateway.metrics.registry
        route = "/v1/chat/completions"
        hung_up = {"route": route, "error_class": "client_disconnected"}
        wait_until(lambda: samples.get_sample_value("orchestrator_gateway_errors_total", hung_up))
        assert samples.get_sample_value("orchestrator_gateway_errors_total", hung_up) == 1
        answered = {"route": route, "model": "-", "status": "499"}
        assert samples.get_sample_value("orchestrator_gateway_requests_total", answered) == 1
        assert gateway.gateway.registry.get_metrics("slow").requests == 0  # not an outcome

"""Failover through the gateway and the mapping of failures to statuses."""

from __future__ import annotations

import openai
import pytest

from tests.server.harness import UPSTREAM_KEY, ThreadGateway, config_text, model_table
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(90)

MESSAGES = [{"role": "user", "content": "Say hello"}]


def client(gateway: ThreadGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)


def test_auto_fails_over_when_one_upstream_is_dead(upstream: OpenAIServer) -> None:
    dead = OpenAIServer()
    dead.start()
    dead_url = dead.url
    dead.stop()  # nothing listens there any more: connection refused
    text = config_text(
        [model_table("dead", dead_url, price=0.1), model_table("alive", upstream.url, price=5)]
    )
    with ThreadGateway(text) as gateway:
        c = client(gateway)
        served = [
            c.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": f"question {i}"}]
            )
            for i in range(20)
        ]
        assert {r.headers["x-orchestrator-model"] for r in served} == {"alive"}
        assert all(r.parse().choices[0].message.content for r in served)
        assert any(r.headers["x-orchestrator-attempts"] == "2" for r in served)
        with pytest.raises(openai.APIStatusError) as failed:
            c.chat.completions.create(model="dead", messages=MESSAGES)
        assert failed.value.status_code == 503  # its circuit opened after the failures above
        assert int(failed.value.response.headers["retry-after"]) >= 1
        attempts = failed.value.body["attempts"]  # type: ignore[index]
        assert attempts[0]["model"] == "dead" and attempts[0]["outcome"] == "connection"


def test_explicit_model_fails_over_only_when_allowed(upstream: OpenAIServer) -> None:
    dead = OpenAIServer()
    dead.start()
    dead_url = dead.url
    dead.stop()
    models = [model_table("dead", dead_url), model_table("alive", upstream.url)]
    text = config_text(models, "[server]\nfailover_explicit_models = true\n")
    with ThreadGateway(text) as gateway:
        raw = client(gateway).chat.completions.with_raw_response.create(
            model="dead", messages=MESSAGES
        )
    assert raw.headers["x-orchestrator-model"] == "alive"
    assert raw.headers["x-orchestrator-attempts"] == "2"


@pytest.mark.parametrize("stream", [False, True])
def test_every_model_rate_limited_is_429_with_retry_after(
    upstream: OpenAIServer, stream: bool
) -> None:
    """A slot further away than ``max_wait`` is the client's to wait for: one
    upstream call, then the 429 with the provider's Retry-After."""
    upstream.add_fault(status=429, retry_after="7", times=-1)
    text = config_text([model_table("mini", upstream.url)], "[server]\nmax_wait = 1\n")
    with ThreadGateway(text) as gateway, pytest.raises(openai.RateLimitError) as limited:
        client(gateway).chat.completions.create(model="auto", messages=MESSAGES, stream=stream)
    assert limited.value.response.headers["retry-after"] == "7"
    assert "rate limited" in limited.value.message
    assert len(upstream.requests) == 1


def test_a_retry_after_is_waited_once_per_attempt_within_the_retry_budget(
    upstream: OpenAIServer,
) -> None:
    """Without ``max_wait`` the request waits for the slot within
    ``request_timeout``, once per attempt: 1 + ``retry_budget`` calls. (The
    HTTP layer used to sleep on the Retry-After and retry in place as well:
    nine calls, and 58 s for a Retry-After of 7.)"""
    upstream.add_fault(status=429, retry_after="0.3", times=-1)
    with (
        ThreadGateway(config_text([model_table("mini", upstream.url)])) as gateway,
        pytest.raises(openai.RateLimitError),
    ):
        client(gateway).chat.completions.create(model="auto", messages=MESSAGES)
    assert len(upstream.requests) == 3


def test_a_retry_after_within_max_wait_is_waited_on_and_the_call_retried(
    upstream: OpenAIServer,
) -> None:
    upstream.add_fault(status=429, retry_after="0.2", times=1)
    text = config_text([model_table("mini", upstream.url)], "[server]\nmax_wait = 1\n")
    with ThreadGateway(text) as gateway:
        answer = client(gateway).chat.completions.create(model="auto", messages=MESSAGES)
    assert answer.choices[0].message.content
    assert len(upstream.requests) == 2


def test_max_wait_zero_never_waits(upstream: OpenAIServer) -> None:
    upstream.add_fault(status=429, retry_after="0.2", times=-1)
    never = config_text([model_table("mini", upstream.url)], "[server]\nmax_wait = 0\n")
    with ThreadGateway(never) as gateway, pytest.raises(openai.RateLimitError):
        client(gateway).chat.completions.create(model="auto", messages=MESSAGES)
    assert len(upstream.requests) == 1


def test_a_second_request_inside_the_retry_after_window_is_429_without_an_upstream_call(
    upstream: OpenAIServer,
) -> None:
    """Once every model sits inside its provider's Retry-After window the core
    refuses to probe it: the gateway answers 429 at once, Retry-After from the core."""
    upstream.add_fault(status=429, retry_after="120", times=-1)
    text = config_text(
        [model_table("mini", upstream.url)], "[health]\nfailure_threshold = 1\nbase_cooldown = 30\n"
    )
    with ThreadGateway(text) as gateway:
        c = client(gateway)
        with pytest.raises(openai.RateLimitError):
            c.chat.completions.create(model="auto", messages=MESSAGES)
        sent = len(upstream.requests)
        with pytest.raises(openai.RateLimitError) as limited:
            c.chat.completions.create(model="auto", messages=MESSAGES)
    assert len(upstream.requests) == sent
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 120


def test_models_cooling_down_is_503_with_retry_after(upstream: OpenAIServer) -> None:
    upstream.add_fault(status=500, times=-1)
    text = config_text(
        [model_table("mini", upstream.url)], "[health]\nfailure_threshold = 1\nbase_cooldown = 30\n"
    )
    with ThreadGateway(text) as gateway:
        c = client(gateway)
        with pytest.raises(openai.InternalServerError) as first:
            c.chat.completions.create(model="auto", messages=MESSAGES)
        assert first.value.status_code in (502, 503)
        with pytest.raises(openai.InternalServerError) as cooling:
            c.chat.completions.create(model="auto", messages=MESSAGES)
    assert cooling.value.status_code == 503
    assert 30 <= int(cooling.value.response.headers["retry-after"]) <= 600  # doubled cool-down


def test_upstream_key_never_reaches_the_client(
    upstream: OpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.add_fault(status=401, times=-1)
    with (
        ThreadGateway(config_text([model_table("mini", upstream.url)])) as gateway,
        pytest.raises(openai.APIStatusError) as refused,
    ):
        client(gateway).chat.completions.create(model="auto", messages=MESSAGES)
    assert refused.value.status_code == 502
    assert refused.value.body["code"] == "authentication"  # type: ignore[index]
    assert UPSTREAM_KEY not in refused.value.response.text
    assert UPSTREAM_KEY not in caplog.text


def test_stream_fails_over_before_the_first_chunk(upstream: OpenAIServer) -> None:
    dead = OpenAIServer()
    dead.start()
    dead_url = dead.url
    dead.stop()
    text = config_text(
        [model_table("dead", dead_url, price=0.1), model_table("alive", upstream.url, price=5)]
    )
    with ThreadGateway(text) as gateway:
        raw = client(gateway).chat.completions.with_raw_response.create(
            model="auto", messages=MESSAGES, stream=True
        )
        assert raw.headers["x-orchestrator-model"] == "alive"
        assert raw.headers["x-orchestrator-attempts"] == "2"
        text_out = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text_out == "Hello from the OpenAI loopback server."


def test_error_after_the_first_chunk_ends_the_stream_with_an_error_event(
    upstream: OpenAIServer,
) -> None:
    upstream.add_fault(stream_error=True)
    with ThreadGateway(config_text([model_table("mini", upstream.url)])) as gateway:
        stream = client(gateway).chat.completions.create(
            model="auto", messages=MESSAGES, stream=True
        )
        with pytest.raises(openai.APIError, match=r"provider refused|every provider failed"):
            for _ in stream:
                pass

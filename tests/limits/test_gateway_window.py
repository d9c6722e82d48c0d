"""The gateway over real HTTP (``orchestrator serve`` in a thread, a loopback
provider behind it) with ``rpm`` from the configuration. Once the model's
window is full, a request whose next slot is beyond ``request_timeout`` is
answered 429 ``rate_limit_exceeded`` with ``Retry-After`` = the next slot,
naming the window, and nothing more is sent upstream; one whose slot comes
within ``request_timeout`` is held and answered when the slot opens (the
README's promises, tested before only on the error mapping)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.server.conftest import upstream
from tests.server.harness import ThreadGateway, config_text, model_table
from tests.servers import OpenAIServer

__all__ = ["upstream"]  # the loopback provider fixture, used here by name

pytestmark = pytest.mark.timeout(60)

RPM = 2


def serving(upstream: OpenAIServer, request_timeout: float) -> ThreadGateway:
    models = [model_table("mini", upstream.url) + f"rpm = {RPM}\n"]
    return ThreadGateway(config_text(models, f"[server]\nrequest_timeout = {request_timeout}\n"))


@pytest.fixture
def gateway(upstream: OpenAIServer) -> Iterator[ThreadGateway]:
    with serving(upstream, request_timeout=5) as running:
        yield running


def chat(gateway: ThreadGateway) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "hello"}]},
        timeout=30,
    )


def test_a_full_window_is_429_with_retry_after_and_nothing_sent(
    gateway: ThreadGateway, upstream: OpenAIServer
) -> None:
    assert [chat(gateway).status_code for _ in range(RPM)] == [200] * RPM
    answer = chat(gateway)
    assert answer.status_code == 429
    error = answer.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert f"{RPM}/{RPM} requests in the last minute (rpm)" in error["message"]
    retry_after = int(answer.headers["retry-after"])
    assert 0 < retry_after <= 60
    assert len(upstream.requests) == RPM


def test_a_slot_within_the_request_timeout_is_waited_for(upstream: OpenAIServer) -> None:
    with serving(upstream, request_timeout=30) as gateway:
        gateway.gateway.registry.core.set_rate_limit_window(1.0)  # the slot opens in ~1 s
        answers = [chat(gateway) for _ in range(RPM + 1)]
        assert [a.status_code for a in answers] == [200] * (RPM + 1), [a.text for a in answers]
        assert len(upstream.requests) == RPM + 1

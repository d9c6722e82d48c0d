"""The gateway's own cost per request, in process, without the network: the
ASGI application is called directly with an OpenAI chat request whose model
answers at once, so only routing, validation, keys, selection, outcome
reporting, metrics and the response remain.

Contenders (same request, same in-process model, one event loop):

* ``plain ASGI``: the floor for answering OpenAI chat in Python: read the
  body, ``json.loads``, call the model, ``json.dumps`` the completion, send.
* ``orchestrator gateway``: ``Gateway(registry)`` with a client key,
  ``model="auto"`` through ``registry.generate``.

Overhead = gateway median - plain median. ``benches/gateway.py`` measures the
whole path over loopback (HTTP server, provider client) against LiteLLM's proxy.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import pytest

from orchestrator.core.model import Model, ModelCapabilities, ModelCost
from orchestrator.models.model_registry import ModelRegistry
from orchestrator.server.app import Gateway
from orchestrator.server.auth import hash_key
from orchestrator.server.settings import ApiKeyEntry, ServerSettings

Message = MutableMapping[str, Any]
KEY = "sk-bench-gateway-0123456789"
BODY = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "6 x 7?"}]}).encode()
ROUNDS = 2000 if os.environ.get("ORCH_BENCH_QUICK", "") != "1" else 300
ANSWER = "The answer is forty-two."


class InstantModel(Model):
    """Answers at once, reporting its token counts like a provider would."""

    async def generate_response(self, prompt: Any, **kwargs: Any) -> str:
        self.record_usage(12, 8)
        return ANSWER

    async def health_check(self) -> bool:
        return True


def _model() -> InstantModel:
    cost = ModelCost(input_per_million=0.15, output_per_million=0.6)
    return InstantModel("bench", "local", ModelCapabilities(chat=True), cost)


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {KEY}".encode()),
        ],
    }


async def _call(app: Callable[..., Awaitable[None]]) -> bytes:
    """One request through ``app``; the response body."""
    delivered = False
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await never  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(_scope(), receive, send)
    never.cancel()
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def plain_app(model: Model) -> Callable[..., Awaitable[None]]:
    """The baseline: an OpenAI chat endpoint in as little Python as it takes."""

    async def app(scope: Message, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(body)
        text = await model.generate_response(request["messages"])
        answer = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": model.name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
        }
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})

    return app


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _bench(
    benchmark: Any,
    loop: asyncio.AbstractEventLoop,
    app: Callable[..., Awaitable[None]],
    contender: str,
) -> None:
    for _ in range(50):
        assert ANSWER.encode() in loop.run_until_complete(_call(app))
    benchmark.group = "gateway in process"
    benchmark.extra_info.update(contender=contender)
    benchmark.pedantic(lambda: loop.run_until_complete(_call(app)), rounds=ROUNDS, iterations=1)


@pytest.mark.timeout(300)
def test_plain_asgi_chat(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    _bench(benchmark, loop, plain_app(_model()), "plain ASGI")


@pytest.mark.timeout(300)
def test_gateway_chat(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    registry = ModelRegistry()
    registry.register_model(_model())
    settings = ServerSettings(
        access_log=False, api_keys=[ApiKeyEntry(hash=hash_key(KEY), tenant="bench")]
    )
    _bench(benchmark, loop, Gateway(registry, settings), "orchestrator gateway")

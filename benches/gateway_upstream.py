"""The benchmark's upstream: an OpenAI-compatible chat endpoint that answers
a fixed completion after a fixed delay (JSON, or SSE with a usage chunk),
as a bare ASGI app under uvicorn + uvloop + httptools, so that the upstream
itself costs as little as possible and the same for every configuration.

    python benches/gateway_upstream.py PORT DELAY_SECONDS
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

Message = MutableMapping[str, Any]

_USAGE = {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}
_ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "The answer is forty-two."},
                "finish_reason": "stop",
            }
        ],
        "usage": _USAGE,
    }
).encode()
_MODELS = json.dumps(
    {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "owned_by": "bench"}]}
).encode()


def _chunk(
    delta: dict[str, Any], finish: Any = None, usage: Any = None, choices: bool = True
) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [],
        "usage": usage,
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


_FIRST = _chunk({"role": "assistant", "content": "The"})
_REST = (
    _chunk({"content": " answer is forty-two."})
    + _chunk({}, "stop")
    + _chunk({}, usage=_USAGE, choices=False)
    + b"data: [DONE]\n\n"
)


async def read_body(receive: Callable[[], Awaitable[Message]]) -> bytes:
    """An ASGI request's whole body."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def make_app(delay: float) -> Callable[..., Awaitable[None]]:
    """The upstream: ``delay`` seconds, then the fixed answer."""

    async def app(
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if scope["path"].endswith("/models"):
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": _MODELS})
            return
        await asyncio.sleep(delay)
        if b'"stream":true' in body.replace(b" ", b""):
            headers = [(b"content-type", b"text/event-stream")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": _FIRST, "more_body": True})
            await asyncio.sleep(delay)
            await send({"type": "http.response.body", "body": _REST})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": _ANSWER})

    return app


if __name__ == "__main__":
    port, delay = int(sys.argv[1]), float(sys.argv[2])
    uvicorn.run(
        make_app(delay),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        backlog=4096,
    )

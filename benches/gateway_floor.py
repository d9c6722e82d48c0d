"""The benchmark's floor: a pass-through proxy on the gateway's own server
stack, with none of its logic.

It runs under uvicorn exactly as ``orchestrator serve`` does (uvloop, the
gateway's httptools protocol, no proxy headers) and forwards each chat
request's body unchanged to the upstream on the library's own pooled
connections (``integrations/_http/_connections.py``, what the gateway's
provider calls use), then relays the answer: read whole, or streamed chunk
by chunk. No keys, parsing, selection, metrics or logs. What it adds over
the direct upstream is what the stack itself costs (two more loopback hops,
a second process's wake-ups, the server and client protocols); the gateway's
added latency minus this is what its routing costs.

    python benches/gateway_floor.py PORT UPSTREAM_BASE_URL UPSTREAM_KEY
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx
import uvicorn

from gateway_upstream import read_body
from orchestrator.integrations._http._connections import (
    ConnectionPool,
    PreparedRequest,
    StreamedResponse,
    origin_of,
    request_head,
)
from orchestrator.server.command import HTTP_PROTOCOL

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_TIMEOUTS = {"connect": 5.0, "read": 30.0, "write": 5.0, "pool": 5.0}


class Floor:
    """The ASGI app: ``POST /v1/chat/completions`` relayed, ``GET /healthz`` answered."""

    def __init__(self, upstream: str, key: str) -> None:
        url = httpx.URL(upstream.rstrip("/") + "/chat/completions")
        self._pool = ConnectionPool(httpx.Limits(max_connections=256, keepalive_expiry=30))
        self._origin = origin_of(url)
        self._head = request_head(
            "POST",
            url,
            [
                (b"host", url.netloc),
                (b"authorization", b"Bearer " + key.encode()),
                (b"content-type", b"application/json"),
            ],
        )

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await self._pool.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/healthz":
            await _answer(send, 200, b"text/plain", b"ok")
            return
        body = await read_body(receive)
        request = PreparedRequest(self._pool, "POST", self._origin, self._head, body, _TIMEOUTS)
        response = await self._pool.send_prepared(request)
        if not isinstance(response, StreamedResponse):  # content-encoded: the benchmark's is not
            raise RuntimeError("the floor relays unencoded upstream answers only")
        kind = dict(response.raw_headers).get(b"content-type", b"application/json")
        if not kind.startswith(b"text/event-stream"):  # a whole answer, as the gateway sends one
            await _answer(send, response.status_code, kind, await response.aread())
            return
        start = {"type": "http.response.start", "status": response.status_code}
        await send({**start, "headers": [(b"content-type", kind)]})
        try:
            async for chunk in response.body.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            await response.aclose()
        await send({"type": "http.response.body", "body": b""})


async def _answer(send: Send, status: int, kind: bytes, body: bytes) -> None:
    headers = [(b"content-type", kind), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    port, upstream, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    uvicorn.run(
        Floor(upstream, key),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http=HTTP_PROTOCOL,
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()

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

The same relay also runs on granian, through its ASGI interface or its own
RSGI one (``--server``), so ``benches/gateway_servers.py`` can set the
server stacks the issue names side by side with nothing else changed.

    python benches/gateway_floor.py PORT UPSTREAM_BASE_URL UPSTREAM_KEY [--server NAME]
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from granian import Granian
from granian.constants import HTTPModes, Interfaces, Loops, RuntimeModes, TaskImpl
from granian.log import LogLevels

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
#: The server stacks the floor runs on.
SERVERS = ("uvicorn", "granian-asgi", "granian-rsgi")
#: Where a granian worker process finds the upstream (it builds the app itself).
_UPSTREAM_ENV, _KEY_ENV = "FLOOR_UPSTREAM", "FLOOR_UPSTREAM_KEY"


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
        response, kind = await self._forward(await read_body(receive))
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

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        """The same relay on granian's RSGI interface."""
        if scope.path == "/healthz":
            protocol.response_bytes(200, [("content-type", "text/plain")], b"ok")
            return
        response, kind = await self._forward(await protocol())
        headers = [("content-type", kind.decode("latin-1"))]
        if not kind.startswith(b"text/event-stream"):
            protocol.response_bytes(response.status_code, headers, await response.aread())
            return
        stream = protocol.response_stream(response.status_code, headers)
        try:
            async for chunk in response.body.chunks():
                await stream.send_bytes(chunk)
        finally:
            await response.aclose()

    async def _forward(self, body: bytes) -> tuple[StreamedResponse, bytes]:
        """The upstream's answer to ``body`` (unread) and its content type."""
        request = PreparedRequest(self._pool, "POST", self._origin, self._head, body, _TIMEOUTS)
        response = await self._pool.send_prepared(request)
        if not isinstance(response, StreamedResponse):  # content-encoded: the benchmark's is not
            raise RuntimeError("the floor relays unencoded upstream answers only")
        return response, dict(response.raw_headers).get(b"content-type", b"application/json")


def from_environment() -> Floor:
    """The floor of a granian worker, which imports it by name."""
    return Floor(os.environ[_UPSTREAM_ENV], os.environ[_KEY_ENV])


async def _answer(send: Send, status: int, kind: bytes, body: bytes) -> None:
    headers = [(b"content-type", kind), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument(
        "upstream", help="the upstream's base URL, such as http://127.0.0.1:8001/v1"
    )
    parser.add_argument("key", help="the upstream's API key")
    parser.add_argument("--server", choices=SERVERS, default="uvicorn")
    options = parser.parse_args()
    if options.server != "uvicorn":
        _granian(options.port, options.upstream, options.key, options.server.split("-")[1])
        return
    uvicorn.run(
        Floor(options.upstream, options.key),
        host="127.0.0.1",
        port=options.port,
        loop="uvloop",
        http=HTTP_PROTOCOL,
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        proxy_headers=False,
    )


def _granian(port: int, upstream: str, key: str, interface: str) -> None:
    """Serve the floor on granian (``asgi`` or ``rsgi``): one worker, one
    runtime thread, uvloop, HTTP/1.1, no access log, as uvicorn runs it; a
    single-threaded runtime and granian's own tasks, its fastest settings
    here (the defaults measured slower)."""
    os.environ.update({_UPSTREAM_ENV: upstream, _KEY_ENV: key})
    Granian(
        f"{Path(__file__).stem}:from_environment",
        factory=True,
        working_dir=Path(__file__).resolve().parent,
        port=port,
        interface=Interfaces(interface),
        loop=Loops.uvloop,
        runtime_mode=RuntimeModes.st,
        task_impl=TaskImpl.rust,
        http=HTTPModes.http1,
        websockets=False,
        log_level=LogLevels.warning,
    ).serve()


if __name__ == "__main__":
    main()

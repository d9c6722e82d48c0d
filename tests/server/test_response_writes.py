"""The gateway's protocol sends a response's head together with its first
body bytes (one write, so the client reads both at once), and never holds a
head whose body does not follow in the same event loop iteration."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from orchestrator.server.command import HTTP_PROTOCOL
from orchestrator.server.protocol import _DisconnectWatch
from tests.server.harness import ThreadGateway, config_text, model_table
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(60)

#: How long a read waits before calling it a hang (not a bound under test).
HANG = 20.0


@pytest.fixture
def gateway(upstream: OpenAIServer) -> Iterator[ThreadGateway]:
    with ThreadGateway(config_text([model_table("mini", upstream.url)])) as served:
        yield served


#: Offset of ``tcpi_data_segs_in`` in Linux's ``struct tcp_info``.
_DATA_SEGMENTS_IN = 152


def data_segments_in(conn: socket.socket) -> int:
    """TCP segments with data that ``conn`` has received (Linux's TCP_INFO)."""
    info = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("I", info, _DATA_SEGMENTS_IN)[0])


def first_read(port: int, request: bytes) -> tuple[bytes, int]:
    """What one ``recv`` returns after sending ``request`` on a fresh
    connection, and in how many TCP segments it came."""
    with socket.create_connection(("127.0.0.1", port), timeout=HANG) as conn:
        conn.sendall(request)
        reply = conn.recv(65536)
        return reply, data_segments_in(conn)


def chat_request(stream: bool) -> bytes:
    body = json.dumps(
        {"model": "auto", "stream": stream, "messages": [{"role": "user", "content": "Hi"}]}
    ).encode()
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
    )
    return head + body


def test_a_json_answer_is_one_segment_with_its_head(gateway: ThreadGateway) -> None:
    reply, segments = first_read(gateway.port, chat_request(stream=False))
    assert segments == 1, "the head and the body were written apart"
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), reply
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    assert len(body) == length
    assert json.loads(body)["object"] == "chat.completion"


def test_a_streams_head_arrives_with_its_first_chunk(gateway: ThreadGateway) -> None:
    reply, _ = first_read(gateway.port, chat_request(stream=True))
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), reply
    assert b"data: {" in body, reply


class HeadThenWait:
    """An ASGI app that starts its response, then sends the body only when
    the test says so: the head must reach the client meanwhile."""

    def __init__(self) -> None:
        self.release = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.to_thread(self.release.wait, HANG)
        await send({"type": "http.response.body", "body": b"late"})


def test_a_head_without_a_body_in_the_same_iteration_is_not_held() -> None:
    app = HeadThenWait()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, loop="uvloop", http=HTTP_PROTOCOL, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + HANG
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=HANG) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            head = conn.recv(65536)
            assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n"), head
            app.release.set()
            assert conn.recv(65536).endswith(b"late\r\n0\r\n\r\n")
    finally:
        app.release.set()
        server.should_exit = True
        thread.join(HANG)


def test_a_disconnect_watch_calls_back_once_and_at_once_when_already_lost() -> None:
    calls: list[str] = []
    watch = _DisconnectWatch()
    watch.watch(lambda: calls.append("first"))
    watch.lose()
    watch.lose()
    assert calls == ["first"]
    watch.watch(lambda: calls.append("late"))  # a request that starts after the loss
    assert calls == ["first", "late"]
    quiet = _DisconnectWatch()
    quiet.watch(lambda: calls.append("unwatched"))
    quiet.unwatch()
    quiet.lose()
    assert calls == ["first", "late"]

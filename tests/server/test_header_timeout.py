"""A client that stalls in its request head (half the headers, a trickle of
bytes, or nothing at all) gets a 408 and its connection closed once
``[server] header_timeout`` has passed, while a client that completes its head
in time is served, on a fresh and on a kept-alive connection."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orchestrator.server.settings import ServerSettings
from tests.server.harness import (
    UPSTREAM_KEY,
    ThreadGateway,
    config_text,
    model_table,
    serve_process,
)
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(60)

HEADER_TIMEOUT = 0.5
#: How long a test waits for the close before calling it a hang (not a bound
#: under test: the gateway's bound is HEADER_TIMEOUT).
HANG = 20.0
HALF_HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"
SETTINGS = f"[server]\nheader_timeout = {HEADER_TIMEOUT}\n"


@pytest.fixture
def slow_headed(upstream: OpenAIServer) -> Iterator[ThreadGateway]:
    with ThreadGateway(config_text([model_table("mini", upstream.url)], SETTINGS)) as gateway:
        yield gateway


def read_until_closed(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    conn.settimeout(HANG)
    received = b""
    while chunk := conn.recv(4096):
        received += chunk
    return received


def connect(gateway_url: str) -> socket.socket:
    port = int(gateway_url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port))


def test_half_a_head_then_a_stall_gets_408_and_a_close(slow_headed: ThreadGateway) -> None:
    with connect(slow_headed.url) as conn:
        conn.sendall(HALF_HEAD)
        reply = read_until_closed(conn)
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert b"connection: close" in reply.lower()


def test_a_trickled_head_is_cut_at_the_bound(slow_headed: ThreadGateway) -> None:
    """Slowloris: a byte every 0.1 s keeps the connection busy but never
    completes the head; the bound counts from its first byte, not the last."""
    with connect(slow_headed.url) as conn:
        conn.settimeout(HANG)
        closed = False
        for byte in HALF_HEAD * 4:
            try:
                conn.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.1)
            conn.setblocking(False)
            try:
                if conn.recv(4096).startswith(b"HTTP/1.1 408 "):
                    closed = True
                    break
            except BlockingIOError:
                pass  # nothing from the server yet
            except ConnectionResetError:
                closed = True
                break
            finally:
                conn.setblocking(True)
        assert closed, "the trickled head was never cut"


def test_a_connection_that_sends_nothing_is_closed(slow_headed: ThreadGateway) -> None:
    with connect(slow_headed.url) as conn:
        assert read_until_closed(conn).startswith(b"HTTP/1.1 408 ")


def test_a_complete_head_is_served_then_kept_alive(slow_headed: ThreadGateway) -> None:
    with httpx.Client(base_url=slow_headed.url) as client:
        first = client.get("/healthz")
        time.sleep(HEADER_TIMEOUT * 2)  # idle past the head bound: keep-alive's to judge
        second = client.get("/healthz")
    assert first.status_code == second.status_code == 200


def test_a_head_sent_in_parts_within_the_bound_is_served(slow_headed: ThreadGateway) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    with connect(slow_headed.url) as conn:
        conn.sendall(head[:20])
        time.sleep(HEADER_TIMEOUT / 5)
        conn.sendall(head[20:])
        reply = read_until_closed(conn)
    assert reply.startswith(b"HTTP/1.1 200 "), reply


def test_a_stalled_head_on_a_kept_alive_connection_gets_408(slow_headed: ThreadGateway) -> None:
    """After a first request served whole (no timer armed for its head), the
    second request's half head is still bounded."""
    with connect(slow_headed.url) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        conn.settimeout(HANG)
        first = conn.recv(4096)
        assert first.startswith(b"HTTP/1.1 200 "), first
        conn.sendall(HALF_HEAD)
        started = time.monotonic()
        reply = read_until_closed(conn)
        waited = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert waited < HANG


def test_a_stray_crlf_on_a_kept_alive_connection_is_bounded_too(slow_headed: ThreadGateway) -> None:
    """A CRLF after a response begins no request (the parser skips it) but
    stops uvicorn's keep-alive timer: the head bound closes the connection."""
    with connect(slow_headed.url) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        conn.settimeout(HANG)
        first = conn.recv(4096)
        assert first.startswith(b"HTTP/1.1 200 "), first
        conn.sendall(b"\r\n")
        reply = read_until_closed(conn)
    assert reply.startswith(b"HTTP/1.1 408 "), reply


@pytest.fixture
def slow_upstream() -> Iterator[ThreadGateway]:
    """A gateway whose model answers after 2 s, four head bounds."""
    slow = OpenAIServer(api_key=UPSTREAM_KEY, answer_delay=4 * HEADER_TIMEOUT)
    slow.start()
    try:
        with ThreadGateway(config_text([model_table("mini", slow.url)], SETTINGS)) as gateway:
            yield gateway
    finally:
        slow.stop()


def test_a_stalled_pipelined_head_waits_for_the_response_in_flight(
    slow_upstream: ThreadGateway,
) -> None:
    """A whole chat request, then half of a pipelined one that stalls: the
    head bound passes while the first answer is still coming, and its 408
    follows that answer instead of landing before or inside it."""
    body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "Hi"}]})
    chat = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body.encode())
    )
    with connect(slow_upstream.url) as conn:
        conn.sendall(chat + HALF_HEAD)
        reply = read_until_closed(conn)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    answer, _, after = reply.partition(b"\r\n\r\n")
    assert b'"chat.completion"' in after
    assert after.count(b"HTTP/1.1 408 ") == 1 and b"HTTP/1.1 408 " not in answer


def test_orchestrator_serve_bounds_request_heads(tmp_path: Path, upstream: OpenAIServer) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(config_text([model_table("mini", upstream.url)], SETTINGS))
    with serve_process(config) as (_, url), connect(url) as conn:
        conn.sendall(HALF_HEAD)
        assert read_until_closed(conn).startswith(b"HTTP/1.1 408 ")


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), 7200, "10", True, None])
def test_header_timeout_is_checked(bad: object) -> None:
    with pytest.raises(ValueError, match="header_timeout"):
        ServerSettings.model_validate({"header_timeout": bad})

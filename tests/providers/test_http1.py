"""The HTTP/1.1 connection layer against servers that answer byte by byte
as scripted (real sockets on loopback): every way a response can end
(length, chunked, the server closing), informational responses, HEAD,
``Connection: close``, a server that speaks while idle, broken and stalled
responses, header injection, streamed request bodies, the pool's bounds and
a cancelled request."""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from orchestrator.errors import ModelError
from orchestrator.integrations import ClientPool
from orchestrator.integrations._http import Endpoint, Transport
from orchestrator.integrations._http._connections import ConnectionPool, pooled_transport

pytestmark = pytest.mark.timeout(30)

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class ScriptedServer:
    """A loopback server running ``script`` for each connection; counts connections."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.heads: list[bytes] = []
        self.closed = asyncio.Event()
        self.requested = asyncio.Event()
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        """One request's head and body (by its Content-Length or chunked framing)."""
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        self.requested.set()
        lines = head.lower().split(b"\r\n")
        length = next((int(line.split(b":")[1]) for line in lines if b"content-length" in line), 0)
        if b"transfer-encoding: chunked" in lines:
            body = b""
            while True:
                size = int((await reader.readline()).strip(), 16)
                body += (await reader.readexactly(size + 2))[:-2]
                if size == 0:
                    return body
        return await reader.readexactly(length)


@asynccontextmanager
async def scripted(script: Callable[[ScriptedServer], Script]) -> AsyncIterator[ScriptedServer]:
    holder = ScriptedServer(lambda r, w: asyncio.sleep(0))
    holder.script = script(holder)
    server = await asyncio.start_server(holder._serve, "127.0.0.1", 0)
    holder.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield holder
    finally:
        server.close()
        await server.wait_closed()


def answering(*responses: bytes, close: bool = False) -> Callable[[ScriptedServer], Script]:
    """Answer each request on a connection with the next of ``responses``."""

    def script(server: ScriptedServer) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for response in responses:
                await server.read_request(reader)
                writer.write(response)
                await writer.drain()
            if not close:
                await reader.read()  # keep the connection until the client ends it

        return run

    return script


async def test_bodies_by_length_chunked_and_until_close() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    pool = ClientPool()
    async with scripted(answering(OK, chunked, OK)) as server:
        client = pool.get(server.url)
        assert (await client.get(server.url + "/a")).content == b"ok"
        assert (await client.get(server.url + "/b")).content == b"abcde"
        assert (await client.get(server.url + "/c")).content == b"ok"
        assert server.connections == 1  # all three on one kept-alive connection
    until_close = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it"
    async with scripted(answering(until_close, close=True)) as server:
        client = pool.get(server.url)
        assert (await client.get(server.url)).content == b"all of it"
        assert (await client.get(server.url)).content == b"all of it"
        assert server.connections == 2  # a body that ends at the close ends its connection
    await pool.aclose()


async def test_informational_responses_are_skipped_and_head_has_no_body() -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n" + OK
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n"
    pool = ClientPool()
    async with scripted(answering(early, head, OK, close=True)) as server:
        client = pool.get(server.url)
        response = await client.get(server.url)
        assert (response.status_code, response.content) == (200, b"ok")
        assert "link" not in response.headers
        response = await client.head(server.url)
        assert (response.status_code, response.content) == (200, b"")
        assert response.headers["content-length"] == "1000"
    await pool.aclose()


async def test_connection_close_and_a_server_speaking_while_idle_are_not_reused() -> None:
    closing = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
    pool = ClientPool()
    async with scripted(answering(closing, OK)) as server:
        client = pool.get(server.url)
        assert (await client.get(server.url)).content == b"ok"
        assert (await client.get(server.url)).content == b"ok"
        assert server.connections == 2
    chatty = OK + b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstale"  # an answer nobody asked
    async with scripted(answering(chatty, OK)) as server:
        client = pool.get(server.url)
        assert (await client.get(server.url)).content == b"ok"
        await asyncio.sleep(0.05)
        assert (await client.get(server.url)).content == b"ok"  # not "stale"
        assert server.connections == 2
    await pool.aclose()


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", httpx.RemoteProtocolError),
        (b"", httpx.RemoteProtocolError),
        (b"SPAM/9 what\r\n\r\n", httpx.RemoteProtocolError),
        (b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n", httpx.RemoteProtocolError),
    ],
)
async def test_broken_responses_raise_httpx_errors(response: bytes, error: type[Exception]) -> None:
    pool = ClientPool()
    async with scripted(answering(response, close=True)) as server:
        client = pool.get(server.url)
        with pytest.raises(error):
            await client.get(server.url)
        # the pool is still usable, on a new connection
        server.script = answering(OK)(server)
        assert (await client.get(server.url)).content == b"ok"
    await pool.aclose()


async def test_a_stalled_response_is_a_read_timeout_and_its_connection_is_closed() -> None:
    def stall(server: ScriptedServer) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
            await reader.read()  # until the client closes
            server.closed.set()

        return run

    pool = ClientPool()
    async with scripted(stall) as server:
        client = pool.get(server.url)
        with pytest.raises(httpx.ReadTimeout):
            await client.get(server.url, timeout=httpx.Timeout(0.2))
        async with asyncio.timeout(5):
            await server.closed.wait()
    await pool.aclose()


async def test_a_cancelled_request_closes_its_connection() -> None:
    def never(server: ScriptedServer) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            await reader.read()
            server.closed.set()

        return run

    pool = ClientPool()
    async with scripted(never) as server:
        request = asyncio.ensure_future(pool.get(server.url).get(server.url))
        async with asyncio.timeout(5):
            await server.requested.wait()
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        async with asyncio.timeout(5):
            await server.closed.wait()  # the server saw the close
    await pool.aclose()


@pytest.mark.parametrize(
    "header", [("x-key", "a\r\nx-injected: 1"), ("x-key", "a\nb"), ("x-key", "a\rb")]
)
async def test_a_header_with_a_line_break_is_refused_before_sending(
    header: tuple[str, str],
) -> None:
    pool = ClientPool()
    async with scripted(answering(OK)) as server:
        with pytest.raises(httpx.LocalProtocolError):
            await pool.get(server.url).get(server.url, headers=[header])
        assert server.heads == []
    await pool.aclose()


async def test_a_streamed_request_body_is_sent_chunked() -> None:
    received: list[bytes] = []

    def echo(server: ScriptedServer) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.append(await server.read_request(reader))
            writer.write(OK)
            await reader.read()

        return run

    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one ", b"", b"two"):
            yield part

    pool = ClientPool()
    async with scripted(echo) as server:
        response = await pool.get(server.url).post(server.url, content=parts())
        assert response.content == b"ok"
        assert received == [b"one two"]
        assert b"transfer-encoding: chunked" in server.heads[0].lower()
    await pool.aclose()


async def test_the_pool_waits_for_a_connection_at_its_bound_and_times_out() -> None:
    def slow(server: ScriptedServer) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                await server.read_request(reader)
                await asyncio.sleep(0.1)
                writer.write(OK)

        return run

    pool = ClientPool(max_connections=2, max_keepalive_connections=2)
    async with scripted(slow) as server:
        client = pool.get(server.url)
        answers = await asyncio.gather(*(client.get(server.url) for _ in range(6)))
        assert [a.content for a in answers] == [b"ok"] * 6
        assert server.connections == 2  # four waited for one of the two
        with pytest.raises(httpx.PoolTimeout):
            await asyncio.gather(
                *(client.get(server.url, timeout=httpx.Timeout(5, pool=0.05)) for _ in range(3))
            )
    await pool.aclose()


async def test_an_unsupported_scheme_and_a_closed_pool_are_errors() -> None:
    pool = ClientPool()
    transport = pool.direct("http://127.0.0.1:9")
    assert transport is not None
    with pytest.raises(httpx.UnsupportedProtocol):
        await transport.handle_async_request(httpx.Request("GET", "ftp://127.0.0.1/x"))
    await transport.aclose()
    with pytest.raises(httpx.ConnectError, match="closed"):
        await transport.handle_async_request(httpx.Request("GET", "http://127.0.0.1:9/x"))
    await pool.aclose()


async def test_an_answer_before_the_whole_streamed_body_is_the_response() -> None:
    """A server may refuse an upload before reading it (413) and hang up:
    the client gets that answer and stops sending, instead of hanging or
    writing into a closed connection."""

    def refuse(server: ScriptedServer) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 413 Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
            )
            await writer.drain()

        return run

    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while True:
            sent += 1
            yield b"x" * 1024
            await asyncio.sleep(0.01)

    pool = ClientPool()
    async with scripted(refuse) as server:
        response = await pool.get(server.url).post(server.url, content=endless())
        assert response.status_code == 413
        assert sent < 1000
    await pool.aclose()


async def test_an_idle_connection_past_its_expiry_is_not_reused() -> None:
    transport = pooled_transport(httpx.Limits(max_keepalive_connections=5, keepalive_expiry=0.05))
    async with scripted(answering(OK, OK)) as server:
        client = httpx.AsyncClient(transport=transport)
        assert (await client.get(server.url)).content == b"ok"
        assert (await client.get(server.url)).content == b"ok"
        assert server.connections == 1  # reused within its expiry
        await asyncio.sleep(0.1)
        assert (await client.get(server.url)).content == b"ok"
        assert server.connections == 2
        await client.aclose()


async def test_the_tls_context_is_made_on_the_first_https_connection_only() -> None:
    """Loading the CA bundle costs ~150 ms: a pool that only speaks http://
    never pays it, and one that speaks https makes it once."""
    made: list[ssl.SSLContext] = []

    def make() -> ssl.SSLContext:
        made.append(httpx.create_ssl_context())
        return made[-1]

    transport = ConnectionPool(httpx.Limits(max_keepalive_connections=5), make)
    async with scripted(answering(OK, OK)) as server:
        client = httpx.AsyncClient(transport=transport)
        assert (await client.get(server.url)).content == b"ok"
        assert (await client.get(server.url)).content == b"ok"
        assert made == []
        for _ in range(2):  # nothing listens there: each attempt fails to connect
            with pytest.raises(httpx.ConnectError):
                await client.get("https://127.0.0.1:9/")
        assert len(made) == 1
        await client.aclose()


async def test_a_prepared_request_writes_the_bytes_httpx_would() -> None:
    """A pooled JSON request skips httpx's request objects; what it writes
    is what httpx's request wrote: the same head, header for header, and body."""
    pool = ClientPool()
    headers = {"Authorization": "Bearer sk-t", "X-Trace": "1"}
    answer = b'HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n"ok"'
    async with scripted(answering(answer, answer)) as server:
        transport = Transport(Endpoint.parse(server.url), "m", lambda: headers, pool=pool)
        body = {"model": "m", "messages": [{"role": "user", "content": "héllo"}]}
        assert await transport.request_json("POST", "/v1/chat", json_body=body, parse=str) == "ok"
        direct = pool.direct(server.url)
        assert direct is not None
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        request = httpx.Request(
            "POST",
            f"{server.url}/v1/chat",
            headers=transport._pooled_headers(True),
            content=content,
        )
        response = await direct.handle_async_request(request)
        await response.aread()
        await response.aclose()
        prepared, built = server.heads
        assert prepared == built
        assert prepared.startswith(b"POST /v1/chat HTTP/1.1\r\nHost: 127.0.0.1:")
        assert prepared.endswith(b"Content-Length: %d\r\n\r\n" % len(content))
    await pool.aclose()


async def test_a_model_header_with_a_line_break_is_refused_on_the_prepared_path() -> None:
    pool = ClientPool()
    async with scripted(answering(OK)) as server:
        transport = Transport(
            Endpoint.parse(server.url), "m", lambda: {"X-Key": "a\r\nX-Injected: 1"}, pool=pool
        )
        with pytest.raises(ModelError):
            await transport.request_json("POST", "/v1/chat", json_body={"a": 1}, retry=False)
        assert server.heads == []
    await pool.aclose()


def _answer(body: bytes, *headers: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(h + b"\r\n" for h in headers)
    return head + b"content-length: %d\r\n\r\n%s" % (len(body), body)


async def test_bodies_on_the_pool_path_are_decoded_and_split_as_their_formats_say() -> None:
    """Bodies read past httpx's response layers: a gzip JSON answer and a
    gzip event stream are decoded as httpx decodes them; an event stream is
    UTF-8 whatever charset it names (as the SSE format says); a JSON string
    holding U+2028 stays on its line."""
    events = "data: é\n\ndata: fin\n\n"
    answers = (
        _answer(gzip.compress(b'{"a": 1}'), b"content-encoding: gzip"),
        _answer(gzip.compress(events.encode()), b"content-encoding: gzip"),
        _answer(events.encode(), b"content-type: text/event-stream; charset=latin-1"),
        _answer(
            'data: {"t": "a\u2028b"}\n\ndata: [DONE]\n\n'.encode(),
            b"content-type: text/event-stream",
        ),
    )
    pool = ClientPool()
    async with scripted(answering(*answers)) as server:
        transport = Transport(Endpoint.parse(server.url), "m", pool=pool)
        assert await transport.request_json("POST", "/v1", json_body={}) == {"a": 1}
        for _ in range(2):
            lines = [line async for line in transport.stream_lines("POST", "/v1", json_body={})]
            assert lines == ["data: é", "", "data: fin", ""]
        events_seen = [
            data
            async for _, data in transport.stream_sse(
                "POST", "/v1", json_body={}, is_end=lambda _: False, sentinel="[DONE]"
            )
        ]
        assert events_seen == [{"t": "a\u2028b"}]
    await pool.aclose()

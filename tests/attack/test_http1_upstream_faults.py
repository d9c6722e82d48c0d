"""More hostile upstreams against the pooled connections and the transport
above them: an early answer to an unfinished upload, bodies trickled a byte
at a time past the deadline, JSON nested beyond the interpreter's stack, a
101 answer, and stream lines without end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from orchestrator.errors import MalformedResponseError, ModelError, ProviderTimeoutError
from orchestrator.integrations import ClientPool
from orchestrator.integrations._http import Endpoint, Transport
from orchestrator.integrations._http._retries import RetryPolicy
from orchestrator.integrations._http._streams import MAX_LINE_BYTES, split_lines
from tests.providers.test_http1 import OK, Script, ScriptedServer, answering, scripted

pytestmark = pytest.mark.timeout(60)

#: A deadline the trickling servers below outlast six times over.
DEADLINE = 1.0
TRICKLE_SECONDS = 6.0


async def test_an_early_answer_to_an_unfinished_upload_closes_the_connection() -> None:
    """The server answers a chunked upload after its head (401, keep-alive)
    and goes on reading the rest of the body, as a keep-alive server must;
    the client stops sending, so the body's last chunk is never written. The
    connection must not carry another request: the server would read it as
    chunk framing."""

    def early(server: ScriptedServer) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if server.connections == 1:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
                while True:  # the rest of the chunked body, as a keep-alive server reads it
                    size = int((await reader.readline()).strip(), 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            while True:
                await server.read_request(reader)
                writer.write(OK)
                await writer.drain()

        return run

    async def upload() -> AsyncIterator[bytes]:
        yield b"x" * 10
        await asyncio.sleep(0.3)  # the 401 arrives meanwhile
        yield b"y" * 10

    pool = ClientPool()
    async with scripted(early) as server:
        client = pool.get(server.url)
        assert (await client.post(server.url, content=upload())).status_code == 401
        second = await client.get(server.url, timeout=httpx.Timeout(5.0))
        assert second.content == b"ok"
        assert server.connections == 2
    await pool.aclose()


def trickling(opening: bytes, byte: bytes) -> Callable[[ScriptedServer], Script]:
    """A server that answers ``opening``, then ``byte`` every 0.1 s for
    :data:`TRICKLE_SECONDS`: every read is well within a read timeout."""

    def script(server: ScriptedServer) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(opening)
            for _ in range(int(TRICKLE_SECONDS / 0.1)):
                await asyncio.sleep(0.1)
                writer.write(byte)
                await writer.drain()

        return run

    return script


def transport_for(url: str, pool: ClientPool) -> Transport:
    policy = RetryPolicy(timeout=0.5, deadline=DEADLINE, max_retries=0)
    return Transport(Endpoint.parse(url), "m", pool=pool, policy=policy)


async def test_an_answer_trickled_past_the_deadline_is_cut_at_it() -> None:
    pool = ClientPool()
    opening = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n"
    async with scripted(trickling(opening, b"x")) as server:
        started = time.monotonic()
        with pytest.raises(ProviderTimeoutError):
            await transport_for(server.url, pool).request_json("POST", "/v1", json_body={})
        assert time.monotonic() - started < TRICKLE_SECONDS / 2
    await pool.aclose()


async def test_a_stream_line_trickled_past_the_deadline_is_cut_at_it() -> None:
    """No line break ever comes, so the stream's check between lines never
    runs: the connection's reads end at the deadline."""
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    pool = ClientPool()
    async with scripted(trickling(head + b"6\r\ndata: \r\n", b"1\r\nx\r\n")) as server:
        started = time.monotonic()
        with pytest.raises(ModelError):
            async for _ in transport_for(server.url, pool).stream_lines(
                "POST", "/v1", json_body={}
            ):
                pass
        assert time.monotonic() - started < TRICKLE_SECONDS / 2
    await pool.aclose()


@pytest.mark.parametrize("depth", [1_000, 100_000])
async def test_an_answer_nested_beyond_the_stack_is_a_typed_error_or_read(depth: int) -> None:
    """JSON deeper than the interpreter's stack is malformed for us
    (MalformedResponseError), never a RecursionError out of the transport;
    within orjson's 1,024 levels it is read."""
    body = b"[" * depth + b"]" * depth
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)

    pool = ClientPool()
    async with scripted(answering(answer)) as server:
        transport = Transport(
            Endpoint.parse(server.url), "m", pool=pool, policy=RetryPolicy(max_retries=0)
        )
        if depth > 1_024:
            with pytest.raises(MalformedResponseError):
                await transport.request_json("POST", "/v1", json_body={})
        else:
            decoded = await transport.request_json("POST", "/v1", json_body={})
            for _ in range(depth - 1):
                (decoded,) = decoded
            assert decoded == []
    await pool.aclose()


async def test_a_101_answer_fails_the_request_and_nothing_else() -> None:
    """After a 101 the parser pauses for the upgrade (``HttpParserUpgrade``,
    not an ``HttpParserError``): the request fails as a protocol error and no
    exception leaves the protocol for the event loop to report."""
    answer = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n"

    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    pool = ClientPool()
    try:
        async with scripted(answering(answer)) as server:
            with pytest.raises(httpx.RemoteProtocolError):
                await pool.get(server.url).get(server.url)
            await asyncio.sleep(0.1)
    finally:
        loop.set_exception_handler(None)
        await pool.aclose()
    assert not reported, [context.get("message") for context in reported]


async def test_a_line_arriving_in_many_chunks_is_joined_once() -> None:
    """8 MiB in 1 KiB chunks: joined as it arrives (a copy per chunk) this
    would copy 32 GB and outlast the test's timeout."""
    chunk = b"x" * 1024

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8 * 1024):
            yield chunk
        yield b"\r"
        yield b"\nnext"

    assert [len(line) async for line in split_lines(chunks())] == [8 * 1024 * 1024, 4]


async def test_a_line_beyond_the_bound_is_malformed() -> None:
    chunk = b"x" * 65536

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield chunk

    with pytest.raises(MalformedResponseError, match="over"):
        async for _ in split_lines(endless()):
            pass
    with pytest.raises(MalformedResponseError, match="over"):  # in one piece, unended
        async for _ in split_lines(_once(b"a\n" + b"x" * (MAX_LINE_BYTES + 1))):
            pass


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data

"""Attacks on the HTTP/1.1 connection layer (``_http/_connections.py``) from
loopback servers that misbehave as a hostile or broken provider would:
trailers posing as headers, a header block without end, a request cancelled
just as it was handed a free connection, and many requests cancelled at
random on a small pool (every response reaches the request it answers, the
sockets stay within the pool's bound)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import httpx
import pytest

from orchestrator.integrations import ClientPool
from orchestrator.integrations._http._connections import MAX_HEAD_BYTES, ConnectionPool
from tests.providers.test_http1 import OK, Script, ScriptedServer, answering, scripted

pytestmark = pytest.mark.timeout(60)


async def test_trailers_never_become_response_headers() -> None:
    """A chunked body's trailer section arrives after the head: it must not
    add to (or override) the headers the response was framed and decoded by."""
    trailed = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\ncontent-encoding: gzip\r\nx-injected: 1\r\n\r\n"
    )
    pool = ClientPool()
    async with scripted(answering(trailed, OK)) as server:
        client = pool.get(server.url)
        response = await client.get(server.url)
        assert response.content == b"ok"
        assert "x-injected" not in response.headers
        assert "content-encoding" not in response.headers
        assert (await client.get(server.url)).content == b"ok"  # and the connection carries on
    await pool.aclose()


def endless_head(server: ScriptedServer) -> Script:
    """A response head that never ends: header lines as fast as the client reads."""

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        line = 0
        while not writer.is_closing():
            writer.write(b"".join(b"x-h%d: %s\r\n" % (line + i, b"v" * 90) for i in range(100)))
            line += 100
            await writer.drain()

    return run


def never_ending(opening: bytes) -> Callable[[ScriptedServer], Script]:
    """Answer with ``opening``, then with the value of its last header forever."""

    def script(server: ScriptedServer) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(opening)
            while not writer.is_closing():
                writer.write(b"v" * 16384)
                await writer.drain()

        return run

    return script


#: One header whose value never ends.
one_huge_header = never_ending(b"HTTP/1.1 200 OK\r\nx-big: ")
#: A chunked body whose trailer section never ends (llhttp hands trailers to
#: httptools, which buffers each one whole).
endless_trailer = never_ending(
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-t: "
)


@pytest.mark.parametrize("script", [endless_head, one_huge_header])
async def test_a_response_head_without_end_is_refused_at_its_bound(script: object) -> None:
    """httpcore refuses a head over 100 KiB ("Receive buffer too long"); here
    the head was buffered whole, header after header, without any bound."""
    pool = ClientPool()
    async with scripted(script) as server:  # type: ignore[arg-type]
        client = pool.get(server.url)
        with pytest.raises(httpx.RemoteProtocolError, match="response head"):
            await client.get(server.url)
    await pool.aclose()


async def test_a_head_just_under_the_bound_and_a_body_after_it_are_read() -> None:
    """The bound counts the head only: a large body in the same packets is fine."""
    filler = b"x-fill: " + b"f" * (MAX_HEAD_BYTES - 200) + b"\r\n"
    body = b"b" * (4 * MAX_HEAD_BYTES)
    response_bytes = b"HTTP/1.1 200 OK\r\n" + filler + b"content-length: %d\r\n\r\n" % len(body)
    pool = ClientPool()
    async with scripted(answering(response_bytes + body, OK)) as server:
        client = pool.get(server.url)
        response = await client.get(server.url)
        assert response.content == body
        assert len(response.headers["x-fill"]) == MAX_HEAD_BYTES - 200
        assert (await client.get(server.url)).content == b"ok"
    await pool.aclose()


async def test_a_trailer_section_without_end_is_refused_at_the_bound() -> None:
    pool = ClientPool()
    async with scripted(endless_trailer) as server:
        client = pool.get(server.url)
        with pytest.raises(httpx.RemoteProtocolError, match="without a body byte"):
            await client.get(server.url)
    await pool.aclose()


async def test_one_byte_chunks_are_read_whole() -> None:
    """Chunk framing is most of a body of 1-byte chunks: still a body, not a flood."""
    count = 3 * MAX_HEAD_BYTES
    framed = b"1\r\nb\r\n" * count
    response_bytes = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"
    )
    pool = ClientPool()
    async with scripted(answering(response_bytes, OK)) as server:
        client = pool.get(server.url)
        assert (await client.get(server.url)).content == b"b" * count
        assert (await client.get(server.url)).content == b"ok"
    await pool.aclose()


def held(server: ScriptedServer) -> Script:
    """Answer every request on a kept-alive connection."""

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            writer.write(OK)
            await writer.drain()

    return run


async def test_a_request_cancelled_as_it_is_woken_passes_the_free_connection_on() -> None:
    """At ``max_connections`` two requests wait; the connection is released
    (waking the first) and the first is cancelled before it runs: the second
    must get the connection, not wait forever for a wake-up already spent."""
    pool = ClientPool(max_connections=1, max_keepalive_connections=1)
    async with scripted(held) as server:
        client = pool.get(server.url)
        transport = pool.direct(server.url)
        assert isinstance(transport, ConnectionPool)
        holding = await client.send(client.build_request("GET", server.url), stream=True)
        first = asyncio.create_task(client.get(server.url))
        second = asyncio.create_task(client.get(server.url))
        while len(transport._waiting) < 2:  # noqa: ASYNC110 (the pool has no event for it)
            await asyncio.sleep(0)
        await holding.aclose()  # releases the connection: the first waiter is woken
        first.cancel()  # ... and cancelled before it could take the connection
        done, _ = await asyncio.wait([second], timeout=20)
        assert second in done, "the second request never got the free connection"
        assert second.result().content == b"ok"
        assert first.cancelled()
    await pool.aclose()


def numbered(server: ScriptedServer) -> Script:
    """Answer each request with its own path (so a response names its request),
    sometimes after a pause, sometimes closing instead of keeping alive;
    counts the connections it holds open."""

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.open_now += 1  # type: ignore[attr-defined]
        try:
            while True:
                await server.read_request(reader)
                path = server.heads[-1].split(b" ")[1]
                if random.random() < 0.3:
                    await asyncio.sleep(0.001)
                close = random.random() < 0.1
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s"
                    % (len(path), b"connection: close\r\n" if close else b"", path)
                )
                await writer.drain()
                if close:
                    return
        finally:
            server.open_now -= 1  # type: ignore[attr-defined]
            if not server.open_now:  # type: ignore[attr-defined]
                server.closed.set()

    return run


async def all_closed(server: ScriptedServer) -> None:
    """Wait until the server holds no connection (the test's timeout if a socket leaked)."""
    if server.open_now:  # type: ignore[attr-defined]
        server.closed.clear()
        await server.closed.wait()


async def test_random_cancellation_on_a_small_pool_never_crosses_responses() -> None:
    """200 requests on 4 connections, a third cancelled at a random moment:
    every response that arrives is its own request's, the pool never holds
    more than 4 connections, and once it is closed the server holds none
    (no socket leaked outside the pool's count)."""
    rng = random.Random(4)
    pool = ClientPool(max_connections=4, max_keepalive_connections=2)
    async with scripted(numbered) as server:
        server.open_now = 0  # type: ignore[attr-defined]
        most_open = 0
        client = pool.get(server.url)
        transport = pool.direct(server.url)
        assert isinstance(transport, ConnectionPool)

        async def one(index: int) -> tuple[int, bytes]:
            nonlocal most_open
            response = await client.get(f"{server.url}/r{index}")
            most_open = max(most_open, len(transport._open) + transport._connecting)
            return index, response.content

        tasks = [asyncio.create_task(one(i)) for i in range(200)]
        for task in rng.sample(tasks, 70):
            for _ in range(rng.randrange(8)):
                await asyncio.sleep(0)
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        answered = [r for r in results if isinstance(r, tuple)]
        assert answered, "no request was answered"
        for index, content in answered:
            assert content == b"/r%d" % index
        failures = [r for r in results if not isinstance(r, (tuple, asyncio.CancelledError))]
        assert failures == []
        assert most_open <= 4
        assert len(transport._open) <= 2 and not transport._waiting
        assert (await client.get(server.url + "/after")).content == b"/after"
        await pool.aclose()
        await all_closed(server)


async def test_a_request_cancelled_while_connecting_leaks_no_socket() -> None:
    """Requests cancelled at every step of opening their connection: once
    the pool is closed the server holds no connection (``asyncio.wait_for``
    drops a connection made as it is cancelled, unclosed, on Python < 3.12)."""
    pool = ClientPool(max_connections=50, max_keepalive_connections=1)
    async with scripted(numbered) as server:
        server.open_now = 0  # type: ignore[attr-defined]
        client = pool.get(server.url)
        for steps in range(40):
            request = asyncio.create_task(client.get(server.url + "/x"))
            for _ in range(steps):
                await asyncio.sleep(0)
            request.cancel()
            await asyncio.gather(request, return_exceptions=True)
        await pool.aclose()
        await all_closed(server)


async def test_a_request_cancelled_while_connecting_stays_cancelled() -> None:
    """A cancellation that arrives as the connection is made must not be
    swallowed (``asyncio.wait_for`` returns the result instead when both
    land in one step, on Python < 3.12): the request would then go on, and
    an interrupted ``orchestrator ask`` wait out its provider's timeout."""
    async with scripted(numbered) as server:
        server.open_now = 0  # type: ignore[attr-defined]
        swallowed = []
        for trial in range(200):
            steps = trial % 20
            pool = ClientPool()  # a new connection every time
            client = pool.get(server.url)
            request = asyncio.create_task(client.get(server.url + "/x", timeout=30))
            for _ in range(steps):
                await asyncio.sleep(0)
            if request.cancel():  # not done yet: it must end cancelled
                outcome = (await asyncio.gather(request, return_exceptions=True))[0]
                if not isinstance(outcome, asyncio.CancelledError):
                    swallowed.append((steps, outcome))
            await pool.aclose()
        assert swallowed == []
        await all_closed(server)

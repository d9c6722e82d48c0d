"""The connection layer under the pooled clients: keep-alive HTTP/1.1
connections on asyncio protocols, responses parsed by httptools (llhttp, in
C), behind httpx's transport interface.

httpx's own transport goes through httpcore and h11, pure Python that checks
and re-checks every header and state change: about 0.4 ms of CPU per call,
half of what a gateway worker spends on a request. Here one request is one
``write`` (head and body together), the response is parsed in C by
``data_received``, and the pool is a list of idle connections per origin,
newest first. httpx above keeps its API: requests, responses, decoding and
its exception classes (``ConnectError``, ``ReadTimeout``...).

Reading pauses while more than :data:`HIGH_WATER` bytes of a body wait
unread; a response head (status line, headers, any informational responses
before it) over :data:`MAX_HEAD_BYTES` is refused, as httpcore refuses it
(llhttp itself buffers headers without bound). A chunked body's trailers
are read past and dropped, as httpcore does: they arrive after the head and
must not change the headers the body is framed and decoded by; more than
:data:`MAX_HEAD_BYTES` received after the head without a body byte among
them (a trailer section or chunk framing without end) is refused too. A connection
goes back to the pool only once its response was read to the end and both
sides allow keep-alive; one that received anything while idle, or that
expired, is closed.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import httptools
import httpx

#: Reading pauses while this many received body bytes wait unread.
HIGH_WATER = 256 * 1024
#: The largest response head read (httpcore's bound: "Receive buffer too long").
MAX_HEAD_BYTES = 100 * 1024
_DEFAULT_PORTS = {b"http": 80, b"https": 443}
Origin = tuple[bytes, bytes, int]
#: httpx's ``connect``/``read``/``write``/``pool`` seconds, and ``deadline``:
#: the ``time.monotonic()`` by which the response must have arrived whole.
Timeouts = dict[str, Optional[float]]


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A request its sender built to bytes itself, past :class:`httpx.Request`,
    for the pool ``via``: ``head`` is its request line and header lines,
    checked for line breaks and without the ``Content-Length`` line, which
    is written from ``body``."""

    via: ConnectionPool
    method: str
    origin: Origin
    head: bytes
    body: bytes
    timeouts: Timeouts


@dataclass(slots=True)
class PooledResponse:
    """A response from one of the pool's connections: its status and raw
    headers, with the :class:`httpx.Headers` view made only when asked for
    (an answer whose headers nobody reads costs no header objects)."""

    status_code: int
    raw_headers: list[tuple[bytes, bytes]]
    _headers: Optional[httpx.Headers] = field(default=None, init=False, repr=False)

    @property
    def headers(self) -> httpx.Headers:
        if self._headers is None:
            self._headers = httpx.Headers(self.raw_headers)
        return self._headers


@dataclass(slots=True)
class WholeResponse(PooledResponse):
    """A response read to its end: status, headers and (decoded) body,
    without the machinery of a streaming :class:`httpx.Response`."""

    content: bytes


@dataclass(slots=True)
class StreamedResponse(PooledResponse):
    """A response whose ``body`` is still to come on its connection, with no
    content encoding to undo; ``aclose()`` releases the connection (read to
    its end or not)."""

    body: ConnectionBody

    async def aread(self) -> bytes:
        return (await self.body.read_whole()).content

    async def aclose(self) -> None:
        await self.body.aclose()


def origin_of(url: httpx.URL) -> Origin:
    """The pool's key of ``url``: scheme, host and port."""
    if url.raw_scheme not in _DEFAULT_PORTS:
        raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
    return (url.raw_scheme, url.raw_host, url.port or _DEFAULT_PORTS[url.raw_scheme])


def request_head(method: str, url: httpx.URL, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The request line and header lines (without the blank line that ends them).

    Raises:
        httpx.LocalProtocolError: a line break inside a header or the target,
            which would start another line.
    """
    lines = [method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
    for name, value in headers:
        lines += (name, b": ", value, b"\r\n")
    head = b"".join(lines)
    if head.count(b"\n") != len(headers) + 1 or head.count(b"\r") != head.count(b"\n"):
        raise httpx.LocalProtocolError("a request header or the URL holds a line break")
    return head


async def _within(
    future: asyncio.Future[Any], seconds: Optional[float], error: type[Exception]
) -> None:
    """Await ``future``, raising ``error`` after ``seconds`` (one timer
    handle, no task as ``asyncio.wait_for`` makes)."""
    if seconds is None:
        await future
        return

    def expire() -> None:
        if not future.done():
            future.set_exception(error(f"timed out after {seconds:g}s"))

    timer = asyncio.get_running_loop().call_later(seconds, expire)
    try:
        await future
    finally:
        timer.cancel()


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: a request at a time, its response parsed as
    it arrives (the httptools callbacks are the ``on_*`` methods)."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: Optional[asyncio.Transport] = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        #: A request is on this connection (from sending until its response is released).
        self.busy = False
        self.idle_since = 0.0
        self._error: Optional[Exception] = None
        self._drain: Optional[asyncio.Future[None]] = None
        self._reset()

    def _reset(self) -> None:
        self._head: Optional[asyncio.Future[None]] = None
        self._wake: Optional[asyncio.Future[None]] = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._status = 0
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._complete = False
        self._headers_done = False
        #: Bytes of the response head fed to the parser so far.
        self._head_bytes = 0
        #: Bytes fed after the head since the last that held a body byte.
        self._bodiless_bytes = 0
        self._body_seen = False
        #: Neither Content-Length nor chunked: the body ends when the server closes.
        self._until_close = False
        #: The headers name a content encoding (gzip...), which httpx decodes.
        self._encoded = False
        self._keep_alive = False
        self._head_only = False
        #: The server sent more than the one response asked for.
        self._surplus = False
        #: The server answered before the request's streamed body was all
        #: written: the server still reads the rest, so the connection is done.
        self._body_unsent = False

    # ----- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # uvloop's are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.busy:  # a server speaking while idle: the connection is not reusable
            self.close()
            return
        try:
            if not self._headers_done:
                data = self._feed_head(data)
            if data:
                self._feed_body(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            # An upgrade (101) pauses the parser; the request failed already.
            self._fail(httpx.RemoteProtocolError(f"invalid HTTP response: {exc}"))

    def _feed_head(self, data: bytes) -> bytes:
        """Feed ``data`` up to the head's bound and return what is left of it
        (body bytes once the head ended); past the bound, fail the request."""
        room = MAX_HEAD_BYTES - self._head_bytes
        part = data[:room]
        self._head_bytes += len(part)
        self._parser.feed_data(part)
        if self.closed:
            return b""
        if not self._headers_done and self._head_bytes >= MAX_HEAD_BYTES:
            self._fail(
                httpx.RemoteProtocolError(
                    f"the response head is over {MAX_HEAD_BYTES} bytes (MAX_HEAD_BYTES)"
                )
            )
            return b""
        return data[len(part) :]

    def _feed_body(self, data: bytes) -> None:
        """Feed ``data`` after the head; fail the request once too much
        arrived without a body byte (httptools buffers each trailer whole)."""
        self._body_seen = False
        self._parser.feed_data(data)
        if self._body_seen or self._complete or self.closed:
            self._bodiless_bytes = 0
            return
        self._bodiless_bytes += len(data)
        if self._bodiless_bytes > MAX_HEAD_BYTES:
            self._fail(
                httpx.RemoteProtocolError(
                    f"over {MAX_HEAD_BYTES} bytes (MAX_HEAD_BYTES) of the response arrived "
                    "without a body byte (trailers or chunk framing without end)"
                )
            )

    def eof_received(self) -> Optional[bool]:
        self._ended(None)
        return None

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._ended(exc)
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def pause_writing(self) -> None:
        self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    # ----- httptools callbacks ----------------------------------------------------

    def on_message_begin(self) -> None:
        if self._headers_done:  # a second response to one request: not ours to read
            self._surplus = True
            self.close()

    def on_status(self, reason: bytes) -> None:
        if not self._surplus:
            self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if not (self._surplus or self._headers_done):  # after the head: a trailer
            self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._surplus:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # informational: the real response follows
            if status == 101:
                self._fail(httpx.RemoteProtocolError("the server switched protocols (101)"))
            return
        self._status = status
        self._headers_done = True
        names = {name.lower() for name, _ in self._headers}
        self._until_close = (
            b"content-length" not in names
            and b"transfer-encoding" not in names
            and status not in (204, 304)
        )
        self._encoded = b"content-encoding" in names
        tokens = b",".join(v for n, v in self._headers if n.lower() == b"connection").lower()
        self._keep_alive = self._parser.get_http_version() == "1.1" and b"close" not in tokens
        _resolve(self._head)
        if self._head_only:  # a HEAD response has no body, whatever its headers say
            self._complete = True
            self.close()

    def on_body(self, body: bytes) -> None:
        if self._surplus:
            return
        self._body_seen = True
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self.transport.pause_reading()
            self._paused = True
        _resolve(self._wake)

    def on_message_complete(self) -> None:
        if self._surplus:
            return
        if not self._headers_done:  # the end of an informational response
            self._headers, self._reason = [], b""
            return
        self._complete = True
        _resolve(self._wake)

    # ----- the request ------------------------------------------------------------

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        self.close()
        for waiter in (self._head, self._wake):
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)

    def _ended(self, exc: Optional[Exception]) -> None:
        """The server closed the connection (or it broke)."""
        self.closed = True
        if not self.busy or self._complete:
            return
        if self._headers_done and self._until_close and exc is None:
            self._complete = True  # the body of a length-less response ends here
            _resolve(self._wake)
            return
        if not self._headers_done:
            message = "the server closed the connection without sending a response"
        else:
            message = "the server closed the connection before the end of the response body"
        self._fail(
            httpx.ReadError(f"{message} ({exc})") if exc else httpx.RemoteProtocolError(message)
        )

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def reusable(self, now: float, expiry: float) -> bool:
        return not self.closed and now - self.idle_since < expiry

    def _begin(self, method: str) -> asyncio.Future[None]:
        """Make this connection ready for one request's response; its head's future."""
        self._reset()
        self.busy = True
        self._head_only = method == "HEAD"
        self._head = asyncio.get_running_loop().create_future()
        return self._head

    async def send(self, request: httpx.Request, timeouts: Timeouts) -> None:
        """Write ``request`` (head and body in one write when the body is in
        memory) and wait for the response head."""
        head_arrived = self._begin(request.method)
        head = request_head(request.method, request.url, request.headers.raw) + b"\r\n"
        transport = self.transport
        assert transport is not None, "a connection is made before it is used"
        if isinstance(request.stream, httpx.ByteStream):
            transport.write(head + request.content)
        else:  # a streamed body, framed as its headers say
            transport.write(head)
            chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
            whole = True
            async for part in request.stream:  # type: ignore[union-attr]
                if self._headers_done or self.closed:
                    whole = False  # the server answered (or hung up) before taking it all
                    break
                if part:
                    transport.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                    await self._drained(timeouts.get("write"))
            if chunked and whole:
                if self._headers_done or self.closed:
                    whole = False
                else:
                    transport.write(b"0\r\n\r\n")
            self._body_unsent = not whole
        await self._drained(timeouts.get("write"))
        await _within(head_arrived, timeouts.get("read"), httpx.ReadTimeout)

    async def send_prepared(self, request: PreparedRequest) -> None:
        """Write a prepared request in one write and wait for the response head."""
        head_arrived = self._begin(request.method)
        transport = self.transport
        assert transport is not None, "a connection is made before it is used"
        body = request.body
        transport.write(b"%sContent-Length: %d\r\n\r\n%s" % (request.head, len(body), body))
        await self._drained(request.timeouts.get("write"))
        await _within(head_arrived, request.timeouts.get("read"), httpx.ReadTimeout)

    async def _drained(self, seconds: Optional[float]) -> None:
        if self._drain is not None:
            await _within(self._drain, seconds, httpx.WriteTimeout)
        if self._error is not None:
            raise self._error

    def response(self, stream: httpx.AsyncByteStream) -> httpx.Response:
        return httpx.Response(
            self._status,
            headers=self._headers,
            stream=stream,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": self._reason},
        )

    def whole_response(self, body: bytes) -> WholeResponse:
        """The response with its whole ``body`` read, decoded by httpx when
        its headers name a content encoding."""
        if self._encoded:
            decoded = httpx.Response(self._status, headers=self._headers, content=body)
            return WholeResponse(self._status, self._headers, decoded.content)
        return WholeResponse(self._status, self._headers, body)

    def streamed_response(self, body: ConnectionBody) -> httpx.Response | StreamedResponse:
        """The response whose ``body`` is to come: httpx's when it has a
        content encoding to decode, else one that reads the connection."""
        if self._encoded:
            return self.response(body)
        return StreamedResponse(self._status, self._headers, body)

    def _take(self) -> bytes:
        """The oldest received body chunk; reading resumes once half the
        high-water mark is left."""
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered <= HIGH_WATER // 2:
            self._paused = False
            if self.transport is not None:
                self.transport.resume_reading()
        return chunk

    async def _arrival(self, read_timeout: Optional[float], deadline: Optional[float]) -> None:
        """Wait for more of the body (or its end) within ``read_timeout``,
        and before ``deadline`` (``time.monotonic()``), which bounds a body
        that trickles in, each read in time."""
        if self._error is not None:
            raise self._error
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise httpx.ReadTimeout("the deadline passed while the response was arriving")
            read_timeout = left if read_timeout is None else min(read_timeout, left)
        self._wake = asyncio.get_running_loop().create_future()
        await _within(self._wake, read_timeout, httpx.ReadTimeout)

    async def body(
        self, read_timeout: Optional[float], deadline: Optional[float]
    ) -> AsyncIterator[bytes]:
        """The response body as it arrives."""
        while True:
            if self._chunks:
                yield self._take()
            elif self._complete:
                return
            else:
                await self._arrival(read_timeout, deadline)

    async def read_body(self, read_timeout: Optional[float], deadline: Optional[float]) -> bytes:
        """The whole response body, each chunk within ``read_timeout`` of the
        last, all of it before ``deadline``."""
        parts = []
        while True:
            while self._chunks:
                parts.append(self._take())
            if self._complete:
                return b"".join(parts)
            await self._arrival(read_timeout, deadline)

    def finished(self) -> bool:
        """Whether the response was read to its end and the connection may carry another."""
        return (
            self._complete
            and not self._chunks
            and not self.closed
            and self._error is None
            and self._keep_alive
            and not self._body_unsent
        )


def _resolve(waiter: Optional[asyncio.Future[None]]) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class ConnectionBody(httpx.AsyncByteStream):
    """A response's body; closing it releases its connection to the pool."""

    def __init__(self, pool: ConnectionPool, connection: Connection, timeouts: Timeouts) -> None:
        self._pool = pool
        self._connection = connection
        self._read = timeouts.get("read")
        #: ``time.monotonic()`` by which the whole body must have arrived.
        self._deadline = timeouts.get("deadline")
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._connection.body(self._read, self._deadline):
                yield chunk
        except BaseException:
            await self.aclose()
            raise

    def response(self) -> httpx.Response:
        """The response that streams this body."""
        return self._connection.response(self)

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, straight from the connection (the
        caller closes this body, which releases the connection)."""
        return self._connection.body(self._read, self._deadline)

    def streamed_response(self) -> httpx.Response | StreamedResponse:
        """The response that streams this body, past httpx when it can."""
        return self._connection.streamed_response(self)

    async def read_whole(self) -> WholeResponse:
        """The response read to its end, its connection released: one loop
        over the received chunks, past httpx's layered byte iterators."""
        try:
            body = await self._connection.read_body(self._read, self._deadline)
        finally:
            await self.aclose()
        return self._connection.whole_response(body)

    async def aclose(self) -> None:
        if not self._released:
            self._released = True
            self._pool.release(self._connection)


class ConnectionPool(httpx.AsyncBaseTransport):
    """Keep-alive connections to any origin: at most ``max_connections``
    open (a request waits for one within the ``pool`` timeout), at most
    ``max_keepalive_connections`` kept idle, each for ``keepalive_expiry``
    seconds; the newest idle one is reused first."""

    def __init__(
        self,
        limits: httpx.Limits,
        ssl_context: Callable[[], ssl.SSLContext] = httpx.create_ssl_context,
    ) -> None:
        self.limits = limits
        self._max_connections = limits.max_connections or 2**31
        self._max_idle = limits.max_keepalive_connections or 0
        self._expiry = limits.keepalive_expiry if limits.keepalive_expiry is not None else 0.0
        #: Makes the TLS context on the first https connection: loading the CA
        #: bundle takes ~150 ms, which an http:// upstream never needs.
        self._make_ssl_context = ssl_context
        self._ssl_context: Optional[ssl.SSLContext] = None
        self._idle: dict[Origin, list[Connection]] = {}
        self._idle_count = 0
        self._open: set[Connection] = set()
        #: Connections being opened (they count against ``max_connections``).
        self._connecting = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    def idle_connections(self) -> int:
        """How many open connections wait idle in the pool."""
        return sum(not c.closed for kept in self._idle.values() for c in kept)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        body = await self._exchange(
            origin_of(request.url), timeouts, lambda c: c.send(request, timeouts)
        )
        return body.response()

    async def send_prepared(self, request: PreparedRequest) -> httpx.Response | StreamedResponse:
        """Send a request built to bytes by its sender (see
        :class:`PreparedRequest`); its body streams from the connection."""
        body = await self._exchange(
            request.origin, request.timeouts, lambda c: c.send_prepared(request)
        )
        return body.streamed_response()

    async def fetch_prepared(self, request: PreparedRequest) -> WholeResponse:
        """Send a prepared request and read its response to the end, the
        connection released here (no :class:`httpx.Response` is made)."""
        body = await self._exchange(
            request.origin, request.timeouts, lambda c: c.send_prepared(request)
        )
        return await body.read_whole()

    async def _exchange(
        self,
        origin: Origin,
        timeouts: Timeouts,
        send: Callable[[Connection], Awaitable[None]],
    ) -> ConnectionBody:
        """A connection to ``origin``, the request sent on it and the response
        head received: the body to come (whose end releases the connection)."""
        if self._closed:
            raise httpx.ConnectError("the connection pool is closed")
        connection = await self._acquire(origin, timeouts)
        try:
            await send(connection)
        except BaseException:
            connection.close()
            self._forget(connection)
            raise
        return ConnectionBody(self, connection, timeouts)

    async def _acquire(self, origin: Origin, timeouts: Timeouts) -> Connection:
        """The newest reusable idle connection to ``origin``, else a new one
        when there is room (closing another origin's idle one if need be),
        else the first to free up within the ``pool`` timeout."""
        while True:
            kept = self._idle.get(origin)
            now = time.monotonic()
            while kept:
                connection = kept.pop()
                self._idle_count -= 1
                if connection.reusable(now, self._expiry):
                    return connection
                connection.close()
                self._forget(connection)
            if len(self._open) + self._connecting < self._max_connections:
                return await self._connect(origin, timeouts.get("connect"))
            if not self._close_an_idle_one():
                waiter = asyncio.get_running_loop().create_future()
                self._waiting.append(waiter)
                try:
                    await _within(waiter, timeouts.get("pool"), httpx.PoolTimeout)
                except BaseException:
                    if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                        self._wake_one()  # woken, then cancelled: the room goes to the next
                    raise

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = self._make_ssl_context()
        return self._ssl_context

    async def _connect(self, origin: Origin, seconds: Optional[float]) -> Connection:
        scheme, raw_host, port = origin
        host = raw_host.decode("ascii")
        secure = scheme == b"https"
        loop = asyncio.get_running_loop()
        made = loop.create_connection(
            lambda: Connection(origin),
            host,
            port,
            ssl=self._tls() if secure else None,
            server_hostname=host if secure else None,
        )
        self._connecting += 1
        try:
            async with asyncio.timeout(seconds):
                _, connection = await made
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting timed out after {seconds:g}s") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        finally:
            self._connecting -= 1
            self._wake_one()
        if self._closed:
            connection.close()
            raise httpx.ConnectError("the connection pool is closed")
        self._open.add(connection)
        return connection

    def _close_an_idle_one(self) -> bool:
        """Make room at ``max_connections``: close the oldest idle connection, if any."""
        for kept in self._idle.values():
            if kept:
                connection = kept.pop(0)
                self._idle_count -= 1
                connection.close()
                self._forget(connection)
                return True
        return False

    def release(self, connection: Connection) -> None:
        """A response is done with ``connection``: kept idle, or closed."""
        connection.busy = False
        if self._idle_count >= self._max_idle:
            self._drop_closed_idle()
        # Beyond the idle bound it is kept too while a request waits for it.
        room = self._idle_count < self._max_idle or self._waiting
        if self._closed or not connection.finished() or not room:
            connection.close()
            self._forget(connection)
            return
        connection.idle_since = time.monotonic()
        self._idle.setdefault(connection.origin, []).append(connection)
        self._idle_count += 1
        self._wake_one()

    def _drop_closed_idle(self) -> None:
        """Forget the idle connections their servers closed."""
        for origin, kept in self._idle.items():
            alive = [c for c in kept if not c.closed]
            for connection in kept:
                if connection.closed:
                    self._forget(connection)
            self._idle[origin] = alive
        self._idle_count = sum(map(len, self._idle.values()))

    def _forget(self, connection: Connection) -> None:
        self._open.discard(connection)
        self._wake_one()

    def _wake_one(self) -> None:
        """Let the first request waiting for room try again."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        self._closed = True
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()
        self._idle_count = 0


def pooled_transport(limits: httpx.Limits) -> ConnectionPool:
    """A :class:`ConnectionPool` with ``limits``, verifying TLS as httpx
    does (its default context: certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``,
    read when the first https connection opens)."""
    return ConnectionPool(limits)

"""httpcore's network layer on asyncio's own transports and protocols.

httpcore reaches the network through a pluggable ``AsyncNetworkBackend``; its
default on asyncio goes through anyio, which costs a task lookup, a cancel
scope and a socket ``poll()`` per connection on every pool scan (the pool
asks each idle connection whether it is still readable). This backend answers
the same calls straight from an :class:`asyncio.Protocol`: bytes received
wait in a buffer, "is it readable" is a flag set by ``data_received`` or
``connection_lost`` (no system call), and each timeout is one timer handle.
HTTP itself (h11), pooling, TLS and httpx's API stay as they are.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable
from typing import Any, Optional, Union

import httpcore

#: A ``setsockopt`` argument tuple, as httpcore passes them.
SocketOption = Union[
    tuple[int, int, int], tuple[int, int, Union[bytes, bytearray]], tuple[int, int, None, int]
]

#: Reading pauses while this many received bytes wait unread.
_HIGH_WATER = 256 * 1024


class _Protocol(asyncio.Protocol):
    """Buffers what arrives and wakes the one reader or writer waiting."""

    def __init__(self) -> None:
        self.transport: Optional[asyncio.Transport] = None
        self.buffer = bytearray()
        self.eof = False
        self.error: Optional[BaseException] = None
        self.read_waiter: Optional[asyncio.Future[None]] = None
        self.drain_waiter: Optional[asyncio.Future[None]] = None
        self.paused_reading = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # uvloop's are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
            self.paused_reading = True
        self._wake_reader()

    def eof_received(self) -> Optional[bool]:
        self.eof = True
        self._wake_reader()
        return None

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.eof = True
        self.error = exc
        self._wake_reader()
        waiter, self.drain_waiter = self.drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self.drain_waiter = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        waiter, self.drain_waiter = self.drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_reader(self) -> None:
        waiter, self.read_waiter = self.read_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


async def _within(
    future: asyncio.Future[Any], seconds: Optional[float], error: type[Exception]
) -> None:
    """Await ``future``, raising ``error`` after ``seconds`` (one timer)."""
    if seconds is None:
        await future
        return
    loop = asyncio.get_running_loop()

    def expire() -> None:
        if not future.done():
            future.set_exception(error(f"timed out after {seconds:g}s"))

    timer = loop.call_later(seconds, expire)
    try:
        await future
    finally:
        timer.cancel()


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection, read and written through :class:`_Protocol`."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._pending: list[bytes] = []

    # httpcore passes ``timeout`` by name: the interface fixes it (ASYNC109).
    async def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:  # noqa: ASYNC109
        protocol = self._protocol
        self._flush()
        if not protocol.buffer and not protocol.eof:
            waiter = asyncio.get_running_loop().create_future()
            protocol.read_waiter = waiter
            await _within(waiter, timeout, httpcore.ReadTimeout)
        if not protocol.buffer:
            if protocol.error is not None:
                raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__)
            return b""  # the peer closed the connection
        data = bytes(protocol.buffer[:max_bytes])
        del protocol.buffer[:max_bytes]
        if protocol.paused_reading and len(protocol.buffer) <= _HIGH_WATER // 2:
            protocol.paused_reading = False
            if protocol.transport is not None:
                protocol.transport.resume_reading()
        return data

    async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:  # noqa: ASYNC109
        """Queue ``buffer``; what one task step writes (h11 writes a request's
        head and body separately) leaves in one send at the step's end or at
        the next read, instead of one system call and TCP segment each."""
        if not buffer:
            return
        protocol = self._protocol
        if self._transport.is_closing():
            raise httpcore.WriteError(str(protocol.error or "the connection is closed"))
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(buffer)
        if protocol.drain_waiter is not None:
            self._flush()
            await _within(protocol.drain_waiter, timeout, httpcore.WriteTimeout)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    async def aclose(self) -> None:
        self._flush()
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: Optional[str] = None,
        timeout: Optional[float] = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            upgrade = loop.start_tls(
                self._transport, self._protocol, ssl_context, server_hostname=server_hostname
            )
            transport = await asyncio.wait_for(upgrade, timeout)
        except TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout(f"TLS handshake timed out after {timeout:g}s") from None
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        if transport is None:  # the connection closed during the handshake
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        # Reading pauses and resumes on the TLS transport from now on (pausing
        # the raw one would never be undone by resuming the TLS one).
        self._protocol.transport = transport
        return AsyncioStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # What the pool asks of every idle connection: did the server
            # send something (or hang up) while nobody was waiting?
            return bool(self._protocol.buffer) or self._protocol.eof
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Opens :class:`AsyncioStream` connections on the running event loop."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: Optional[float] = None,  # noqa: ASYNC109
        local_address: Optional[str] = None,
        socket_options: Optional[Iterable[SocketOption]] = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        connect = loop.create_connection(_Protocol, host, port, local_addr=local)
        return await self._open(connect, timeout, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: Optional[float] = None,  # noqa: ASYNC109
        socket_options: Optional[Iterable[SocketOption]] = None,
    ) -> httpcore.AsyncNetworkStream:
        connect = asyncio.get_running_loop().create_unix_connection(_Protocol, path)
        return await self._open(connect, timeout, socket_options)

    async def _open(
        self,
        connect: Any,
        seconds: Optional[float],
        socket_options: Optional[Iterable[SocketOption]],
    ) -> httpcore.AsyncNetworkStream:
        try:
            transport, protocol = await asyncio.wait_for(connect, seconds)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connecting timed out after {seconds:g}s") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        sock: Optional[socket.socket] = transport.get_extra_info("socket")
        for option in socket_options or ():
            if sock is not None:
                sock.setsockopt(*option)
        return AsyncioStream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

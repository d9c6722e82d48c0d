"""uvicorn's httptools protocol with a bound on the request head.

uvicorn times out an idle keep-alive connection, and the gateway bounds the
body (``request_timeout``), but nothing bounds the time between a
connection's first byte (or its opening) and the end of a request's headers:
a client that sends half a head and stalls, or trickles one byte at a time
(slowloris), holds a connection and its file descriptor forever. This
protocol arms one timer when a connection opens, and when bytes received
leave a request's head unfinished, or arrive on an idle connection without
starting a request (a stray CRLF stops uvicorn's keep-alive timer); it
cancels it when the headers are complete, and when it fires answers 408
and closes the connection (after the response in flight, if one is). A head
that arrives whole in one read (nearly every request) arms no timer. The
bound is ``[server] header_timeout``, handed over in the lifespan state
(:data:`~orchestrator.server.settings.HEADER_TIMEOUT_STATE`), so every
connection of a worker uses its configuration. Only ``orchestrator
serve`` loads this module (it needs uvicorn, the ``[server]`` extra).

It also sends a response's head together with its first body bytes.
uvicorn writes the head as soon as the application starts the response, and
the body in a second write: two system calls, two TCP segments, and a client
that wakes twice (once for the head alone) before it has anything to read.
Each request's cycle writes through :class:`_HeadWithBody`, which holds the
first write until the next one or the end of the event loop's iteration,
whichever comes first, so nothing is delayed past the iteration it was sent in.

And it tells the application when the client hangs up: each request's scope
carries a :class:`_DisconnectWatch` (``extensions``, under
:data:`~orchestrator.server.settings.DISCONNECT_EXTENSION`) whose callback
runs when the connection is lost, instead of a task per request waiting on
``receive()`` for ``http.disconnect``. The watch also says when the request's
whole body has arrived (``received``): reading it then cannot wait, so the
gateway arms no body timer for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Optional

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from orchestrator.server.settings import (
    DISCONNECT_EXTENSION,
    HEADER_TIMEOUT_STATE,
    ServerSettings,
)

logger = logging.getLogger(__name__)

#: Used when the application published no bound (its setting's default).
_DEFAULT_HEADER_TIMEOUT: float = ServerSettings.model_fields["header_timeout"].default
_TIMED_OUT_BODY = b"the request headers did not arrive in time\n"
_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TIMED_OUT_BODY), _TIMED_OUT_BODY)
)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that closes a connection whose request
    head does not arrive within the header timeout."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        published = self.app_state.get(HEADER_TIMEOUT_STATE, _DEFAULT_HEADER_TIMEOUT)
        self.header_timeout = float(published)
        self._head_timer: Optional[asyncio.TimerHandle] = None
        #: A request has begun and its headers are not all here yet.
        self._in_head = False
        #: The watch of the newest request (``self.cycle``'s), as uvicorn
        #: tells only that cycle of a lost connection.
        self._watch: Optional[_DisconnectWatch] = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._disarm()
        super().connection_lost(exc)
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.lose()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is None and (self._in_head or self._idle()):
            self._arm()  # the bound counts from here

    def _idle(self) -> bool:
        """No request in progress and no keep-alive timer: bytes arrived that
        began no request (a stray CRLF, which uvicorn's timer stopped for),
        so only the head bound is left to close the connection."""
        return (
            not self._responding()
            and self.timeout_keep_alive_task is None
            and not self.transport.is_closing()
        )

    def _responding(self) -> bool:
        """A request's response is still being sent."""
        return self.cycle is not None and not self.cycle.response_complete

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not previous:
            self.cycle.transport = _HeadWithBody(self.transport, self.loop)  # type: ignore[assignment]
            self._watch = _DisconnectWatch()
            extensions = self.cycle.scope.setdefault("extensions", {})  # the task has not run yet
            extensions[DISCONNECT_EXTENSION] = self._watch  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._watch is not None:  # the newest request's body is all here
            self._watch.received = True

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        timer, self._head_timer = self._head_timer, None
        if timer is not None:
            timer.cancel()

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._responding():
            # A pipelined head waits behind a response still being sent (a
            # 408 now would land inside it): looked at again one bound later.
            self._arm()
            return
        logger.info(
            "closing a connection from %s: no complete request head within %gs",
            self.client or "an unknown address",
            self.header_timeout,
        )
        self.transport.write(_TIMED_OUT)
        self.transport.close()


class _HeadWithBody:
    """A request cycle's view of its connection's transport: the cycle's
    first write (the response head) waits for its second (the first body
    bytes) and leaves with it in one write, or alone at the end of the
    current event loop iteration if no second write comes in it. (For a
    request with ``Expect: 100-continue`` the first write is the interim
    ``100 Continue``: it leaves at the end of its iteration, and the head
    then goes alone.) Every other write, and everything else, goes straight
    to the transport."""

    __slots__ = ("_first_done", "_flush_handle", "_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held = b""
        self._flush_handle: Optional[asyncio.Handle] = None
        self._first_done = False

    def write(self, data: bytes) -> None:
        """Hold the first write; send it with the second."""
        if not self._first_done:
            self._first_done = True
            self._held = bytes(data)
            self._flush_handle = self._loop.call_soon(self._flush)
            return
        handle, self._flush_handle = self._flush_handle, None
        if handle is not None:
            handle.cancel()
            data, self._held = self._held + data, b""
        self._transport.write(data)

    def close(self) -> None:
        """Send what is held, then close."""
        self._flush()
        self._transport.close()

    def _flush(self) -> None:
        handle, self._flush_handle = self._flush_handle, None
        if handle is None:
            return
        handle.cancel()
        held, self._held = self._held, b""
        if not self._transport.is_closing():
            self._transport.write(held)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _DisconnectWatch:
    """One request's watch on its connection: ``watch(callback)`` runs the
    callback once when the connection is lost (at once if it already was),
    ``unwatch()`` forgets it when the request is done; ``received`` is true
    once the request's whole body has arrived."""

    __slots__ = ("_callback", "_lost", "received")

    def __init__(self) -> None:
        self._callback: Optional[Callable[[], None]] = None
        self._lost = False
        self.received = False

    def watch(self, callback: Callable[[], None]) -> None:
        if self._lost:
            callback()
        else:
            self._callback = callback

    def unwatch(self) -> None:
        self._callback = None

    def lose(self) -> None:
        self._lost = True
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()

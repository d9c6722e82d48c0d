"""uvicorn's httptools protocol with a bound on the request head.

uvicorn times out an idle keep-alive connection, and the gateway bounds the
body (``request_timeout``), but nothing bounds the time between a
connection's first byte (or its opening) and the end of a request's headers:
a client that sends half a head and stalls, or trickles one byte at a time
(slowloris), holds a connection and its file descriptor forever. This
protocol arms one timer when a connection opens and when a request begins,
cancels it when the headers are complete, and when it fires answers 408 and
closes the connection. The bound is ``[server] header_timeout``, handed over
in the lifespan state (:data:`~orchestrator.server.settings.HEADER_TIMEOUT_STATE`),
so every connection of a worker uses its configuration. Only ``orchestrator
serve`` loads this module (it needs uvicorn, the ``[server]`` extra).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from orchestrator.server.settings import HEADER_TIMEOUT_STATE, ServerSettings

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

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # uvicorn's keep-alive timer bounds the idle time until the next
        # request; its first byte re-arms the head timer (on_message_begin).
        self._disarm()
        super().on_response_complete()

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
        logger.info(
            "closing a connection from %s: no complete request head within %gs",
            self.client or "an unknown address",
            self.header_timeout,
        )
        self.transport.write(_TIMED_OUT)
        self.transport.close()

"""The connection layer under the pooled clients: httpx's transport with
httpcore's pool, on the asyncio network backend (:mod:`._network`), with the
pool's scheduling made linear.

httpcore 1.0's ``AsyncConnectionPool`` re-examines its connections whenever a
request arrives or a response closes, and for every idle connection it counts
*all* connections again (``len([c.is_idle() for c in connections])``, meant
to count the idle ones): quadratic in the pool's size, and, past
``max_keepalive_connections`` open connections, every idle one is closed even
when few are idle. :class:`ScheduledPool` schedules the same way in one pass,
closing only the idle connections beyond the keep-alive bound.
"""

from __future__ import annotations

from typing import Optional

import httpcore
import httpx

from orchestrator.integrations._http._network import AsyncioBackend


class ScheduledPool(httpcore.AsyncConnectionPool):
    """httpcore's pool with linear scheduling (see the module's docstring)."""

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        """Called by the pool, under its lock, whenever a request is added or
        removed: drop closed connections, close expired ones and idle ones
        beyond the keep-alive bound, then give each queued request a
        connection (an available one, a new one, or one that replaces an idle
        connection at ``max_connections``); returns the connections to close."""
        closing: list[httpcore.AsyncConnectionInterface] = []
        kept: list[httpcore.AsyncConnectionInterface] = []
        for existing in self._connections:
            if existing.is_closed():
                continue
            if existing.has_expired():
                closing.append(existing)
            else:
                kept.append(existing)
        idle = [existing for existing in kept if existing.is_idle()]
        surplus = len(idle) - self._max_keepalive_connections
        if surplus > 0:
            dropped = set(map(id, idle[:surplus]))
            closing += idle[:surplus]
            kept = [existing for existing in kept if id(existing) not in dropped]
        self._connections = kept

        for pool_request in self._requests:
            if not pool_request.is_queued():
                continue
            origin = pool_request.request.url.origin
            connection: Optional[httpcore.AsyncConnectionInterface] = next(
                (c for c in self._connections if c.can_handle_request(origin) and c.is_available()),
                None,
            )
            if connection is None:
                if len(self._connections) >= self._max_connections:
                    replaced = next((c for c in self._connections if c.is_idle()), None)
                    if replaced is None:
                        continue  # stays queued until a connection frees up
                    self._connections.remove(replaced)
                    closing.append(replaced)
                connection = self.create_connection(origin)
                self._connections.append(connection)
            pool_request.assign_to_connection(connection)
        return closing


def pooled_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's transport (its request/response mapping and error classes)
    over a :class:`ScheduledPool` on the asyncio backend, with the TLS
    context httpx made for it."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    default = getattr(transport, "_pool", None)
    if type(default) is not httpcore.AsyncConnectionPool:
        raise RuntimeError(
            f"httpx {httpx.__version__}'s transport no longer holds an httpcore "
            "AsyncConnectionPool in _pool: orchestrator's connection layer needs updating"
        )
    transport._pool = ScheduledPool(
        ssl_context=default._ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=AsyncioBackend(),
    )
    return transport

"""Pooled keep-alive clients: one :class:`httpx.AsyncClient` per base URL and
event loop (a client's connections belong to the loop that opened them), on
the connection layer of :mod:`._connections`. :meth:`ClientPool.direct` gives
that client's transport itself, for requests that need none of the client's
middleware (no proxy from the environment applies to them).

A :class:`ClientPool` can belong to a registry or an application (pass it as
``client_pool=`` to the adapters, close it with :meth:`ClientPool.aclose`);
adapters given none share the module's default pool, whose limits
:func:`set_pool_limits` sets and which :func:`aclose_clients` closes."""

from __future__ import annotations

import asyncio
import threading
import urllib.request
import weakref
from typing import Optional

import httpx

from orchestrator.integrations._http._connections import ConnectionPool, pooled_transport

#: Per base URL: up to 1,000 open connections, 20 kept idle; raise the idle
#: bound when reconnecting is the larger cost (TLS to a far provider at high
#: concurrency).
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_MAX_KEEPALIVE = 20
KEEPALIVE_EXPIRY = 30.0


def _limits(max_connections: int, max_keepalive_connections: int) -> httpx.Limits:
    for name, value in (
        ("max_connections", max_connections),
        ("max_keepalive_connections", max_keepalive_connections),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"invalid {name}: {value!r} (an integer > 0)")
    return httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )


class ClientPool:
    """Clients per (event loop, base URL) with the same connection limits."""

    def __init__(
        self,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_keepalive_connections: int = DEFAULT_MAX_KEEPALIVE,
    ) -> None:
        self.limits = _limits(max_connections, max_keepalive_connections)
        self._lock = threading.Lock()
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop,
            dict[str, tuple[httpx.AsyncClient, Optional[ConnectionPool]]],
        ] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return (
            f"ClientPool(max_connections={self.limits.max_connections}, "
            f"max_keepalive_connections={self.limits.max_keepalive_connections})"
        )

    def set_limits(self, max_connections: int, max_keepalive_connections: int) -> None:
        """Limits of the clients created from now on."""
        self.limits = _limits(max_connections, max_keepalive_connections)

    def get(self, base_url: str) -> httpx.AsyncClient:
        """The pooled client for ``base_url`` in the running event loop."""
        return self._entry(base_url)[0]

    def direct(self, base_url: str) -> Optional[ConnectionPool]:
        """The transport under :meth:`get`'s client, to send a request built
        complete (headers, timeout) without the client's redirect, auth,
        cookie and hook handling; ``None`` when the environment named a proxy
        (``HTTPS_PROXY``, ``ALL_PROXY``...) as the client was made: the client
        read it then and only the client applies it."""
        return self._entry(base_url)[1]

    def _entry(self, base_url: str) -> tuple[httpx.AsyncClient, Optional[ConnectionPool]]:
        """This loop's open client for ``base_url`` and its transport: found
        without the lock (every request of every model asks), made under it."""
        loop = asyncio.get_running_loop()
        per_loop = self._clients.get(loop)
        if per_loop is not None:
            entry = per_loop.get(base_url)
            if entry is not None and not entry[0].is_closed:
                return entry
        with self._lock:
            per_loop = self._clients.get(loop)
            if per_loop is None:
                per_loop = self._clients[loop] = {}
            entry = per_loop.get(base_url)
            if entry is None or entry[0].is_closed:
                entry = per_loop[base_url] = self._new_client()
            return entry

    def _new_client(self) -> tuple[httpx.AsyncClient, Optional[ConnectionPool]]:
        """A client on :func:`pooled_transport`, and that transport; with a
        proxy in the environment, httpx's own client (a client given a
        transport ignores the environment's proxies) and no direct transport."""
        if urllib.request.getproxies():
            return httpx.AsyncClient(limits=self.limits, timeout=None, follow_redirects=False), None
        transport = pooled_transport(self.limits)
        client = httpx.AsyncClient(transport=transport, timeout=None, follow_redirects=False)
        return client, transport

    def open_clients(self) -> int:
        """How many clients of the running event loop are open."""
        with self._lock:
            per_loop = self._clients.get(asyncio.get_running_loop(), {})
            return sum(not client.is_closed for client, _ in per_loop.values())

    async def aclose(self) -> None:
        """Close every client of the running event loop (their sockets with them)."""
        with self._lock:
            per_loop = self._clients.pop(asyncio.get_running_loop(), {})
        for client, _ in per_loop.values():
            await client.aclose()


#: The pool of adapters given no ``client_pool`` or ``http_client``.
DEFAULT_POOL = ClientPool()


def set_pool_limits(
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_keepalive_connections: int = DEFAULT_MAX_KEEPALIVE,
) -> None:
    """Connection limits of the default pool's clients created from now on (per base URL)."""
    DEFAULT_POOL.set_limits(max_connections, max_keepalive_connections)


async def aclose_clients() -> None:
    """Close every client of the default pool in the running event loop."""
    await DEFAULT_POOL.aclose()

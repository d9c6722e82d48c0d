"""Redis store over ``redis.asyncio``: one round trip per lookup, short
timeouts, and a pause after a failure so an outage costs no more than one
timeout now and then. The client connects lazily, per event loop."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Optional, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from orchestrator._secrets import Secret, redact
from orchestrator.core.cache_backends.base import (
    Backend,
    BackendUnavailable,
    CountIncomplete,
    StoreSize,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Keys deleted per command by :meth:`RedisBackend.clear`, and asked per
#: ``SCAN`` (then measured in one pipeline) by :meth:`RedisBackend.count`.
_CLEAR_BATCH = 500


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


async def _lengths(cursor: int, pattern: str, r: aioredis.Redis) -> tuple[int, dict[bytes, int]]:
    """One ``SCAN`` page of ``pattern`` and the ``STRLEN`` of its keys (one
    pipeline): the next cursor and each entry's stored size. A key gone since
    the SCAN (length 0) or not a string (an error) is not an entry."""
    page: Any = await r.scan(cursor, match=pattern, count=_CLEAR_BATCH)
    next_cursor, found = page
    keys: list[bytes] = list(found)  # the client does not decode: keys are bytes
    if not keys:
        return int(next_cursor), {}
    async with r.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.strlen(key)
        replies = await pipe.execute(raise_on_error=False)
    sizes = {key: n for key, n in zip(keys, replies) if isinstance(n, int) and n > 0}
    return int(next_cursor), sizes


class RedisBackend(Backend):
    """Entries are Redis strings set with ``SET key value PX ttl``."""

    name = "redis"

    def __init__(self, url: str, timeout: float, retry_interval: float) -> None:
        super().__init__()
        self.url = url
        #: The URL's password, scrubbed from every message while this store lives.
        self._password = Secret(urllib.parse.urlsplit(url).password or "")
        self.timeout = timeout
        self.retry_interval = retry_interval
        self._client: Optional[aioredis.Redis] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._down_until = 0.0

    def _connection(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # A client's sockets belong to the loop that opened them.
            self._client = aioredis.Redis.from_url(
                self.url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
                health_check_interval=0,
                decode_responses=False,
            )
            self._loop = loop
        return self._client

    async def _call(self, op: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        if time.monotonic() < self._down_until:
            raise BackendUnavailable(
                f"redis at {redact(self.url)} failed recently; not retried yet"
            )
        try:
            async with asyncio.timeout(self.timeout):
                return await op(self._connection())
        except Exception:
            self._down_until = time.monotonic() + self.retry_interval
            raise

    async def get(self, key: str) -> Optional[bytes]:
        value: Any = await self._call(lambda r: r.get(key))
        return None if value is None else bytes(value)

    async def get_many(self, keys: Sequence[str]) -> list[Optional[bytes]]:
        if not keys:
            return []
        values: list[Any] = await self._call(lambda r: r.mget(list(keys)))
        return [None if v is None else bytes(v) for v in values]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        await self._call(lambda r: r.set(key, value, px=max(1, int(ttl * 1000))))

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float) -> None:
        if not items:
            return
        px = max(1, int(ttl * 1000))

        async def run(r: aioredis.Redis) -> None:
            async with r.pipeline(transaction=False) as pipe:
                for key, value in items:
                    pipe.set(key, value, px=px)
                await pipe.execute()

        await self._call(run)

    async def identity_key(self, name: str, candidate: bytes) -> bytes:
        """``SET name candidate NX`` then ``GET``: the first writer's secret wins."""

        async def run(r: aioredis.Redis) -> Any:
            async with r.pipeline(transaction=True) as pipe:
                pipe.set(name, candidate, nx=True)
                pipe.get(name)
                return (await pipe.execute())[1]

        value: Any = await self._call(run)
        if not isinstance(value, bytes) or not value:
            raise BackendUnavailable(f"redis returned no identity key for {name!r}")
        return value

    async def delete(self, key: str) -> None:
        await self._call(lambda r: r.delete(key))

    async def clear(self, prefix: str) -> None:
        client = self._connection()
        batch: list[Any] = []
        async for key in client.scan_iter(match=_glob_escape(prefix) + "*", count=_CLEAR_BATCH):
            batch.append(key)
            if len(batch) >= _CLEAR_BATCH:
                await client.unlink(*batch)
                batch = []
        if batch:
            await client.unlink(*batch)

    async def count(self, prefixes: Sequence[str], time_limit: float) -> StoreSize:
        """``SCAN`` over each prefix's keys (never ``KEYS``), with the
        ``STRLEN`` of each batch in one pipeline: the bytes are the stored
        values', as the other stores count them. Each round trip is bounded by
        the store's timeout, the whole count by ``time_limit`` seconds."""
        deadline = time.monotonic() + time_limit
        lengths: dict[bytes, int] = {}  # SCAN may return a key twice
        for prefix in prefixes:
            pattern = _glob_escape(prefix) + "*"
            cursor = 0
            while True:
                if time.monotonic() > deadline:
                    raise CountIncomplete(
                        f"counting the keys of redis at {redact(self.url)} took over "
                        f"{time_limit:g}s ({len(lengths)} entries so far)"
                    )
                cursor, page = await self._call(functools.partial(_lengths, cursor, pattern))
                lengths.update(page)
                if cursor == 0:
                    break
        return StoreSize(len(lengths), sum(lengths.values()))

    async def aclose(self) -> None:
        """Disconnect, within ``timeout`` even when Redis is stopped or stalled
        (a connection that does not close in time is dropped). A client of
        another event loop is only dropped: its sockets belong to that loop."""
        client, self._client = self._client, None
        loop, self._loop = self._loop, None
        if client is not None and loop is asyncio.get_running_loop():
            await self._disconnect(client)

    def close(self) -> None:
        """:meth:`aclose` for code with no running event loop: the client's
        loop, if it is still open and idle, disconnects it (same bound); a
        closed loop took the sockets with it."""
        client, self._client = self._client, None
        loop, self._loop = self._loop, None
        idle = loop is not None and not loop.is_closed() and not loop.is_running()
        if client is not None and loop is not None and idle:
            loop.run_until_complete(self._disconnect(client))

    async def _disconnect(self, client: aioredis.Redis) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await client.aclose()
        except (TimeoutError, OSError, aioredis.RedisError) as exc:
            logger.debug("redis client at %s dropped on close: %r", redact(self.url), exc)

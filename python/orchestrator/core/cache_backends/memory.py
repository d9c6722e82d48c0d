"""In-process store: an LRU bounded by entries and bytes, with a TTL."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Optional

from orchestrator.core.cache_backends.base import Backend, StoreSize


class MemoryBackend(Backend):
    """LRU over an ``OrderedDict``; expired entries are dropped when met."""

    name = "memory"

    def __init__(self, max_size: int, max_bytes: Optional[int]) -> None:
        super().__init__()
        self.max_size = max_size
        self.max_bytes = max_bytes
        self._data: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._bytes = 0

    def get_now(self, key: str) -> Optional[bytes]:
        """Synchronous lookup (no I/O), marking the entry recently used."""
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires <= time.monotonic():
            self._remove(key)
            return None
        self._data.move_to_end(key)
        return value

    async def get(self, key: str) -> Optional[bytes]:
        return self.get_now(key)

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if self.max_bytes is not None and len(value) > self.max_bytes:
            self._remove(key)  # larger than the whole cache: not kept
            return
        self._remove(key)
        self._data[key] = (value, time.monotonic() + ttl)
        self._bytes += len(value)
        self._evict()

    def _evict(self) -> None:
        now = time.monotonic()
        while len(self._data) > self.max_size or (
            self.max_bytes is not None and self._bytes > self.max_bytes
        ):
            _, (value, expires) = self._data.popitem(last=False)
            self._bytes -= len(value)
            if expires > now:
                self.evictions += 1

    def _remove(self, key: str) -> None:
        item = self._data.pop(key, None)
        if item is not None:
            self._bytes -= len(item[0])

    async def delete(self, key: str) -> None:
        self._remove(key)

    async def clear(self, prefix: str) -> None:
        for key in [k for k in self._data if k.startswith(prefix)]:
            self._remove(key)

    def size(self) -> tuple[Optional[int], Optional[int]]:
        return len(self._data), self._bytes

    async def count(self, prefixes: Sequence[str], time_limit: float) -> StoreSize:
        """Direct: one pass over at most ``max_size`` entries, no I/O."""
        now = time.monotonic()
        starts = tuple(prefixes)
        live = [
            len(value)
            for key, (value, expires) in self._data.items()
            if expires > now and key.startswith(starts)
        ]
        return StoreSize(len(live), sum(live))

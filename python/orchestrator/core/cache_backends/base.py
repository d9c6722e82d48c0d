"""The interface every cache store implements: bytes in, bytes out, with a TTL."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from orchestrator.errors import BackendUnavailable as BackendUnavailable
from orchestrator.errors import CountIncomplete as CountIncomplete


@dataclass(frozen=True)
class StoreSize:
    """Live entries under some key prefixes and the bytes of their stored values."""

    entries: int
    bytes: int


class Backend(abc.ABC):
    """A key-value store of encoded entries. Methods may raise any exception
    on failure: the cache counts it and goes on without the store."""

    #: Short name used in logs and statistics.
    name: str = "backend"

    def __init__(self) -> None:
        self.evictions = 0
        #: Set by the cache while the store is failing, so an outage logs once.
        self.failing = False

    @abc.abstractmethod
    async def get(self, key: str) -> Optional[bytes]:
        """The stored value, or ``None`` when absent or expired."""

    async def get_many(self, keys: Sequence[str]) -> list[Optional[bytes]]:
        """Values for several keys; stores override this to use one round trip."""
        return [await self.get(k) for k in keys]

    @abc.abstractmethod
    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds, replacing any older value."""

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float) -> None:
        """Store several values; stores override this to batch."""
        for key, value in items:
            await self.set(key, value, ttl)

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove one entry (a damaged one, for instance)."""

    @abc.abstractmethod
    async def clear(self, prefix: str) -> None:
        """Remove every entry whose key starts with ``prefix``."""

    async def identity_key(self, name: str, candidate: bytes) -> bytes:
        """The secret that keys credential fingerprints of the entries under
        ``name``: the stored one, or ``candidate`` stored now if there is none,
        so every process sharing the store uses the same. An in-process store
        keeps it in the cache object, so this returns ``candidate``."""
        return candidate

    async def aclose(self) -> None:  # noqa: B027 - most stores hold nothing
        """Release connections, files and threads."""

    def close(self) -> None:  # noqa: B027 - most stores hold nothing
        """:meth:`aclose` for code with no running event loop."""

    def size(self) -> tuple[Optional[int], Optional[int]]:
        """(entries, bytes) as known without a round trip; ``None`` if unknown."""
        return None, None

    @abc.abstractmethod
    async def count(self, prefixes: Sequence[str], time_limit: float) -> StoreSize:
        """Count the live entries whose keys start with one of ``prefixes``
        (and the bytes of their values), asking the store itself, so entries
        other processes wrote are included. Takes at most about ``time_limit``
        seconds: past it, raises :class:`CountIncomplete`; a store that
        cannot be reached raises its own error."""

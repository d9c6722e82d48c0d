"""Stores behind :class:`orchestrator.core.cache.ModelCache`: memory, Redis
and disk (SQLite), all holding the same encoded entries."""

from orchestrator.core.cache_backends.base import (
    Backend,
    BackendUnavailable,
    CountIncomplete,
    StoreSize,
)
from orchestrator.core.cache_backends.codec import Codec, CorruptEntry
from orchestrator.core.cache_backends.disk import DiskBackend
from orchestrator.core.cache_backends.memory import MemoryBackend
from orchestrator.core.cache_backends.redis_backend import RedisBackend

__all__ = [
    "Backend",
    "BackendUnavailable",
    "Codec",
    "CorruptEntry",
    "CountIncomplete",
    "DiskBackend",
    "MemoryBackend",
    "RedisBackend",
    "StoreSize",
]

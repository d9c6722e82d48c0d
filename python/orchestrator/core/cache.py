"""Response, embedding and metadata caching for models.

A :class:`ModelCache` serves identical requests without calling the provider.
Keys come from the Rust core's ``cache_key``: the model's full configuration
(:mod:`orchestrator.core.cache_identity`: model id, provider, base URL with
path and query, organization, default generation settings, embedding model)
and an HMAC of its credentials under this cache's own secret, the prompt or
messages, every generation parameter and the namespace, hashed over a
canonical encoding, so keyword order never matters and two models, two
settings or two tenants never share an entry. Entries are JSON (never
pickle), optionally compressed, checksummed, and record the model, tokens,
cost and latency of the call, so a hit reports what it saved, and the key it
was stored under, so a row copied over another's (by anyone who can write
the store) is never served as that other request's answer. Every entry is
checked on read (key, kind, model, text, finite non-negative numbers, types);
one that fails is a miss, counted in ``corrupted`` and deleted.

Backends: ``memory`` (LRU bounded by entries and bytes), ``redis`` (shared,
TTL in Redis), ``disk`` (SQLite in WAL mode, shared by processes) and
``tiered`` (memory in front of Redis or disk). A store that fails or is slow
never fails a request: the call goes on to the provider and the failure is
counted in :meth:`ModelCache.get_statistics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import math
import os
import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, TypeVar, Union

from pydantic import BaseModel, ConfigDict

from orchestrator import _core
from orchestrator.core.cache_backends import (
    Backend,
    BackendUnavailable,
    Codec,
    CorruptEntry,
    DiskBackend,
    MemoryBackend,
    RedisBackend,
    StoreSize,
)
from orchestrator.core.cache_backends.codec import zstd_available
from orchestrator.core.cache_identity import credential_fingerprint, credentials_of
from orchestrator.core.call_result import CallResult
from orchestrator.core.tokens import estimate_tokens
from orchestrator.errors import MalformedResponseError

if TYPE_CHECKING:
    from orchestrator.core.model import MeasuredStream, Model, Prompt

__all__ = ["BACKENDS", "DEFAULT_MAX_BYTES", "DEFAULT_REDIS_URL", "CacheStatistics", "ModelCache"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

BACKENDS: tuple[str, ...] = ("memory", "redis", "disk", "tiered")
#: Used by ``backend="redis"`` when neither ``redis_url`` nor ``$REDIS_URL`` is set.
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
#: Default bound of the memory and disk stores, in bytes of stored entries.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
#: File name used when ``path`` is an existing directory.
DISK_FILE_NAME = "orchestrator-cache.sqlite3"
_NAMESPACE = re.compile(r"[A-Za-z0-9_.@+/-]{1,128}")
#: The most :meth:`ModelCache.count_entries` spends counting, by default (seconds).
DEFAULT_COUNT_TIME_LIMIT = 10.0
#: A cached answer is replayed to a streaming caller in about this many chunks.
_REPLAY_CHUNKS = 4
_REPLAY_MIN_CHUNK = 32


#: The tenant whose entries this task reads and writes (see :func:`tenant_namespace`).
_TENANT: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    "orchestrator_cache_tenant", default=None
)


def check_tenant(tenant: str) -> str:
    """Validate a tenant name for :func:`tenant_namespace` (``ValueError`` naming it)."""
    if not isinstance(tenant, str) or not _NAMESPACE.fullmatch(tenant) or "/" in tenant:
        raise ValueError(
            f"invalid tenant: {tenant!r} (1-128 characters of letters, digits and _.@+-)"
        )
    return tenant


def tenant_namespace(tenant: Optional[str]) -> TenantScope:
    """Within this block (this task and the tasks it starts), every cache keeps
    ``tenant``'s entries apart: keys are made in the namespace
    ``"<cache namespace>/<tenant>"``, so two tenants never read each other's
    answers from one shared cache. ``None`` means the cache's own namespace.
    Used as ``with tenant_namespace(tenant): ...``."""
    return TenantScope(None if tenant is None else check_tenant(tenant))


class TenantScope:
    """The context manager of :func:`tenant_namespace` (a class, not a
    generator: the gateway enters one per request)."""

    __slots__ = ("_tenant", "_token")

    def __init__(self, tenant: Optional[str]) -> None:
        self._tenant = tenant
        self._token: Optional[contextvars.Token[Optional[str]]] = None

    def __enter__(self) -> None:
        self._token = _TENANT.set(self._tenant)

    def __exit__(self, *exc_info: object) -> None:
        token, self._token = self._token, None
        if token is not None:
            _TENANT.reset(token)


class CacheStatistics(BaseModel):
    """What a cache did since it was created (or its statistics reset).

    Lookups are response and embedding lookups (one per text); ``hit_rate`` is
    ``hits / (hits + misses)``, 0.0 before any lookup. A request that waited
    for an identical one in flight counts as a hit and in ``coalesced``.
    ``entries``/``bytes`` describe the disk or memory store (the disk as of
    this process's last write); ``None`` for Redis, whose size is not known
    without a round trip: :meth:`ModelCache.count_entries` asks the store.
    ``cost_saved`` is in USD, ``latency_saved`` in seconds.
    """

    model_config = ConfigDict(frozen=True)

    backend: str
    namespace: str
    hits: int = 0
    misses: int = 0
    hit_rate: float = 0.0
    evictions: int = 0
    errors: int = 0
    corrupted: int = 0
    stores: int = 0
    coalesced: int = 0
    entries: Optional[int] = None
    bytes: Optional[int] = None
    cost_saved: float = 0.0
    latency_saved: float = 0.0
    metadata_hits: int = 0
    metadata_misses: int = 0


@dataclass(frozen=True)
class _Answer:
    """A cached or just computed response, as waiters and hits see it."""

    text: str
    cost: float
    latency: float
    input_tokens: int
    output_tokens: int

    def served(self, model: str) -> CallResult:
        """This answer as served from the cache: it cost nothing."""
        return CallResult(
            self.text, model, self.input_tokens, self.output_tokens, 0.0, 0.0, cached=True
        )


@dataclass(frozen=True)
class _Vector:
    values: list[float]
    cost: float
    latency: float


class _LeaderGone(Exception):
    """The request others waited on was cancelled: they retry on their own."""


def _real(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CorruptEntry(f"{field} is {type(value).__name__}, expected a number")
    if not math.isfinite(value):
        raise CorruptEntry(f"{field} is {value!r}, expected a finite number")
    return float(value)


def _amount(field: str, value: Any) -> float:
    number = _real(field, value)
    if number < 0:
        raise CorruptEntry(f"{field} is {value!r}, expected >= 0")
    return number


def _count(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CorruptEntry(f"{field} is {value!r}, expected an integer >= 0")
    return value


def _check_entry(obj: dict[str, Any], kind: str, model: Optional[str]) -> None:
    if obj.get("kind") != kind:
        raise CorruptEntry(f"kind is {obj.get('kind')!r}, expected {kind!r}")
    if model is not None and obj.get("model") != model:
        raise CorruptEntry(f"entry is for model {obj.get('model')!r}, not {model!r}")


def _parse_response(obj: dict[str, Any], *, model: str) -> _Answer:
    _check_entry(obj, "response", model)
    text = obj.get("text")
    if not isinstance(text, str):
        raise CorruptEntry("response entry without text")
    return _Answer(
        text,
        _amount("cost", obj.get("cost")),
        _amount("latency", obj.get("latency")),
        _count("input_tokens", obj.get("input_tokens")),
        _count("output_tokens", obj.get("output_tokens")),
    )


def _parse_embedding(obj: dict[str, Any], *, model: str) -> _Vector:
    _check_entry(obj, "embedding", model)
    values = obj.get("vector")
    if not isinstance(values, list):
        raise CorruptEntry("embedding entry without a vector")
    return _Vector(
        [_real("vector value", v) for v in values],
        _amount("cost", obj.get("cost")),
        _amount("latency", obj.get("latency")),
    )


def _parse_metadata(obj: dict[str, Any]) -> Any:
    _check_entry(obj, "metadata", None)
    if "value" not in obj:
        raise CorruptEntry("metadata entry without a value")
    return obj["value"]


def _replay_chunks(text: str) -> list[str]:
    """Split a cached answer into a few chunks (at least one, even if empty)."""
    size = max(_REPLAY_MIN_CHUNK, -(-len(text) // _REPLAY_CHUNKS))
    return [text[i : i + size] for i in range(0, len(text), size)] or [text]


# ----- validation of settings ---------------------------------------------------------


def _positive_number(field: str, value: Any, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"invalid {field}: expected a number of seconds, got {value!r}")
    ok = value >= 0 if allow_zero else value > 0
    if not ok or not math.isfinite(value):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"invalid {field}: {value!r} (seconds, finite and {bound})")
    return float(value)


def _positive_int(field: str, value: Any, *, optional: bool = False) -> Optional[int]:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"invalid {field}: expected an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"invalid {field}: {value!r} (must be >= 1)")
    return value


def _compression(value: Any) -> Optional[str]:
    if value is None or value is False:
        return None
    if value is True:
        return "zstd" if zstd_available() else "zlib"
    if value == "zlib":
        return "zlib"
    if value == "zstd":
        if not zstd_available():
            raise ValueError(
                "invalid compression: 'zstd' needs the zstandard package "
                "(pip install 'orchestrator[zstd]'), or use 'zlib'"
            )
        return "zstd"
    raise ValueError(f"invalid compression: {value!r} (expected True, False, 'zstd' or 'zlib')")


def _redis_url(value: Any) -> str:
    if value is None:
        value = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    if not isinstance(value, str):
        raise TypeError(f"invalid redis_url: expected a string, got {value!r}")
    scheme = urllib.parse.urlsplit(value).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"invalid redis_url: {value!r} (expected redis://, rediss:// or unix:// URL)"
        )
    return value


def _disk_path(value: Any) -> str:
    if value is None:
        raise ValueError("invalid path: None (the disk backend needs path=<file or directory>)")
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"invalid path: expected a str or os.PathLike, got {value!r}")
    path = os.fspath(value)
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"invalid path: {value!r} (a file or directory path is required)")
    if os.path.isdir(path):
        path = os.path.join(path, DISK_FILE_NAME)
    return path


class ModelCache:
    """A cache of model answers, embeddings and metadata.

    ``ModelCache()`` is a sensible in-process cache (memory, 1 hour, 10,000
    entries, 256 MiB). Settings are checked here, with a ``ValueError`` or
    ``TypeError`` naming the field; no connection or file is opened until
    the first call, so a cache can be built outside an event loop.

    * ``backend``: ``"memory"``, ``"redis"``, ``"disk"`` or ``"tiered"``
      (memory in front of ``second_tier``: ``"redis"`` or ``"disk"``, by
      default disk when ``path`` is given, else Redis).
    * ``ttl``: seconds an entry lives. ``max_size``/``max_bytes``: bounds of
      the memory and disk stores (LRU eviction); bound Redis with its own
      ``maxmemory`` policy.
    * ``compression``: ``True`` (zstd if installed, else zlib), ``"zstd"``,
      ``"zlib"`` or ``False``.
    * ``namespace``: entries of two namespaces (tenants) never mix; within
      :func:`tenant_namespace` a task's entries are further kept per tenant.
    * ``redis_url``: default ``$REDIS_URL``, else ``redis://localhost:6379/0``.
      ``redis_timeout``: the most a Redis call may take before the request
      goes on without it; after a failure Redis is retried after
      ``retry_interval`` seconds.
    * ``path``: the SQLite file of the disk store (or a directory for it).
    """

    def __init__(
        self,
        backend: str = "memory",
        ttl: float = 3600,
        max_size: int = 10000,
        compression: Union[bool, str, None] = False,
        namespace: str = "default",
        redis_url: Optional[str] = None,
        path: Optional[Union[str, os.PathLike[str]]] = None,
        *,
        max_bytes: Optional[int] = DEFAULT_MAX_BYTES,
        redis_timeout: float = 0.25,
        retry_interval: float = 1.0,
        second_tier: Optional[str] = None,
    ) -> None:
        if not isinstance(backend, str) or backend not in BACKENDS:
            raise ValueError(
                f"invalid backend: {backend!r} (expected one of {', '.join(BACKENDS)})"
            )
        self.ttl = _positive_number("ttl", ttl)
        self.max_size: int = _positive_int("max_size", max_size) or 0
        self.max_bytes = _positive_int("max_bytes", max_bytes, optional=True)
        self.redis_timeout = _positive_number("redis_timeout", redis_timeout)
        self.retry_interval = _positive_number("retry_interval", retry_interval, allow_zero=True)
        self.compression = _compression(compression)
        if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
            raise ValueError(
                f"invalid namespace: {namespace!r} (1-128 characters of letters, digits and _.@+/-)"
            )
        self.namespace = namespace

        store: Optional[str] = backend if backend in ("redis", "disk") else None
        if backend == "tiered":
            if second_tier is None:
                if path is not None and redis_url is not None:
                    raise ValueError(
                        "invalid second_tier: None with both redis_url and path given "
                        "(pass second_tier='redis' or 'disk')"
                    )
                second_tier = "disk" if path is not None else "redis"
            if second_tier not in ("redis", "disk"):
                raise ValueError(
                    f"invalid second_tier: {second_tier!r} (expected 'redis' or 'disk')"
                )
            store = second_tier
        elif second_tier is not None:
            raise ValueError(f"invalid second_tier: {second_tier!r} (only for backend='tiered')")
        if redis_url is not None and store != "redis":
            raise ValueError(
                f"invalid redis_url: {redis_url!r} (backend={backend!r} uses no Redis)"
            )
        if path is not None and store != "disk":
            raise ValueError(f"invalid path: {path!r} (backend={backend!r} uses no disk)")

        self.backend = backend
        self.redis_url = _redis_url(redis_url) if store == "redis" else None
        self.path = _disk_path(path) if store == "disk" else None

        self._codec = Codec(self.compression)
        self._tiers: list[Backend] = []
        if backend in ("memory", "tiered"):
            self._tiers.append(MemoryBackend(self.max_size, self.max_bytes))
        if self.redis_url is not None:
            self._tiers.append(
                RedisBackend(self.redis_url, self.redis_timeout, self.retry_interval)
            )
        if self.path is not None:
            self._tiers.append(DiskBackend(self.path, self.max_size, self.max_bytes))

        self._prefix = f"orchestrator:{_core.KEY_FORMAT_VERSION}:{namespace}:"
        #: Key prefixes of this namespace's entries and of its tenants' (see
        #: :func:`tenant_namespace`): what :meth:`clear` removes and
        #: :meth:`count_entries` counts.
        self._scope = (self._prefix, f"{self._prefix[:-1]}/")
        self._inflight: dict[str, asyncio.Future[_Answer]] = {}
        self._warned_key = False
        self._secret: Optional[bytes] = None
        self.reset_statistics()

    def __repr__(self) -> str:
        return f"ModelCache(backend={self.backend!r}, namespace={self.namespace!r}, ttl={self.ttl})"

    # ----- statistics -------------------------------------------------------------

    def reset_statistics(self) -> None:
        """Zero the counters (entries stay)."""
        self._hits = self._misses = self._errors = self._corrupted = 0
        self._stores = self._coalesced = self._meta_hits = self._meta_misses = 0
        self._cost_saved = self._latency_saved = 0.0
        self._evictions_base = sum(t.evictions for t in self._tiers)

    def get_statistics(self) -> CacheStatistics:
        """A snapshot of the counters; no I/O."""
        lookups = self._hits + self._misses
        entries, nbytes = self._tiers[-1].size()
        if entries is None:
            entries, nbytes = self._tiers[0].size()
        return CacheStatistics(
            backend=self.backend,
            namespace=self.namespace,
            hits=self._hits,
            misses=self._misses,
            hit_rate=self._hits / lookups if lookups else 0.0,
            evictions=sum(t.evictions for t in self._tiers) - self._evictions_base,
            errors=self._errors,
            corrupted=self._corrupted,
            stores=self._stores,
            coalesced=self._coalesced,
            entries=entries,
            bytes=nbytes,
            cost_saved=self._cost_saved,
            latency_saved=self._latency_saved,
            metadata_hits=self._meta_hits,
            metadata_misses=self._meta_misses,
        )

    def _count_hit(self, cost: float, latency: float, *, coalesced: bool = False) -> None:
        self._hits += 1
        self._cost_saved += cost
        self._latency_saved += latency
        if coalesced:
            self._coalesced += 1

    # ----- responses ----------------------------------------------------------------

    async def generate(
        self,
        model: Model,
        prompt: Prompt,
        params: dict[str, Any],
        compute: Callable[[], Awaitable[CallResult]],
        refresh: bool,
    ) -> CallResult:
        """The answer to a request: cached, awaited from an identical request in
        flight (both ``cached``), or computed (and then stored). ``refresh``
        skips the lookup and replaces the entry. Errors from ``compute``
        propagate and are never stored."""
        key = await self._key("r", model, prompt, params)
        if key is None:
            return await compute()
        parse = functools.partial(_parse_response, model=model.name)
        loop = asyncio.get_running_loop()
        while not refresh:
            pending = self._inflight.get(key)
            if pending is None or pending.get_loop() is not loop:
                break
            try:
                answer = await asyncio.shield(pending)
            except _LeaderGone:
                continue  # its task was cancelled: look again, maybe lead
            self._count_hit(answer.cost, answer.latency, coalesced=True)
            return answer.served(model.name)

        future: asyncio.Future[_Answer] = loop.create_future()
        self._inflight[key] = future
        try:
            if not refresh:
                found = await self._lookup(key, parse)
                if found is not None:
                    answer = found[0]
                    self._count_hit(answer.cost, answer.latency)
                    future.set_result(answer)
                    return answer.served(model.name)
                self._misses += 1
            result = await compute()
            future.set_result(
                _Answer(
                    result.text,
                    result.cost,
                    result.latency,
                    result.input_tokens,
                    result.output_tokens,
                )
            )
            await self._store([(key, self._response_entry(result))])
            return result
        except Exception as exc:
            _fail(future, exc)
            raise
        except BaseException:
            _fail(future, _LeaderGone())
            raise
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]

    def stream(
        self,
        model: Model,
        prompt: Prompt,
        params: dict[str, Any],
        make_stream: Callable[[], MeasuredStream],
        refresh: bool,
    ) -> AsyncIterator[str]:
        """Stream an answer: a cached one is replayed in a few chunks; otherwise
        the provider's chunks pass through and the answer is stored only if
        the stream completed."""
        return self._stream(model, prompt, params, make_stream, refresh)

    async def _stream(
        self,
        model: Model,
        prompt: Prompt,
        params: dict[str, Any],
        make_stream: Callable[[], MeasuredStream],
        refresh: bool,
    ) -> AsyncIterator[str]:
        key = await self._key("r", model, prompt, params)
        if key is not None and not refresh:
            found = await self._lookup(key, functools.partial(_parse_response, model=model.name))
            if found is not None:
                answer = found[0]
                self._count_hit(answer.cost, answer.latency)
                for chunk in _replay_chunks(answer.text):
                    yield chunk
                return
            self._misses += 1
        stream = make_stream()
        try:
            async for chunk in stream:
                yield chunk
        finally:
            if stream.result is None:
                await stream.aclose()  # cut off or failed: release it, store nothing
        if key is not None and stream.result is not None:
            await self._store([(key, self._response_entry(stream.result))])

    def _response_entry(self, result: CallResult) -> dict[str, Any]:
        return {
            "kind": "response",
            "text": result.text,
            "model": result.model,
            "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens,
            "cost": result.cost,
            "latency": result.latency,
        }

    # ----- embeddings ---------------------------------------------------------------

    async def embed(
        self,
        model: Model,
        texts: Sequence[str],
        compute_missing: Callable[[list[str]], Awaitable[list[list[float]]]],
        refresh: bool = False,
        params: Optional[dict[str, Any]] = None,
    ) -> list[list[float]]:
        """Embeddings of ``texts``, one cache entry per text: only the texts
        that missed (each once) are passed to ``compute_missing``."""
        items = list(texts) if not isinstance(texts, str) else None
        identity = await self._identity(model) if items else None
        keys: list[str] = []
        for text in items or []:
            key = None
            if identity is not None and isinstance(text, str):
                key = self._digest("e", identity, model.provider, text, params or None)
            if key is None:
                items = None
                break
            keys.append(key)
        if items is None:
            return await compute_missing(list(texts))

        unique: dict[str, str] = dict(zip(keys, items))
        found: dict[str, list[float]] = {}
        if not refresh:
            parse = functools.partial(_parse_embedding, model=model.name)
            hits = await self._lookup_many(list(unique), parse)
            for key, (cached, _) in hits.items():
                found[key] = cached.values
                self._count_hit(cached.cost, cached.latency)
            self._misses += len(unique) - len(found)
        missing = [k for k in unique if k not in found]
        if missing:
            started = time.perf_counter()
            vectors = await compute_missing([unique[k] for k in missing])
            elapsed = time.perf_counter() - started
            try:
                got: object = len(vectors)
            except TypeError:
                got = type(vectors).__name__
            if got != len(missing):
                raise MalformedResponseError(
                    f"embed returned {got} vectors for {len(missing)} texts", model=model.name
                )
            entries: list[tuple[str, dict[str, Any]]] = []
            for key, vector in zip(missing, vectors):
                found[key] = vector
                entries.append((key, self._embedding_entry(model, unique[key], vector)))
            await self._store(entries, per_entry_latency=elapsed / len(missing))
        return [found[k] for k in keys]

    def _embedding_entry(self, model: Model, text: str, vector: Any) -> dict[str, Any]:
        cost = 0.0
        if model.cost is not None:
            cost = estimate_tokens(text) * model.cost.input_per_million / 1e6
        # numpy and other number types become plain floats; anything else is
        # left as is, so encoding fails and counts an error.
        with contextlib.suppress(TypeError, ValueError):
            vector = [float(x) for x in vector]
        return {"kind": "embedding", "vector": vector, "model": model.name, "cost": cost}

    # ----- metadata -----------------------------------------------------------------

    async def get_metadata(self, key: str, default: Any = None) -> Any:
        """A cached metadata value (capabilities, context length...) or ``default``."""
        found = await self._lookup(self._metadata_key(key), _parse_metadata)
        if found is None:
            self._meta_misses += 1
            return default
        self._meta_hits += 1
        return found[0]

    async def set_metadata(self, key: str, value: Any, ttl: Optional[float] = None) -> bool:
        """Cache a JSON value under ``key`` for ``ttl`` seconds (default: the
        cache's TTL). Returns whether it was stored."""
        seconds = self.ttl if ttl is None else _positive_number("ttl", ttl)
        entry = {"kind": "metadata", "value": value}
        return await self._store([(self._metadata_key(key), entry)], ttl=seconds)

    def _metadata_key(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise ValueError(f"invalid metadata key: {key!r} (a non-empty string is required)")
        return f"{self._prefix}m:{_core.cache_key('metadata', '', key, None, self.namespace)}"

    # ----- maintenance --------------------------------------------------------------

    async def clear(self) -> None:
        """Remove every entry of this namespace (its tenants' included) from every store."""
        for tier in self._tiers:
            try:
                for prefix in self._scope:
                    await tier.clear(prefix)
            except Exception as exc:
                self._tier_failed(tier, exc)

    async def count_entries(self, time_limit: float = DEFAULT_COUNT_TIME_LIMIT) -> StoreSize:
        """The live entries of this namespace (its tenants' included) and the
        bytes of their stored values, counted in the store itself (the shared
        one of a tiered cache), so entries other processes wrote are included:
        unlike :meth:`get_statistics`, this does I/O. Bounded: past about
        ``time_limit`` seconds it raises ``CountIncomplete``; a store that cannot
        be reached raises its error (``redis.ConnectionError``,
        ``sqlite3.Error``...)."""
        time_limit = _positive_number("time_limit", time_limit)
        return await self._tiers[-1].count(self._scope, time_limit)

    async def aclose(self) -> None:
        """Close connections, files and the disk store's thread; the cache
        reopens them if used again. Bounded: Redis is let go after
        ``redis_timeout`` even when stopped, the disk store once its queued
        statements ran (each waits at most 2 s for a lock); nothing of the
        cache is left running afterwards."""
        for tier in self._tiers:
            try:
                await tier.aclose()
            except Exception as exc:
                logger.debug("closing the %s cache store failed: %s", tier.name, exc)

    def close(self) -> None:
        """:meth:`aclose` for code with no running event loop (a script's end,
        ``atexit``), with the same result and bound; inside a running loop,
        await :meth:`aclose` instead."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("ModelCache.close() inside a running event loop: await aclose()")
        for tier in self._tiers:
            try:
                tier.close()
            except Exception as exc:
                logger.debug("closing the %s cache store failed: %s", tier.name, exc)

    # ----- internals ----------------------------------------------------------------

    async def _identity(self, model: Model) -> Optional[str]:
        """``model.cache_identity()`` plus the keyed fingerprint of its
        credentials; ``None`` (not cached) while the store that holds this
        cache's secret cannot be reached."""
        identity = model.cache_identity()
        credentials = credentials_of(model)
        if not credentials:
            return identity
        secret = await self._fingerprint_secret()
        if secret is None:
            return None
        return f"{identity}|credentials:{credential_fingerprint(credentials, secret)}"

    async def _fingerprint_secret(self) -> Optional[bytes]:
        """This cache's HMAC secret: random per process for memory, else kept in
        the shared store, so processes sharing it agree."""
        if self._secret is None:
            store = self._tiers[-1]
            try:
                self._secret = await store.identity_key(
                    f"{self._prefix[:-1]}#identity-key", os.urandom(32)
                )
            except Exception as exc:
                self._tier_failed(store, exc)
                return None
        return self._secret

    async def _key(
        self, kind: str, model: Model, prompt: Any, params: Optional[dict[str, Any]]
    ) -> Optional[str]:
        identity = await self._identity(model)
        if identity is None:
            return None
        return self._digest(kind, identity, model.provider, prompt, params)

    def _digest(
        self,
        kind: str,
        identity: str,
        provider: str,
        prompt: Any,
        params: Optional[dict[str, Any]],
    ) -> Optional[str]:
        tenant = _TENANT.get()
        namespace = self.namespace if tenant is None else f"{self.namespace}/{tenant}"
        try:
            digest = _core.cache_key(identity, provider, prompt, params, namespace)
        except (TypeError, ValueError) as exc:
            self._errors += 1
            level = logging.DEBUG if self._warned_key else logging.WARNING
            self._warned_key = True
            logger.log(level, "request not cached: %s", exc)
            return None
        prefix = self._prefix if tenant is None else f"{self._prefix[:-1]}/{tenant}:"
        return f"{prefix}{kind}:{digest}"

    def _tier_failed(self, tier: Backend, exc: BaseException) -> None:
        self._errors += 1
        if not tier.failing:
            tier.failing = True
            logger.warning(
                "%s cache unavailable (%s: %s); requests go on without it until it is back",
                tier.name,
                type(exc).__name__,
                str(exc) or "timed out",
            )
        elif not isinstance(exc, BackendUnavailable):
            logger.debug("%s cache still unavailable: %s", tier.name, exc)

    def _tier_ok(self, tier: Backend) -> None:
        if tier.failing:
            tier.failing = False
            logger.info("%s cache is available again", tier.name)

    def _accept(
        self, key: str, data: bytes, parse: Callable[[dict[str, Any]], T]
    ) -> Optional[tuple[T, float]]:
        """Decode the entry stored under ``key``: ``(value, expires)``, ``None``
        if expired. Raises :class:`CorruptEntry` if damaged, or if it was
        written under another key (a row copied over another: someone else's
        answer must never be served)."""
        obj = self._codec.decode(data)
        if obj.get("key") != key:
            raise CorruptEntry("entry was stored under another key")
        expires = _real("expires", obj.get("expires"))
        value = parse(obj)
        if expires <= time.time():
            return None
        return value, expires

    async def _lookup(
        self, key: str, parse: Callable[[dict[str, Any]], T]
    ) -> Optional[tuple[T, float]]:
        """Look ``key`` up tier by tier; a hit below fills the tiers above."""
        for index, tier in enumerate(self._tiers):
            try:
                data = await tier.get(key)
            except Exception as exc:
                self._tier_failed(tier, exc)
                continue
            self._tier_ok(tier)
            if data is None:
                continue
            found = await self._check(tier, key, data, parse)
            if found is None:
                continue
            await self._fill(self._tiers[:index], [(key, data, found[1])])
            return found
        return None

    async def _lookup_many(
        self, keys: list[str], parse: Callable[[dict[str, Any]], T]
    ) -> dict[str, tuple[T, float]]:
        found: dict[str, tuple[T, float]] = {}
        for index, tier in enumerate(self._tiers):
            wanted = [k for k in keys if k not in found]
            if not wanted:
                break
            try:
                values = await tier.get_many(wanted)
            except Exception as exc:
                self._tier_failed(tier, exc)
                continue
            self._tier_ok(tier)
            fill: list[tuple[str, bytes, float]] = []
            for key, data in zip(wanted, values):
                if data is None:
                    continue
                hit = await self._check(tier, key, data, parse)
                if hit is not None:
                    found[key] = hit
                    fill.append((key, data, hit[1]))
            await self._fill(self._tiers[:index], fill)
        return found

    async def _check(
        self, tier: Backend, key: str, data: bytes, parse: Callable[[dict[str, Any]], T]
    ) -> Optional[tuple[T, float]]:
        try:
            found = self._accept(key, data, parse)
        except CorruptEntry as exc:
            self._errors += 1
            self._corrupted += 1
            logger.warning("discarding a damaged %s cache entry %s: %s", tier.name, key, exc)
            found = None
        else:
            if found is not None:
                return found
        try:
            await tier.delete(key)
        except Exception as exc:
            self._tier_failed(tier, exc)
        return None

    async def _fill(self, tiers: list[Backend], items: list[tuple[str, bytes, float]]) -> None:
        now = time.time()
        for tier in tiers:
            for key, data, expires in items:
                if expires > now:
                    try:
                        await tier.set(key, data, expires - now)
                    except Exception as exc:
                        self._tier_failed(tier, exc)

    async def _store(
        self,
        entries: list[tuple[str, dict[str, Any]]],
        *,
        ttl: Optional[float] = None,
        per_entry_latency: Optional[float] = None,
    ) -> bool:
        """Encode and write entries to every tier; never raises. Returns
        whether anything was stored."""
        seconds = self.ttl if ttl is None else ttl
        now = time.time()
        encoded: list[tuple[str, bytes]] = []
        for key, entry in entries:
            entry["key"] = key
            entry["created"] = now
            entry["expires"] = now + seconds
            if per_entry_latency is not None:
                entry["latency"] = per_entry_latency
            try:
                encoded.append((key, self._codec.encode(entry)))
            except (TypeError, ValueError, OverflowError, RecursionError) as exc:
                self._errors += 1
                logger.warning("%s entry not cached, not serialisable: %s", entry["kind"], exc)
        if not encoded:
            return False
        stored = False
        for tier in self._tiers:
            try:
                if len(encoded) == 1:
                    await tier.set(encoded[0][0], encoded[0][1], seconds)
                else:
                    await tier.set_many(encoded, seconds)
            except Exception as exc:
                self._tier_failed(tier, exc)
                continue
            self._tier_ok(tier)
            stored = True
        if stored:
            self._stores += len(encoded)
        return stored


def _fail(future: asyncio.Future[_Answer], exc: BaseException) -> None:
    """Hand ``exc`` to the waiters, if any (no warning when there are none)."""
    if not future.done():
        future.set_exception(exc)
        future.exception()  # marks it retrieved

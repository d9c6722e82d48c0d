"""Memory store: LRU bounded by entries and by bytes, TTL, and the codec."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator.core.cache import ModelCache
from orchestrator.core.cache_backends import Codec, CorruptEntry, MemoryBackend


async def test_lru_eviction_by_entries(model: Any) -> None:
    cache = ModelCache(max_size=3)
    model.enable_caching(cache)
    for q in ("a", "b", "c"):
        await model.generate_response(q)
    await model.generate_response("a")  # hit: "a" is now the most recently used
    await model.generate_response("d")  # evicts "b", the least recently used
    stats = cache.get_statistics()
    assert stats.entries == 3 and stats.evictions == 1
    calls = model.calls
    await model.generate_response("a")
    await model.generate_response("c")
    await model.generate_response("d")
    assert model.calls == calls  # still cached
    await model.generate_response("b")
    assert model.calls == calls + 1  # was evicted


async def test_lru_eviction_by_bytes(model: Any) -> None:
    probe = ModelCache()
    model.enable_caching(probe)
    model.answer = "x" * 1000
    await model.generate_response("probe")
    size = probe.get_statistics().bytes
    assert size is not None and size > 1000

    # Room for three entries, not four, whatever the length of their floats
    # (a latency of 5e-06 and one of 0.00012345678901234 differ by 14 bytes).
    bound = size * 3 + size // 2
    cache = ModelCache(max_size=1000, max_bytes=bound)
    model.enable_caching(cache)
    for q in ("a", "b", "c", "d"):
        await model.generate_response(q)
    stats = cache.get_statistics()
    assert stats.entries == 3 and stats.evictions == 1
    assert stats.bytes is not None and stats.bytes <= bound
    calls = model.calls
    await model.generate_response("a")
    assert model.calls == calls + 1  # the oldest went first

    # An entry larger than the whole bound is not kept (and evicts nothing).
    model.answer = "y" * (size * 4)
    await model.generate_response("huge")
    await model.generate_response("huge")
    assert model.calls == calls + 3
    assert cache.get_statistics().entries == 3


async def test_ttl_expiry(model: Any) -> None:
    cache = ModelCache(ttl=0.15)
    model.enable_caching(cache)
    await model.generate_response("q")
    await model.generate_response("q")
    assert model.calls == 1
    await asyncio.sleep(0.25)
    await model.generate_response("q")
    assert model.calls == 2
    stats = cache.get_statistics()
    assert (stats.hits, stats.misses, stats.evictions) == (1, 2, 0)


async def test_memory_backend_direct() -> None:
    store = MemoryBackend(max_size=2, max_bytes=None)
    await store.set("k1", b"v1", 10)
    await store.set("k2", b"v2", 10)
    await store.set("k1", b"v1b", 10)  # replacing does not evict
    assert store.evictions == 0 and store.size() == (2, 5)
    await store.set("k3", b"v3", 10)
    assert await store.get("k2") is None and await store.get("k1") == b"v1b"
    await store.set("k4", b"v4", 0.001)
    await asyncio.sleep(0.01)
    assert await store.get("k4") is None
    await store.clear("k")
    assert store.size() == (0, 0)


@pytest.mark.parametrize("compression", [None, "zlib", "zstd"])
def test_codec_round_trip_and_damage(compression: Any) -> None:
    codec = Codec(compression)
    obj = {"kind": "response", "text": "héllo " * 200, "cost": 0.5, "nested": [1, None, True]}
    data = codec.encode(obj)
    assert codec.decode(data) == obj
    if compression:
        assert len(data) < len(obj["text"].encode())
    assert b"pickle" not in data and not data.startswith(b"\x80")
    flipped = bytearray(data)
    flipped[-1] ^= 0xFF
    for bad in (b"", b"OC", data[:-3], bytes(flipped), b"XX" + data[2:], b"\x80\x04K\x01."):
        with pytest.raises(CorruptEntry):
            codec.decode(bad)
    with pytest.raises(ValueError):
        codec.encode({"x": float("nan")})
    with pytest.raises(TypeError):
        codec.encode({"x": object()})

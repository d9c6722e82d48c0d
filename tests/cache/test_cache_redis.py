"""Redis store against a real redis-server: one round trip per lookup, TTL in
Redis, no pickle, and outages (killed, restarted, frozen) that never fail a
request."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from typing import Any

import redis

from orchestrator.core.cache import ModelCache


def keys(server: Any) -> list[bytes]:
    client = redis.Redis.from_url(server.url)
    try:
        return list(client.keys("*"))
    finally:
        client.close()


async def test_a_hit_is_one_round_trip(redis_server: Any, model: Any) -> None:
    cache = ModelCache(backend="redis", redis_url=redis_server.url, compression=True)
    model.enable_caching(cache)
    await model.generate_response("q", temperature=0.1)
    assert redis_server.command(b"CONFIG", b"RESETSTAT") == b"+OK"
    await model.generate_response("q", temperature=0.1)
    stats = redis_server.info("commandstats")
    commands = {k: v for k, v in stats.items() if k.startswith("cmdstat_")}
    # Only the GET of the hit (and the INFO that reads these stats).
    assert set(commands) <= {"cmdstat_get", "cmdstat_info", "cmdstat_config|resetstat"}
    assert commands["cmdstat_get"].startswith("calls=1,")
    assert model.calls == 1
    await cache.aclose()


async def test_entries_are_json_with_ttl_in_redis(redis_server: Any, model: Any) -> None:
    cache = ModelCache(backend="redis", redis_url=redis_server.url, ttl=120, namespace="t1")
    model.enable_caching(cache)
    answer = await model.generate_response("q")
    (key,) = keys(redis_server)
    assert key.startswith(b"orchestrator:1:t1:r:")
    client = redis.Redis.from_url(redis_server.url)
    try:
        raw = client.get(key)
        ttl_ms = client.pttl(key)
    finally:
        client.close()
    assert raw is not None and raw.startswith(b"OC")
    body = raw[8:].decode()
    assert f'"text":"{answer}"' in body and '"model":"test-model"' in body
    assert '"input_tokens"' in body and '"cost"' in body
    assert 110_000 < ttl_ms <= 120_000
    await cache.aclose()


async def test_ttl_expiry_in_redis(redis_server: Any, model: Any) -> None:
    cache = ModelCache(backend="redis", redis_url=redis_server.url, ttl=0.2)
    model.enable_caching(cache)
    await model.generate_response("q")
    await asyncio.sleep(0.35)
    assert keys(redis_server) == []
    await model.generate_response("q")
    assert model.calls == 2
    await cache.aclose()


async def test_pickle_or_garbage_in_redis_is_a_miss(redis_server: Any, model: Any) -> None:
    cache = ModelCache(backend="redis", redis_url=redis_server.url)
    model.enable_caching(cache)
    await model.generate_response("q")
    (key,) = keys(redis_server)
    client = redis.Redis.from_url(redis_server.url)
    try:
        # What an attacker with write access might plant: a pickle payload.
        client.set(key, b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94.")
        answer = await model.generate_response("q")
        assert model.calls == 2 and "answer #2" in answer
        stats = cache.get_statistics()
        assert stats.corrupted == 1 and stats.errors == 1
        assert client.get(key) is not None  # replaced by the new answer
    finally:
        client.close()
    await cache.aclose()


async def test_an_entry_copied_under_another_key_is_a_counted_miss(
    redis_server: Any, model: Any
) -> None:
    """Whoever can write the shared Redis copies the answer to one request
    over another's: it is not served, is counted as corrupted, and the fresh
    answer replaces it."""
    cache = ModelCache(backend="redis", redis_url=redis_server.url, compression=True)
    model.enable_caching(cache)
    await model.generate_response("alice's prompt")
    (alice,) = keys(redis_server)
    await model.generate_response("bob's prompt")
    (bob,) = set(keys(redis_server)) - {alice}
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.set(bob, client.get(alice) or b"")
        answer = await model.generate_response("bob's prompt")
        assert model.calls == 3 and "bob's prompt" in answer
        stats = cache.get_statistics()
        assert stats.corrupted == 1 and stats.hits == 0
        assert client.get(bob) != client.get(alice)
        assert "alice's prompt" in await model.generate_response("alice's prompt")
        assert cache.get_statistics().hits == 1  # the original entry still serves
    finally:
        client.close()
    await cache.aclose()


async def test_redis_killed_then_restarted(redis_server: Any, model: Any, caplog: Any) -> None:
    cache = ModelCache(
        backend="redis", redis_url=redis_server.url, redis_timeout=0.2, retry_interval=0.1
    )
    model.enable_caching(cache)
    await model.generate_response("q1")
    await model.generate_response("q1")
    assert cache.get_statistics().hits == 1

    redis_server.kill()
    with caplog.at_level(logging.INFO, logger="orchestrator.core.cache"):
        started = time.monotonic()
        for i in range(5):
            answer = await model.generate_response("q1")  # goes to the provider
            assert f"answer #{i + 2}" in answer
        assert time.monotonic() - started < 2.0
        stats = cache.get_statistics()
        assert stats.errors >= 5  # each failed lookup and store
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "redis cache unavailable" in warnings[0].getMessage()

        redis_server.start()  # same port, empty
        await asyncio.sleep(0.15)  # past retry_interval
        await model.generate_response("q1")  # reconnects by itself; a miss
        calls = model.calls
        await model.generate_response("q1")
        assert model.calls == calls  # hits resume
    assert "available again" in caplog.text
    assert cache.get_statistics().hits == 2
    await cache.aclose()


async def test_frozen_redis_never_blocks_past_the_timeout(redis_server: Any, model: Any) -> None:
    cache = ModelCache(backend="redis", redis_url=redis_server.url, redis_timeout=0.2)
    model.enable_caching(cache)
    await model.generate_response("q")
    assert redis_server.proc is not None
    os.kill(redis_server.proc.pid, signal.SIGSTOP)  # accepts connections, never answers
    try:
        started = time.monotonic()
        answers = [await model.generate_response("q2") for _ in range(3)]
        elapsed = time.monotonic() - started
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    assert len(answers) == 3 and model.calls == 4
    # One timeout for the first lookup; then Redis is skipped until retry_interval.
    # A frozen Redis would block forever; the bound is generous for a loaded machine.
    assert elapsed < 3.0
    assert cache.get_statistics().errors >= 3
    await cache.aclose()


async def test_redis_down_from_the_start(model: Any) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cache = ModelCache(backend="redis", redis_url=f"redis://127.0.0.1:{port}/0", redis_timeout=0.2)
    model.enable_caching(cache)
    assert "answer #1" in await model.generate_response("q")
    assert "answer #2" in await model.generate_response("q")
    assert cache.get_statistics().errors >= 2
    assert await cache.get_metadata("x") is None
    assert await cache.set_metadata("x", 1) is False
    await cache.clear()
    await cache.aclose()


async def test_tiered_fills_memory_from_redis(redis_server: Any, make_model: Any) -> None:
    writer = ModelCache(backend="tiered", redis_url=redis_server.url)
    reader = ModelCache(backend="tiered", redis_url=redis_server.url)
    m1, m2 = make_model(), make_model()
    m1.enable_caching(writer)
    m2.enable_caching(reader)
    answer = await m1.generate_response("q")
    assert reader.get_statistics().entries == 0
    assert await m2.generate_response("q") == answer  # from Redis, filled into memory
    assert reader.get_statistics().entries == 1
    redis_server.kill()
    assert await m2.generate_response("q") == answer  # from memory, Redis not asked
    assert m2.calls == 0 and reader.get_statistics().errors == 0
    await writer.aclose()
    await reader.aclose()

"""``ModelCache.count_entries``: every store counts its own live entries of
one namespace (tenants included), entries another process wrote among them,
within a time bound, and says why when it cannot."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from tests.cache.conftest import CountingModel

from orchestrator.core.cache import ModelCache, tenant_namespace
from orchestrator.core.cache_backends import CountIncomplete, StoreSize


async def fill(cache: ModelCache, prompts: list[str], tenant: Any = None) -> None:
    """Cache one answer per prompt (in ``tenant``'s namespace when given)."""
    model = CountingModel()
    model.enable_caching(cache)
    with tenant_namespace(tenant):
        for prompt in prompts:
            await model.generate_response(prompt)


def write_in_another_process(kwargs: dict[str, Any], prompts: list[str]) -> None:
    """Run in a fresh interpreter: cache answers, then close the store."""

    async def main() -> None:
        cache = ModelCache(**kwargs)
        await fill(cache, prompts)
        await cache.aclose()

    asyncio.run(main())


def written_elsewhere(kwargs: dict[str, Any], prompts: list[str]) -> None:
    """Have a separate (spawned, not forked) process write ``prompts``."""
    process = multiprocessing.get_context("spawn").Process(
        target=write_in_another_process, args=(kwargs, prompts)
    )
    process.start()
    process.join(60)
    assert process.exitcode == 0


async def test_memory_counts_its_live_entries_directly() -> None:
    cache = ModelCache(ttl=60, namespace="mem")
    await fill(cache, ["a", "b", "c"])
    await fill(cache, ["d"], tenant="acme")
    size = await cache.count_entries()
    assert size.entries == 4 == cache.get_statistics().entries
    assert size.bytes == cache.get_statistics().bytes


async def test_memory_leaves_out_expired_entries() -> None:
    cache = ModelCache(ttl=0.05)
    await fill(cache, ["a", "b"])
    await asyncio.sleep(0.1)
    assert await cache.count_entries() == StoreSize(0, 0)


def test_disk_counts_what_an_earlier_process_wrote(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite3"
    kwargs: dict[str, Any] = {"backend": "disk", "path": str(path), "namespace": "team"}
    written_elsewhere(kwargs, ["one", "two", "three"])
    written_elsewhere({**kwargs, "namespace": "other"}, ["four"])

    async def read() -> StoreSize:
        fresh = ModelCache(**kwargs)
        assert fresh.get_statistics().entries is None  # nothing known without asking
        try:
            return await fresh.count_entries()
        finally:
            await fresh.aclose()

    size = asyncio.run(read())
    conn = sqlite3.connect(path)
    try:
        values = [
            bytes(v)
            for (v,) in conn.execute(
                "SELECT value FROM entries WHERE key LIKE 'orchestrator:%:team:%'"
            )
        ]
    finally:
        conn.close()
    assert size == StoreSize(3, sum(len(value) for value in values))


async def test_disk_counts_tenants_and_leaves_out_expired_rows(tmp_path: Path) -> None:
    cache = ModelCache(backend="disk", path=tmp_path, namespace="team", ttl=60)
    await fill(cache, ["a", "b"])
    await fill(cache, ["c"], tenant="acme")
    assert (await cache.count_entries()).entries == 3
    conn = sqlite3.connect(cache.path or "")
    try:
        conn.execute("UPDATE entries SET expires = ? WHERE key LIKE '%/acme:%'", (time.time() - 1,))
        conn.commit()
    finally:
        conn.close()
    assert (await cache.count_entries()).entries == 2
    await cache.clear()  # the tenant's rows go too
    assert await cache.count_entries() == StoreSize(0, 0)
    await cache.aclose()


async def test_disk_count_stops_at_its_time_bound(tmp_path: Path) -> None:
    cache = ModelCache(backend="disk", path=tmp_path, namespace="big")
    await fill(cache, ["seed"])
    conn = sqlite3.connect(cache.path or "")
    try:
        far = time.time() + 3600
        rows = ((f"orchestrator:1:big:r:{i:08d}", b"OC", 2, far, far) for i in range(50_000))
        conn.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?)", rows)
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(CountIncomplete, match=r"took over 1e-09s"):
        await cache.count_entries(time_limit=1e-9)
    assert (await cache.count_entries()).entries == 50_001  # the connection still works
    await cache.aclose()


def test_redis_counts_only_its_namespace_across_processes(redis_server: Any) -> None:
    kwargs: dict[str, Any] = {
        "backend": "redis",
        "redis_url": redis_server.url,
        "namespace": "team",
    }
    written_elsewhere(kwargs, ["one", "two", "three"])
    written_elsewhere({**kwargs, "namespace": "other"}, ["four"])
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.set("unrelated:key", b"x" * 100)
        client.set("orchestrator:1:team#identity-key", b"k" * 32)  # a secret, not an entry
        client.rpush("orchestrator:1:team:r:not-a-string", b"x")  # not an entry: skipped
        ours = [
            k
            for k in client.scan_iter(match="orchestrator:1:team:r:*")
            if client.type(k) == b"string"
        ]
        expected = StoreSize(3, sum(len(client.get(k) or b"") for k in ours))
    finally:
        client.close()

    async def read() -> StoreSize:
        fresh = ModelCache(**kwargs)
        try:
            return await fresh.count_entries()
        finally:
            await fresh.aclose()

    assert asyncio.run(read()) == expected


async def test_redis_counts_many_keys_with_scan_never_keys(redis_server: Any) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        with client.pipeline(transaction=False) as pipe:
            for i in range(2_345):
                pipe.set(f"orchestrator:1:bulk:r:{i}", b"OC" + b"y" * (i % 7))
                pipe.set(f"orchestrator:1:bulk/acme:r:{i}", b"OC")
            pipe.execute()
    finally:
        client.close()
    assert redis_server.command(b"CONFIG", b"RESETSTAT") == b"+OK"
    cache = ModelCache(backend="redis", redis_url=redis_server.url, namespace="bulk")
    size = await cache.count_entries()
    await cache.aclose()
    value_bytes = sum(2 + i % 7 for i in range(2_345)) + 2 * 2_345
    assert size == StoreSize(2 * 2_345, value_bytes)
    commands = set(redis_server.info("commandstats"))
    assert "cmdstat_scan" in commands and "cmdstat_keys" not in commands


async def test_redis_count_stops_at_its_time_bound(redis_server: Any) -> None:
    cache = ModelCache(backend="redis", redis_url=redis_server.url)
    with pytest.raises(CountIncomplete, match=r"redis at redis://127\.0\.0\.1:\d+/0 took over"):
        await cache.count_entries(time_limit=1e-9)
    await cache.aclose()


async def test_redis_down_is_an_error_not_a_number(redis_server: Any) -> None:
    url = redis_server.url
    redis_server.kill()
    cache = ModelCache(backend="redis", redis_url=url)
    with pytest.raises(redis.ConnectionError):
        await cache.count_entries()
    await cache.aclose()


@pytest.mark.parametrize(
    ("time_limit", "error"),
    [(0, ValueError), (-1.0, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
     (True, TypeError), ("5", TypeError), (None, TypeError)],
)  # fmt: skip
async def test_count_time_limit_is_checked(time_limit: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"invalid time_limit: .*"):
        await ModelCache().count_entries(time_limit=time_limit)

"""Finding 10: closing leaves nothing behind. Rounds of build -> call ->
close leave no ``orchestrator-cache-disk`` thread and no extra file
descriptor (counted in /proc/self/fd); a Redis cache closes within its
documented bound (``redis_timeout``, well under a second) even when Redis
was killed or is stalled."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cache.conftest import CountingModel
from tests.redis_server import RedisServer
from tests.servers import OpenAIServer

from orchestrator.core.cache import ModelCache
from orchestrator.integrations import ClientPool, aclose_clients
from orchestrator.integrations.openai_model import OpenAIModel
from orchestrator.models.model_registry import ModelRegistry

pytestmark = pytest.mark.timeout(120)

ROUNDS = 20
#: What ``ModelCache.aclose`` promises for Redis: ``redis_timeout`` (0.25 s by default).
REDIS_CLOSE_BOUND = 1.0


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def server_side_closed(server: OpenAIServer) -> None:
    """Wait until the in-process server closed its side of every connection
    (its sockets are this process's descriptors too)."""
    assert await asyncio.to_thread(server.wait_idle, 30)


def disk_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("orchestrator-cache-disk")]


async def test_disk_cache_rounds_leave_no_thread_or_descriptor(tmp_path: Path) -> None:
    async def one_round(i: int) -> None:
        cache = ModelCache(backend="disk", path=tmp_path / "cache.sqlite3")
        model = CountingModel()
        model.enable_caching(cache)
        await model.generate_response(f"round {i}")
        await model.generate_response(f"round {i}")
        assert disk_threads()
        await cache.aclose()

    await one_round(-1)  # warm-up: sqlite and logging open what they keep for the process
    before = open_descriptors()
    for i in range(ROUNDS):
        await one_round(i)
    assert disk_threads() == []
    assert open_descriptors() == before


async def test_a_registry_closes_its_redis_cache(tmp_path: Path) -> None:
    """``registry.aclose()`` leaves no socket of its cache's Redis client; a
    cache shared with another registry reopens and keeps working."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        shared = ModelCache(backend="redis", redis_url=server.url)
        other = ModelRegistry(cache_responses=shared)
        other.register_model(CountingModel("other"))
        before = open_descriptors()
        for i in range(ROUNDS):
            registry = ModelRegistry(
                cache_responses=ModelCache(backend="redis", redis_url=server.url)
            )
            registry.register_model(CountingModel())
            await registry.generate(f"round {i}")
            await registry.aclose()
        assert open_descriptors() == before
        first = await other.generate("shared")
        await other.aclose()
        assert (await other.generate("shared")).text == first.text  # served by the reopened cache
        await other.aclose()
    finally:
        server.kill()


CONFIG = """
[cache]
enabled = true
backend = "disk"
path = "{path}"

[[models]]
provider = "openai"
name = "gpt-4"
base_url = "{url}"
"""


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


async def test_from_config_generate_close_rounds_leave_no_thread_or_descriptor(
    tmp_path: Path, openai_server: OpenAIServer
) -> None:
    config = tmp_path / "orchestrator.toml"
    config.write_text(CONFIG.format(path=tmp_path / "cache.sqlite3", url=openai_server.url))

    async def one_round(i: int) -> None:
        registry = ModelRegistry.from_config(config)
        result = await registry.generate(f"round {i}")
        assert result.text
        await registry.aclose()
        assert registry.cache is not None
        await registry.cache.aclose()
        await aclose_clients()

    await one_round(-1)
    await server_side_closed(openai_server)
    before = open_descriptors()
    for i in range(ROUNDS):
        await one_round(i)
    await server_side_closed(openai_server)
    assert disk_threads() == []
    assert open_descriptors() == before


async def test_a_client_pool_of_ones_own_closes_every_socket(openai_server: OpenAIServer) -> None:
    before = open_descriptors()
    for _ in range(ROUNDS):
        pool = ClientPool()
        model = OpenAIModel("gpt-4", base_url=openai_server.url, client_pool=pool)
        await model.generate_response("Hello")
        assert pool.open_clients() == 1
        await pool.aclose()
        assert pool.open_clients() == 0
    await server_side_closed(openai_server)
    assert open_descriptors() == before


@pytest.mark.parametrize("outage", ["killed", "stalled"])
async def test_a_redis_cache_closes_within_its_bound_when_redis_is_down(
    redis_server: RedisServer, outage: str
) -> None:
    cache = ModelCache(backend="redis", redis_url=redis_server.url)
    model = CountingModel()
    model.enable_caching(cache)
    await model.generate_response("Hello")
    assert redis_server.proc is not None
    pid = redis_server.proc.pid
    if outage == "killed":
        redis_server.kill()
    else:
        os.kill(pid, signal.SIGSTOP)
    try:
        await model.generate_response("Hello again")  # goes on without the cache
        async with asyncio.timeout(REDIS_CLOSE_BOUND):
            await cache.aclose()
    finally:
        if outage == "stalled":
            os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("backend", ["disk", "redis", "tiered"])
def test_close_without_an_event_loop_leaves_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Scripts end outside any loop: ``close()`` does what ``aclose()`` does."""
    kwargs: dict[str, object] = {"path": tmp_path} if backend != "redis" else {}
    if backend == "redis":
        kwargs["redis_url"] = request.getfixturevalue("redis_server").url
    loop = asyncio.new_event_loop()
    try:
        before = open_descriptors()
        for i in range(ROUNDS):
            cache = ModelCache(backend=backend, **kwargs)  # type: ignore[arg-type]
            model = CountingModel()
            model.enable_caching(cache)
            loop.run_until_complete(model.generate_response(f"round {i}"))
            cache.close()
        assert disk_threads() == []
        assert open_descriptors() == before
    finally:
        loop.close()


async def test_close_inside_a_running_loop_says_to_await_aclose() -> None:
    with pytest.raises(RuntimeError, match=r"await aclose\(\)"):
        ModelCache().close()

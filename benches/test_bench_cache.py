"""Cache speed: key computation (Rust core vs plain Python hashing) and hits of
each store from Python, each next to a plain-Python equivalent.

Async operations run in batches of ``BATCH`` inside one coroutine per round,
so the event loop's per-round overhead is shared; divide by ``BATCH`` for the
cost of one operation. Run: ``pytest benches/test_bench_cache.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
import redis.asyncio as aioredis

from orchestrator import _core
from orchestrator.core.cache import ModelCache
from orchestrator.core.model import CallResult, Model, ModelCapabilities, Prompt
from orchestrator.integrations.openai_model import OpenAIModel

BATCH = 100
PROMPT = ("The quick brown fox jumps over the lazy dog. " * 92)[:4096]
PARAMS: dict[str, Any] = {
    "temperature": 0.7,
    "max_tokens": 512,
    "stop": ["\n\n", "END"],
    "top_p": 0.95,
    "response_format": {"type": "json_object"},
}
ANSWER = "An answer of a few hundred characters. " * 10


class BenchModel(Model):
    async def generate_response(self, prompt: Prompt, **kwargs: Any) -> str:
        return ANSWER

    async def health_check(self) -> bool:
        return True


def python_key(model: str, provider: str, prompt: Any, params: dict[str, Any], ns: str) -> str:
    payload = json.dumps([ns, provider, model, prompt, params], sort_keys=True)
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def python_key_sha256(
    model: str, provider: str, prompt: str, params: dict[str, Any], ns: str
) -> str:
    payload = json.dumps([ns, provider, model, prompt, params], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


# ----- key computation ---------------------------------------------------------------------


#: A chat of 20 short messages: many small values, so the walk (not the hashing
#: of one long string) is what is measured.
MESSAGES: list[dict[str, Any]] = [
    {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}: " + "word " * 20}
    for i in range(20)
]
#: The prompts keys are measured over, by benchmark group.
PROMPTS: dict[str, Any] = {"key-4KB-prompt": PROMPT, "key-20-messages": MESSAGES}


@pytest.mark.parametrize("group", PROMPTS)
def test_key_rust_core(benchmark: Any, group: str) -> None:
    benchmark.group = group
    key = benchmark(_core.cache_key, "gpt-4o", "openai", PROMPTS[group], PARAMS, "default")
    assert len(key) == 32


@pytest.mark.parametrize("group", PROMPTS)
def test_key_python_blake2b(benchmark: Any, group: str) -> None:
    benchmark.group = group
    assert len(benchmark(python_key, "gpt-4o", "openai", PROMPTS[group], PARAMS, "default")) == 32


@pytest.mark.benchmark(group="key-4KB-prompt")
def test_key_python_sha256(benchmark: Any) -> None:
    assert len(benchmark(python_key_sha256, "gpt-4o", "openai", PROMPT, PARAMS, "default")) == 64


# ----- hits ----------------------------------------------------------------------------------


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [server, *args, "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.02)
    yield f"redis://127.0.0.1:{port}/0"
    proc.kill()
    proc.wait()


def run_batches(
    benchmark: Any, loop: asyncio.AbstractEventLoop, op: Callable[[], Awaitable[Any]]
) -> None:
    async def batch() -> None:
        for _ in range(BATCH):
            await op()

    loop.run_until_complete(batch())  # warm up (connect, fill)
    benchmark.extra_info["operations_per_round"] = BATCH
    benchmark.pedantic(lambda: loop.run_until_complete(batch()), rounds=30, warmup_rounds=2)


def cache_hit_op(
    cache: ModelCache, loop: asyncio.AbstractEventLoop, model: Optional[Model] = None
) -> Callable[[], Awaitable[str]]:
    model = model or BenchModel("gpt-4o", "openai", ModelCapabilities())
    result = CallResult(ANSWER, "gpt-4o", 1024, 100, 0.01, 0.8)

    async def compute() -> CallResult:
        raise AssertionError("a hit must not compute")

    async def fill() -> CallResult:
        return result

    loop.run_until_complete(cache.generate(model, PROMPT, PARAMS, fill, True))
    return lambda: cache.generate(model, PROMPT, PARAMS, compute, False)


@pytest.mark.benchmark(group="hit-memory")
def test_hit_memory_cache(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    cache = ModelCache()
    run_batches(benchmark, loop, cache_hit_op(cache, loop))
    assert cache.get_statistics().misses == 0


@pytest.mark.benchmark(group="hit-memory")
def test_hit_memory_cache_keyed_http_model(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    """A hit for an adapter with a key: full-configuration identity plus the
    keyed credential fingerprint."""
    cache = ModelCache()
    model = OpenAIModel("gpt-4o", api_key="sk-bench-0123456789abcdef", base_url="http://h/v1")
    run_batches(benchmark, loop, cache_hit_op(cache, loop, model))
    assert cache.get_statistics().misses == 0


@pytest.mark.benchmark(group="hit-memory")
def test_hit_memory_plain_python_dict(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    store = {python_key("gpt-4o", "openai", PROMPT, PARAMS, "default"): ANSWER}

    async def op() -> str:
        return store[python_key("gpt-4o", "openai", PROMPT, PARAMS, "default")]

    run_batches(benchmark, loop, op)


@pytest.mark.benchmark(group="hit-redis")
def test_hit_redis_cache(benchmark: Any, loop: asyncio.AbstractEventLoop, redis_url: str) -> None:
    cache = ModelCache(backend="redis", redis_url=redis_url)
    run_batches(benchmark, loop, cache_hit_op(cache, loop))
    stats = cache.get_statistics()
    assert stats.misses == 0 and stats.errors == 0
    loop.run_until_complete(cache.aclose())


@pytest.mark.benchmark(group="hit-redis")
def test_hit_redis_plain_get(
    benchmark: Any, loop: asyncio.AbstractEventLoop, redis_url: str
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    key = python_key("gpt-4o", "openai", PROMPT, PARAMS, "default")
    loop.run_until_complete(client.set(key, json.dumps({"text": ANSWER})))

    async def op() -> str:
        raw = await client.get(python_key("gpt-4o", "openai", PROMPT, PARAMS, "default"))
        return str(json.loads(raw)["text"])

    run_batches(benchmark, loop, op)
    loop.run_until_complete(client.aclose())


@pytest.mark.benchmark(group="hit-disk")
def test_hit_disk_cache(benchmark: Any, loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    cache = ModelCache(backend="disk", path=tmp_path)
    run_batches(benchmark, loop, cache_hit_op(cache, loop))
    assert cache.get_statistics().misses == 0
    loop.run_until_complete(cache.aclose())


@pytest.mark.benchmark(group="hit-disk")
def test_hit_disk_plain_sqlite(
    benchmark: Any, loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    conn = sqlite3.connect(tmp_path / "plain.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (key TEXT PRIMARY KEY, value TEXT)")
    key = python_key("gpt-4o", "openai", PROMPT, PARAMS, "default")
    conn.execute("INSERT INTO t VALUES (?, ?)", (key, json.dumps({"text": ANSWER})))

    async def op() -> str:
        k = python_key("gpt-4o", "openai", PROMPT, PARAMS, "default")
        row = conn.execute("SELECT value FROM t WHERE key = ?", (k,)).fetchone()
        return str(json.loads(row[0])["text"])

    run_batches(benchmark, loop, op)
    conn.close()

"""Overhead of OpenAIModel over a raw httpx call and over the official openai
async client, against the same loopback server: one request at a time, and
100 concurrent requests.

Run: ``pytest benches/test_bench_providers.py --benchmark-only``
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers import OpenAIServer

from orchestrator.integrations.openai_model import OpenAIModel

KEY = "sk-bench"
MESSAGES = [{"role": "user", "content": "Say hello"}]
CONCURRENCY = 100


def _serve(conn: Any) -> None:
    """Run the loopback server in its own process (its own GIL and core)."""
    with OpenAIServer(api_key=KEY, record=False) as s:
        conn.send((s.url, s.reply))
        conn.recv()  # until told to stop


@dataclass
class Remote:
    url: str
    reply: str


@pytest.fixture(scope="module")
def server() -> Iterator[Remote]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_serve, args=(child,), daemon=True)
    process.start()
    try:
        url, reply = parent.recv()
        yield Remote(url, reply)
    finally:
        parent.send("stop")
        process.join(10)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


Call = Callable[[], Awaitable[str]]


def make_raw(server: Remote) -> Call:
    client = httpx.AsyncClient(
        base_url=server.url, limits=httpx.Limits(max_connections=256, max_keepalive_connections=128)
    )
    headers = {"Authorization": f"Bearer {KEY}"}

    async def call() -> str:
        response = await client.post(
            "/chat/completions", json={"model": "gpt-4", "messages": MESSAGES}, headers=headers
        )
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"])

    return call


def make_ours(server: Remote) -> Call:
    model = OpenAIModel("gpt-4", api_key=KEY, base_url=server.url)

    async def call() -> str:
        return await model.generate_response(MESSAGES)

    return call


def make_sdk(server: Remote) -> Call:
    client = openai.AsyncOpenAI(api_key=KEY, base_url=server.url, max_retries=0)

    async def call() -> str:
        done = await client.chat.completions.create(model="gpt-4", messages=MESSAGES)  # type: ignore[arg-type]
        return str(done.choices[0].message.content)

    return call


MAKERS: dict[str, Callable[[Remote], Call]] = {
    "raw-httpx": make_raw,
    "orchestrator": make_ours,
    "openai-sdk": make_sdk,
}


def _run(loop: asyncio.AbstractEventLoop, fn: Callable[[], Awaitable[Any]]) -> Any:
    return loop.run_until_complete(fn())


@pytest.mark.parametrize("client", list(MAKERS))
def test_single_request(
    benchmark: Any, server: Remote, loop: asyncio.AbstractEventLoop, client: str
) -> None:
    benchmark.group = "one request"

    async def build() -> Call:
        return MAKERS[client](server)

    call = _run(loop, build)
    assert _run(loop, call) == server.reply  # warm the pool
    result = benchmark.pedantic(
        lambda: _run(loop, call), rounds=300, iterations=1, warmup_rounds=20
    )
    assert result == server.reply


@pytest.mark.parametrize("client", list(MAKERS))
def test_concurrent_requests(
    benchmark: Any, server: Remote, loop: asyncio.AbstractEventLoop, client: str
) -> None:
    benchmark.group = f"{CONCURRENCY} concurrent requests"

    async def build() -> Call:
        return MAKERS[client](server)

    call = _run(loop, build)

    async def batch() -> list[str]:
        return list(await asyncio.gather(*(call() for _ in range(CONCURRENCY))))

    _run(loop, batch)  # open the connections
    result = benchmark.pedantic(lambda: _run(loop, batch), rounds=40, iterations=1, warmup_rounds=3)
    assert result == [server.reply] * CONCURRENCY

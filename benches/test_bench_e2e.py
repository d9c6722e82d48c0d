"""End-to-end overhead: one chat completion against a loopback server that
answers like OpenAI after a fixed delay, at 1 and 100 concurrent requests.

Contenders, all in one event loop, against the same server (the providers'
``tests/servers/openai_server.py``, run in a child process so it does not
share the client's GIL):

* ``raw httpx``: one pooled ``httpx.AsyncClient`` POSTing the request and
  reading the JSON answer: the floor every client pays.
* ``orchestrator``: a registry of five ``OpenAIModel``\\s pointing at the
  server; ``await registry.generate(messages)`` (select, cache lookup, call,
  report). If ``generate`` is missing, ``select_model`` + ``generate_response``.
* ``LiteLLM``: ``Router`` with the same five deployments and
  ``simple-shuffle`` (the strategy LiteLLM recommends for throughput);
  ``await router.acompletion(model=..., messages=...)``.

Overhead = contender's median - raw httpx's median (``benches/run.py``); at
100 concurrent requests, per request = batch difference / 100.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from bench_common import BENCH_DIR, QUICK, litellm_router

DELAY_S = 0.010
MODELS = 5
MESSAGES = [{"role": "user", "content": "Say hello in five words."}]
CONCURRENCY = (1, 100)
ROUNDS = {1: 60 if QUICK else 200, 100: 10 if QUICK else 30}

SERVER = """
import sys
from tests.servers.openai_server import OpenAIServer
server = OpenAIServer(answer_delay=float(sys.argv[1]), record=False)
print(server.start(), flush=True)
sys.stdin.read()
server.stop()
"""


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    root = BENCH_DIR.parent
    if not (root / "tests" / "servers" / "openai_server.py").exists():
        pytest.skip("tests/servers/openai_server.py is not there")
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(DELAY_S)],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert proc.stdout is not None and proc.stdin is not None
    url = proc.stdout.readline().strip()
    try:
        yield url
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def _bench(
    benchmark: Any,
    loop: asyncio.AbstractEventLoop,
    one: Callable[[], Awaitable[str]],
    concurrency: int,
    contender: str,
) -> None:
    async def batch() -> list[str]:
        if concurrency == 1:
            return [await one()]
        return list(await asyncio.gather(*(one() for _ in range(concurrency))))

    for _ in range(3):  # warm-up: connections open, caches filled
        answers = loop.run_until_complete(batch())
    assert all(a for a in answers), answers
    benchmark.group = f"e2e concurrency={concurrency}"
    benchmark.extra_info.update(
        contender=contender, concurrency=concurrency, server_delay_s=DELAY_S
    )
    benchmark.pedantic(
        lambda: loop.run_until_complete(batch()),
        rounds=ROUNDS[concurrency],
        iterations=1,
        warmup_rounds=1,
    )


@pytest.mark.parametrize("concurrency", CONCURRENCY)
def test_e2e_raw_httpx(
    benchmark: Any, loop: asyncio.AbstractEventLoop, server_url: str, concurrency: int
) -> None:
    async def make() -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=server_url,
            headers={"Authorization": "Bearer sk-bench"},
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
            timeout=30.0,
        )

    client = loop.run_until_complete(make())

    async def one() -> str:
        r = await client.post(
            "/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES}
        )
        r.raise_for_status()
        return str(r.json()["choices"][0]["message"]["content"])

    try:
        _bench(benchmark, loop, one, concurrency, "raw httpx")
    finally:
        loop.run_until_complete(client.aclose())


def _orchestrator(server_url: str) -> tuple[Any, Callable[[], Awaitable[str]], str]:
    from orchestrator.core.model import ModelCapabilities, ModelCost
    from orchestrator.integrations.openai_model import OpenAIModel
    from orchestrator.models.model_registry import ModelRegistry

    registry = ModelRegistry()
    for i in range(MODELS):
        registry.register_model(
            OpenAIModel(
                f"gpt-4o-mini-{i}",
                api_key="sk-bench",
                base_url=server_url,
                model_id="gpt-4o-mini",
                capabilities=ModelCapabilities(chat=True, context_length=128000),
                cost=ModelCost(input_per_million=0.15, output_per_million=0.6),
                validate_model=False,
            )
        )
    if hasattr(registry, "generate"):

        async def one() -> str:
            result = await registry.generate(MESSAGES)
            return str(result.text)

        return registry, one, "orchestrator registry.generate"

    async def one_manual() -> str:
        model = registry.select_model()
        return str(await model.generate_response(MESSAGES))

    return registry, one_manual, "orchestrator select_model + generate_response"


@pytest.mark.parametrize("concurrency", CONCURRENCY)
def test_e2e_orchestrator(
    benchmark: Any, loop: asyncio.AbstractEventLoop, server_url: str, concurrency: int
) -> None:
    registry, one, contender = _orchestrator(server_url)
    try:
        _bench(benchmark, loop, one, concurrency, contender)
    finally:
        for model in registry:
            loop.run_until_complete(model.aclose())


@pytest.mark.parametrize("concurrency", CONCURRENCY)
def test_e2e_litellm(
    benchmark: Any, loop: asyncio.AbstractEventLoop, server_url: str, concurrency: int
) -> None:
    import litellm
    from litellm import Router

    litellm_router(1, "simple-shuffle")  # quiet its loggers
    litellm.telemetry = False
    router = Router(
        model_list=[
            {
                "model_name": "bench",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_key": "sk-bench",
                    "api_base": server_url,
                },
                "model_info": {"id": f"deployment-{i}"},
            }
            for i in range(MODELS)
        ],
        routing_strategy="simple-shuffle",
    )

    async def one() -> str:
        response = await router.acompletion(model="bench", messages=MESSAGES)
        return str(response.choices[0].message.content)

    _bench(benchmark, loop, one, concurrency, "LiteLLM Router.acompletion (simple-shuffle)")

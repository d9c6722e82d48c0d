"""The provider transport alone: CPU per call to the benchmark's upstream.

    python benches/gateway_transport.py            # 3,000 calls per contender and concurrency
    python benches/gateway_transport.py --calls 500

Same upstream as ``benches/gateway.py`` (``gateway_upstream.py``, answering at
once), same request, one uvloop event loop, at concurrency 1 and 16:

* ``httpx client (stock)``: ``httpx.AsyncClient.post`` on httpx's own pool,
  what the adapters used before (the baseline);
* ``orchestrator Transport``: :class:`~orchestrator.integrations._http.Transport`
  ``request_json`` through a :class:`ClientPool` (the adapters' path: asyncio
  network backend, linear pool scheduling, requests handed to the transport);
* ``aiohttp (reference)``: ``aiohttp.ClientSession.post``, when aiohttp is
  installed; a reference only, never a dependency.

CPU is ``time.process_time`` of this process per call (user + system: the
send system calls count), so other load on the machine does not inflate it.
Writes ``benches/results/gateway_transport.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import uvloop

from gateway import RESULTS, free_port, process, upstream_command, wait_ready
from orchestrator.integrations import ClientPool
from orchestrator.integrations._http import Endpoint, Transport

aiohttp: Any
try:  # a reference only, when installed; never a dependency
    import aiohttp
except ImportError:  # pragma: no cover - depends on the environment
    aiohttp = None

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is 6 x 7?"}]}
HEADERS = {"authorization": "Bearer sk-bench-upstream", "content-type": "application/json"}
Call = Callable[[], Awaitable[Any]]


async def cpu_per_call(call: Call, calls: int, concurrency: int) -> float:
    """Microseconds of this process's CPU per call, after a warm-up."""
    for _ in range(100):
        await call()
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await call()

    started = time.process_time()
    await asyncio.gather(*(one() for _ in range(calls)))
    return 1e6 * (time.process_time() - started) / calls


async def contenders(base: str) -> dict[str, tuple[Call, Callable[[], Awaitable[None]]]]:
    """Each contender's call and how to close it."""
    url = f"{base}/v1/chat/completions"
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=20)
    stock = httpx.AsyncClient(limits=limits, timeout=None)

    async def stock_call() -> Any:
        return (await stock.post(url, json=BODY, headers=HEADERS)).json()

    pool = ClientPool()
    transport = Transport(Endpoint.parse(f"{base}/v1"), "bench", headers=lambda: HEADERS, pool=pool)

    async def ours() -> Any:
        return await transport.request_json("POST", "/chat/completions", json_body=BODY)

    found: dict[str, tuple[Call, Callable[[], Awaitable[None]]]] = {
        "httpx client (stock)": (stock_call, stock.aclose),
        "orchestrator Transport": (ours, pool.aclose),
    }
    if aiohttp is not None:
        session = aiohttp.ClientSession()

        async def reference() -> Any:
            async with session.post(url, json=BODY, headers=HEADERS) as response:
                return await response.json()

        found["aiohttp (reference)"] = (reference, session.close)
    return found


async def measure(base: str, calls: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name, (call, close) in (await contenders(base)).items():
        results[name] = {f"concurrency {c}": await cpu_per_call(call, calls, c) for c in (1, 16)}
        await close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per measurement")
    options = parser.parse_args()
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="transport-bench-"))
    with process(upstream_command(port, 0), work / "upstream.log") as upstream:
        wait_ready(upstream, f"http://127.0.0.1:{port}/v1/models", work / "upstream.log", 60)
        results = uvloop.run(measure(f"http://127.0.0.1:{port}", options.calls))
    report = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "calls": options.calls,
        "cpu_us_per_call": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gateway_transport.json").write_text(json.dumps(report, indent=2) + "\n")
    for name, figures in results.items():
        row = ", ".join(f"{k}: {v:.0f} us" for k, v in figures.items())
        sys.stdout.write(f"{name:24s} {row}\n")


if __name__ == "__main__":
    main()

"""Shared state speed: selection with ``state="redis://..."`` next to
``state="local"`` (the network is off the selection path), and the
background sync's cost at 1,000 outcomes per second.

Run: ``pytest benches/test_bench_shared.py`` (starts its own redis-server).
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.model import Model, ModelCapabilities, ModelCost, Prompt
from orchestrator.models.health_monitor import ModelHealthMonitor
from orchestrator.models.model_registry import ModelRegistry

logger = logging.getLogger(__name__)

MODELS = 8
RATE = 1_000  # outcomes per second for the sync-cost measurement
DURATION = 4.0


class BenchModel(Model):
    async def generate_response(self, prompt: Prompt, **kwargs: Any) -> str:
        return "ok"

    async def health_check(self) -> bool:
        return True


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory: Path = tmp_path_factory.mktemp("redis")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", str(directory)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    yield f"redis://127.0.0.1:{port}/0"
    proc.kill()
    proc.wait()


def registry_for(state: str, namespace: str) -> ModelRegistry:
    registry = ModelRegistry(
        health_monitor=ModelHealthMonitor(failure_threshold=1_000_000, error_rate_threshold=1.0),
        state=state,
        state_namespace=namespace,
    )
    for i in range(MODELS):
        registry.register_model(
            BenchModel(
                f"model-{i}",
                "bench",
                ModelCapabilities(text_generation=True, chat=True, context_length=8192),
                ModelCost(input_per_million=1.0 + i, output_per_million=2.0 + i),
                speed=100.0,
            )
        )
    for model in list(registry):  # past the forced trials
        for _ in range(10):
            registry.report_outcome(model.name, True, 0.2)
    return registry


def close(registry: ModelRegistry) -> None:
    if registry.shared_state is not None:
        registry.shared_state.close()


@pytest.mark.benchmark(group="select_model")
@pytest.mark.parametrize("state", ["local", "redis"])
def test_select_model(benchmark: Any, state: str, redis_url: str) -> None:
    registry = registry_for("local" if state == "local" else redis_url, f"bench-select-{state}")
    try:
        model = benchmark(registry.select_model)
        assert model.name.startswith("model-")
    finally:
        close(registry)


@pytest.mark.benchmark(group="select_and_report")
@pytest.mark.parametrize("state", ["local", "redis"])
def test_select_and_report(benchmark: Any, state: str, redis_url: str) -> None:
    """A worker's loop: select, then report the outcome (which the
    background sync ships to Redis every 0.5 s in the redis case)."""
    registry = registry_for("local" if state == "local" else redis_url, f"bench-round-{state}")
    counter = [0]

    def round_trip() -> None:
        selection = registry.select()
        counter[0] += 1
        registry.report_outcome(selection, counter[0] % 10 != 0, 0.2)

    try:
        benchmark(round_trip)
        if registry.shared_state is not None:
            assert registry.shared_state.sync_now()
            benchmark.extra_info["sync_cycles"] = registry.shared_state.stats.cycles
    finally:
        close(registry)


def test_sync_cost_at_1000_outcomes_per_second(redis_url: str) -> None:
    """CPU time of the sync thread (``time.thread_time`` inside it) while the
    worker reports ``RATE`` outcomes per second, per second of wall time."""
    registry = registry_for(redis_url, "bench-sync-cost")
    shared = registry.shared_state
    assert shared is not None
    assert shared.sync_now()
    cpu0, cycles0 = shared.stats.cpu_seconds, shared.stats.cycles
    start = time.monotonic()
    sent = 0
    while (now := time.monotonic()) - start < DURATION:
        due = int((now - start) * RATE)
        while sent < due:
            selection = registry.select()
            registry.report_outcome(selection, sent % 10 != 0, 0.2)
            sent += 1
        time.sleep(0.001)
    elapsed = time.monotonic() - start
    cpu = shared.stats.cpu_seconds - cpu0
    cycles = shared.stats.cycles - cycles0
    # One cycle measured directly, with a batch of 500 outcomes waiting.
    for i in range(500):
        registry.report_outcome(f"model-{i % MODELS}", True, 0.2)
    t0 = time.perf_counter()
    assert shared.sync_now()
    one_cycle = time.perf_counter() - t0
    logger.warning(
        "sync cost at %d outcomes/s: %.2f ms CPU per second (%.3f%% of a core), "
        "%d cycles, %.3f ms CPU per cycle; one cycle with 500 outcomes: %.3f ms wall",
        sent / elapsed,
        1000 * cpu / elapsed,
        100 * cpu / elapsed,
        cycles,
        1000 * cpu / max(cycles, 1),
        1000 * one_cycle,
    )
    assert cycles >= DURATION / shared.sync_interval - 2
    assert cpu / elapsed < 0.05  # well under 5% of a core
    close(registry)

"""Shared state speed: selection with ``state="redis://..."`` next to
``state="local"`` (the network is off the selection path), and the
background sync's cost at 1,000 outcomes per second.

It also measures what an outage costs: ``close()`` with Redis stopped (bounded
by ``CLOSE_TIMEOUT_S``; the undelivered outcomes go to the spool) and the sync
cycle that restores a worker's outcomes after Redis came back from an older
snapshot.

Run: ``pytest benches/test_bench_shared.py`` (starts its own redis-servers).
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.core.model import Model, ModelCapabilities, ModelCost, Prompt
from orchestrator.models.health_monitor import ModelHealthMonitor
from orchestrator.models.model_registry import ModelRegistry
from orchestrator.models.shared_spool import SPOOL_DIR_ENV
from orchestrator.models.shared_state import SharedState

logger = logging.getLogger(__name__)

MODELS = 8
RATE = 1_000  # outcomes per second for the sync-cost measurement
DURATION = 4.0


class BenchModel(Model):
    async def generate_response(self, prompt: Prompt, **kwargs: Any) -> str:
        return "ok"

    async def health_check(self) -> bool:
        return True


def start_redis(directory: Path, port: int = 0) -> tuple[subprocess.Popen[bytes], int]:
    """A redis-server on a free loopback port (or ``port``), no automatic saves."""
    if not port:
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
            return proc, port
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def stop_redis(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, port = start_redis(tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{port}/0"
    stop_redis(proc)


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Spools of the outage benchmarks go to the test's folder."""
    monkeypatch.setenv(SPOOL_DIR_ENV, str(tmp_path / "spool"))
    return tmp_path / "spool"


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


@pytest.mark.benchmark(group="outage")
def test_close_with_redis_stopped(benchmark: Any, tmp_path: Path, spool_dir: Path) -> None:
    """``close()`` after Redis was killed: joins the threads, spools the
    undelivered outcomes, returns within ``CLOSE_TIMEOUT_S``."""

    def setup() -> tuple[tuple[SharedState], dict[str, Any]]:
        proc, port = start_redis(tmp_path)
        registry = registry_for(f"redis://127.0.0.1:{port}/0", "bench-close")
        shared = registry.shared_state
        assert shared is not None and shared.sync_now()
        for i in range(500):
            registry.report_outcome(f"model-{i % MODELS}", i % 7 != 0, 0.2)
        stop_redis(proc)
        assert not shared.sync_now()
        return (shared,), {}

    benchmark.pedantic(lambda shared: shared.close(), setup=setup, rounds=5)
    assert len(list(spool_dir.rglob("*.json"))) == 5
    assert not [t for t in threading.enumerate() if t.name.startswith("orchestrator-shared")]


@pytest.mark.benchmark(group="outage")
def test_restore_after_an_older_snapshot(benchmark: Any, tmp_path: Path) -> None:
    """The sync cycle that finds this worker's ledger behind (Redis restarted
    from an older RDB) and restores the missing outcomes of its models."""
    proc, port = start_redis(tmp_path)
    url = f"redis://127.0.0.1:{port}/0"
    registry = registry_for(url, "bench-restore")
    shared = registry.shared_state
    assert shared is not None and shared.sync_now()
    client = redis.Redis.from_url(url)
    assert client.save()
    snapshot = tmp_path / "older.rdb"
    shutil.copyfile(tmp_path / "dump.rdb", snapshot)
    client.close()
    state = {"proc": proc}

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        for i in range(1_000):
            registry.report_outcome(f"model-{i % MODELS}", i % 5 != 0, 0.2)
        assert shared.sync_now()
        stop_redis(state["proc"])
        shutil.copyfile(snapshot, tmp_path / "dump.rdb")
        state["proc"], _ = start_redis(tmp_path, port)
        return (), {}

    restores = shared.stats.restores
    benchmark.pedantic(lambda: shared.sync_now(), setup=setup, rounds=5)
    assert shared.stats.restores == restores + 5
    close(registry)
    stop_redis(state["proc"])

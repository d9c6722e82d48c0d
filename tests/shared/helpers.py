"""Running worker processes (spawn) in step, and reading shared totals."""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import redis

from tests.redis_server import RedisServer
from tests.shared.workers import entry


def run_workers(
    name: str,
    per_worker: list[dict[str, Any]],
    timeout: float = 60.0,
    while_running: Optional[Callable[[], None]] = None,
) -> list[Any]:
    """Run ``workers.<name>`` in one spawned process per kwargs dict; they
    start together (a barrier, which ``while_running`` also waits on)."""
    ctx = multiprocessing.get_context("spawn")
    results: Any = ctx.Queue()
    barrier = ctx.Barrier(len(per_worker) + 1)
    procs = [
        ctx.Process(target=entry, args=(results, barrier, i, name, kwargs), daemon=True)
        for i, kwargs in enumerate(per_worker)
    ]
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=30)
        if while_running is not None:
            while_running()
        out: dict[int, Any] = {}
        deadline = time.monotonic() + timeout
        while len(out) < len(procs):
            try:
                index, result = results.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue_module.Empty:
                raise AssertionError(f"workers did not finish within {timeout} s") from None
            if isinstance(result, dict) and "error" in result:
                raise AssertionError(f"worker {index} failed:\n{result['error']}")
            out[index] = result
        return [out[i] for i in range(len(procs))]
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()


def totals(url: str, namespace: str) -> dict[str, float]:
    """The namespace's undiscounted totals hash, decoded."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        raw = client.hgetall(f"orchestrator:{{{namespace}}}:totals")
    finally:
        client.close()
    return {str(k): float(v) for k, v in raw.items()}


class Snapshot:
    """An RDB copy of a test's Redis, to bring it back older: ``take()`` saves
    and copies the dump, ``restore()`` kills the server and restarts it on that
    copy (as a restart from an older snapshot or a lagging replica would)."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.copy = server.dir / "older.rdb"

    def take(self) -> None:
        assert self.server.command(b"SAVE") == b"+OK"
        shutil.copyfile(self.server.dir / "dump.rdb", self.copy)

    def restore(self) -> None:
        self.server.kill()
        shutil.copyfile(self.copy, self.server.dir / "dump.rdb")
        self.server.start()


def spool_files(folder: Path) -> list[Path]:
    """Every spool file (claimed or not) under ``folder``."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def thread_names() -> set[str]:
    """Names of this process's live threads of the shared state."""
    return {t.name for t in threading.enumerate() if t.name.startswith("orchestrator-shared")}

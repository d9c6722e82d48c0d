"""Running worker processes (spawn) in step, and reading shared totals."""

from __future__ import annotations

import contextlib
import multiprocessing
import queue as queue_module
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import redis

from orchestrator.models.model_registry import ModelRegistry
from orchestrator.models.shared_state import SharedState
from tests.redis_server import RedisServer
from tests.shared.workers import entry


def run_workers(
    name: str,
    per_worker: list[dict[str, Any]],
    timeout: float = 60.0,
    while_running: Optional[Callable[[], None]] = None,
) -> list[Any]:
    """Run ``workers.<name>`` (or ``module:function``) in one spawned process
    per kwargs dict; they start together (a barrier, which ``while_running``
    also waits on)."""
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


def shared_of(registry: ModelRegistry) -> SharedState:
    """The registry's shared state (it must have one)."""
    assert registry.shared_state is not None
    return registry.shared_state


def report(registry: ModelRegistry, name: str, ok: bool, times: int) -> None:
    """Report ``times`` outcomes of ``name`` (3 input and 4 output tokens each)."""
    for _ in range(times):
        registry.report_outcome(name, ok, 0.2, input_tokens=3, output_tokens=4)


def read_hash(url: str, namespace: str, name: str) -> dict[str, float]:
    """One of the namespace's hashes of numbers (``totals``, ``discounted``), decoded."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        raw = client.hgetall(f"orchestrator:{{{namespace}}}:{name}")
    finally:
        client.close()
    return {str(k): float(v) for k, v in raw.items()}


def totals(url: str, namespace: str) -> dict[str, float]:
    """The namespace's undiscounted totals hash, decoded."""
    return read_hash(url, namespace, "totals")


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


class HangingProxy:
    """A TCP proxy in front of a Redis that can start to hang: connections stay
    open but nothing is forwarded any more (a network partition, or a Redis
    stuck in a long command), so clients block until their timeouts. It can
    also cut one reply short, leaving its client blocked inside a half-read reply."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.hanging = threading.Event()
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = []
        self._cut_lock = threading.Lock()
        self._cut: Optional[threading.Event] = None
        threading.Thread(target=self._accept, name="test-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def hang(self) -> None:
        self.hanging.set()

    def resume(self) -> None:
        """Forward new connections again (the hung ones stay silent)."""
        self.hanging.clear()

    def cut_next_reply(self) -> threading.Event:
        """Forward only the first byte of the next data Redis sends, on
        whichever connection, and nothing more on that connection; the event
        is set once that byte is forwarded (its client is then blocked
        reading the rest, until its socket timeout)."""
        with self._cut_lock:
            self._cut = threading.Event()
            return self._cut

    def fail_over(self, port: int) -> None:
        """Send new connections to another Redis and cut the current ones (as
        a virtual IP or a Sentinel-managed address moving to a replica)."""
        self.upstream_port = port
        for sock in list(self.sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed.set()
        for sock in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            if self.hanging.is_set():
                continue  # accepted, never answered
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.sockets.append(upstream)
            for a, b, replies in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(a, b, replies), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        """Forward ``source`` to ``sink``; ``replies``: ``source`` is Redis."""
        stalled = False
        while not self.closed.is_set():
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            if replies and not stalled:
                with self._cut_lock:
                    cut, self._cut = self._cut, None
                if cut is not None:
                    stalled = True
                    with contextlib.suppress(OSError):
                        sink.sendall(data[:1])
                    cut.set()
            if not self.hanging.is_set() and not stalled:
                with contextlib.suppress(OSError):
                    sink.sendall(data)

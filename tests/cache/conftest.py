"""Fixtures of the cache tests: a real ``redis-server`` on a free loopback
port (killable and restartable on the same port) and a small test model."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

import pytest

from orchestrator.core.model import Model, ModelCapabilities, ModelCost, Prompt
from orchestrator.errors import ServerError

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A ``redis-server`` process the test owns: no persistence, loopback only."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.log = directory / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.proc is None, "already running"
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.dir), "--logfile", str(self.log)]
        args += ["--protected-mode", "no"]
        self.proc = subprocess.Popen(
            [REDIS_SERVER, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log.read_text(errors='replace')}")
            if self.command(b"PING") == b"+PONG":
                return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not answer PING within 10 s")

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def restart(self) -> None:
        """Kill if running, then start again on the same port (empty)."""
        self.kill()
        self.start()

    def command(self, *parts: bytes) -> Optional[bytes]:
        """Send one command over a raw socket; the reply's first line, or None."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                msg = b"*%d\r\n" % len(parts) + b"".join(
                    b"$%d\r\n%s\r\n" % (len(p), p) for p in parts
                )
                s.sendall(msg)
                data = b""
                while b"\r\n" not in data:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                return data.split(b"\r\n", 1)[0]
        except OSError:
            return None

    def info(self, section: str) -> dict[str, str]:
        """``INFO section`` parsed into a dict."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"*2\r\n$4\r\nINFO\r\n$%d\r\n%s\r\n" % (len(section), section.encode()))
            data = b""
            header = b""
            while True:
                data += s.recv(65536)
                if b"\r\n" in data and not header:
                    header, _, _ = data.partition(b"\r\n")
                length = int(header[1:]) if header else -1
                if header and len(data) >= len(header) + 2 + length + 2:
                    break
        body = data.split(b"\r\n", 1)[1].decode()
        out: dict[str, str] = {}
        for line in body.splitlines():
            if ":" in line and not line.startswith("#"):
                k, _, v = line.partition(":")
                out[k] = v
        return out


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


class CountingModel(Model):
    """A test model that counts provider calls and answers deterministically."""

    def __init__(
        self,
        name: str = "test-model",
        provider: str = "test",
        *,
        delay: float = 0.0,
        embeddings: bool = True,
    ) -> None:
        super().__init__(
            name,
            provider,
            ModelCapabilities(chat=True, supports_streaming=True, embeddings=embeddings),
            ModelCost(input_per_million=1000.0, output_per_million=2000.0),
        )
        self.delay = delay
        self.calls = 0
        self.stream_calls = 0
        self.embedded: list[list[str]] = []
        self.fail_with: Optional[Exception] = None
        self.answer: Optional[str] = None
        #: Raise after this many chunks of a stream (a cut-off connection).
        self.stream_fail_after: Optional[int] = None

    async def generate_response(self, prompt: Prompt, **kwargs: Any) -> str:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with is not None:
            raise self.fail_with
        if self.answer is not None:
            return self.answer
        params = ",".join(f"{k}={kwargs[k]!r}" for k in sorted(kwargs))
        return f"{self.name} answer #{self.calls} to {prompt!r} ({params})"

    async def stream_response(self, prompt: Prompt, **kwargs: Any) -> AsyncIterator[str]:
        self.stream_calls += 1
        parts = ["streamed ", "answer ", f"#{self.stream_calls} ", f"to {prompt!r}"]
        for i, part in enumerate(parts):
            if self.stream_fail_after is not None and i == self.stream_fail_after:
                raise ServerError("connection reset mid-stream", model=self.name)
            await asyncio.sleep(0)
            yield part

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.embedded.append(list(texts))
        return [[float(len(t)), float(sum(map(ord, t)) % 997), 0.5] for t in texts]

    async def health_check(self) -> bool:
        return True


@pytest.fixture
def model() -> CountingModel:
    return CountingModel()


@pytest.fixture
def make_model() -> type[CountingModel]:
    """The test model class, for tests that need several models."""
    return CountingModel

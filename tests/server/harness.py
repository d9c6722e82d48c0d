"""Gateways for the tests: in a thread of this process (uvicorn on a free
loopback port, real HTTP) or as an ``orchestrator serve`` subprocess, over
configurations that point at the loopback provider servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import httpx
import uvicorn

from orchestrator.config import parse_config, registry_parts
from orchestrator.models.model_registry import ModelRegistry
from orchestrator.server.app import Gateway
from orchestrator.server.command import HTTP_PROTOCOL
from tests.redis_server import free_port

#: The upstream key: must never reach a gateway client or its logs.
UPSTREAM_KEY = "sk-upstream-secret-0123456789"
UPSTREAM_KEY_ENV = "GATEWAY_TEST_UPSTREAM_KEY"


def model_table(name: str, url: str, *, embeddings: bool = False, price: float = 1.0) -> str:
    """A ``[[models]]`` table for an OpenAI loopback server."""
    capabilities = ["chat", "supports_streaming", *(["embeddings"] if embeddings else [])]
    return textwrap.dedent(
        f"""
        [[models]]
        provider = "openai"
        name = "{name}"
        model_id = "gpt-4o-mini"
        base_url = "{url}"
        api_key_env = "{UPSTREAM_KEY_ENV}"
        cost = {{ input_per_million = {price}, output_per_million = {2 * price} }}
        capabilities = {capabilities!r}
        """
    ).replace("'", '"')


def config_text(models: Sequence[str], extra: str = "") -> str:
    """A whole configuration: ``extra`` (sections) first, then the models."""
    return textwrap.dedent(extra) + "\n" + "\n".join(models)


class ThreadGateway:
    """A gateway served by uvicorn in a background thread."""

    def __init__(self, text: str, http: str = HTTP_PROTOCOL) -> None:
        os.environ[UPSTREAM_KEY_ENV] = UPSTREAM_KEY
        loaded = parse_config(text)
        self.gateway = Gateway(
            ModelRegistry.from_parts(registry_parts(loaded)), loaded.config.server
        )
        config = uvicorn.Config(
            self.gateway,
            host="127.0.0.1",
            port=0,
            loop="uvloop",
            http=http,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadGateway:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)

    def stall(self, seconds: float) -> None:
        """Block the gateway's event loop for ``seconds`` from now, as a worker
        starved of CPU or stuck in a blocking call would be."""
        self.server.servers[0].get_loop().call_soon_threadsafe(time.sleep, seconds)


@contextmanager
def serve_process(
    config: Path, *, workers: int = 1, env: Optional[dict[str, str]] = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``serve(...)`` in a subprocess; yields it and its URL once ready."""
    port = free_port()
    code = (
        "from orchestrator.server.command import serve; "
        f"serve(port={port}, workers={workers}, config_path={str(config)!r})"
    )
    environment = {**os.environ, UPSTREAM_KEY_ENV: UPSTREAM_KEY, **(env or {})}
    log = config.with_suffix(".log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", code], env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield process, url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        log.close()


def wait_ready(url: str, process: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """Wait until ``/healthz`` answers (or the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the gateway did not become ready")

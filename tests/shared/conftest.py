"""Fixtures of the shared-state tests: a real ``redis-server`` on a free
loopback port, killable and restartable on the same port (empty: no
persistence), a unique namespace per test, and a spool folder per test (so
no test writes to the user's cache)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.models.shared_spool import SPOOL_DIR_ENV
from tests.redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "spool"
    monkeypatch.setenv(SPOOL_DIR_ENV, str(folder))
    return folder

"""Fixtures of the shared-state tests (the real ``redis-server`` fixture is
the suite's, in ``tests/conftest.py``): a unique namespace per test, and a
spool folder per test (so no test writes to the user's cache)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from orchestrator.models.shared_spool import SPOOL_DIR_ENV


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "spool"
    monkeypatch.setenv(SPOOL_DIR_ENV, str(folder))
    return folder

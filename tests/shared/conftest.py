"""Fixtures of the shared-state tests (the real ``redis-server`` fixture is
the suite's, in ``tests/conftest.py``): a unique namespace per test, and a
spool folder per test (so no test writes to the user's cache), and the
shared state a failed test left open closed after it, so its threads do not
fail the next test's no-thread-left checks."""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.models.shared_spool import SPOOL_DIR_ENV
from orchestrator.models.shared_state import SharedState
from tests.shared.helpers import thread_names


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "spool"
    monkeypatch.setenv(SPOOL_DIR_ENV, str(folder))
    return folder


@pytest.fixture(autouse=True)
def close_leftover_shared_state() -> Iterator[None]:
    yield
    if thread_names():  # only a test that failed before its close() leaves any
        for shared in [o for o in gc.get_objects() if isinstance(o, SharedState)]:
            shared.close()

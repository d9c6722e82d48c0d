"""``SharedState.close()`` with its threads caught mid-read: the subscriber
blocked inside a half-received message when close runs (the interleaving a
loaded machine produced about once in three closes) ends quietly, leaves no
thread, and the outcomes are still delivered."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis

from tests.redis_server import RedisServer
from tests.shared.helpers import (
    HangingProxy,
    report,
    shared_of,
    spool_files,
    thread_names,
    totals,
)
from tests.shared.workers import make_registry

pytestmark = pytest.mark.timeout(60)


def test_close_while_the_subscriber_reads_half_a_message_ends_it_quietly(
    redis_server: RedisServer, namespace: str, spool_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Reproduction: close() shut the subscriber's socket under its read, and
    the subscriber logged "breaker subscriber failed" (``ValueError: I/O
    operation on closed file``), a traceback that kept the closed state alive."""
    proxy = HangingProxy(redis_server.port)
    try:
        registry = make_registry(proxy.url, namespace, sync_interval=3600)
        report(registry, "m1", True, 3)
        state = shared_of(registry)
        assert state.wait_subscribed()
        cut = proxy.cut_next_reply()  # the sync thread is idle: the next reply is the message
        with redis.Redis.from_url(redis_server.url) as publisher:
            assert publisher.publish(state.channel, '{"w": "other", "m": "m1", "s": "opened"}')
        assert cut.wait(10)  # the subscriber now waits for the rest of the message
        with caplog.at_level(logging.DEBUG, logger="orchestrator.models.shared_state"):
            state.close()
        assert thread_names() == set()
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
        stopped = [r for r in caplog.records if "subscriber stopped" in r.getMessage()]
        assert len(stopped) == 1
        assert stopped[0].exc_info is None  # no traceback holds the closed state
        assert totals(redis_server.url, namespace)["m1:requests"] == 3  # flushed at close
        assert spool_files(spool_dir) == []
        assert state.stats.received == 0  # the half message was never taken for one
    finally:
        proxy.close()

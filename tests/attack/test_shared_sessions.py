"""Attacks on session affinity shared through a real Redis: forged and
garbage entries (session values, the session secret, channel messages), two
namespaces on one Redis (no bleed), and Redis killed and restored from an
older snapshot while sessions move."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from orchestrator.models.model_registry import ModelRegistry
from tests.affinity.test_shared import bind, until
from tests.attack.test_sessions import bound_model
from tests.conftest import ScriptedModel
from tests.redis_server import RedisServer
from tests.shared.helpers import Snapshot, shared_of
from tests.shared.workers import make_registry

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_server.url)
    try:
        yield connection
    finally:
        connection.close()


def session_keys(client: redis.Redis, namespace: str) -> list[bytes]:
    return list(client.scan_iter(f"orchestrator:{{{namespace}}}:session:*"))


def test_a_secret_that_is_not_text_is_replaced_and_sync_goes_on(
    pair: list[ModelRegistry], client: redis.Redis, namespace: str
) -> None:
    """A session secret of bytes that are not UTF-8 is as damaged as one that
    is not a number: replaced with a warning, and every cycle still syncs."""
    a, _ = pair
    bind(a, "s", "m1")
    assert shared_of(a).sync_now()
    secret_key = f"orchestrator:{{{namespace}}}:session-secret"
    client.set(secret_key, b"\xff\xfe\x00garbage")
    assert shared_of(a).sync_now(), "the cycle failed on the damaged secret"
    assert client.get(secret_key) != b"\xff\xfe\x00garbage"
    assert bound_model(a, "s") == "m1"


def test_a_session_value_that_is_not_text_is_skipped(
    pair: list[ModelRegistry], client: redis.Redis, redis_server: RedisServer, namespace: str
) -> None:
    a, b = pair
    bind(a, "s", "m1")
    assert shared_of(a).sync_now()
    (key,) = session_keys(client, namespace)
    client.set(key, b"\xff\xfe m3", ex=600)
    late = make_registry(redis_server.url, namespace, sync_interval=60.0)
    try:
        bind(late, "s", "m2")  # first seen here: Redis's binding is asked for
        assert shared_of(late).sync_now(), "the cycle failed on the damaged value"
        assert bound_model(late, "s") in ("m1", "m2"), "never the forged m3"
        bind(late, "t", "m4")  # the next cycle still works
        assert shared_of(late).sync_now()
    finally:
        late.close()
    assert bound_model(b, "s") == "m1"


def test_forged_session_messages_never_crash_the_subscriber(
    pair: list[ModelRegistry], client: redis.Redis, namespace: str
) -> None:
    a, b = pair
    channel = f"orchestrator:{{{namespace}}}:sessions"
    hex_key = b"ab" * 16
    for message in [
        b"[" * 100_000 + b"]" * 100_000,  # nested deeper than json's recursion limit
        b"\xff\xfe",
        b'{"w": "x", "b": ["' + hex_key + b'", "18446744073709551616 m1"]}',  # 2**64
        b'{"w": "x", "b": ["' + hex_key + b'", "-1 m1"]}',
        b'{"w": "x", "b": ["' + hex_key + b'", "1e3 m1"]}',
        b'{"w": "x", "b": ["' + hex_key.upper() + b'", "5 m1"]}',
        b'{"w": "x", "b": ["' + hex_key + b'", "5 "]}',
        b'{"w": "x", "b": ["' + hex_key + b'", "5 ' + b"m" * 10_000 + b'"]}',
        b'{"w": "x", "b": {"a": 1}}',
        b'{"w": ["x"], "b": []}',
        b'{"w": "x", "b": ["' + hex_key + b'"]}',  # odd length
        b"null",
        b"12",
    ]:
        client.publish(channel, message)
    bind(b, "t", "m3")
    shared_of(b).sync_now()
    until(lambda: bound_model(a, "t") == "m3", "a valid message after the forged ones")
    assert a.core.session_counts()[0] == 1, "no forged entry was applied"


def test_two_namespaces_on_one_redis_share_no_sessions(
    redis_server: RedisServer, client: redis.Redis, namespace: str
) -> None:
    """Even with one namespace's session keys copied into the other's, the
    same id hashes differently there (each namespace has its own secret)."""
    first = make_registry(redis_server.url, namespace, sync_interval=60.0)
    other_namespace = namespace + "-other"
    second = make_registry(redis_server.url, other_namespace, sync_interval=60.0)
    try:
        assert shared_of(second).wait_subscribed(10.0)
        bind(first, "s", "m1")
        assert shared_of(first).sync_now()
        assert shared_of(second).sync_now()
        for key in session_keys(client, namespace):
            copied = key.replace(namespace.encode(), other_namespace.encode(), 1)
            client.set(copied, client.get(key) or b"", ex=600)
        bind(second, "s", "m4")
        assert shared_of(second).sync_now()
        assert bound_model(second, "s") == "m4"
        assert bound_model(first, "s") == "m1"
    finally:
        first.close()
        second.close()


def listening_again(listener: ModelRegistry, sender: ModelRegistry) -> None:
    """Wait until a new binding made on ``sender`` reaches ``listener`` (its
    subscriber is back: bindings published before that are missed)."""
    deadline = time.monotonic() + 20.0
    for probe in range(1_000_000):
        bind(sender, f"probe-{probe}", "m0")
        assert shared_of(sender).sync_now()
        arrived = time.monotonic() + 0.5
        while time.monotonic() < arrived:
            if bound_model(listener, f"probe-{probe}") == "m0":
                return
            time.sleep(0.01)
        assert time.monotonic() < deadline, "the listener never subscribed again"


def test_a_move_after_redis_comes_back_from_an_older_snapshot_reaches_every_worker(
    pair: list[ModelRegistry], redis_server: RedisServer
) -> None:
    """Redis restarted from an older snapshot has an older session version
    counter. A move made after that must still replace every worker's
    binding, including the worker that holds a version from before."""
    a, b = pair
    bind(a, "s", "m1")
    assert shared_of(a).sync_now()
    until(lambda: bound_model(b, "s") == "m1", "the first binding")
    snapshot = Snapshot(redis_server)
    snapshot.take()
    for turn in range(50):  # moved many times: a version far newer than the snapshot's
        bind(a, "s", ("m2", "m4")[turn % 2])
        assert shared_of(a).sync_now()
    bind(a, "s", "m2")
    assert shared_of(a).sync_now()
    until(lambda: bound_model(b, "s") == "m2", "the first move")
    snapshot.restore()
    for registry in pair:
        until(lambda r=registry: shared_of(r).sync_now(), "Redis to be back")  # type: ignore[misc]
    listening_again(a, b)
    bind(b, "s", "m3")  # moved again, on b: the restored counter numbers it below a's version
    assert shared_of(b).sync_now()
    until(lambda: bound_model(a, "s") == "m3", "the move after the restore to reach a", timeout=5.0)


def test_sessions_bound_during_an_outage_are_bounded_and_sent_when_redis_is_back(
    redis_server: RedisServer, namespace: str
) -> None:
    registry = ModelRegistry(
        state=redis_server.url, state_namespace=namespace, sync_interval=60.0, max_sessions=10
    )
    try:
        for name in ("m0", "m1"):
            registry.register_model(ScriptedModel(name))
        assert shared_of(registry).sync_now()
        redis_server.kill()
        for index in range(100):
            registry.cancel(registry.select(session_id=f"outage-{index}"))
        assert not shared_of(registry).sync_now()
        assert registry.core.session_counts()[0] == 10
        redis_server.start()
        until(lambda: shared_of(registry).sync_now(), "Redis to be back")
        reconnected = redis.Redis.from_url(redis_server.url)
        try:
            assert len(session_keys(reconnected, namespace)) == 10, "the ten held, not all 100"
        finally:
            reconnected.close()
        assert registry.core.outstanding_tickets() == 0
    finally:
        registry.close()

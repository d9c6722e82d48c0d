"""Session affinity shared through a real Redis: a binding made by one
worker reaches the others (spawned processes, and registries in this
process), the first binding of a new session wins, a move replaces every
worker's binding, and the Redis keys expire with the session TTL."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from orchestrator.models.model_registry import ModelRegistry
from tests.redis_server import RedisServer
from tests.shared.helpers import run_workers, shared_of
from tests.shared.workers import RATES, SimModel, make_registry

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def namespace() -> str:
    return f"affinity-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pair(redis_server: RedisServer, namespace: str) -> Iterator[list[ModelRegistry]]:
    """Two workers of one namespace in this process, subscribed."""
    registries = [make_registry(redis_server.url, namespace, sync_interval=60.0) for _ in "ab"]
    for registry in registries:
        assert shared_of(registry).wait_subscribed(10.0)
    try:
        yield registries
    finally:
        for registry in registries:
            registry.close()


def bind(registry: ModelRegistry, session_id: str, model: str) -> None:
    """Bind the session to ``model`` (every other model excluded)."""
    others = [m.name for m in registry if m.name != model]
    assert registry.select_model(session_id=session_id, exclude_models=others).name == model


def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait for a message from the other worker (pub/sub has no completion event)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def kept_on(registry: ModelRegistry, session_id: str, model: str) -> bool:
    note = registry.explain_selection(session_id=session_id).session
    return note is not None and note.startswith(f"session: kept on {model} ")


def test_a_session_started_on_one_process_continues_on_the_same_model_on_another(
    redis_server: RedisServer, namespace: str
) -> None:
    common = {"url": redis_server.url, "namespace": namespace, "bind_to": "m3"}
    first, second = run_workers("session_turns", [common, common])
    assert first == {"chosen": "m3"}
    assert second["continued_on"] == "m3"
    assert second["fresh"] != "m3", "without the session the fresh pick differs"


def test_the_first_binding_wins_and_a_move_reaches_every_worker(
    pair: list[ModelRegistry], redis_server: RedisServer, namespace: str
) -> None:
    a, b = pair
    bind(a, "s", "m1")
    bind(b, "s", "m2")  # b saw the session first too, before a's binding arrived
    shared_of(a).sync_now()
    shared_of(b).sync_now()  # Redis already holds a's binding: b adopts it
    assert kept_on(b, "s", "m1")
    until(lambda: kept_on(a, "s", "m1"), "a to keep its binding")
    # b moves the session (m1 fails there): the move replaces a's binding.
    bind(b, "s", "m4")
    shared_of(b).sync_now()
    until(lambda: kept_on(a, "s", "m4"), "the move to reach a")
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        keys = list(client.scan_iter(f"orchestrator:{{{namespace}}}:session:*"))
        assert len(keys) == 1, "one key per session"
        assert re.fullmatch("[0-9a-f]{32}", keys[0].rsplit(":", 1)[1]), "named by its hash"
        assert str(client.get(keys[0])).endswith(" m4")
        assert 0 < client.ttl(keys[0]) <= 3600, "the key expires with the session TTL"
    finally:
        client.close()


def test_a_session_used_on_one_worker_stays_alive_in_redis(
    redis_server: RedisServer, namespace: str
) -> None:
    registry = ModelRegistry(state=redis_server.url, state_namespace=namespace, session_ttl=20.0)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        for name in RATES:
            registry.register_model(SimModel(name))
        bind(registry, "s", "m0")
        shared_of(registry).sync_now()
        (key,) = client.scan_iter(f"orchestrator:{{{namespace}}}:session:*")
        assert 0 < client.ttl(key) <= 20
        client.expire(key, 2)
        registry.select_model(session_id="s")  # used again: the TTL restarts
        shared_of(registry).sync_now()
        assert client.ttl(key) > 2
        client.delete(key)  # lost in Redis (evicted): the next use writes it again
        registry.select_model(session_id="s")
        shared_of(registry).sync_now()
        assert str(client.get(key)).endswith(" m0")
    finally:
        client.close()
        registry.close()


def test_damaged_session_messages_change_nothing(
    pair: list[ModelRegistry], redis_server: RedisServer, namespace: str
) -> None:
    a, b = pair
    bind(a, "s", "m2")
    client = redis.Redis.from_url(redis_server.url)
    channel = f"orchestrator:{{{namespace}}}:sessions"
    hex_key = "0" * 32
    try:
        for message in [
            b"not json",
            b'{"w": "x"}',
            b'{"w": "x", "b": "m1"}',
            b'{"w": "x", "b": [1, 2, 3]}',
            b'{"w": "x", "b": ["zz", "1 m1"]}',
            b'{"w": "x", "b": ["' + hex_key.encode() + b'", "99999999999999999999999 m1"]}',
            b'{"w": "x", "b": ["' + hex_key.encode() + b'", "\xc2\xb2 m1"]}',
            b'{"w": "x", "b": ["' + hex_key.encode() + b'", "7 not-registered"]}',
        ]:
            client.publish(channel, message)
        # A valid message after them still arrives: the subscriber survived.
        shared_of(b).sync_now()
        bind(b, "t", "m3")
        shared_of(b).sync_now()
        until(lambda: kept_on(a, "t", "m3"), "the valid message")
    finally:
        client.close()
    assert kept_on(a, "s", "m2")
    assert a.core.session_counts()[0] == 2


def test_thousands_of_bindings_travel_in_batches(pair: list[ModelRegistry]) -> None:
    a, b = pair
    count = 2500  # more than two script calls' worth
    for i in range(count):
        a.cancel(a.select(session_id=f"conversation-{i}", exclude_models=["m0", "m1", "m2"]))
    shared_of(a).sync_now()
    until(lambda: b.core.session_counts()[0] == count, "every binding")
    assert kept_on(b, "conversation-2499", a.select_model(session_id="conversation-2499").name)


def test_a_flushed_redis_gets_the_secret_back_so_later_workers_agree(
    pair: list[ModelRegistry], redis_server: RedisServer, namespace: str
) -> None:
    a, _ = pair
    bind(a, "s", "m1")
    shared_of(a).sync_now()
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
        shared_of(a).sync_now()  # a puts its secret back (and re-creates the namespace)
        late = make_registry(redis_server.url, namespace, sync_interval=60.0)
        try:
            assert kept_on(a, "s", "m1"), "a's own sessions survive"
            bind(a, "t", "m2")
            shared_of(a).sync_now()
            bind(late, "t", "m3")  # seen first here too: Redis's binding wins
            shared_of(late).sync_now()
            assert kept_on(late, "t", "m2"), "one secret: the same key for the same id"
        finally:
            late.close()
        client.set(f"orchestrator:{{{namespace}}}:session-secret", "garbage")
        shared_of(a).sync_now()  # replaced with a's secret, with a warning
        assert client.get(f"orchestrator:{{{namespace}}}:session-secret") != b"garbage"
        assert kept_on(a, "s", "m1")
    finally:
        client.close()

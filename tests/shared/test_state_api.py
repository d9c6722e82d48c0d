"""The shared state in one process: configuration errors, exactly-once
delivery, key layout, removal, discounting, authentication and TLS."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from orchestrator.models.model_registry import ModelRegistry, UCBModelSelector
from orchestrator.models.shared_state import (
    FORMAT_VERSION,
    SharedState,
    SharedStateError,
    StateVersionError,
    redact,
)
from tests.redis_server import RedisServer, free_port
from tests.shared.helpers import shared_of, totals
from tests.shared.workers import RATES, SimModel, make_registry


def _text(value: object) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def report(registry: ModelRegistry, name: str, ok: bool, times: int = 1) -> None:
    for _ in range(times):
        registry.report_outcome(name, ok, 0.2)


def slot(registry: ModelRegistry, name: str) -> int:
    return registry._binding(registry.get_model(name)).slot


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("http://127.0.0.1:6379", "redis://"),
        ("redis://127.0.0.1:notaport/0", "Port could not be cast"),
        ("redis://127.0.0.1:99999/0", "Port out of range"),
        ("redis://127.0.0.1:6379/zero", "database 'zero' is not a number"),
        ("redis:///0", "no host"),
    ],
)
def test_bad_urls_are_clear_errors(url: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        ModelRegistry(state=url)


def test_bad_url_errors_hide_the_password() -> None:
    with pytest.raises(ValueError) as info:
        ModelRegistry(state="redis://user:s3cret@127.0.0.1:6379/zero")
    assert "s3cret" not in str(info.value)
    assert "***" in str(info.value)
    assert redact("rediss://u:pw@h:1/2") == "rediss://u:***@h:1/2"


@pytest.mark.parametrize("bad", ["", "has space", "{tag}", "a}b", "x" * 101, 7, "-lead"])
def test_bad_namespaces_are_clear_errors(redis_server: RedisServer, bad: object) -> None:
    with pytest.raises(ValueError, match="invalid state_namespace"):
        ModelRegistry(state=redis_server.url, state_namespace=bad)  # type: ignore[arg-type]


def test_bad_sync_interval(redis_server: RedisServer) -> None:
    with pytest.raises(ValueError, match="sync_interval"):
        ModelRegistry(state=redis_server.url, sync_interval=0)


def test_version_mismatch_is_an_error(redis_server: RedisServer, namespace: str) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.hset(f"orchestrator:{{{namespace}}}:meta", mapping={"version": "999", "epoch": "x"})
    with pytest.raises(StateVersionError, match="format version '999'"):
        ModelRegistry(state=redis_server.url, state_namespace=namespace)
    client.close()


def test_discount_mismatch_is_an_error(redis_server: RedisServer, namespace: str) -> None:
    first = make_registry(redis_server.url, namespace)
    with pytest.raises(SharedStateError, match="same selector settings"):
        make_registry(redis_server.url, namespace, discount=0.99)
    shared_of(first).close()


def test_keys_share_one_cluster_slot(redis_server: RedisServer, namespace: str) -> None:
    registry = make_registry(redis_server.url, namespace)
    report(registry, "m1", True)
    registry.select_model(session_id="conversation")
    assert shared_of(registry).sync_now()
    client = redis.Redis.from_url(redis_server.url)
    keys = [_text(k) for k in client.keys(f"orchestrator:{{{namespace}}}:*")]
    assert any(":session:" in k for k in keys)
    per_worker_or_session = (":ledger:", ":session:")
    assert {
        k.rsplit(":", 1)[0] for k in keys if not any(part in k for part in per_worker_or_session)
    } == {f"orchestrator:{{{namespace}}}"}
    assert len({key_slot(k.encode()) for k in keys}) == 1  # the {namespace} hash tag
    meta = client.hgetall(f"orchestrator:{{{namespace}}}:meta")
    assert meta[b"version"] == str(FORMAT_VERSION).encode()
    client.close()
    shared_of(registry).close()


def test_a_batch_whose_reply_was_lost_is_counted_once(
    redis_server: RedisServer, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = make_registry(redis_server.url, namespace)
    shared = shared_of(registry)
    report(registry, "m2", True, times=7)
    report(registry, "m2", False, times=3)
    real_apply = shared._apply
    calls = []

    def apply_then_lose_reply(ledger, seq, counters):  # type: ignore[no-untyped-def]
        calls.append(seq)
        reply = real_apply(ledger, seq, counters)
        if len(calls) == 1:
            raise redis.exceptions.ConnectionError("reply lost")
        return reply

    monkeypatch.setattr(shared, "_apply", apply_then_lose_reply)
    assert not shared.sync_now()  # applied in Redis, but the worker does not know
    assert shared.sync_now()  # retried with the same seq: a duplicate
    assert calls[0] == calls[1]
    assert shared.stats.duplicates == 1
    t = totals(redis_server.url, namespace)
    assert (t["m2:requests"], t["m2:successes"], t["m2:failures_other"]) == (10, 7, 3)
    shared.close()


def test_other_workers_statistics_reach_the_core(redis_server: RedisServer, namespace: str) -> None:
    a = make_registry(redis_server.url, namespace)
    b = make_registry(redis_server.url, namespace)
    report(a, "m3", True, times=40)
    report(b, "m3", False, times=10)
    for r in (a, b, a):
        assert shared_of(r).sync_now()
    n, reward_sum, _ = a._core.shared(slot(a, "m3"))
    assert (n, reward_sum) == (10, 0)
    n, reward_sum, _ = b._core.shared(slot(b, "m3"))
    assert n == 40 and 30 < reward_sum <= 40
    # The forced trials other workers made count here too.
    explained = {c.name: c for c in a.explain_selection().candidates}
    assert not explained["m3"].forced
    for r in (a, b):
        shared_of(r).close()


def test_removing_a_model_deletes_its_fields(redis_server: RedisServer, namespace: str) -> None:
    a = make_registry(redis_server.url, namespace)
    b = make_registry(redis_server.url, namespace)
    report(a, "m0", True, times=5)
    report(b, "m0", True, times=5)
    report(a, "m1", True, times=2)
    for r in (a, b):
        assert shared_of(r).sync_now()
        assert shared_of(r).wait_subscribed()
    assert totals(redis_server.url, namespace)["m0:requests"] == 10
    a.unregister_model("m0")
    assert shared_of(a).sync_now()
    t = totals(redis_server.url, namespace)
    assert not [k for k in t if k.startswith("m0:")]
    assert t["m1:requests"] == 2
    # b was told and forgot its share, so its view stays consistent.
    deadline = time.monotonic() + 2
    while shared_of(b).stats.received < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    report(b, "m0", True, times=3)
    assert shared_of(b).sync_now()
    assert totals(redis_server.url, namespace)["m0:requests"] == 3
    assert b._core.shared(slot(b, "m0"))[0] == 0
    for r in (a, b):
        shared_of(r).close()


def test_own_breaker_messages_are_ignored(redis_server: RedisServer, namespace: str) -> None:
    a = make_registry(redis_server.url, namespace, tolerant=False)
    b = make_registry(redis_server.url, namespace, tolerant=False)
    assert shared_of(a).wait_subscribed() and shared_of(b).wait_subscribed()
    report(a, "m4", False, times=3)  # opens a's breaker and publishes
    deadline = time.monotonic() + 2
    while b._core.breaker(slot(b, "m4"))["state"] != "open" and time.monotonic() < deadline:
        time.sleep(0.005)
    assert b._core.breaker(slot(b, "m4"))["state"] == "open"
    assert shared_of(a).stats.received == 0
    assert shared_of(b).stats.received == 1
    for r in (a, b):
        shared_of(r).close()


def with_buckets(url: str, namespace: str, discount: float, seconds: float) -> ModelRegistry:
    """A registry whose shared state uses short discount buckets (for tests)."""
    registry = ModelRegistry(model_selector=UCBModelSelector(discount=discount))
    registry._shared = SharedState(
        registry, url, namespace=namespace, sync_interval=0.05, bucket_seconds=seconds
    )
    for name in RATES:
        registry.register_model(SimModel(name))
    return registry


def test_discounted_views_agree_and_decay_by_bucket(
    redis_server: RedisServer, namespace: str
) -> None:
    a, b, c = (with_buckets(redis_server.url, namespace, 0.5, 1.0) for _ in range(3))
    client = redis.Redis.from_url(redis_server.url)
    # Start right after a bucket boundary, so a's outcomes share one bucket.
    _, micros = client.time()
    time.sleep(1 - micros / 1e6 + 0.02)
    report(a, "m1", True, times=100)
    assert shared_of(a).sync_now()
    delivered_in = int(client.time()[0])
    # Two buckets later, b and c read the same weights: 0.5 ** age.
    time.sleep(2.05)
    for r in (b, c):
        assert shared_of(r).sync_now()
    read_in = int(client.time()[0])
    nb = b._core.shared(slot(b, "m1"))[0]
    nc = c._core.shared(slot(c, "m1"))[0]
    assert nb == pytest.approx(nc, rel=1e-12)
    ages = range(read_in - delivered_in - 1, read_in - delivered_in + 1)
    assert any(nb == pytest.approx(100 * 0.5**age, rel=1e-9) for age in ages), nb
    assert nb <= 100 * 0.5**2 + 1e-9
    # The undiscounted totals are exact regardless.
    assert totals(redis_server.url, namespace)["m1:requests"] == 100
    client.close()
    for r in (a, b, c):
        shared_of(r).close()


def test_discounted_sums_are_rebased_before_they_overflow(
    redis_server: RedisServer, namespace: str
) -> None:
    a, b = (with_buckets(redis_server.url, namespace, 0.5, 1.0) for _ in range(2))
    client = redis.Redis.from_url(redis_server.url)
    meta = f"orchestrator:{{{namespace}}}:meta"
    now_bucket = int(client.time()[0])
    # Pretend the namespace's reference is 400 buckets old (scale 2**400).
    client.hset(meta, "ref_bucket", now_bucket - 400)
    report(a, "m2", True, times=10)
    assert shared_of(a).sync_now()
    assert int(_text(client.hget(meta, "ref_bucket"))) >= now_bucket
    assert shared_of(b).sync_now()
    n = b._core.shared(slot(b, "m2"))[0]
    assert n in (pytest.approx(10.0), pytest.approx(5.0))
    client.close()
    for r in (a, b):
        shared_of(r).close()


def test_redis_down_at_start_then_up(tmp_path: Path, namespace: str, caplog) -> None:  # type: ignore[no-untyped-def]
    server = RedisServer(tmp_path)
    caplog.set_level(logging.INFO, logger="orchestrator.models.shared_state")
    registry = make_registry(server.url, namespace, sync_interval=0.05)
    report(registry, "m0", True, times=4)
    selected = registry.select()  # selection works with Redis down
    registry.report_outcome(selected, True, 0.1)
    assert not shared_of(registry).sync_now()
    server.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not shared_of(registry).connected:
            time.sleep(0.05)
        assert shared_of(registry).sync_now()
        t = totals(server.url, namespace)
        assert sum(t.get(f"{n}:requests", 0) for n in RATES) == 5
        down = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(down) == 1
        assert any("is back" in r.getMessage() for r in caplog.records)
        shared_of(registry).close()
    finally:
        server.kill()


def test_authenticated_urls(tmp_path: Path, namespace: str, caplog) -> None:  # type: ignore[no-untyped-def]
    server = RedisServer(tmp_path, extra=("--requirepass", "hunter2pass"))
    server.start()
    try:
        good = f"redis://default:hunter2pass@127.0.0.1:{server.port}/3"
        registry = make_registry(good, namespace)
        report(registry, "m1", True, times=3)
        assert shared_of(registry).sync_now()
        client = redis.Redis.from_url(good)
        assert client.hget(f"orchestrator:{{{namespace}}}:totals", "m1:requests") == b"3"
        client.close()
        shared_of(registry).close()
        caplog.set_level(logging.DEBUG)
        bad = f"redis://default:wrongpass@127.0.0.1:{server.port}/3"
        with pytest.raises(SharedStateError, match="refused the credentials") as info:
            make_registry(bad, namespace)
        assert "wrongpass" not in str(info.value)
        assert "wrongpass" not in caplog.text and "hunter2pass" not in caplog.text
    finally:
        server.kill()


def test_tls_url(tmp_path: Path, namespace: str) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"),
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = RedisServer(tmp_path, extra=("--tls-port", str(port), "--tls-cert-file", str(cert)))
    server.extra += ("--tls-key-file", str(key), "--tls-ca-cert-file", str(cert))
    server.extra += ("--tls-auth-clients", "no")
    server.start()
    try:
        url = f"rediss://localhost:{port}/0?ssl_ca_certs={cert}"
        registry = make_registry(url, namespace)
        report(registry, "m3", True, times=2)
        assert shared_of(registry).sync_now()
        assert totals(server.url, namespace)["m3:requests"] == 2
        shared_of(registry).close()
    finally:
        server.kill()


def test_local_registry_is_unchanged() -> None:
    registry = make_registry("local", "ignored")
    assert registry.shared_state is None
    report(registry, "m0", True)
    assert registry.select().model.name in RATES


def test_statistics_scope_fleet_reads_the_shared_totals(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    spool = tmp_path / "my-spool"
    registry = ModelRegistry(
        state=redis_server.url, state_namespace=namespace, state_spool_dir=str(spool)
    )
    try:
        registry.register_model(SimModel("m"))
        report(registry, "m", True, times=3)
        assert shared_of(registry).sync_now()
        assert shared_of(registry).spool_folder.is_relative_to(spool)
        fleet = registry.statistics(scope="fleet")
        assert list(fleet["name"]) == ["m"]
        assert fleet["trials"].tolist() == [3]
        assert registry.statistics(scope="local")["trials"].tolist() == [3]
    finally:
        registry.close()


def test_statistics_scope_and_spool_dir_are_checked() -> None:
    registry = ModelRegistry()
    with pytest.raises(ValueError, match=r"scope.*fleet.*local"):
        registry.statistics(scope="fleet")
    with pytest.raises(ValueError, match="scope: 'world'"):
        registry.statistics(scope="world")
    with pytest.raises(ValueError, match="state_spool_dir"):
        ModelRegistry(state_spool_dir="/tmp/spool")

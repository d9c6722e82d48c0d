"""Disk store (SQLite, WAL): survives restarts, several processes writing at
once, size bounds, TTL, and damage or an unwritable disk never served or fatal."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import sqlite3
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.cache import ModelCache
from orchestrator.core.cache_backends import DiskBackend
from orchestrator.core.model import Model, ModelCapabilities, Prompt


class EchoModel(Model):
    """A module-level model, so worker processes can build it."""

    def __init__(self) -> None:
        super().__init__("echo", "test", ModelCapabilities(embeddings=True))
        self.calls = 0

    async def generate_response(self, prompt: Prompt, **kwargs: Any) -> str:
        self.calls += 1
        return f"echo {prompt} " * 20

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[float(len(t))] for t in texts]

    async def health_check(self) -> bool:
        return True


def db_rows(path: Path) -> list[tuple[str, bytes]]:
    conn = sqlite3.connect(path)
    try:
        return [(k, bytes(v)) for k, v in conn.execute("SELECT key, value FROM entries")]
    finally:
        conn.close()


def db_check(path: Path) -> tuple[int, int]:
    """(entries, bytes), asserting the trigger-kept totals match the table."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        actual = conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM entries").fetchone()
        meta = conn.execute("SELECT entries, bytes FROM meta").fetchone()
        assert tuple(actual) == tuple(meta)
        return int(meta[0]), int(meta[1])
    finally:
        conn.close()


def _worker(path: str, worker: int, rounds: int, results: Any) -> None:
    async def main() -> tuple[int, int, int, int]:
        cache = ModelCache(backend="disk", path=path, max_size=10_000)
        model = EchoModel()
        model.enable_caching(cache)
        for i in range(rounds):
            await model.generate_response(f"shared {i % 10}")  # all workers race on these
            await model.generate_response(f"own {worker}-{i}")
            await model.embed([f"text {i % 7}", f"worker text {worker}"])
        stats = cache.get_statistics()
        await cache.aclose()
        return model.calls, stats.errors, stats.hits, stats.corrupted

    results.put((worker, *asyncio.run(main())))


def test_several_processes_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(path), w, 40, results)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    outcomes = [results.get(timeout=5) for _ in procs]
    assert all(errors == 0 and corrupted == 0 for _, _, errors, _, corrupted in outcomes)
    assert sum(hits for _, _, _, hits, _ in outcomes) > 0  # they served each other
    entries, _ = db_check(path)
    # 10 shared answers, 4 x 40 own answers, 7 + 4 embedded texts.
    assert entries == 10 + 4 * 40 + 7 + 4


async def test_survives_restart(tmp_path: Path) -> None:
    model = EchoModel()
    cache = ModelCache(backend="disk", path=tmp_path, compression="zlib")
    model.enable_caching(cache)
    answer = await model.generate_response("q")
    await cache.aclose()
    again = ModelCache(backend="disk", path=tmp_path, compression="zlib")
    model.enable_caching(again)
    assert await model.generate_response("q") == answer and model.calls == 1
    await again.aclose()
    assert (tmp_path / "orchestrator-cache.sqlite3").exists()


async def test_bounded_by_entries_and_bytes(tmp_path: Path) -> None:
    model = EchoModel()
    cache = ModelCache(backend="disk", path=tmp_path / "c.db", max_size=5)
    model.enable_caching(cache)
    for i in range(8):
        await model.generate_response(f"q{i}")
    stats = cache.get_statistics()
    assert stats.entries == 5 and stats.evictions == 3
    assert db_check(tmp_path / "c.db")[0] == 5
    calls = model.calls
    await model.generate_response("q7")
    assert model.calls == calls
    await model.generate_response("q0")  # the oldest were evicted
    assert model.calls == calls + 1
    one = stats.bytes // 5 if stats.bytes else 0
    await cache.aclose()

    small = ModelCache(backend="disk", path=tmp_path / "b.db", max_bytes=one * 3 + 50)
    model.enable_caching(small)
    for i in range(6):
        await model.generate_response(f"q{i}")
    entries, nbytes = db_check(tmp_path / "b.db")
    assert entries == 3 and nbytes <= one * 3 + 50
    assert small.get_statistics().evictions == 3
    await small.aclose()


async def test_ttl(tmp_path: Path) -> None:
    model = EchoModel()
    cache = ModelCache(backend="disk", path=tmp_path, ttl=0.2)
    model.enable_caching(cache)
    await model.generate_response("q")
    await model.generate_response("q")
    await asyncio.sleep(0.3)
    await model.generate_response("q")
    assert model.calls == 2
    await cache.aclose()


def _damage(kind: str, value: bytes) -> bytes:
    if kind == "flipped byte":
        data = bytearray(value)
        data[-5] ^= 0x55
        return bytes(data)
    if kind == "truncated":
        return value[:20]
    body = b'{"kind": "response", "text": ' if kind == "bad json" else b"not zlib at all"
    codec = b"n" if kind == "bad json" else b"z"
    return struct.pack(">2sBcI", b"OC", 1, codec, zlib.crc32(body)) + body  # valid checksum


@pytest.mark.parametrize("kind", ["flipped byte", "truncated", "bad json", "bad compression"])
async def test_corrupted_entry_is_a_miss_and_deleted(
    kind: str, tmp_path: Path, caplog: Any
) -> None:
    path = tmp_path / "c.db"
    model = EchoModel()
    cache = ModelCache(backend="disk", path=path, compression="zlib")
    model.enable_caching(cache)
    answer = await model.generate_response("q")
    ((key, value),) = db_rows(path)
    damaged = _damage(kind, value)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE entries SET value = ? WHERE key = ?", (damaged, key))
    conn.commit()
    conn.close()
    with caplog.at_level(logging.WARNING, logger="orchestrator.core.cache"):
        assert await model.generate_response("q") == answer  # recomputed, not the damage
    assert model.calls == 2
    stats = cache.get_statistics()
    assert stats.corrupted == 1 and stats.errors == 1 and stats.hits == 0
    assert "damaged disk cache entry" in caplog.text
    ((new_key, new_value),) = db_rows(path)
    assert new_key == key and new_value != damaged  # deleted, then rewritten
    await model.generate_response("q")
    assert model.calls == 2  # the rewritten entry serves
    await cache.aclose()


async def test_damaged_database_file_never_fails_a_request(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    cache = ModelCache(backend="disk", path=path)
    model = EchoModel()
    model.enable_caching(cache)
    await model.generate_response("q")
    await cache.aclose()
    _overwrite(path)
    cache = ModelCache(backend="disk", path=path)
    model.enable_caching(cache)
    for _ in range(3):
        assert "echo q" in await model.generate_response("q")
    assert model.calls == 4 and cache.get_statistics().errors >= 3
    await cache.aclose()


def _overwrite(path: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    path.write_bytes(b"this is not a database" * 200)


@pytest.mark.parametrize("where", ["proc", "under a file"])
async def test_unwritable_path_counts_errors(where: str, tmp_path: Path, caplog: Any) -> None:
    if where == "proc":
        path = Path("/proc/self/orchestrator-cache/c.db")  # no one may create files here
    else:
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "c.db"
    cache = ModelCache(backend="disk", path=path)
    model = EchoModel()
    model.enable_caching(cache)
    with caplog.at_level(logging.WARNING, logger="orchestrator.core.cache"):
        for _ in range(3):
            assert "echo q" in await model.generate_response("q")
        assert await model.embed(["a", "b"]) == [[1.0], [1.0]]
    assert model.calls == 3
    stats = cache.get_statistics()
    assert stats.errors >= 6 and stats.stores == 0
    assert [r.levelno for r in caplog.records].count(logging.WARNING) == 1  # once per outage
    await cache.aclose()


async def test_full_disk_counts_errors_and_keeps_serving(tmp_path: Path) -> None:
    cache = ModelCache(backend="disk", path=tmp_path / "c.db")
    model = EchoModel()
    model.enable_caching(cache)
    answer = await model.generate_response("q")
    (disk,) = [t for t in cache._tiers if isinstance(t, DiskBackend)]

    def fill_up(conn: sqlite3.Connection) -> None:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLITE_FULL from now on

    await disk._run(fill_up)
    for i in range(5):
        assert "echo big" in await model.generate_response(f"big {i} " + "x" * 20_000)
    stats = cache.get_statistics()
    assert stats.errors == 5 and stats.stores == 1
    assert await model.generate_response("q") == answer  # reads still served
    assert cache.get_statistics().hits == 1
    await cache.aclose()

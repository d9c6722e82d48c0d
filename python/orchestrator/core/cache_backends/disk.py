"""SQLite store (WAL mode): survives restarts, safe with several processes
writing at once, bounded by entries and bytes with LRU eviction, with a TTL.

All SQLite work runs on one worker thread per store, so the event loop never
blocks on the disk. Entry and byte counts are kept in a ``meta`` row by
triggers, in the same transactions as the writes, so every process sees the
true totals without scanning the table. :meth:`DiskBackend.count` counts
one namespace's live entries from the covering index ``entries_counted``
(keys, expiry and sizes only: the values are never read).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, TypeVar

from orchestrator.core.cache_backends.base import Backend, CountIncomplete, StoreSize

T = TypeVar("T")

#: How long a writer waits for another process's lock before giving up.
BUSY_TIMEOUT = 2.0
#: A hit refreshes the entry's LRU time at most this often (saves writes).
_TOUCH_INTERVAL = 1.0
#: SQLite virtual-machine steps between two checks of a count's deadline.
_COUNT_CHECK_STEPS = 10_000
_COUNT = (
    "SELECT count(*), coalesce(sum(size), 0) FROM entries INDEXED BY entries_counted "
    "WHERE key >= ? AND key < ? AND expires > ?"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    size INTEGER NOT NULL,
    expires REAL NOT NULL,
    accessed REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_accessed ON entries(accessed);
CREATE INDEX IF NOT EXISTS entries_expires ON entries(expires);
CREATE INDEX IF NOT EXISTS entries_counted ON entries(key, expires, size);
CREATE TABLE IF NOT EXISTS meta (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    entries INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta VALUES (0, 0, 0);
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS entries_insert AFTER INSERT ON entries BEGIN
    UPDATE meta SET entries = entries + 1, bytes = bytes + NEW.size WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS entries_delete AFTER DELETE ON entries BEGIN
    UPDATE meta SET entries = entries - 1, bytes = bytes - OLD.size WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS entries_update AFTER UPDATE OF size ON entries BEGIN
    UPDATE meta SET bytes = bytes - OLD.size + NEW.size WHERE id = 0;
END;
"""

_UPSERT = (
    "INSERT INTO entries (key, value, size, expires, accessed) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value, size = excluded.size, "
    "expires = excluded.expires, accessed = excluded.accessed"
)


class DiskBackend(Backend):
    """One SQLite database file; several processes may share it."""

    name = "disk"

    def __init__(self, path: str, max_size: int, max_bytes: Optional[int]) -> None:
        super().__init__()
        self.path = path
        self.max_size = max_size
        self.max_bytes = max_bytes
        self._conn: Optional[sqlite3.Connection] = None
        self._executor: Optional[ThreadPoolExecutor] = None
        self._size: tuple[Optional[int], Optional[int]] = (None, None)

    # ----- plumbing -------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="orchestrator-cache-disk")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._with_connection, fn)

    def _with_connection(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._open()
        return fn(self._conn)

    def _open(self) -> sqlite3.Connection:
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            os.makedirs(directory, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            deadline = time.monotonic() + BUSY_TIMEOUT
            while True:  # several processes may create the database at once
                try:
                    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
                    if mode is None or str(mode[0]).lower() != "wal":
                        raise sqlite3.OperationalError(f"cannot use WAL mode on {self.path}")
                    conn.execute("PRAGMA synchronous=NORMAL")
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        for statement in _split(_SCHEMA):
                            conn.execute(statement)
                        conn.execute("COMMIT")
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
        except BaseException:
            conn.close()
            raise
        return conn

    def _read_size(self, conn: sqlite3.Connection) -> tuple[int, int]:
        row = conn.execute("SELECT entries, bytes FROM meta WHERE id = 0").fetchone()
        size = (int(row[0]), int(row[1])) if row else (0, 0)
        self._size = size
        return size

    # ----- operations -----------------------------------------------------------

    async def get(self, key: str) -> Optional[bytes]:
        return (await self.get_many([key]))[0]

    async def get_many(self, keys: Sequence[str]) -> list[Optional[bytes]]:
        def run(conn: sqlite3.Connection) -> list[Optional[bytes]]:
            now = time.time()
            out: list[Optional[bytes]] = []
            for key in keys:
                row = conn.execute(
                    "SELECT value, expires, accessed FROM entries WHERE key = ?", (key,)
                ).fetchone()
                if row is None:
                    out.append(None)
                    continue
                value, expires, accessed = row
                try:
                    if expires <= now:
                        conn.execute(
                            "DELETE FROM entries WHERE key = ? AND expires <= ?", (key, now)
                        )
                        value = None
                    elif now - accessed >= _TOUCH_INTERVAL:
                        conn.execute("UPDATE entries SET accessed = ? WHERE key = ?", (now, key))
                except sqlite3.OperationalError:
                    pass  # best effort: a locked or read-only database still serves reads
                out.append(None if value is None else bytes(value))
            return out

        return await self._run(run)

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        await self.set_many([(key, value)], ttl)

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float) -> None:
        def run(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            try:
                for key, value in items:
                    if self.max_bytes is not None and len(value) > self.max_bytes:
                        conn.execute("DELETE FROM entries WHERE key = ?", (key,))
                        continue
                    conn.execute(_UPSERT, (key, value, len(value), now + ttl, now))
                self._evict(conn, now)
                self._read_size(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        await self._run(run)

    def _evict(self, conn: sqlite3.Connection, now: float) -> None:
        entries, nbytes = self._read_size(conn)
        if not self._over(entries, nbytes):
            return
        conn.execute("DELETE FROM entries WHERE expires <= ?", (now,))
        entries, nbytes = self._read_size(conn)
        if not self._over(entries, nbytes):
            return
        victims: list[tuple[str]] = []
        for key, size in conn.execute("SELECT key, size FROM entries ORDER BY accessed, key"):
            if not self._over(entries, nbytes):
                break
            victims.append((key,))
            entries -= 1
            nbytes -= size
        conn.executemany("DELETE FROM entries WHERE key = ?", victims)
        self.evictions += len(victims)

    def _over(self, entries: int, nbytes: int) -> bool:
        return entries > self.max_size or (self.max_bytes is not None and nbytes > self.max_bytes)

    async def identity_key(self, name: str, candidate: bytes) -> bytes:
        """Inserted if absent, then read, in one transaction: every process agrees."""

        def run(conn: sqlite3.Connection) -> bytes:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("INSERT OR IGNORE INTO secrets VALUES (?, ?)", (name, candidate))
                row = conn.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return bytes(row[0])

        return await self._run(run)

    async def delete(self, key: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM entries WHERE key = ?", (key,))
            self._read_size(conn)

        await self._run(run)

    async def clear(self, prefix: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM entries WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))
            self._read_size(conn)

        await self._run(run)

    async def count(self, prefixes: Sequence[str], time_limit: float) -> StoreSize:
        """A range scan of the covering index per prefix, stopped (as
        :class:`CountIncomplete`) when it runs past ``time_limit`` seconds."""

        def run(conn: sqlite3.Connection) -> StoreSize:
            deadline = time.monotonic() + time_limit
            conn.set_progress_handler(lambda: time.monotonic() > deadline, _COUNT_CHECK_STEPS)
            entries = nbytes = 0
            now = time.time()
            try:
                for prefix in prefixes:
                    row = conn.execute(_COUNT, (prefix, _key_after(prefix), now)).fetchone()
                    entries += int(row[0])
                    nbytes += int(row[1])
            except sqlite3.OperationalError as exc:
                if "interrupted" not in str(exc):
                    raise
                raise CountIncomplete(
                    f"counting the entries of {self.path} took over {time_limit:g}s"
                ) from exc
            finally:
                conn.set_progress_handler(None, 0)
            return StoreSize(entries, nbytes)

        return await self._run(run)

    async def aclose(self) -> None:
        """Close the database (its three file descriptors) and end the worker
        thread: when this returns, neither is left. Work already queued runs
        first (each statement waits at most ``BUSY_TIMEOUT`` for a lock)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close_connection)
        finally:
            executor.shutdown(wait=True)  # idle now: returns as soon as the thread exits

    def close(self) -> None:
        """:meth:`aclose` for code with no running event loop (same bound)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            executor.submit(self._close_connection).result()
        finally:
            executor.shutdown(wait=True)

    def _close_connection(self) -> None:
        """On the worker thread: close the database."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def size(self) -> tuple[Optional[int], Optional[int]]:
        """Totals as of this process's last write (other processes add to them)."""
        return self._size


def _key_after(prefix: str) -> str:
    """The smallest string above every key that starts with ``prefix`` (SQLite
    compares text as UTF-8 bytes, which orders like code points)."""
    if not prefix or prefix[-1] == chr(0x10FFFF):
        raise ValueError(f"invalid prefix: {prefix!r} (must end below U+10FFFF)")
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _split(script: str) -> list[str]:
    """Statements of the schema script (triggers contain semicolons)."""
    out: list[str] = []
    current: list[str] = []
    for line in script.strip().splitlines():
        current.append(line)
        joined = "\n".join(current).strip()
        if joined.endswith(";") and sqlite3.complete_statement(joined):
            out.append(joined)
            current = []
    return out

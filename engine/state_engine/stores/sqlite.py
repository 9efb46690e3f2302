"""The default backend: one SQLite file, shared safely by several processes (WAL mode).

Every SQLite call runs on one of two threads, never on the event loop, since a disk that
stops answering would stop every conversation with it: reads on one, writes on the other
(so a read never queues behind a write waiting for a lock). A turn's partitions are
written in one ``BEGIN IMMEDIATE`` transaction: all or none.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, TypeVar

from ..conditions import Expect
from ..errors import (
    PreconditionFailedError,
    StorageConfigurationError,
    StorageUnavailableError,
    WriteOutcomeUnknownError,
)
from ..settings import setting
from .items import Item, ItemStore, Put

T = TypeVar("T")

logger = logging.getLogger(__name__)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS store_items (
    key      TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    e_tag    TEXT NOT NULL
)""",
    # One row, rewritten by each health check: a real write, so a disk that takes no more
    # writes shows in /healthz before a turn meets it.
    """CREATE TABLE IF NOT EXISTS store_health (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at REAL NOT NULL
)""",
)
_SELECT = "SELECT key, document, e_tag FROM store_items WHERE key IN ({marks})"
_LIST = "SELECT key FROM store_items WHERE substr(key, 1, ?) = ? ORDER BY key"
_HEALTH = "INSERT OR REPLACE INTO store_health (id, checked_at) VALUES (1, ?)"
# One statement per condition; each changes 0 rows when its condition does not hold.
_WRITE = {
    Expect.ANYTHING: "INSERT INTO store_items (key, document, e_tag) VALUES (?, ?, ?) "
    "ON CONFLICT(key) DO UPDATE SET document = excluded.document, e_tag = excluded.e_tag",
    Expect.ABSENT: "INSERT INTO store_items (key, document, e_tag) VALUES (?, ?, ?) "
    "ON CONFLICT(key) DO NOTHING",
    Expect.MATCH: "UPDATE store_items SET document = ?, e_tag = ? WHERE key = ? AND e_tag = ?",
}
_DELETE = {
    Expect.ANYTHING: "DELETE FROM store_items WHERE key = ?",
    Expect.MATCH: "DELETE FROM store_items WHERE key = ? AND e_tag = ?",
}
#: Free space under which the disk counts as full: a turn's write may need this much.
_LOW_DISK_BYTES = 4 * 1024 * 1024
#: How long past the busy timeout a call may take before the disk counts as not answering.
DISK_GRACE_SECONDS = 1.0
#: "Another connection holds the lock" (the low byte of an extended code, e.g. BUSY_SNAPSHOT).
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


@dataclass(frozen=True)
class SqliteSettings:
    path: str = setting(
        "SQLITE_PATH", str, "data/bot-state.sqlite3",
        "SQLite file (relative to the project folder); several bot processes on one machine may share it.",
    )
    busy_timeout: float = setting(
        "SQLITE_BUSY_TIMEOUT", float, 5.0,
        "Seconds a save waits for another process's lock before the store counts as unavailable.",
        minimum=0, maximum=60,
    )


class _Lane:
    """One thread with its own connection; each call is awaited for at most ``timeout``
    seconds. A lane whose call has run longer than that (a disk that stopped answering)
    turns new calls away at once rather than queueing them behind it."""

    def __init__(self, name: str, connect: Callable[[], sqlite3.Connection], timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        self._connect = connect
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{name}")
        self._connection: Optional[sqlite3.Connection] = None
        self._busy_since: Optional[float] = None

    def stuck_for(self) -> Optional[float]:
        """Seconds the running call has taken, once that is past the timeout; else None."""
        since = self._busy_since
        if since is None:
            return None
        running = time.monotonic() - since
        return running if running > self.timeout else None

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` on this lane's connection; ``TimeoutError`` if it has not finished in time
        (it may still finish later: it cannot be stopped half-way)."""
        async with asyncio.timeout(self.timeout):
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, work)

    def submit(self, work: Callable[[sqlite3.Connection], object]) -> None:
        """``work`` in the background, after the calls already queued."""
        self._executor.submit(self._call, work)

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        self._busy_since = time.monotonic()
        try:
            if self._connection is None:
                self._connection = self._connect()
            return work(self._connection)
        finally:
            self._busy_since = None

    async def close(self) -> None:
        def close_connection(connection: sqlite3.Connection) -> None:
            connection.close()
            self._connection = None

        try:
            if self._connection is not None and self.stuck_for() is None:
                await self.run(close_connection)
        except TimeoutError:
            logger.warning("SQLite %s thread did not close in time; left to the process's end", self.name)
        self._executor.shutdown(wait=False)


def _statement(put: Put, new_etag: str) -> tuple[str, tuple[str, ...]]:
    """The statement that writes ``put`` only if its condition holds, and its parameters."""
    expect = put.condition.expect
    if put.text is None:
        if expect is Expect.ABSENT:
            raise ValueError("deleting under 'absent' deletes nothing: leave the put out")
        if expect is Expect.MATCH:
            return _DELETE[expect], (put.item_id, put.condition.e_tag)
        return _DELETE[Expect.ANYTHING], (put.item_id,)
    if expect is Expect.MATCH:
        return _WRITE[expect], (put.text, new_etag, put.item_id, put.condition.e_tag)
    return _WRITE[expect], (put.item_id, put.text, new_etag)


class SqliteItems(ItemStore):
    """Items as rows of one table in a SQLite file."""

    atomic_batch = True
    # SQLite takes up to 1 GB per value; keep items the size a cloud store accepts,
    # so that moving to Cosmos DB later never meets a record it cannot hold.
    max_item_bytes = 2 * 1024 * 1024
    #: Commits between two checkpoints (about 3 WAL pages each, close to SQLite's own
    #: default of a checkpoint per 1,000 pages).
    commits_per_checkpoint = 300

    def __init__(self, settings: SqliteSettings, request_timeout: float = 3.0) -> None:
        """Waiting for another process's lock is bounded by SQLITE_BUSY_TIMEOUT and by
        ``request_timeout`` (the turn's budget for one storage round trip), whichever is
        less; a call that takes ``DISK_GRACE_SECONDS`` longer than that counts as the disk
        not answering."""
        self._path = Path(settings.path)
        self._busy_timeout = min(settings.busy_timeout, request_timeout)
        call_timeout = self._busy_timeout + DISK_GRACE_SECONDS
        self._reads = _Lane("reads", self._connect, call_timeout)
        self._writes = _Lane("writes", self._connect_writer, call_timeout)
        self._commits = 0
        self._check_path()

    def _check_path(self) -> None:
        """A path that cannot work stops start-up, naming SQLITE_PATH (not the first turn)."""
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            sqlite3.connect(self._path).close()
        except (OSError, sqlite3.Error) as error:
            raise StorageConfigurationError(f"SQLITE_PATH={self._path}: cannot open the database ({error})") from error

    @property
    def path(self) -> Path:
        return self._path

    def _connect(self) -> sqlite3.Connection:
        """A connection of this thread's (opened on the lane's thread, used only there)."""
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode=WAL")
            # Commits are not synced, checkpoints are: a crash of the machine may lose the
            # last commits, never the file's consistency.
            connection.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                connection.execute(statement)
        except (OSError, sqlite3.Error) as error:
            raise StorageConfigurationError(f"SQLITE_PATH={self._path}: cannot open the database ({error})") from error
        return connection

    def _connect_writer(self) -> sqlite3.Connection:
        connection = self._connect()
        connection.execute("PRAGMA wal_autocheckpoint=0")  # see _count_commit
        return connection

    async def _run(self, lane: _Lane, work: Callable[[sqlite3.Connection], T], writes: bool = False) -> T:
        """``work`` on ``lane``, its failures in the engine's vocabulary. A write that does
        not finish in time may still land: that is ``WriteOutcomeUnknownError``."""
        stuck = lane.stuck_for()
        if stuck is not None:
            raise StorageUnavailableError(
                f"SQLITE_PATH={self._path}: the disk has not finished a call for {stuck:.0f} s"
            )

        def call(connection: sqlite3.Connection) -> T:
            try:
                return work(connection)
            except sqlite3.Error as error:
                raise self._unavailable(error) from error

        try:
            result = await lane.run(call)
        except TimeoutError:
            detail = f"SQLITE_PATH={self._path}: the disk did not answer within {lane.timeout:g} s"
            if writes:
                raise WriteOutcomeUnknownError(f"{detail}; the write may still land") from None
            raise StorageUnavailableError(detail) from None
        if writes:
            self._count_commit()
        return result

    def _unavailable(self, error: sqlite3.Error) -> StorageUnavailableError:
        code = getattr(error, "sqlite_errorcode", 0) or 0
        if code & 0xFF == sqlite3.SQLITE_FULL:
            return StorageUnavailableError(f"SQLITE_PATH={self._path}: the disk is full")
        if code & 0xFF in _BUSY_CODES:
            return StorageUnavailableError(f"SQLite store {self._path} is locked by another connection: {error}")
        return StorageUnavailableError(f"SQLite store {self._path}: {error}")

    def _count_commit(self) -> None:
        """Every ``commits_per_checkpoint`` commits, copy the WAL back into the database, on
        the writes' thread after the writes queued. RESTART, not PASSIVE: a passive
        checkpoint racing the writes never finishes and the WAL would grow without end."""
        self._commits += 1
        if self._commits % self.commits_per_checkpoint == 0:
            self._writes.submit(self._checkpoint)

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            connection.execute("PRAGMA wal_checkpoint(RESTART)")
        except sqlite3.Error as error:  # the next checkpoint tries again
            logger.warning("SQLite checkpoint of %s failed: %s", self._path, error)

    async def get(self, item_ids: Sequence[str]) -> Dict[str, Item]:
        if not item_ids:
            return {}

        def read(connection: sqlite3.Connection) -> Dict[str, Item]:
            rows = connection.execute(_SELECT.format(marks=",".join("?" * len(item_ids))), list(item_ids))
            return {key: Item(document, e_tag) for key, document, e_tag in rows}

        return await self._run(self._reads, read)

    async def put(self, put: Put) -> Optional[str]:
        return (await self.put_all([put]))[put.item_id]

    async def put_all(self, puts: Sequence[Put]) -> Dict[str, Optional[str]]:
        e_tags = {put.item_id: None if put.text is None else secrets.token_hex(8) for put in puts}

        def write(connection: sqlite3.Connection) -> None:
            # BEGIN IMMEDIATE takes the write lock first; each statement writes only if its
            # condition holds, and a failed one rolls back everything: one atomic step.
            connection.execute("BEGIN IMMEDIATE")
            try:
                for put in puts:
                    written = connection.execute(*_statement(put, e_tags[put.item_id] or "")).rowcount
                    if not written and put.condition.expect is not Expect.ANYTHING:
                        raise PreconditionFailedError(put.item_id, put.condition.failure())
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

        await self._run(self._writes, write, writes=True)
        return e_tags

    async def list_ids(self, prefix: str) -> List[str]:
        def list_keys(connection: sqlite3.Connection) -> List[str]:
            return [row[0] for row in connection.execute(_LIST, (len(prefix), prefix))]

        return await self._run(self._reads, list_keys)

    async def ping(self) -> None:
        """Healthy means a turn can be saved: a write commits (another writer holding the
        lock, a read-only or frozen disk would stop it) and the disk has room for a turn's."""

        def probe(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute(_HEALTH, (time.time(),))
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

        await self._run(self._writes, probe)
        try:
            disk = os.statvfs(self._path.parent)
        except (OSError, AttributeError):  # Windows has no statvfs; SQLite reports a full disk itself
            return
        free = disk.f_bavail * disk.f_frsize
        if free < _LOW_DISK_BYTES:
            raise StorageUnavailableError(
                f"SQLITE_PATH={self._path}: the disk is full ({free // 1024} KiB free)"
            )

    async def close(self) -> None:
        await self._reads.close()
        await self._writes.close()

"""The default backend: one SQLite file, shared safely by several processes (WAL mode).

Two connections: a *fast* one used on the event loop, which never waits (busy timeout 0,
no syncing commits), and a *waiting* one on a thread for whatever found the file locked.
A turn's partitions are written in one ``BEGIN IMMEDIATE`` transaction: all or none.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, TypeVar

from ..conditions import Expect
from ..errors import PreconditionFailedError, StorageConfigurationError, StorageUnavailableError
from ..settings import setting
from .items import Item, ItemStore, Put

T = TypeVar("T")

logger = logging.getLogger(__name__)

# "Another connection holds the lock" (the low byte of an extended code, e.g. BUSY_SNAPSHOT).
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_items (
    key      TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    e_tag    TEXT NOT NULL
)
"""
_SELECT = "SELECT key, document, e_tag FROM store_items WHERE key IN ({marks})"
_LIST = "SELECT key FROM store_items WHERE substr(key, 1, ?) = ? ORDER BY key"
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
    #: Commits on the fast connection between two checkpoints (about 3 WAL pages each,
    #: close to SQLite's own default of a checkpoint per 1,000 pages).
    commits_per_checkpoint = 300

    def __init__(self, settings: SqliteSettings, request_timeout: float = 3.0) -> None:
        """Waiting for another process's lock is bounded by SQLITE_BUSY_TIMEOUT and by
        ``request_timeout`` (the turn's budget for one storage round trip), whichever is less."""
        self._path = Path(settings.path)
        self._busy_timeout = min(settings.busy_timeout, request_timeout)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-storage")
        self._connection: Optional[sqlite3.Connection] = None
        self._fast: Optional[sqlite3.Connection] = None
        self._fast_commits = 0
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
        if self._connection is None:
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                connection = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.execute(_SCHEMA)
                # Opened here, used on the event loop (never at the same time as here).
                fast = sqlite3.connect(self._path, timeout=0, isolation_level=None, check_same_thread=False)
                fast.execute("PRAGMA synchronous=NORMAL")
                fast.execute("PRAGMA wal_autocheckpoint=0")
                fast.execute("SELECT count(*) FROM store_items WHERE key = ''").fetchone()
            except (OSError, sqlite3.Error) as error:
                raise StorageConfigurationError(
                    f"SQLITE_PATH={self._path}: cannot open the database ({error})"
                ) from error
            self._connection, self._fast = connection, fast
        return self._connection

    async def _run(self, work: Callable[[sqlite3.Connection], T], writes: bool = False) -> T:
        """Do ``work`` on the fast connection if it can be done without waiting, otherwise
        on the thread. ``work`` must be safe to run twice: a busy attempt did nothing."""
        if self._fast is not None:
            try:
                result = work(self._fast)
            except sqlite3.Error as error:
                code = getattr(error, "sqlite_errorcode", None)
                if code is None or code & 0xFF not in _BUSY_CODES:
                    raise self._unavailable(error) from error
            else:
                if writes:
                    self._count_commit()
                return result

        def call() -> T:
            try:
                return work(self._connect())
            except sqlite3.Error as error:
                raise self._unavailable(error) from error

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _unavailable(self, error: sqlite3.Error) -> StorageUnavailableError:
        code = getattr(error, "sqlite_errorcode", 0) or 0
        if code & 0xFF == sqlite3.SQLITE_FULL:
            return StorageUnavailableError(f"SQLITE_PATH={self._path}: the disk is full")
        return StorageUnavailableError(f"SQLite store {self._path}: {error}")

    def _count_commit(self) -> None:
        """Every ``commits_per_checkpoint`` fast commits, copy the WAL back into the database
        on the thread. RESTART, not PASSIVE: a passive checkpoint racing the loop's writes
        never finishes and the WAL would grow without end."""
        self._fast_commits += 1
        if self._fast_commits % self.commits_per_checkpoint == 0:
            self._executor.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            self._connect().execute("PRAGMA wal_checkpoint(RESTART)")
        except sqlite3.Error as error:  # the next checkpoint tries again
            logger.warning("SQLite checkpoint of %s failed: %s", self._path, error)

    async def get(self, item_ids: Sequence[str]) -> Dict[str, Item]:
        if not item_ids:
            return {}

        def read(connection: sqlite3.Connection) -> Dict[str, Item]:
            rows = connection.execute(_SELECT.format(marks=",".join("?" * len(item_ids))), list(item_ids))
            return {key: Item(document, e_tag) for key, document, e_tag in rows}

        return await self._run(read)

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

        await self._run(write, writes=True)
        return e_tags

    async def list_ids(self, prefix: str) -> List[str]:
        def list_keys(connection: sqlite3.Connection) -> List[str]:
            return [row[0] for row in connection.execute(_LIST, (len(prefix), prefix))]

        return await self._run(list_keys)

    async def ping(self) -> None:
        """Healthy means a turn can be saved: the write lock can be taken (another writer
        or a read-only disk would refuse it) and the disk has room for a turn's write."""

        def probe(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")

        await self._run(probe)
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
        fast, self._fast = self._fast, None

        def close_connections() -> None:
            if fast is not None:
                fast.close()
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close_connections)
        self._executor.shutdown(wait=False)

"""The default store: one SQLite file, shared safely by several processes.

Why SQLite: it ships with Python, survives restarts, and with WAL mode and
``BEGIN IMMEDIATE`` transactions several bot processes on one machine can share
one file without losing updates.

The event loop never waits on SQLite. Waiting in SQLite has two causes: a lock
another connection holds (busy timeout), and syncing to disk. So each store has
two connections to the file:

* a *fast* one, used on the event loop, that cannot wait: its busy timeout is 0
  (a locked file answers "busy" at once) and it never syncs (with WAL and
  ``synchronous=NORMAL`` a commit only appends to the WAL; only a checkpoint
  syncs, and this connection never checkpoints);
* a *waiting* one, on a dedicated thread, that runs whatever the fast one could
  not do at once (with the busy timeout, ``SQLITE_BUSY_TIMEOUT``) and the WAL
  checkpoints.

An uncontended read or write (tens of microseconds) thus costs no thread hand-off,
and a contended one waits on the thread, never on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, TypeVar

from ..errors import PreconditionFailedError, StorageConfigurationError, StorageUnavailableError
from .json_storage import CREATE_ONLY, Change, JsonStorage

T = TypeVar("T")

logger = logging.getLogger(__name__)

# SQLite's result codes for "another connection holds the lock" (the primary code
# is the low byte of an extended one, e.g. SQLITE_BUSY_SNAPSHOT).
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_items (
    key      TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    e_tag    TEXT NOT NULL
)
"""


# One statement per change, by its condition; each reports 0 rows when the condition fails.
_WRITE = {
    "always": "INSERT INTO store_items (key, document, e_tag) VALUES (?, ?, ?) "
    "ON CONFLICT(key) DO UPDATE SET document = excluded.document, e_tag = excluded.e_tag",
    "create": "INSERT INTO store_items (key, document, e_tag) VALUES (?, ?, ?) "
    "ON CONFLICT(key) DO NOTHING",
    "match": "UPDATE store_items SET document = ?, e_tag = ? WHERE key = ? AND e_tag = ?",
}


def _statement(change: Change, new_etag: str) -> tuple[str, tuple[str, ...]]:
    """The statement that writes ``change`` only if its condition holds, and its parameters."""
    if change.expected_etag is None:
        return _WRITE["always"], (change.key, change.document, new_etag)
    if change.expected_etag == CREATE_ONLY:
        return _WRITE["create"], (change.key, change.document, new_etag)
    return _WRITE["match"], (change.document, new_etag, change.key, change.expected_etag)


class SqliteStorage(JsonStorage):
    """``Storage`` on a SQLite file (``SQLITE_PATH``)."""

    # SQLite takes up to 1 GB per value; keep records the size a cloud store accepts
    # so that moving to Cosmos DB later never meets a record it cannot hold.
    max_item_bytes = 2 * 1024 * 1024

    #: Commits on the fast connection between two checkpoints (about 3 WAL pages
    #: each, so close to SQLite's own default of a checkpoint per 1,000 pages).
    commits_per_checkpoint = 300

    def __init__(self, path: str | os.PathLike, busy_timeout_seconds: float = 5.0) -> None:
        self._path = Path(path)
        self._busy_timeout = busy_timeout_seconds
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-storage")
        self._connection: sqlite3.Connection | None = None
        self._fast: sqlite3.Connection | None = None
        self._fast_commits = 0

    @property
    def path(self) -> Path:
        return self._path

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                connection = sqlite3.connect(
                    self._path, timeout=self._busy_timeout, isolation_level=None
                )
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.execute(_SCHEMA)
                # Opened here, used on the event loop (never at the same time as here).
                fast = sqlite3.connect(
                    self._path, timeout=0, isolation_level=None, check_same_thread=False
                )
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
        """Do ``work`` on the fast connection if it can be done without waiting,
        otherwise on the thread. ``work`` must be safe to run twice: a busy
        attempt has done nothing (its transaction is rolled back)."""
        if self._fast is not None:
            try:
                result = work(self._fast)
            except sqlite3.Error as error:
                code = getattr(error, "sqlite_errorcode", None)
                if code is None or code & 0xFF not in _BUSY_CODES:
                    raise StorageUnavailableError(f"SQLite store {self._path}: {error}") from error
            else:
                if writes:
                    self._count_commit()
                return result
        return await self._run_waiting(work)

    async def _run_waiting(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            try:
                return work(self._connect())
            except sqlite3.Error as error:
                raise StorageUnavailableError(f"SQLite store {self._path}: {error}") from error

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _count_commit(self) -> None:
        """Every ``commits_per_checkpoint`` fast commits, copy the WAL back into the
        database on the thread (the fast connection never does: it would sync).

        RESTART, not PASSIVE: it holds off writers (they are busy, so they go to
        the thread meanwhile) until the WAL is fully copied, so the next write
        starts it from the beginning again. A passive checkpoint racing the
        loop's writes never finishes, and the WAL would grow without end."""
        self._fast_commits += 1
        if self._fast_commits % self.commits_per_checkpoint == 0:
            self._executor.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            self._connect().execute("PRAGMA wal_checkpoint(RESTART)")
        except sqlite3.Error as error:  # the next checkpoint tries again
            logger.warning("SQLite checkpoint of %s failed: %s", self._path, error)

    async def _read_documents(self, keys: List[str]) -> Dict[str, tuple[str, str]]:
        def read(connection: sqlite3.Connection) -> Dict[str, tuple[str, str]]:
            marks = ",".join("?" * len(keys))
            rows = connection.execute(
                f"SELECT key, document, e_tag FROM store_items WHERE key IN ({marks})", keys
            )
            return {key: (document, e_tag) for key, document, e_tag in rows}

        return await self._run(read)

    async def _write_documents(self, changes: List[Change]) -> None:
        def write(connection: sqlite3.Connection) -> None:
            # BEGIN IMMEDIATE takes the write lock first, and each statement below
            # writes only if its condition holds: one atomic step, across processes
            # too. A failed condition rolls back everything this write did.
            connection.execute("BEGIN IMMEDIATE")
            try:
                for change in changes:
                    written = connection.execute(
                        *_statement(change, secrets.token_hex(8))
                    ).rowcount
                    if not written and change.expected_etag == CREATE_ONLY:
                        raise PreconditionFailedError(change.key, "the item already exists")
                    if not written:
                        raise PreconditionFailedError(change.key)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

        await self._run(write, writes=True)

    async def _delete_documents(self, keys: List[str]) -> None:
        def delete(connection: sqlite3.Connection) -> None:
            marks = ",".join("?" * len(keys))
            connection.execute(f"DELETE FROM store_items WHERE key IN ({marks})", keys)

        await self._run(delete, writes=True)

    async def ping(self) -> None:
        """Healthy means writable: with WAL, a file locked by another writer (or on a
        read-only disk) still answers reads while every turn's save would fail."""

        def probe(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")

        await self._run(probe)

    async def keys(self, prefix: str = "") -> List[str]:
        """Every stored key starting with ``prefix`` (for inspection and tests)."""

        def list_keys(connection: sqlite3.Connection) -> List[str]:
            rows = connection.execute(
                "SELECT key FROM store_items WHERE substr(key, 1, ?) = ? ORDER BY key",
                (len(prefix), prefix),
            )
            return [row[0] for row in rows]

        return await self._run(list_keys)

    async def close(self) -> None:
        fast, self._fast = self._fast, None

        def close_connection() -> None:
            if fast is not None:
                fast.close()
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close_connection)
        self._executor.shutdown(wait=False)

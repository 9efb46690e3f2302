"""The default store: one SQLite file, shared safely by several processes.

Why SQLite: it ships with Python, survives restarts, and with WAL mode and
``BEGIN IMMEDIATE`` transactions several bot processes on one machine can share
one file without losing updates. Every call runs on one dedicated thread, so
the bot's event loop never waits on disk.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, TypeVar

from .errors import PreconditionFailedError, StorageConfigurationError, StorageUnavailableError
from .json_storage import CREATE_ONLY, Change, JsonStorage

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_items (
    key      TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    e_tag    TEXT NOT NULL
)
"""


class SqliteStorage(JsonStorage):
    """``Storage`` on a SQLite file (``SQLITE_PATH``)."""

    # SQLite takes up to 1 GB per value; keep records the size a cloud store accepts
    # so that moving to Cosmos DB later never meets a record it cannot hold.
    max_item_bytes = 2 * 1024 * 1024

    def __init__(self, path: str | os.PathLike, busy_timeout_seconds: float = 5.0) -> None:
        self._path = Path(path)
        self._busy_timeout = busy_timeout_seconds
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-storage")
        self._connection: sqlite3.Connection | None = None

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
            except (OSError, sqlite3.Error) as error:
                raise StorageConfigurationError(
                    f"SQLITE_PATH={self._path}: cannot open the database ({error})"
                ) from error
            self._connection = connection
        return self._connection

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            try:
                return work(self._connect())
            except sqlite3.Error as error:
                raise StorageUnavailableError(f"SQLite store {self._path}: {error}") from error

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

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
            # BEGIN IMMEDIATE takes the write lock first, so the e_tag checks and
            # the writes below are one atomic step, across processes too.
            connection.execute("BEGIN IMMEDIATE")
            try:
                for change in changes:
                    row = connection.execute(
                        "SELECT e_tag FROM store_items WHERE key = ?", (change.key,)
                    ).fetchone()
                    if change.expected_etag == CREATE_ONLY and row is not None:
                        raise PreconditionFailedError(change.key, "the item already exists")
                    if change.expected_etag not in (None, CREATE_ONLY) and (
                        row is None or row[0] != change.expected_etag
                    ):
                        raise PreconditionFailedError(change.key)
                connection.executemany(
                    "INSERT INTO store_items (key, document, e_tag) VALUES (?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET document = excluded.document, "
                    "e_tag = excluded.e_tag",
                    [(c.key, c.document, secrets.token_hex(8)) for c in changes],
                )
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

        await self._run(write)

    async def _delete_documents(self, keys: List[str]) -> None:
        def delete(connection: sqlite3.Connection) -> None:
            marks = ",".join("?" * len(keys))
            connection.execute(f"DELETE FROM store_items WHERE key IN ({marks})", keys)

        await self._run(delete)

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
        def close_connection() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close_connection)
        self._executor.shutdown(wait=False)

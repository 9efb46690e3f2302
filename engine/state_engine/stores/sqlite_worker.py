"""The SQLite store's worker process: every call on the file is made here, away from the
bot's event loop and its interpreter lock, so a disk that stops answering stops only this.

Reads and writes each have a thread and a connection (a read never queues behind a write
waiting for another process's lock). Calls come in on stdin and answers go out on stdout
as frames of text fields. It uses the standard library only: it starts fast and small.

    python sqlite_worker.py PATH BUSY_TIMEOUT COMMITS_PER_CHECKPOINT
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sqlite3
import struct
import sys
import threading
import time
from typing import BinaryIO, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

#: A frame: its length, then its fields, each a length (``_NONE``: None) and UTF-8 text.
HEADER = struct.Struct("!I")
_NONE = 0xFFFFFFFF
Fields = List[Optional[str]]

# Where a call goes: reads and writes have a thread each.
READS, WRITES = "r", "w"
# How an answer begins: done, or why not.
OK, PRECONDITION, FULL, BUSY, FAILED, CONFIGURATION = "ok", "precondition", "full", "busy", "failed", "configuration"

SCHEMA = (
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
    "anything": "INSERT INTO store_items (key, document, e_tag) VALUES (?, ?, ?) "
    "ON CONFLICT(key) DO UPDATE SET document = excluded.document, e_tag = excluded.e_tag",
    "absent": "INSERT INTO store_items (key, document, e_tag) VALUES (?, ?, ?) ON CONFLICT(key) DO NOTHING",
    "match": "UPDATE store_items SET document = ?, e_tag = ? WHERE key = ? AND e_tag = ?",
}
_DELETE = {
    "anything": "DELETE FROM store_items WHERE key = ?",
    "match": "DELETE FROM store_items WHERE key = ? AND e_tag = ?",
}
#: Fields of one write in a "put" call: item id, text (None: delete), condition, its
#: e_tag, the new e_tag.
PUT_FIELDS = 5
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def pack(fields: Sequence[Optional[str]]) -> bytes:
    """One frame of ``fields``."""
    parts = []
    for field in fields:
        if field is None:
            parts.append(struct.pack("!I", _NONE))
        else:
            data = field.encode("utf-8", "surrogatepass")
            parts.append(struct.pack("!I", len(data)) + data)
    body = b"".join(parts)
    return HEADER.pack(len(body)) + body


def unpack(body: bytes) -> Fields:
    """The fields of one frame's body."""
    fields: Fields = []
    at = 0
    while at < len(body):
        (length,) = struct.unpack_from("!I", body, at)
        at += 4
        if length == _NONE:
            fields.append(None)
        else:
            fields.append(body[at : at + length].decode("utf-8", "surrogatepass"))
            at += length
    return fields


class PreconditionFailed(Exception):
    """A write's condition did not hold: nothing of the call was written."""


def statement(
    item_id: str, text: Optional[str], expect: str, e_tag: Optional[str], new_etag: Optional[str]
) -> Tuple[str, Tuple[Optional[str], ...]]:
    """The statement that writes (``text``) or deletes (None) one item only if its
    condition holds (``expect``: anything, absent or match ``e_tag``), and its parameters."""
    if text is None:
        if expect == "absent":
            raise ValueError("deleting under 'absent' deletes nothing: leave the write out")
        if expect == "match":
            return _DELETE[expect], (item_id, e_tag)
        return _DELETE["anything"], (item_id,)
    if expect == "match":
        return _WRITE[expect], (text, new_etag, item_id, e_tag)
    return _WRITE[expect], (item_id, text, new_etag)


def _write_one(connection: sqlite3.Connection, fields: Sequence[Optional[str]]) -> None:
    item_id, text, expect, e_tag, new_etag = fields
    written = connection.execute(*statement(item_id or "", text, expect or "", e_tag, new_etag)).rowcount
    if not written and expect != "anything":
        raise PreconditionFailed(item_id)


@contextlib.contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """A ``BEGIN IMMEDIATE`` transaction (the write lock taken first), committed at the
    end of the block or rolled back if anything in it fails."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


class Store:
    """The calls, each on a connection of the thread it runs on."""

    def __init__(self, path: str, busy_timeout: float, commits_per_checkpoint: int) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.commits_per_checkpoint = commits_per_checkpoint
        self.commits = 0

    def connect(self, writes: bool) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        # Commits are not synced, checkpoints are: a crash of the machine may lose the
        # last commits, never the file's consistency.
        connection.execute("PRAGMA synchronous=NORMAL")
        # What is deleted (``forget me``) is overwritten in the file, not left in free pages;
        # some builds of SQLite do this by default, others not.
        connection.execute("PRAGMA secure_delete=ON")
        if writes:
            connection.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints: see put
        for schema in SCHEMA:
            connection.execute(schema)
        return connection

    def get(self, connection: sqlite3.Connection, keys: Fields) -> Fields:
        rows = connection.execute(_SELECT.format(marks=",".join("?" * len(keys))), keys)
        return [value for row in rows for value in row]

    def list(self, connection: sqlite3.Connection, fields: Fields) -> Fields:
        prefix = fields[0] or ""
        return [row[0] for row in connection.execute(_LIST, (len(prefix), prefix))]

    def put(self, connection: sqlite3.Connection, fields: Fields) -> Fields:
        """Every write of the call, all or none: one statement is a transaction of its own,
        several are one ``BEGIN IMMEDIATE`` transaction (the write lock taken first)."""
        writes = [fields[at : at + PUT_FIELDS] for at in range(0, len(fields), PUT_FIELDS)]
        if len(writes) == 1:
            _write_one(connection, writes[0])
        else:
            with _transaction(connection):
                for write in writes:
                    _write_one(connection, write)
        self.commits += 1
        if self.commits % self.commits_per_checkpoint == 0:
            # RESTART, not PASSIVE: a passive checkpoint racing the writes never finishes
            # and the WAL would grow without end.
            try:
                connection.execute("PRAGMA wal_checkpoint(RESTART)")
            except sqlite3.Error as error:  # the next checkpoint tries again
                print(f"SQLite checkpoint of {self.path} failed: {error}", file=sys.stderr)
        return []

    def erase(self, connection: sqlite3.Connection, _: Fields) -> Fields:
        """Copy the WAL into the file and truncate it: its frames from before a delete
        would otherwise keep the deleted data until they are written over."""
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise sqlite3.OperationalError("another connection is reading; the log was not emptied")
        return []

    def ping(self, connection: sqlite3.Connection, _: Fields) -> Fields:
        """A write that commits, and the free space of the disk (bytes; "" where unknown)."""
        with _transaction(connection):
            connection.execute(_HEALTH, (time.time(),))
        try:
            disk = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        except (OSError, AttributeError):  # Windows has no statvfs; SQLite reports a full disk itself
            return [""]
        return [str(disk.f_bavail * disk.f_frsize)]


def _outcome(call: Callable[[], Fields]) -> Fields:
    """The answer's fields after the call id: OK and the results, or why not."""
    try:
        return [OK, *call()]
    except PreconditionFailed as failed:
        return [PRECONDITION, str(failed)]
    except sqlite3.Error as error:
        code = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
        kind = FULL if code == sqlite3.SQLITE_FULL else BUSY if code in _BUSY_CODES else FAILED
        return [kind, str(error)]
    except (OSError, ValueError) as error:
        return [FAILED, str(error)]


#: The calls the store takes, by name.
OPERATIONS: Dict[str, Callable[[Store, sqlite3.Connection, Fields], Fields]] = {
    "get": Store.get, "put": Store.put, "list": Store.list, "ping": Store.ping, "erase": Store.erase,
}


def _serve_lane(
    store: Store, writes: bool, calls: "queue.SimpleQueue[Optional[Fields]]", answer: Callable[[Fields], None]
) -> None:
    """Take the lane's calls in order, on a connection of its own, until told to stop (None)."""
    connection: Optional[sqlite3.Connection] = None
    while (call := calls.get()) is not None:
        call_id, operation, args = call[0], OPERATIONS[call[2] or ""], call[3:]
        if connection is None:
            try:
                connection = store.connect(writes)
            except sqlite3.Error as error:
                answer([call_id, CONFIGURATION, f"cannot open the database ({error})"])
                continue
        opened = connection
        answer([call_id, *_outcome(lambda: operation(store, opened, args))])
    if connection is not None:
        connection.close()


def frames(stream: BinaryIO) -> Iterator[bytes]:
    """The frames on ``stream`` until it ends."""
    while len(head := stream.read(HEADER.size)) == HEADER.size:
        body = stream.read(HEADER.unpack(head)[0])
        yield body


def main() -> None:
    # Ctrl+C reaches every process of the terminal: the bot decides when this one ends
    # (by closing its stdin), after the turns it is finishing.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    path, busy_timeout, commits_per_checkpoint = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    store = Store(path, busy_timeout, commits_per_checkpoint)
    out, out_lock = sys.stdout.buffer, threading.Lock()

    def answer(fields: Fields) -> None:
        with out_lock, contextlib.suppress(OSError):  # the store has gone: stdin is ending too
            out.write(pack(fields))
            out.flush()

    lanes: Dict[str, "queue.SimpleQueue[Optional[Fields]]"] = {
        READS: queue.SimpleQueue(), WRITES: queue.SimpleQueue()
    }
    threads = [
        threading.Thread(target=_serve_lane, args=(store, lane == WRITES, calls, answer), daemon=True)
        for lane, calls in lanes.items()
    ]
    for thread in threads:
        thread.start()
    for body in frames(sys.stdin.buffer):
        fields = unpack(body)
        lanes[fields[1] or READS].put(fields)
    for calls in lanes.values():
        calls.put(None)
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()

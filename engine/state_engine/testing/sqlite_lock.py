"""Another connection holding a SQLite file's write lock, as a second bot
process, a stuck writer or a backup tool would."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class WriteLock:
    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None)

    def take(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self.connection.in_transaction:
            self.connection.execute("ROLLBACK")

    def close(self) -> None:
        self.release()
        self.connection.close()

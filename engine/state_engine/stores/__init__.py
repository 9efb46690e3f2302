"""Storage behind the SDK's ``Storage`` interface: one ``StateStorage`` over any backend."""

from .registry import (
    BACKENDS,
    STORAGE,
    Backend,
    backend_named,
    create_storage,
    open_items,
    read_backend_settings,
)
from .memory import MemoryItems
from .state_storage import Change, StateStorage


def memory_storage() -> StateStorage:
    """A fresh in-process ``StateStorage`` (tests and demos)."""
    return StateStorage(MemoryItems())


def sqlite_storage(path: str, busy_timeout: float = 5.0) -> StateStorage:
    """A ``StateStorage`` on the SQLite file at ``path``."""
    from .sqlite import SqliteItems, SqliteSettings

    return StateStorage(SqliteItems(SqliteSettings(str(path), busy_timeout), request_timeout=busy_timeout))

__all__ = [
    "BACKENDS",
    "STORAGE",
    "Backend",
    "Change",
    "StateStorage",
    "backend_named",
    "memory_storage",
    "create_storage",
    "open_items",
    "read_backend_settings",
    "sqlite_storage",
]

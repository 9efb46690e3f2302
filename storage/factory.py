"""Maps the ``STORAGE`` setting to a store. A new backend is one line here."""

from __future__ import annotations

from typing import Callable, Dict

from config import DefaultConfig

from .errors import StorageConfigurationError
from .json_storage import JsonStorage


def _sqlite(config: DefaultConfig) -> JsonStorage:
    from .sqlite_storage import SqliteStorage

    return SqliteStorage(config.SQLITE_PATH)


def _memory(config: DefaultConfig) -> JsonStorage:
    from .memory_storage import MemoryStore

    return MemoryStore()


BACKENDS: Dict[str, Callable[[DefaultConfig], JsonStorage]] = {
    "sqlite": _sqlite,
    "memory": _memory,
}


def create_storage(config: DefaultConfig) -> JsonStorage:
    try:
        factory = BACKENDS[config.STORAGE]
    except KeyError:
        raise StorageConfigurationError(
            f"STORAGE={config.STORAGE!r} is not one of: {', '.join(sorted(BACKENDS))}"
        ) from None
    return factory(config)

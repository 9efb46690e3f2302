"""Maps the ``STORAGE`` setting to a store. A new backend is one line here."""

from __future__ import annotations

from typing import Callable, Dict

from typing import Any as DefaultConfig

from ..errors import StorageConfigurationError
from .json_storage import JsonStorage


def _sqlite(config: DefaultConfig) -> JsonStorage:
    from .sqlite import SqliteStorage

    return SqliteStorage(config.SQLITE_PATH, config.SQLITE_BUSY_TIMEOUT)


def _memory(config: DefaultConfig) -> JsonStorage:
    from .memory import MemoryStore

    return MemoryStore()


def _cosmos(config: DefaultConfig) -> JsonStorage:
    from .cosmos import CosmosDbStorage

    return CosmosDbStorage.from_config(config)


def _blob(config: DefaultConfig) -> JsonStorage:
    from .blob import AzureBlobStorage

    return AzureBlobStorage.from_config(config)


def _table(config: DefaultConfig) -> JsonStorage:
    from .table import AzureTableStorage

    return AzureTableStorage.from_config(config)


BACKENDS: Dict[str, Callable[[DefaultConfig], JsonStorage]] = {
    "sqlite": _sqlite,
    "memory": _memory,
    "cosmos": _cosmos,
    "blob": _blob,
    "table": _table,
}


def create_storage(config: DefaultConfig) -> JsonStorage:
    try:
        factory = BACKENDS[config.STORAGE]
    except KeyError:
        raise StorageConfigurationError(
            f"STORAGE={config.STORAGE!r} is not one of: {', '.join(sorted(BACKENDS))}"
        ) from None
    return factory(config)

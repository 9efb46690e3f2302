"""Every backend named once: its settings class and its ``ItemStore``, found by ``STORAGE``.

A new backend is one module (a settings dataclass and an ``ItemStore``) plus one entry
here; the factory, the settings checks, ``.env.example`` and the storage contract suite
all read this list. Modules are imported on first use, so unused SDKs are never loaded.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from ..errors import StorageConfigurationError
from ..settings import Setting, declared, read_settings
from .items import ItemStore
from .state_storage import StateStorage


@dataclass(frozen=True)
class Backend:
    """One backend: where its classes live and what it is, in a line."""

    name: str
    module: str
    settings_class_name: str
    items_class_name: str
    summary: str

    def _attribute(self, name: str) -> Any:
        return getattr(importlib.import_module(self.module), name)

    @property
    def settings_class(self) -> type:
        return self._attribute(self.settings_class_name)

    @property
    def items_class(self) -> type:
        return self._attribute(self.items_class_name)

    def read_settings(self, env: Mapping[str, str]) -> Any:
        return read_settings(self.settings_class, env)


BACKENDS: Dict[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend("sqlite", "state_engine.stores.sqlite", "SqliteSettings", "SqliteItems",
                "one SQLite file (the default; survives restarts)"),
        Backend("memory", "state_engine.stores.memory", "MemorySettings", "MemoryItems",
                "in this process only (tests and demos; lost on restart)"),
        Backend("cosmos", "state_engine.stores.cosmos", "CosmosSettings", "CosmosItems",
                "Azure Cosmos DB (NoSQL API)"),
        Backend("blob", "state_engine.stores.blob", "BlobSettings", "BlobItems",
                "Azure Blob Storage"),
        Backend("table", "state_engine.stores.table", "TableSettings", "TableItems",
                "Azure Table storage"),
    )
}

STORAGE = Setting(
    "STORAGE", str, "sqlite",
    "Where state is kept: " + ", ".join(f"{name} ({b.summary})" for name, b in BACKENDS.items()),
    choices=tuple(BACKENDS),
)


def backend_named(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise StorageConfigurationError(
            f"STORAGE={name!r} is not one of: {', '.join(BACKENDS)}"
        ) from None


def read_backend_settings(name: str, env: Mapping[str, str]) -> Any:
    """Backend ``name``'s settings object, read from ``env``: a wrong value is a ``SettingError``,
    settings that cannot work together a ``StorageConfigurationError``, both naming the setting."""
    settings = backend_named(name).read_settings(env)
    check = getattr(settings, "check", None)
    if check is not None:
        check()
    return settings


def open_items(name: str, settings: Any, request_timeout: float = 3.0) -> ItemStore:
    """Backend ``name`` on its settings object."""
    return backend_named(name).items_class(settings, request_timeout=request_timeout)


def create_storage(name: str, settings: Any, *, deadline_seconds: Optional[float] = None) -> StateStorage:
    """The ``Storage`` the bot's state scopes use, on backend ``name``. Given the turn's
    deadline, every storage round trip is bounded by a quarter of it (a turn makes a few)
    and a commit across partitions by all of it; otherwise the store's defaults apply."""
    if deadline_seconds is None:
        return StateStorage(open_items(name, settings))
    items = open_items(name, settings, request_timeout=max(1.0, deadline_seconds / 4))
    return StateStorage(items, commit_timeout_seconds=deadline_seconds)


def backend_settings() -> Tuple[Setting, ...]:
    """STORAGE and every backend's settings, for ``.env.example`` and the settings checks."""
    found = [STORAGE]
    for backend in BACKENDS.values():
        found.extend(item for _, item in declared(backend.settings_class))
    return tuple(found)

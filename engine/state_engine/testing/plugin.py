"""The engine's pytest plugin (registered by its entry point): real emulators as fixtures.

``azurite`` and ``cosmos_emulator`` start once per session on free loopback ports;
``backend_env("table")`` gives settings for a fresh table, starting what it needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Iterator

import pytest

from .backends import HOOKS, backend_env as env_for_backend
from .emulators import Azurite, CosmosEmulator, start_azurite, start_cosmos


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite (Blob + Table) on free loopback ports, for the whole session."""
    server = start_azurite(tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cosmos_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CosmosEmulator]:
    """The Cosmos DB emulator on a free loopback port, for the whole session."""
    server = start_cosmos(tmp_path_factory.mktemp("cosmos"))
    yield server
    server.stop()


@pytest.fixture
def backend_env(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Dict[str, str]]:
    """``backend_env("table")``: settings putting a store or the bot on that backend, on a
    fresh container, table or file; starts the emulator it needs on first use."""

    def env_for(name: str) -> Dict[str, str]:
        fixture = {"azurite": "azurite", "cosmos": "cosmos_emulator"}.get(HOOKS[name].emulator or "")
        emulator = request.getfixturevalue(fixture) if fixture else None
        return env_for_backend(name, emulator, tmp_path)

    return env_for

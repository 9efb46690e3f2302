"""Fixtures shared by every test module."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Iterator

import pytest

from state_engine.testing import emulators
from state_engine.testing.emulators import Azurite, CosmosEmulator, start_azurite, start_cosmos

# --- storage emulators (tests/emulators.py) ------------------------------------


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
    """``backend_env("table")`` -> env vars putting the bot on that backend, on a
    fresh container/table; starts the emulator it needs on first use."""

    def env_for(name: str) -> Dict[str, str]:
        return emulators.backend_env(
            name,
            azurite=request.getfixturevalue("azurite") if name in ("blob", "table") else None,
            cosmos=request.getfixturevalue("cosmos_emulator") if name == "cosmos" else None,
            sqlite_path=tmp_path / "bot-state.sqlite3",
        )

    return env_for

"""The storage contract on every backend of the registry, each on its real server."""

from __future__ import annotations

from typing import AsyncIterator, Callable, Dict

import pytest

from state_engine.stores import BACKENDS, StateStorage, create_storage, read_backend_settings
from state_engine.testing.backends import HOOKS
from state_engine.testing.contract import StateStorageContract


def test_every_backend_has_test_hooks() -> None:
    assert set(HOOKS) == set(BACKENDS)


@pytest.fixture(params=list(BACKENDS))
async def storage(
    request: pytest.FixtureRequest, backend_env: Callable[[str], Dict[str, str]]
) -> AsyncIterator[StateStorage]:
    env = backend_env(request.param)
    store = create_storage(request.param, read_backend_settings(request.param, env))
    await store.ping()  # creates the container or table, as the first turn would
    yield store
    await store.close()


class TestEveryBackend(StateStorageContract):
    """The contract, once per backend."""

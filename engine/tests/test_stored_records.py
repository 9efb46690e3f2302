"""What a store holds is data, never code: a payload planted with the service's own SDK
(a jsonpickle ``py/reduce``, a type nobody registered) is refused on reading, on every
persistent backend, in a partition's record or in an item of the earlier one-record
layout, and nothing it names is run."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Dict, Tuple

import pytest

from state_engine import keys
from state_engine.errors import UnsafeDocumentError
from state_engine.stores import StateStorage, create_storage, read_backend_settings
from state_engine.stores.partition import FORMAT_TAG, FORMAT_VERSION
from state_engine.testing.backends import HOOKS, PERSISTENT

Planted = Tuple[str, Dict[str, str], StateStorage]


def _reduce(command: str) -> Dict[str, Any]:
    return {"py/reduce": [{"py/function": "os.system"}, {"py/tuple": [command]}]}


PAYLOADS: Dict[str, Callable[[str], Dict[str, Any]]] = {
    "jsonpickle py/reduce": lambda command: {"Profile": _reduce(command)},
    "unknown $type": lambda command: {"x": {"$type": "Popen", "$value": {"args": command}}},
    "py/ tag inside a registered model": lambda command: {
        "welcome": {"$type": "Activity", "$value": {"type": "message", "value": _reduce(command)}}
    },
}


@pytest.fixture(params=PERSISTENT)
async def backend(
    request: pytest.FixtureRequest, backend_env: Callable[[str], Dict[str, str]]
) -> AsyncIterator[Planted]:
    env = backend_env(request.param)
    storage = create_storage(request.param, read_backend_settings(request.param, env))
    await storage.ping()  # creates the file, container or table, as the first turn would
    yield request.param, env, storage
    await storage.close()


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("layout", ["in a partition", "one record per item"])
async def test_a_planted_payload_is_refused_and_runs_nothing(
    backend: Planted, payload: str, layout: str, tmp_path: Path
) -> None:
    name, env, storage = backend
    marker = tmp_path / "pwned"
    document = PAYLOADS[payload](f"touch {shlex.quote(str(marker))}")
    if layout == "in a partition":
        # One user's private state beside the conversation's own, in the conversation's item.
        key = keys.private_state("test", "conversation-1", "user-1")
        item_id = keys.partition_of(key)
        text = json.dumps(
            {
                FORMAT_TAG: FORMAT_VERSION,
                "records": {
                    item_id: {"e_tag": "clean", "value": {"count": 1}},
                    key: {"e_tag": "planted", "value": document},
                },
            }
        )
    else:
        key = item_id = keys.user_state("test", "user-1")
        text = json.dumps(document)
    assert keys.partition_of(key) == item_id
    await HOOKS[name].plant(env, item_id, text)

    with pytest.raises(UnsafeDocumentError):
        await storage.read([key])
    assert not marker.exists()

"""What a store holds is data, never code: a payload planted with the service's own SDK (a
jsonpickle ``py/reduce``, an unregistered type) is refused on reading on every persistent
backend, in a partition or in an item of the earlier one-record layout, and nothing runs;
records of that earlier layout are still found, to read and to forget."""

from __future__ import annotations

import json
import shlex
import tracemalloc
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Dict, Tuple

import pytest

from state_engine import codec, keys
from state_engine.errors import UnsafeDocumentError
from state_engine.forget import forget_user
from state_engine.migrate import MigrationReport, migrate
from state_engine.stores import StateStorage, create_storage, read_backend_settings, sqlite_storage
from state_engine.stores.partition import FORMAT_TAG, FORMAT_VERSION
from state_engine.testing.backends import HOOKS, PERSISTENT
from state_engine.testing.loop_lag import max_loop_lag

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


# The earlier version kept each record in an item of its own, under its key. A record
# under its partition's own key reads as it is; the others move in with `migrate`.
EARLIER_KEYS = {
    "user state": keys.user_state("test", "user-1"),
    "conversation state": keys.conversation_state("test", "conversation-1"),
    "private conversation state": keys.private_state("test", "conversation-1", "user-1"),
    "a conversation record": keys.PARTICIPANTS.key("test", "conversation-1"),
}


async def plant_earlier_layout(name: str, env: Dict[str, str]) -> None:
    for key in EARLIER_KEYS.values():
        await HOOKS[name].plant(env, key, codec.dumps({"count": 3}))


@pytest.mark.parametrize("backend", PERSISTENT, indirect=True)
async def test_records_of_the_earlier_layout_are_read_after_migrating(backend: Planted) -> None:
    name, env, storage = backend
    await plant_earlier_layout(name, env)
    roots = [EARLIER_KEYS["user state"], EARLIER_KEYS["conversation state"]]
    assert set(await storage.read(roots)) == set(roots)  # partitions of their own already

    report = await migrate(storage)
    assert (report.moved, report.dropped) == (2, 0)
    found = await storage.read(list(EARLIER_KEYS.values()))
    assert {kind: found[key]["count"] for kind, key in EARLIER_KEYS.items()} == dict.fromkeys(EARLIER_KEYS, 3)
    assert await storage.items.list_ids("test/conversations/conversation-1/") == []
    assert await migrate(storage) == MigrationReport()  # a second run finds nothing to do


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_forget_me_after_migrating_deletes_the_earlier_layouts_records(backend: Planted) -> None:
    """A user alone in a conversation, stored by the earlier version: nothing of theirs stays."""
    name, env, storage = backend
    await plant_earlier_layout(name, env)
    await migrate(storage)
    await forget_user(storage, "test", "user-1")
    assert await storage.items.list_ids("test/") == []


HOSTILE = {
    "nested 100,000 deep": '{"$partition": 1, "records": {"k": {"e_tag": "x", "value": {"v": '
    + "[" * 100_000 + "]" * 100_000 + "}}}}",
    "a record as wide as the limit allows": json.dumps(
        {FORMAT_TAG: FORMAT_VERSION, "records": {"k": {"e_tag": "x", "value": {str(n): [n] for n in range(110_000)}}}}
    ),
    "a record a million keys wide": json.dumps(
        {FORMAT_TAG: FORMAT_VERSION, "records": {"k": {"e_tag": "x", "value": {str(n): n for n in range(10**6)}}}}
    ),
}


@pytest.mark.parametrize("shape", HOSTILE)
async def test_a_hostile_item_is_refused_with_the_loop_free_and_memory_bounded(shape: str, tmp_path: Path) -> None:
    """Read on SQLite (the engine's logic is the same on every backend): refused or read
    within a bound, never a stalled loop or unbounded memory."""
    storage = sqlite_storage(str(tmp_path / "hostile.sqlite3"))
    await storage.ping()
    await HOOKS["sqlite"].plant({"SQLITE_PATH": str(tmp_path / "hostile.sqlite3")}, "k", HOSTILE[shape])
    try:
        lag, _ = await max_loop_lag(_refused(storage))
        tracemalloc.start()  # a second read, measured apart: tracing slows every allocation
        await _refused(storage)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await storage.close()
    assert peak < 400 * 1024 * 1024, f"{peak / 2**20:.0f} MiB to refuse one item"
    # Decoding runs on a thread; what is left is json's own parse of the item, which does
    # not let go of the GIL (about a fifth of a second for an item at the 2 MB limit here).
    assert lag < 0.5, f"the loop was blocked {lag:.2f} s"


async def _refused(storage: StateStorage) -> None:
    try:
        await storage.read(["k"])
    except UnsafeDocumentError:
        return

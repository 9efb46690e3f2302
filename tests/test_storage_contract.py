"""One contract every store of ours keeps, run against each backend on a real server.

memory and sqlite run in-process; cosmos, blob and table run against the local
emulators (tests/emulators.py), each test on a fresh container/table/file.
A new backend is one more name in BACKENDS and one branch in ``plant``.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable, Dict

import pytest
from azure.cosmos import CosmosClient, documents
from azure.data.tables.aio import TableClient
from azure.storage.blob.aio import BlobServiceClient
from botbuilder.azure import CosmosDbPartitionedConfig, CosmosDbPartitionedStorage

from config import DefaultConfig
from data_models import (
    ConversationData,
    PizzaOrder,
    PrivateConversationData,
    UserConversations,
    UserProfile,
    UtteranceLog,
)
from state_engine.stores import (
    CREATE_ONLY,
    ItemTooLargeError,
    PreconditionFailedError,
    StorageConfigurationError,
    StorageUnavailableError,
    UnsafeDocumentError,
    create_storage,
)
from state_engine.stores.blob import blob_name
from state_engine.stores.cosmos import cosmos_item_id
from state_engine.stores.json_storage import JsonStorage
from state_engine.stores.table import ROW_KEY, KEY_PROPERTY, document_properties, table_partition_key
from state_engine.testing.emulators import COSMOS_EMULATOR_KEY, start_cosmos
from state_engine.testing.loop_lag import max_loop_lag

BACKENDS = ["memory", "sqlite", "cosmos", "blob", "table"]

AWKWARD_KEYS = [
    "a/b?c#d\\e*f",
    "msteams/conversations/19:abc@thread.v2/users/29:1xyz",
    "with spaces inside and at the end ",
    " leading space",
    "emoji 😀🎉 and ünïcödé 中文",
    "tab\tnewline\nreturn\r",
    "ends with a dot.",
    "percent %2F and quote ' \"",
    "*42",
    "x" * 300,
]
LONG_TWIN_A = "k" * 255 + "-A" + "z" * 40
LONG_TWIN_B = "k" * 255 + "-B" + "z" * 40


@dataclass
class Backend:
    name: str
    env: Dict[str, str]
    store: JsonStorage

    async def plant(self, key: str, raw_json: str) -> None:
        """Store raw JSON under ``key`` with the backend's own client, bypassing our codec."""
        if self.name == "memory":
            self.store._documents[key] = (raw_json, "planted")
        elif self.name == "sqlite":
            with sqlite3.connect(self.env["SQLITE_PATH"]) as connection:
                connection.execute(
                    "INSERT INTO store_items (key, document, e_tag) VALUES (?, ?, 'planted')",
                    (key, raw_json),
                )
        elif self.name == "cosmos":
            await asyncio.to_thread(self._plant_cosmos, key, raw_json)
        elif self.name == "blob":
            async with BlobServiceClient.from_connection_string(
                self.env["BLOB_CONNECTION_STRING"]
            ) as service:
                container = service.get_container_client(self.env["BLOB_CONTAINER_NAME"])
                await container.upload_blob(blob_name(key), raw_json.encode(), overwrite=True)
        elif self.name == "table":
            async with TableClient.from_connection_string(
                self.env["TABLE_CONNECTION_STRING"], self.env["TABLE_NAME"]
            ) as table:
                await table.upsert_entity(
                    {
                        "PartitionKey": table_partition_key(key),
                        "RowKey": ROW_KEY,
                        KEY_PROPERTY: key,
                        **document_properties(raw_json),
                    }
                )
        else:
            raise AssertionError(f"no planting for {self.name}")

    def _plant_cosmos(self, key: str, raw_json: str) -> None:
        policy = documents.ConnectionPolicy()
        policy.EnableEndpointDiscovery = False
        with CosmosClient(
            self.env["COSMOS_DB_URI"], COSMOS_EMULATOR_KEY, connection_policy=policy
        ) as client:
            container = client.get_database_client(
                self.env["COSMOS_DB_DATABASE_ID"]
            ).get_container_client(self.env["COSMOS_DB_CONTAINER_ID"])
            item_id = cosmos_item_id(key)
            container.upsert_item({"id": item_id, "realId": key, "document": json.loads(raw_json)})


@pytest.fixture(params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, backend_env: Callable[[str], Dict[str, str]]
) -> AsyncIterator[Backend]:
    env = backend_env(request.param)
    store = create_storage(DefaultConfig.from_env(env))
    await store.ping()  # creates the container/table, as the first turn would
    yield Backend(request.param, env, store)
    await store.close()


@pytest.fixture
def store(backend: Backend) -> JsonStorage:
    """A fresh JsonStorage of each backend."""
    return backend.store


async def etag_of(store: JsonStorage, key: str) -> str:
    return (await store.read([key]))[key]["e_tag"]


# --- reading and writing ---------------------------------------------------------


async def test_missing_keys_are_absent(store: JsonStorage) -> None:
    assert await store.read(["nobody", "nothing/here"]) == {}
    assert await store.read([]) == {}


async def test_data_models_round_trip(store: JsonStorage) -> None:
    state = {
        "UserProfile": UserProfile(name="Ada", age=36),
        "ConversationData": ConversationData(timestamp="t", channel_id="test", welcomed=True),
        "PizzaOrder": PizzaOrder(toppings=["mushrooms", "cheese"]),
        "PrivateConversationData": PrivateConversationData(message_count=3),
        "UserConversations": UserConversations(conversation_ids=["c1", "c2"]),
    }
    await store.write({"user/1": state})
    found = (await store.read(["user/1"]))["user/1"]
    assert {name: found[name] for name in state} == state
    assert found["e_tag"] not in (None, "", "*", CREATE_ONLY)


async def test_store_item_with_etag_attribute_round_trips(store: JsonStorage) -> None:
    log = UtteranceLog(utterances=["hi", "there"], turn_number=2)
    await store.write({"log": log})
    found = (await store.read(["log"]))["log"]
    assert isinstance(found, UtteranceLog)
    assert (found.utterances, found.turn_number) == (["hi", "there"], 2)
    found.utterances.append("again")
    await store.write({"log": found})  # its e_tag makes this conditional, and current
    assert (await store.read(["log"]))["log"].utterances == ["hi", "there", "again"]


async def test_plain_nested_and_unicode_data(store: JsonStorage) -> None:
    item = {
        "text": "héllo 😀 中文 \u0000 \n <b>markup</b> `code`",
        "nested": {"list": [1, 2.5, None, True, {"deep": ["x", {"deeper": "y"}]}], "empty": {}},
        "py_like_string": "py/reduce is only text here",
    }
    await store.write({"plain": item})
    found = (await store.read(["plain"]))["plain"]
    assert {k: v for k, v in found.items() if k != "e_tag"} == item


@pytest.mark.parametrize("key", AWKWARD_KEYS, ids=lambda k: repr(k[:24]))
async def test_awkward_keys(store: JsonStorage, key: str) -> None:
    await store.write({key: {"value": key}})
    assert (await store.read([key]))[key]["value"] == key
    await store.delete([key])
    assert await store.read([key]) == {}


async def test_long_keys_differing_after_255_characters_stay_distinct(store: JsonStorage) -> None:
    await store.write({LONG_TWIN_A: {"v": "A"}, LONG_TWIN_B: {"v": "B"}})
    found = await store.read([LONG_TWIN_A, LONG_TWIN_B])
    assert (found[LONG_TWIN_A]["v"], found[LONG_TWIN_B]["v"]) == ("A", "B")


async def test_delete_present_and_missing(store: JsonStorage) -> None:
    await store.write({"a": {"v": 1}, "b": {"v": 2}})
    await store.delete(["a", "never-written"])
    assert list(await store.read(["a", "b"])) == ["b"]
    await store.delete([])


# --- e_tags ---------------------------------------------------------------------------


async def test_star_and_missing_etag_write_unconditionally(store: JsonStorage) -> None:
    await store.write({"k": {"v": 1}})
    await store.write({"k": {"v": 2, "e_tag": "*"}})
    await store.write({"k": {"v": 3}})
    assert (await store.read(["k"]))["k"]["v"] == 3
    with pytest.raises(ValueError):
        await store.write({"k": {"v": 4, "e_tag": ""}})


async def test_current_etag_writes_and_changes_the_etag(store: JsonStorage) -> None:
    await store.write({"k": {"v": 1}})
    first = await etag_of(store, "k")
    await store.write({"k": {"v": 2, "e_tag": first}})
    assert await etag_of(store, "k") != first


async def test_stale_etag_is_a_precondition_failure(store: JsonStorage) -> None:
    await store.write({"k": {"v": 1}})
    stale = await etag_of(store, "k")
    await store.write({"k": {"v": 2}})
    with pytest.raises(PreconditionFailedError):
        await store.write({"k": {"v": 3, "e_tag": stale}})
    assert (await store.read(["k"]))["k"]["v"] == 2


async def test_etag_of_a_deleted_item_is_a_precondition_failure(store: JsonStorage) -> None:
    await store.write({"k": {"v": 1}})
    e_tag = await etag_of(store, "k")
    await store.delete(["k"])
    with pytest.raises(PreconditionFailedError):
        await store.write({"k": {"v": 2, "e_tag": e_tag}})


async def test_create_only(store: JsonStorage) -> None:
    await store.write({"new": {"v": 1, "e_tag": CREATE_ONLY}})
    with pytest.raises(PreconditionFailedError):
        await store.write({"new": {"v": 2, "e_tag": CREATE_ONLY}})
    assert (await store.read(["new"]))["new"]["v"] == 1


async def test_concurrent_writers_with_the_same_etag_exactly_one_wins(store: JsonStorage) -> None:
    await store.write({"order": {"toppings": []}})
    e_tag = await etag_of(store, "order")
    writers = [f"topping-{n}" for n in range(5)]
    outcomes = await asyncio.gather(
        *(store.write({"order": {"toppings": [t], "e_tag": e_tag}}) for t in writers),
        return_exceptions=True,
    )
    winners = [t for t, outcome in zip(writers, outcomes) if outcome is None]
    losers = [o for o in outcomes if isinstance(o, PreconditionFailedError)]
    assert len(winners) == 1 and len(losers) == len(writers) - 1, outcomes
    assert (await store.read(["order"]))["order"]["toppings"] == winners


async def test_concurrent_create_only_exactly_one_wins(store: JsonStorage) -> None:
    outcomes = await asyncio.gather(
        *(store.write({"first": {"by": n, "e_tag": CREATE_ONLY}}) for n in range(5)),
        return_exceptions=True,
    )
    assert sum(outcome is None for outcome in outcomes) == 1, outcomes
    assert all(o is None or isinstance(o, PreconditionFailedError) for o in outcomes), outcomes


async def test_multi_key_write_with_one_failed_condition_writes_nothing(store: JsonStorage) -> None:
    await store.write({"a": {"v": 1}, "b": {"v": 1}})
    a_tag, stale_b = await etag_of(store, "a"), await etag_of(store, "b")
    await store.write({"b": {"v": 2}})
    with pytest.raises(PreconditionFailedError):
        await store.write(
            {
                "a": {"v": 99, "e_tag": a_tag},
                "b": {"v": 99, "e_tag": stale_b},
                "c": {"v": 99, "e_tag": CREATE_ONLY},
            }
        )
    found = await store.read(["a", "b", "c"])
    assert (found["a"]["v"], found["b"]["v"], "c" in found) == (1, 2, False)
    assert found["a"]["e_tag"] == a_tag


# --- limits and unsafe data ---------------------------------------------------------


async def test_too_large_document_is_refused_before_anything_is_written(
    store: JsonStorage,
) -> None:
    await store.write({"big": {"v": "small"}})
    too_big = "x" * (store.max_item_bytes + 1)
    with pytest.raises(ItemTooLargeError) as refused:
        await store.write({"other": {"v": 1}, "big": {"v": too_big}})
    assert refused.value.limit == store.max_item_bytes
    found = await store.read(["big", "other"])
    assert (found["big"]["v"], "other" in found) == ("small", False)


async def test_document_just_under_the_limit_is_stored(store: JsonStorage) -> None:
    overhead = len(json.dumps({"v": ""}))
    text = "é" * ((store.max_item_bytes - overhead - 64) // 2)
    await store.write({"near-limit": {"v": text}})
    assert (await store.read(["near-limit"]))["near-limit"]["v"] == text


async def test_planted_jsonpickle_payload_is_refused_and_runs_nothing(
    backend: Backend, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    payload = {
        "UserProfile": {
            "py/reduce": [{"py/function": "os.system"}, {"py/tuple": [f"touch {shlex.quote(str(marker))}"]}]
        }
    }
    await backend.plant("user/planted", json.dumps(payload))
    with pytest.raises(UnsafeDocumentError):
        await backend.store.read(["user/planted"])
    assert not marker.exists()


async def test_planted_unknown_type_is_refused(backend: Backend) -> None:
    await backend.plant("user/odd", json.dumps({"x": {"$type": "Popen", "$value": {}}}))
    with pytest.raises(UnsafeDocumentError):
        await backend.store.read(["user/odd"])


# --- Cosmos DB: the event loop stays free ------------------------------------------------


async def test_cosmos_calls_leave_the_event_loop_free(tmp_path: Path) -> None:
    """Every Cosmos call waits 100 ms (a slow network round trip). The SDK's
    store blocks the loop for all of it; ours keeps the loop answering. (What
    lag remains is threads taking turns with the GIL, not waiting on Cosmos.)"""
    latency = 0.100
    server = start_cosmos(tmp_path, latency_ms=int(latency * 1000))
    env = {
        "STORAGE": "cosmos",
        "COSMOS_DB_URI": server.uri,
        "COSMOS_DB_PRIMARY_KEY": COSMOS_EMULATOR_KEY,
        "COSMOS_DB_ENDPOINT_DISCOVERY": "false",
        "COSMOS_DB_CONTAINER_ID": "lag",
    }
    ours = create_storage(DefaultConfig.from_env(env))
    try:
        await ours.ping()

        async def our_turns() -> None:
            for round_ in range(3):
                keys = [f"user/{n}" for n in range(10)]
                await ours.write({key: {"round": round_} for key in keys})
                await ours.read(keys)

        await our_turns()  # warm-up: the pool starts its threads once, on first use
        our_lag, our_seconds = await max_loop_lag(our_turns())

        policy = documents.ConnectionPolicy()
        policy.EnableEndpointDiscovery = False
        sdk_store = CosmosDbPartitionedStorage(
            CosmosDbPartitionedConfig(
                cosmos_db_endpoint=server.uri,
                auth_key=COSMOS_EMULATOR_KEY,
                database_id="bot-db",
                container_id="lag",
                cosmos_client_options={"connection_policy": policy},
            )
        )
        await sdk_store.initialize()
        sdk_lag, _ = await max_loop_lag(sdk_store.read(["user/0", "user/1"]))
    finally:
        await ours.close()
        server.stop()

    print(
        f"\nloop lag during 60 Cosmos calls of {latency * 1000:.0f} ms each "
        f"({our_seconds:.2f} s): ours max {our_lag * 1000:.1f} ms; "
        f"botbuilder's store reading 2 keys: {sdk_lag * 1000:.1f} ms"
    )
    assert sdk_lag >= latency  # the problem is real: the SDK's store blocks the loop
    assert our_seconds > 2 * latency
    assert our_lag < latency / 3, f"event loop blocked for {our_lag * 1000:.1f} ms"


# --- configuration: clear errors, named settings --------------------------------------


@pytest.mark.parametrize(
    "env, setting",
    [
        ({"STORAGE": "cosmos"}, "COSMOS_DB_URI"),
        ({"STORAGE": "cosmos", "COSMOS_DB_URI": "cosmos.example"}, "COSMOS_DB_URI"),
        ({"STORAGE": "cosmos", "COSMOS_DB_URI": "https://a.example/"}, "COSMOS_DB_PRIMARY_KEY"),
        (
            {"STORAGE": "cosmos", "COSMOS_DB_URI": "https://a.example/", "COSMOS_DB_PRIMARY_KEY": "not base64!"},
            "COSMOS_DB_PRIMARY_KEY",
        ),
        (
            {
                "STORAGE": "cosmos",
                "COSMOS_DB_URI": "https://a.example/",
                "COSMOS_DB_PRIMARY_KEY": COSMOS_EMULATOR_KEY,
                "COSMOS_DB_CONTAINER_ID": "a/b",
            },
            "COSMOS_DB_CONTAINER_ID",
        ),
        ({"STORAGE": "blob"}, "BLOB_CONNECTION_STRING"),
        ({"STORAGE": "blob", "BLOB_CONNECTION_STRING": "nonsense"}, "BLOB_CONNECTION_STRING"),
        (
            {"STORAGE": "blob", "BLOB_CONNECTION_STRING": "UseDevelopmentStorage=true", "BLOB_CONTAINER_NAME": "Bad_Name"},
            "BLOB_CONTAINER_NAME",
        ),
        ({"STORAGE": "table"}, "TABLE_CONNECTION_STRING"),
        ({"STORAGE": "table", "TABLE_CONNECTION_STRING": "nonsense"}, "TABLE_CONNECTION_STRING"),
        (
            {"STORAGE": "table", "TABLE_CONNECTION_STRING": "UseDevelopmentStorage=true", "TABLE_NAME": "bad-name"},
            "TABLE_NAME",
        ),
        ({"STORAGE": "dynamo"}, "STORAGE"),
    ],
)
def test_wrong_settings_fail_at_start_naming_the_setting(env: Dict[str, str], setting: str) -> None:
    with pytest.raises(StorageConfigurationError, match=setting):
        create_storage(DefaultConfig.from_env(env))


@pytest.mark.parametrize("name", ["cosmos", "blob", "table"])
async def test_unreachable_store_is_unavailable_quickly(name: str) -> None:
    """A port nobody listens on: ``ping`` (what /healthz calls) says so, within the
    health check's 5 s, naming the setting to check."""
    closed = "http://127.0.0.1:9/"
    env = {
        "cosmos": {
            "STORAGE": "cosmos",
            "COSMOS_DB_URI": closed,
            "COSMOS_DB_PRIMARY_KEY": COSMOS_EMULATOR_KEY,
            "COSMOS_DB_ENDPOINT_DISCOVERY": "false",
        },
        "blob": {
            "STORAGE": "blob",
            "BLOB_CONNECTION_STRING": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={COSMOS_EMULATOR_KEY};BlobEndpoint={closed}devstoreaccount1;",
        },
        "table": {
            "STORAGE": "table",
            "TABLE_CONNECTION_STRING": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={COSMOS_EMULATOR_KEY};TableEndpoint={closed}devstoreaccount1;",
        },
    }[name]
    store = create_storage(DefaultConfig.from_env(env))
    started = time.perf_counter()
    try:
        with pytest.raises(StorageUnavailableError, match="COSMOS_DB_URI|_CONNECTION_STRING"):
            await store.ping()
    finally:
        await store.close()
    assert time.perf_counter() - started < 5


async def test_wrong_account_key_names_the_setting(
    backend_env: Callable[[str], Dict[str, str]],
) -> None:
    for name, setting in (("blob", "BLOB_CONNECTION_STRING"), ("table", "TABLE_CONNECTION_STRING")):
        env = backend_env(name)
        env[setting] = env[setting].replace("AccountKey=Eby8", "AccountKey=AAAA")
        store = create_storage(DefaultConfig.from_env(env))
        try:
            with pytest.raises(StorageConfigurationError, match=setting):
                await store.ping()
        finally:
            await store.close()

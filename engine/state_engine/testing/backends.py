"""Test hooks for every backend of the registry: one record each.

A record says which emulator the backend needs, the settings that point a store (or a
bot process) at a fresh container, table or file on it, and how to plant a raw item
with the service's own SDK, bypassing the engine entirely (for the stored-data tests).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional

from .emulators import COSMOS_EMULATOR_KEY, Azurite, CosmosEmulator, Emulator, unique_name

EnvFor = Callable[[Optional[Emulator], Path], Dict[str, str]]
Plant = Callable[[Dict[str, str], str, str], Awaitable[None]]


@dataclass(frozen=True)
class BackendHooks:
    name: str
    #: "azurite", "cosmos" or None: the emulator fixture the backend needs.
    emulator: Optional[str]
    env: EnvFor
    plant: Plant
    #: The setting holding the emulator's address (a URI, or a connection string naming one).
    endpoint_setting: Optional[str] = None


def _sqlite_env(_: Optional[Emulator], folder: Path) -> Dict[str, str]:
    return {"STORAGE": "sqlite", "SQLITE_PATH": str(folder / f"{unique_name('state')}.sqlite3")}


async def _plant_sqlite(env: Dict[str, str], item_id: str, text: str) -> None:
    with sqlite3.connect(env["SQLITE_PATH"]) as connection:
        connection.execute(
            "INSERT OR REPLACE INTO store_items (key, document, e_tag) VALUES (?, ?, 'planted')",
            (item_id, text),
        )


def _cosmos_env(emulator: Optional[Emulator], _: Path) -> Dict[str, str]:
    assert isinstance(emulator, CosmosEmulator)
    return {
        "STORAGE": "cosmos",
        "COSMOS_DB_URI": emulator.uri,
        "COSMOS_DB_PRIMARY_KEY": COSMOS_EMULATOR_KEY,
        "COSMOS_DB_DATABASE_ID": "bot-db",
        "COSMOS_DB_CONTAINER_ID": unique_name("state"),
        "COSMOS_DB_ENDPOINT_DISCOVERY": "false",
    }


async def _plant_cosmos(env: Dict[str, str], item_id: str, text: str) -> None:
    from azure.cosmos.aio import CosmosClient

    from ..stores.cosmos import cosmos_item_id

    try:
        document = json.loads(text)
    except ValueError:
        document = text
    async with CosmosClient(env["COSMOS_DB_URI"], COSMOS_EMULATOR_KEY, enable_endpoint_discovery=False) as client:
        container = client.get_database_client(env["COSMOS_DB_DATABASE_ID"]).get_container_client(
            env["COSMOS_DB_CONTAINER_ID"]
        )
        cosmos_id = cosmos_item_id(item_id)
        await container.upsert_item({"id": cosmos_id, "realId": item_id, "document": document})


def _blob_env(emulator: Optional[Emulator], _: Path) -> Dict[str, str]:
    assert isinstance(emulator, Azurite)
    return {
        "STORAGE": "blob",
        "BLOB_CONNECTION_STRING": emulator.connection_string("blob"),
        "BLOB_CONTAINER_NAME": unique_name("state"),
    }


async def _plant_blob(env: Dict[str, str], item_id: str, text: str) -> None:
    from azure.storage.blob.aio import BlobServiceClient

    from ..stores.blob import blob_name

    async with BlobServiceClient.from_connection_string(env["BLOB_CONNECTION_STRING"]) as service:
        container = service.get_container_client(env["BLOB_CONTAINER_NAME"])
        await container.upload_blob(blob_name(item_id), text.encode(), overwrite=True)


def _table_env(emulator: Optional[Emulator], _: Path) -> Dict[str, str]:
    assert isinstance(emulator, Azurite)
    return {
        "STORAGE": "table",
        "TABLE_CONNECTION_STRING": emulator.connection_string("table"),
        "TABLE_NAME": unique_name("state"),
    }


async def plant_table_entity(env: Dict[str, str], item_id: str, properties: Dict[str, object]) -> None:
    """Write one entity exactly as given (for shapes our code would never write)."""
    from azure.data.tables.aio import TableClient

    from ..stores.table import KEY_PROPERTY, ROW_KEY, table_partition_key

    async with TableClient.from_connection_string(env["TABLE_CONNECTION_STRING"], env["TABLE_NAME"]) as table:
        entity = {"PartitionKey": table_partition_key(item_id), "RowKey": ROW_KEY, KEY_PROPERTY: item_id}
        await table.upsert_entity({**entity, **properties})


async def _plant_table(env: Dict[str, str], item_id: str, text: str) -> None:
    from ..stores.table import document_properties

    await plant_table_entity(env, item_id, document_properties(text))


def _memory_env(_: Optional[Emulator], __: Path) -> Dict[str, str]:
    return {"STORAGE": "memory"}


async def _plant_memory(env: Dict[str, str], item_id: str, text: str) -> None:
    raise NotImplementedError("a memory store lives in one process: plant through its object")


HOOKS: Dict[str, BackendHooks] = {
    hooks.name: hooks
    for hooks in (
        BackendHooks("sqlite", None, _sqlite_env, _plant_sqlite),
        BackendHooks("memory", None, _memory_env, _plant_memory),
        BackendHooks("cosmos", "cosmos", _cosmos_env, _plant_cosmos, "COSMOS_DB_URI"),
        BackendHooks("blob", "azurite", _blob_env, _plant_blob, "BLOB_CONNECTION_STRING"),
        BackendHooks("table", "azurite", _table_env, _plant_table, "TABLE_CONNECTION_STRING"),
    )
}
#: Backends that keep data outside the test process (what a second bot process can share).
PERSISTENT = [name for name in HOOKS if name != "memory"]
#: Backends behind an emulator: a server reached over HTTP, which a fault proxy can stand in front of.
CLOUD = [name for name in PERSISTENT if HOOKS[name].emulator]


def backend_env(name: str, emulator: Optional[Emulator] = None, folder: Optional[Path] = None) -> Dict[str, str]:
    """Settings that put a store or a bot on backend ``name``, on a fresh container,
    table or file (pass the same dict to two processes to share one store)."""
    return HOOKS[name].env(emulator, folder or Path("/tmp"))


def read_back(env: Dict[str, str], keys: List[str], decoded: bool = True) -> Dict[str, Any]:
    """The records of ``keys`` as the store named by ``env`` holds them now, read through a
    store of its own (decoded, or as undecoded records), from synchronous test code."""
    from ..stores import create_storage, read_backend_settings

    async def read() -> Dict[str, Any]:
        store = create_storage(env["STORAGE"], read_backend_settings(env["STORAGE"], env))
        try:
            return await (store.read(keys) if decoded else store.read_records(keys))
        finally:
            await store.close()

    return asyncio.run(read())


def stored_items(env: Dict[str, str]) -> Dict[str, str]:
    """Every item the store named by ``env`` holds, as its raw JSON text, by item id."""
    from ..stores import open_items, read_backend_settings

    async def dump() -> Dict[str, str]:
        items = open_items(env["STORAGE"], read_backend_settings(env["STORAGE"], env))
        try:
            found = await items.get(await items.list_ids(""))
        finally:
            await items.close()
        return {item_id: item.text for item_id, item in found.items()}

    return asyncio.run(dump())

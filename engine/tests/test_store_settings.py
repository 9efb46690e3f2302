"""Storage settings fail clearly: a wrong one names the variable to fix, before any
request is made, and a store that cannot be reached or refuses the key says so quickly,
naming the setting to check (what /healthz reports), never echoing the secret."""

from __future__ import annotations

import time
from typing import Callable, Dict

import pytest

from state_engine.errors import StorageConfigurationError, StorageUnavailableError
from state_engine.settings import SettingError
from state_engine.stores import create_storage, open_items, read_backend_settings
from state_engine.stores.blob import BlobSettings
from state_engine.stores.table import TableSettings
from state_engine.testing.emulators import COSMOS_EMULATOR_KEY

CLOSED = "http://127.0.0.1:9/"  # nobody listens on the discard port
COSMOS = {"COSMOS_DB_URI": "https://a.example/", "COSMOS_DB_PRIMARY_KEY": COSMOS_EMULATOR_KEY}
ACCOUNT = f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={COSMOS_EMULATOR_KEY};"
DEVELOPMENT = "UseDevelopmentStorage=true"


@pytest.mark.parametrize(
    "name, env, setting",
    [
        ("dynamo", {}, "STORAGE"),
        ("sqlite", {"SQLITE_BUSY_TIMEOUT": "soon"}, "SQLITE_BUSY_TIMEOUT"),
        ("sqlite", {"SQLITE_BUSY_TIMEOUT": "-1"}, "SQLITE_BUSY_TIMEOUT"),
        ("cosmos", {}, "COSMOS_DB_URI"),
        ("cosmos", {"COSMOS_DB_URI": "cosmos.example"}, "COSMOS_DB_URI"),
        ("cosmos", {"COSMOS_DB_URI": "https://a.example/"}, "COSMOS_DB_PRIMARY_KEY"),
        ("cosmos", {**COSMOS, "COSMOS_DB_PRIMARY_KEY": "not base64!"}, "COSMOS_DB_PRIMARY_KEY"),
        ("cosmos", {**COSMOS, "COSMOS_DB_CONTAINER_ID": "a/b"}, "COSMOS_DB_CONTAINER_ID"),
        ("cosmos", {**COSMOS, "COSMOS_DB_DATABASE_ID": "x" * 256}, "COSMOS_DB_DATABASE_ID"),
        ("cosmos", {**COSMOS, "COSMOS_DB_THROUGHPUT": "100"}, "COSMOS_DB_THROUGHPUT"),
        ("cosmos", {**COSMOS, "COSMOS_DB_ENDPOINT_DISCOVERY": "maybe"}, "COSMOS_DB_ENDPOINT_DISCOVERY"),
        ("blob", {}, "BLOB_CONNECTION_STRING"),
        ("blob", {"BLOB_CONNECTION_STRING": "nonsense"}, "BLOB_CONNECTION_STRING"),
        (
            "blob",
            {"BLOB_CONNECTION_STRING": DEVELOPMENT, "BLOB_CONTAINER_NAME": "Bad_Name"},
            "BLOB_CONTAINER_NAME",
        ),
        ("table", {}, "TABLE_CONNECTION_STRING"),
        ("table", {"TABLE_CONNECTION_STRING": "nonsense"}, "TABLE_CONNECTION_STRING"),
        ("table", {"TABLE_CONNECTION_STRING": DEVELOPMENT, "TABLE_NAME": "bad-name"}, "TABLE_NAME"),
    ],
)
def test_wrong_settings_fail_at_start_naming_the_setting(
    name: str, env: Dict[str, str], setting: str
) -> None:
    """A wrong value is a SettingError, settings that cannot work a StorageConfigurationError;
    both name the setting. (The memory backend has no settings to get wrong.)"""
    with pytest.raises((SettingError, StorageConfigurationError), match=setting):
        open_items(name, read_backend_settings(name, env))


@pytest.mark.parametrize(
    "name, settings_class, setting",
    [
        ("blob", BlobSettings, "BLOB_CONNECTION_STRING"),
        ("table", TableSettings, "TABLE_CONNECTION_STRING"),
    ],
)
def test_a_malformed_account_key_is_refused_at_construction(
    name: str, settings_class: type, setting: str
) -> None:
    """Settings built in code skip ``read_backend_settings``; the store checks them itself,
    before the SDK would fail on the first request (or sign it with garbage)."""
    malformed = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=abc;"
    settings = settings_class(connection_string=malformed)
    with pytest.raises(StorageConfigurationError, match=setting) as refused:
        open_items(name, settings)
    assert "AccountKey=abc" not in str(refused.value)


@pytest.mark.parametrize("name", ["cosmos", "blob", "table"])
async def test_unreachable_store_is_unavailable_quickly(name: str) -> None:
    """A port nobody listens on: ``ping`` (what /healthz calls) says so within the health
    check's 5 s, naming the setting to check."""
    env = {
        "cosmos": {**COSMOS, "COSMOS_DB_URI": CLOSED, "COSMOS_DB_ENDPOINT_DISCOVERY": "false"},
        "blob": {"BLOB_CONNECTION_STRING": f"{ACCOUNT}BlobEndpoint={CLOSED}devstoreaccount1;"},
        "table": {"TABLE_CONNECTION_STRING": f"{ACCOUNT}TableEndpoint={CLOSED}devstoreaccount1;"},
    }[name]
    store = create_storage(name, read_backend_settings(name, env))
    started = time.perf_counter()
    try:
        with pytest.raises(StorageUnavailableError, match="COSMOS_DB_URI|_CONNECTION_STRING"):
            await store.ping()
    finally:
        await store.close()
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    "name, setting", [("blob", "BLOB_CONNECTION_STRING"), ("table", "TABLE_CONNECTION_STRING")]
)
async def test_wrong_account_key_names_the_setting(
    name: str, setting: str, backend_env: Callable[[str], Dict[str, str]]
) -> None:
    env = backend_env(name)
    env[setting] = env[setting].replace("AccountKey=Eby8", "AccountKey=AAAA")
    store = create_storage(name, read_backend_settings(name, env))
    try:
        with pytest.raises(StorageConfigurationError, match=setting) as refused:
            await store.ping()
        assert "AAAA" not in str(refused.value)
    finally:
        await store.close()

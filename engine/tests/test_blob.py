"""What only the Blob backend must show, on Azurite: its own REST calls name, write and read
the very blobs the SDK's ``BlobClient`` does (ids that need quoting included), work with a
container-scoped SAS token as well as with the account key, and never download a blob
larger than the store's limit."""

from __future__ import annotations

import datetime as dt
import tracemalloc
from typing import AsyncIterator, Callable, Dict
from urllib.parse import quote

import pytest
from azure.storage.blob import ContainerSasPermissions, ContentSettings, generate_container_sas
from azure.storage.blob.aio import BlobServiceClient

from state_engine.conditions import ABSENT, ANY, if_match
from state_engine.errors import PreconditionFailedError
from state_engine.stores import open_items, read_backend_settings
from state_engine.stores.blob import blob_name
from state_engine.stores.items import ItemStore, Put
from state_engine.testing.emulators import AZURITE_ACCOUNT, AZURITE_KEY, Azurite

EnvFor = Callable[[str], Dict[str, str]]

AWKWARD_IDS = [
    "emulator/conversations/a b/users/x",
    "ids/with%25percent/and?query#hash",
    "ids/ünïcode/😀",
    "ids/a trailing dot.",
    "ids/" + "long" * 300,
]


@pytest.fixture
async def blob_env(backend_env: EnvFor) -> AsyncIterator[Dict[str, str]]:
    env = backend_env("blob")
    async with _service(env) as service:
        await service.create_container(env["BLOB_CONTAINER_NAME"])
    yield env


def _service(env: Dict[str, str]) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(env["BLOB_CONNECTION_STRING"])


def _open(env: Dict[str, str]) -> ItemStore:
    return open_items("blob", read_backend_settings("blob", env))


@pytest.mark.parametrize("item_id", AWKWARD_IDS)
async def test_the_stores_blobs_are_the_sdks_blobs(blob_env: Dict[str, str], item_id: str) -> None:
    items = _open(blob_env)
    try:
        e_tag = await items.put(Put(item_id, '{"written": "by the store"}', ABSENT))
        assert await items.list_ids(item_id) == [item_id]
        async with _service(blob_env) as service:
            blob = service.get_container_client(blob_env["BLOB_CONTAINER_NAME"]).get_blob_client(
                blob_name(item_id)
            )
            download = await blob.download_blob()
            assert await download.readall() == b'{"written": "by the store"}'
            assert download.properties.etag == e_tag
            assert download.properties.metadata == {"itemid": quote(item_id, safe="")}
            await blob.upload_blob(b'{"written": "by the SDK"}', overwrite=True)
        found = (await items.get([item_id]))[item_id]
        assert found.text == '{"written": "by the SDK"}'
    finally:
        await items.close()


async def test_conditions_are_kept_by_the_service(blob_env: Dict[str, str]) -> None:
    items = _open(blob_env)
    try:
        first = await items.put(Put("c/1", "1", ABSENT))
        with pytest.raises(PreconditionFailedError):
            await items.put(Put("c/1", "again", ABSENT))
        second = await items.put(Put("c/1", "2", if_match(first)))
        with pytest.raises(PreconditionFailedError):
            await items.put(Put("c/1", "stale", if_match(first)))
        with pytest.raises(PreconditionFailedError):
            await items.put(Put("c/1", None, if_match(first)))
        assert (await items.get(["c/1"]))["c/1"].text == "2"
        await items.put(Put("c/1", None, if_match(second)))
        assert await items.get(["c/1"]) == {}
        assert await items.put(Put("c/1", None, ANY)) is None  # deleting what is not there
    finally:
        await items.close()


async def test_a_container_sas_token_is_enough(blob_env: Dict[str, str], azurite: Azurite) -> None:
    container = blob_env["BLOB_CONTAINER_NAME"]
    sas = generate_container_sas(
        AZURITE_ACCOUNT, container, account_key=AZURITE_KEY,
        permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True),
        expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1),
    )
    endpoint = f"http://127.0.0.1:{azurite.ports['blob']}/{AZURITE_ACCOUNT}"
    connection_string = f"BlobEndpoint={endpoint};SharedAccessSignature={sas}"
    env = {**blob_env, "BLOB_CONNECTION_STRING": connection_string}
    items = _open(env)
    try:
        await items.ping()
        e_tag = await items.put(Put("sas/item", "by SAS", ABSENT))
        assert (await items.get(["sas/item"]))["sas/item"].e_tag == e_tag
        assert await items.list_ids("sas/") == ["sas/item"]
        await items.put(Put("sas/item", None, if_match(e_tag)))
        assert await items.get(["sas/item"]) == {}
    finally:
        await items.close()


async def test_a_blob_stored_as_json_is_handed_over_as_text(blob_env: Dict[str, str]) -> None:
    """Whatever content type a blob carries, the store returns its text and nothing of the
    SDK's pipeline decodes it: the engine alone decides what stored text becomes."""
    async with _service(blob_env) as service:
        container = service.get_container_client(blob_env["BLOB_CONTAINER_NAME"])
        await container.upload_blob(
            blob_name("typed/item"),
            b"{not json",
            content_settings=ContentSettings(content_type="application/json"),
        )
    items = _open(blob_env)
    try:
        assert (await items.get(["typed/item"]))["typed/item"].text == "{not json"
    finally:
        await items.close()


async def test_a_blob_over_the_limit_is_refused_after_the_limits_worth_of_it(blob_env: Dict[str, str]) -> None:
    """Blob storage takes blobs of terabytes: one planted under a state key is refused on
    its size after its first limit's worth of bytes, so what it costs does not grow with
    it, and it can still be deleted."""
    items = _open(blob_env)
    planted = b"x" * (items.max_item_bytes * 8)
    async with _service(blob_env) as service:
        container = service.get_container_client(blob_env["BLOB_CONTAINER_NAME"])
        await container.upload_blob(blob_name("huge/item"), planted)
    try:
        tracemalloc.start()
        found = (await items.get(["huge/item"]))["huge/item"]
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert found.problem == "the stored blob is larger than this store's limit"
        # Only the first limit's worth comes down (buffered about twice on the way).
        assert peak < 3 * items.max_item_bytes, f"{peak / 2**20:.1f} MiB to refuse the blob"
        assert (await items.get(["small/item"])) == {}  # the store goes on answering
        await items.put(Put("huge/item", None, if_match(found.e_tag)))
        assert await items.get(["huge/item"]) == {}
    finally:
        await items.close()


async def test_an_empty_blob_is_read_as_empty_text(blob_env: Dict[str, str]) -> None:
    """A read asks for the first bytes only, which an empty blob does not have (416)."""
    async with _service(blob_env) as service:
        container = service.get_container_client(blob_env["BLOB_CONTAINER_NAME"])
        await container.upload_blob(blob_name("empty/item"), b"")
    items = _open(blob_env)
    try:
        found = (await items.get(["empty/item"]))["empty/item"]
        assert (found.text, found.problem) == ("", None)
    finally:
        await items.close()

"""What only the Table backend must show, on Azurite: its own REST calls address, write and
read the very entities the SDK's ``TableClient`` does (keys that need quoting included),
and work with a table-scoped SAS token as well as with the account key. Azurite checks
every Shared Key signature, as Azure does: one made with another key is refused. And for
Blob and Table alike, through a proxy in front of Azurite: which calls are sent again."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Dict, List

import aiohttp

import pytest
from aiohttp import web
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableSasPermissions, generate_table_sas
from azure.data.tables.aio import TableServiceClient

from state_engine.conditions import ABSENT, ANY, if_match
from state_engine.errors import PreconditionFailedError, StorageUnavailableError
from state_engine.stores import open_items, read_backend_settings
from state_engine.stores.items import ItemStore, Put
from state_engine.stores.storage_rest import StorageCalls
from state_engine.stores.table import ROW_KEY, table_partition_key
from state_engine.testing.emulators import AZURITE_ACCOUNT, AZURITE_KEY, Azurite
from state_engine.testing.local_app import forward, serving

EnvFor = Callable[[str], Dict[str, str]]

AWKWARD_IDS = [
    "emulator/conversations/a b/users/x",
    "ids/it's o'clock/''",
    "ids/with%25percent/and?query#hash*star",
    "ids/ünïcode/😀",
    "ids/" + "long" * 300,
]


@pytest.fixture
async def table_env(backend_env: EnvFor) -> AsyncIterator[Dict[str, str]]:
    env = backend_env("table")
    async with _service(env) as service:
        await service.create_table(env["TABLE_NAME"])
    yield env


def _service(env: Dict[str, str]) -> TableServiceClient:
    return TableServiceClient.from_connection_string(env["TABLE_CONNECTION_STRING"])


def _open(env: Dict[str, str]) -> ItemStore:
    return open_items("table", read_backend_settings("table", env))


@pytest.mark.parametrize("item_id", AWKWARD_IDS)
async def test_the_stores_entities_are_the_sdks_entities(table_env: Dict[str, str], item_id: str) -> None:
    """Written by the store, read by the SDK; written by the SDK (as a store before the
    store's own REST calls did), read and replaced by the store."""
    items = _open(table_env)
    partition_key = table_partition_key(item_id)
    try:
        e_tag = await items.put(Put(item_id, '{"written": "by the store"}', ABSENT))
        async with _service(table_env) as service:
            table = service.get_table_client(table_env["TABLE_NAME"])
            entity = await table.get_entity(partition_key, ROW_KEY)
            assert (entity["Key"], entity["DocumentParts"], entity["Document0"]) == (
                item_id, 1, '{"written": "by the store"}'
            )
            assert entity.metadata["etag"] == e_tag

            await table.upsert_entity(
                {"PartitionKey": partition_key, "RowKey": ROW_KEY, "Key": item_id,
                 "DocumentParts": 2, "Document0": '{"by": "the', "Document1": ' SDK"}'}
            )
        read = (await items.get([item_id]))[item_id]
        assert read.text == '{"by": "the SDK"}'
        with pytest.raises(PreconditionFailedError):
            await items.put(Put(item_id, "{}", if_match(e_tag)))
        await items.put(Put(item_id, '{"short": 1}', if_match(read.e_tag)))
        async with _service(table_env) as service:
            entity = await service.get_table_client(table_env["TABLE_NAME"]).get_entity(partition_key, ROW_KEY)
        assert "Document1" not in entity  # a replace, not a merge
        assert await items.list_ids(item_id) == [item_id]
        await items.put(Put(item_id, None, ANY))
        assert await items.get([item_id]) == {}
        assert await items.put(Put(item_id, None, ANY)) is None  # deleting what is not there
    finally:
        await items.close()


async def test_a_table_sas_token_is_enough(table_env: Dict[str, str], azurite: Azurite) -> None:
    table = table_env["TABLE_NAME"]
    sas = generate_table_sas(
        AzureNamedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY), table,
        permission=TableSasPermissions(read=True, add=True, update=True, delete=True),
        expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1),
    )
    endpoint = f"http://127.0.0.1:{azurite.ports['table']}/{AZURITE_ACCOUNT}"
    env = {**table_env, "TABLE_CONNECTION_STRING": f"TableEndpoint={endpoint};SharedAccessSignature={sas}"}
    items = _open(env)
    try:
        await items.ping()
        e_tag = await items.put(Put("sas/item", "by SAS", ABSENT))
        assert (await items.get(["sas/item"]))["sas/item"].e_tag == e_tag
        await items.put(Put("sas/item", None, if_match(e_tag)))
        assert await items.get(["sas/item"]) == {}
    finally:
        await items.close()


@pytest.mark.parametrize("service", ["blob", "table"])
async def test_our_calls_are_signed_as_azurite_checks_them(azurite: Azurite, service: str) -> None:
    """With the account key a call reaches the service (here: 404, no such blob or table);
    with another key it is refused (403), as Azure refuses it, and the store's error
    handling sees the SDK's error for it."""
    url = f"http://127.0.0.1:{azurite.ports[service]}/{AZURITE_ACCOUNT}"
    wrong = base64.b64encode(b"not the account key" * 3).decode()
    version = "2020-04-08" if service == "blob" else "2019-02-02"
    answers = {}
    for name, key in (("right", AZURITE_KEY), ("wrong", wrong)):
        calls = StorageCalls(service, url, version, 3.0, account=(AZURITE_ACCOUNT, key))
        try:
            with pytest.raises(HttpResponseError) as refused:
                if service == "blob":
                    await calls.send("GET", "nothere/nothing", {}, ok=(200,))
                else:
                    await calls.send("GET", "nothere()", {"Accept": "application/json"}, ok=(200,))
            answers[name] = refused.value.status_code
        finally:
            await calls.close()
    assert answers == {"right": 404, "wrong": 403}


@dataclass
class FaultyProxy:
    """Forwards to Azurite, recording each call's method; ``busy`` calls get Storage's 503
    ServerBusy unforwarded, and the next call after ``stall`` is set waits that long first
    (then still lands)."""

    upstream: str
    busy: int = 0
    stall: float = 0.0
    methods: List[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.methods.append(request.method)
        body = await request.read()
        if self.busy:
            self.busy -= 1
            return web.Response(status=503, headers={"x-ms-error-code": "ServerBusy"})
        if self.stall:
            stall, self.stall = self.stall, 0.0
            await asyncio.sleep(stall)
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            return await forward(session, request, self.upstream + request.path_qs, body)


@pytest.mark.parametrize("service", ["blob", "table"])
async def test_a_busy_or_stalled_call_is_sent_again_only_where_it_is_safe(
    backend_env: EnvFor, azurite: Azurite, service: str
) -> None:
    """Busy (503) twice is waited out, three times is the caller's error; a stalled read is
    asked again; a stalled write may have landed (here it does), so it is never sent again."""
    upstream = f"http://127.0.0.1:{azurite.ports[service]}"
    proxy = FaultyProxy(upstream)
    env = backend_env(service)
    setting = f"{service.upper()}_CONNECTION_STRING"
    async with serving(proxy.handle) as proxy_url:
        env[setting] = env[setting].replace(upstream, proxy_url)
        items = open_items(service, read_backend_settings(service, env), request_timeout=0.5)
        try:
            e_tag = await items.put(Put("user/1", '{"n": 1}', ABSENT))
            proxy.busy = 2
            assert (await items.get(["user/1"]))["user/1"].e_tag == e_tag
            proxy.busy = 2
            e_tag = await items.put(Put("user/1", '{"n": 2}', if_match(e_tag)))
            proxy.busy = 3
            with pytest.raises(StorageUnavailableError, match="503"):
                await items.get(["user/1"])
            proxy.busy = 0

            proxy.methods.clear()
            proxy.stall = 1.0
            assert (await items.get(["user/1"]))["user/1"].text == '{"n": 2}'
            assert proxy.methods == ["GET", "GET"]

            proxy.methods.clear()
            proxy.stall = 1.0
            with pytest.raises(StorageUnavailableError):
                await items.put(Put("user/1", '{"n": 3}', if_match(e_tag)))
            assert proxy.methods == ["PUT"]
            await asyncio.sleep(1.0)  # the stalled write reaches Azurite
            assert (await items.get(["user/1"]))["user/1"].text == '{"n": 3}'
        finally:
            await items.close()

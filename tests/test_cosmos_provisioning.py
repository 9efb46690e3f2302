"""Issue 4's provisioning promises for the Cosmos DB backend, on the real emulator.

A small HTTP proxy of ours sits between the client and the emulator. It records
every request (to see which throughput headers were sent) and can play the two
kinds of account the app must work on:

- a serverless account, which refuses any create that asks for throughput;
- an account whose key may not create databases or containers (Azure answers 403
  when key-based metadata writes are disabled, or with data-plane RBAC).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional

import aiohttp
import pytest
from aiohttp import web
from azure.cosmos import CosmosClient, PartitionKey, documents
from azure.cosmos import exceptions as cosmos_errors
from botbuilder.azure import CosmosDbPartitionedConfig, CosmosDbPartitionedStorage

from config import DefaultConfig
from state_engine.stores import PreconditionFailedError, StorageConfigurationError, StorageUnavailableError
from state_engine.stores.cosmos import CosmosDbStorage
from state_engine.testing.emulators import COSMOS_EMULATOR_KEY, CosmosEmulator, backend_env, unique_name

THROUGHPUT = "x-ms-offer-throughput"
AUTOSCALE = "x-ms-cosmos-offer-autopilot-settings"
# Headers that belong to one hop, not to the request being forwarded.
HOP_HEADERS = {"host", "connection", "keep-alive", "content-length", "transfer-encoding"}


@dataclass
class Recorded:
    method: str
    path: str
    headers: Dict[str, str]

    @property
    def is_create(self) -> bool:
        """POST /dbs or POST /dbs/{db}/colls that is not a query (queries POST there too)."""
        parts = self.path.strip("/").split("/")
        return (
            self.method == "POST"
            and parts[-1] in ("dbs", "colls")
            and len(parts) in (1, 3)
            and self.headers.get("x-ms-documentdb-isquery", "").lower() != "true"
        )


@dataclass
class CosmosProxy:
    """Forwards every request to ``upstream``, recording it; refuses what the account would."""

    upstream: str
    forbid_creates: bool = False
    serverless: bool = False
    requests: List[Recorded] = field(default_factory=list)
    refused: List[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.uri = f"http://127.0.0.1:{self._socket.getsockname()[1]}/"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._ready.wait(5), "the proxy did not start"

    def _serve(self) -> None:
        """The proxy's own loop, so the synchronous Cosmos client can block the test's."""
        runner = self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._session.close())
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    async def _start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, self._socket).start()
        self._session = aiohttp.ClientSession(auto_decompress=False)
        return runner

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        recorded = Recorded(
            request.method, request.path, {k.lower(): v for k, v in request.headers.items()}
        )
        self.requests.append(recorded)
        refusal = self._refusal(recorded)
        if refusal is not None:
            self.refused.append(recorded)
            status, code, message = refusal
            return web.json_response({"code": code, "message": message}, status=status)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        url = self.upstream.rstrip("/") + request.path_qs
        body = await request.read()
        async with self._session.request(request.method, url, headers=headers, data=body) as answer:
            return web.Response(
                status=answer.status,
                body=await answer.read(),
                headers={k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS},
            )

    def _refusal(self, request: Recorded) -> Optional[tuple[int, str, str]]:
        """The answer Azure gives such an account, or None to forward the request."""
        if self.forbid_creates and request.is_create:
            return 403, "Forbidden", (
                f"Operation 'POST' on resource '{request.path.strip('/').split('/')[-1]}' "
                "is not allowed through Azure Cosmos DB endpoint. Please switch on such "
                "operations for your account, or perform this operation through Azure "
                "Resource Manager, Azure Portal, Azure CLI or Azure Powershell"
            )
        if self.serverless and (THROUGHPUT in request.headers or AUTOSCALE in request.headers):
            return 400, "BadRequest", (
                "Setting offer throughput or autopilot on container is not supported "
                "for serverless accounts."
            )
        return None

    def create_throughput(self, kind: str) -> List[Optional[str]]:
        """The throughput header of each create of ``kind`` ("dbs" or "colls")."""
        return [
            r.headers.get(THROUGHPUT)
            for r in self.requests
            if r.is_create and r.path.rstrip("/").endswith(kind)
        ]


@pytest.fixture
def proxy(cosmos_emulator: CosmosEmulator) -> Iterator[CosmosProxy]:
    server = CosmosProxy(cosmos_emulator.uri)
    yield server
    server.close()


@pytest.fixture
def admin(cosmos_emulator: CosmosEmulator) -> Iterator[CosmosClient]:
    """A client with every right, straight to the emulator: the portal, in effect."""
    policy = _policy()
    with CosmosClient(cosmos_emulator.uri, COSMOS_EMULATOR_KEY, connection_policy=policy) as client:
        yield client


def _policy() -> documents.ConnectionPolicy:
    policy = documents.ConnectionPolicy()
    policy.EnableEndpointDiscovery = False  # the emulator advertises https:// it does not serve
    return policy


def _store(emulator: CosmosEmulator, proxy: CosmosProxy, **settings: str) -> CosmosDbStorage:
    """Our store, configured as the app configures it, talking through the proxy."""
    env = backend_env("cosmos", cosmos=emulator)
    env.update(COSMOS_DB_URI=proxy.uri, COSMOS_DB_DATABASE_ID=unique_name("db"), **settings)
    return CosmosDbStorage.from_config(DefaultConfig.from_env(env))


def _sdk_store(store: CosmosDbStorage) -> CosmosDbPartitionedStorage:
    """botbuilder's own store on the same settings, with its default throughput."""
    config = store._config
    return CosmosDbPartitionedStorage(
        CosmosDbPartitionedConfig(
            cosmos_db_endpoint=config.cosmos_db_endpoint,
            auth_key=config.auth_key,
            database_id=config.database_id,
            container_id=config.container_id,
            cosmos_client_options={"connection_policy": _policy()},
        )
    )


# --- serverless: no throughput unless configured ---------------------------------------


async def test_no_throughput_is_sent_unless_configured(
    cosmos_emulator: CosmosEmulator, proxy: CosmosProxy
) -> None:
    """On a serverless account ours creates its database and container and works;
    botbuilder's store asks for 400 RU/s and is refused. Set, the throughput is sent."""
    proxy.serverless = True
    ours = _store(cosmos_emulator, proxy)
    try:
        await ours.write({"user/1": {"name": "Ada"}})
        assert (await ours.read(["user/1"]))["user/1"]["name"] == "Ada"
    finally:
        await ours.close()
    ours_sent = proxy.create_throughput("colls")
    assert proxy.create_throughput("dbs") == [None]
    assert not [r for r in proxy.requests if THROUGHPUT in r.headers or AUTOSCALE in r.headers]

    proxy.requests.clear()
    with pytest.raises(cosmos_errors.CosmosHttpResponseError, match="serverless"):
        await _sdk_store(_store(cosmos_emulator, proxy)).initialize()
    sdk_sent = proxy.create_throughput("colls")

    proxy.serverless = False
    proxy.requests.clear()
    configured = _store(cosmos_emulator, proxy, COSMOS_DB_THROUGHPUT="400")
    try:
        await configured.ping()
    finally:
        await configured.close()

    assert {"ours": ours_sent, "sdk": sdk_sent, "configured": proxy.create_throughput("colls")} == {
        "ours": [None],
        "sdk": ["400"],
        "configured": ["400"],
    }


# --- least privilege: a key that may not create --------------------------------------


async def test_existing_database_and_container_work_without_create_permission(
    cosmos_emulator: CosmosEmulator, proxy: CosmosProxy, admin: CosmosClient
) -> None:
    """Reads come first, so nothing is created and the store works; botbuilder's
    store tries to create the container anyway and fails."""
    proxy.forbid_creates = True
    store = _store(cosmos_emulator, proxy)
    config = store._config
    admin.create_database(config.database_id).create_container(
        config.container_id, PartitionKey(path="/id")
    )
    try:
        await store.write({"user/1": {"name": "Ada"}})
        first = (await store.read(["user/1"]))["user/1"]
        await store.write({"user/1": {**first, "name": "Grace"}})
        with pytest.raises(PreconditionFailedError):
            await store.write({"user/1": {**first, "name": "stale"}})
        assert (await store.read(["user/1"]))["user/1"]["name"] == "Grace"
        await store.delete(["user/1"])
        assert await store.read(["user/1"]) == {}
    finally:
        await store.close()
    assert proxy.refused == []  # it never even tried to create

    with pytest.raises(cosmos_errors.CosmosHttpResponseError) as refused:
        await _sdk_store(store).initialize()
    assert refused.value.status_code == 403


@pytest.mark.parametrize("missing", ["database", "container"])
async def test_missing_and_not_creatable_names_the_setting(
    missing: str, cosmos_emulator: CosmosEmulator, proxy: CosmosProxy, admin: CosmosClient
) -> None:
    """The error names the setting to fix; once someone creates it, the same store works."""
    proxy.forbid_creates = True
    store = _store(cosmos_emulator, proxy)
    config = store._config
    setting = {"database": "COSMOS_DB_DATABASE_ID", "container": "COSMOS_DB_CONTAINER_ID"}[missing]
    value = {"database": config.database_id, "container": config.container_id}[missing]
    if missing == "container":
        admin.create_database(config.database_id)
    try:
        with pytest.raises(StorageConfigurationError) as error:
            await store.ping()
        message = str(error.value)
        assert f"{setting}={value!r} does not exist and this key may not create it" in message
        assert proxy.refused, "the create was attempted and refused"

        admin.create_database_if_not_exists(config.database_id).create_container(
            config.container_id, PartitionKey(path="/id")
        )
        await store.write({"user/1": {"name": "Ada"}})
        assert (await store.read(["user/1"]))["user/1"]["name"] == "Ada"
    finally:
        await store.close()


# --- an endpoint that never answers ---------------------------------------------------


async def test_an_endpoint_that_never_answers_is_unavailable_not_a_hang(
    cosmos_emulator: CosmosEmulator,
) -> None:
    """azure-core would wait 300 s for an answer; the store gives up after its read timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections (the kernel does), never answers
        env = backend_env("cosmos", cosmos=cosmos_emulator)
        env["COSMOS_DB_URI"] = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        store = CosmosDbStorage.from_config(DefaultConfig.from_env(env), read_timeout_seconds=0.5)
        started = asyncio.get_running_loop().time()
        with pytest.raises(StorageUnavailableError):
            await store.read(["anything"])
        assert asyncio.get_running_loop().time() - started < 15
        await store.close()

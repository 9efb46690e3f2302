"""What only the Cosmos DB backend must show, on the emulator: provisioning on the accounts
the app meets, a bounded wait, a usable container, an event loop that never waits on it.
A recording proxy in front of the emulator plays a serverless account and one whose key
may not create databases or containers (Azure's 403 with metadata writes disabled)."""

from __future__ import annotations

import asyncio
import base64
import gc
import socket
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from aiohttp import web
from azure.cosmos import CosmosClient, PartitionKey, documents
from azure.cosmos import auth as cosmos_auth
from azure.cosmos import exceptions as cosmos_errors
from botbuilder.azure import CosmosDbPartitionedConfig, CosmosDbPartitionedStorage

from state_engine.errors import (
    PreconditionFailedError,
    StorageConfigurationError,
    StorageUnavailableError,
    WriteOutcomeUnknownError,
)
from state_engine.stores import StateStorage, create_storage, open_items, read_backend_settings
from state_engine.stores.cosmos import CosmosSettings
from state_engine.stores.cosmos_rest import CosmosRequests, SessionTokens, master_key_token
from state_engine.testing.emulators import COSMOS_EMULATOR_KEY, CosmosEmulator, start_cosmos, unique_name
from state_engine.testing.local_app import ThreadedServer, forward
from state_engine.testing.loop_lag import max_loop_lag

EnvFor = Callable[[str], Dict[str, str]]
THROUGHPUT = "x-ms-offer-throughput"
AUTOSCALE = "x-ms-cosmos-offer-autopilot-settings"


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

    @property
    def is_item_call(self) -> bool:
        """A read or write of items (not a query): what a turn sends."""
        return "/docs" in self.path and "x-ms-documentdb-isquery" not in self.headers


@dataclass
class CosmosProxy:
    """Forwards every request to ``upstream``, recording it; refuses what the account would."""

    upstream: str
    forbid_creates: bool = False
    serverless: bool = False
    #: Item calls still to answer 429 (throttled, with a short retry-after) unforwarded.
    throttle: int = 0
    #: Seconds the next item call waits before it is forwarded (it still lands).
    stall: float = 0.0
    #: Answer every item write with a session token of the next LSN, as an account on
    #: session consistency does (the emulator sends none).
    session_tokens: bool = False
    _lsn: int = 0
    requests: List[Recorded] = field(default_factory=list)
    refused: List[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        # On a thread of its own, so botbuilder's synchronous store can block the test's loop.
        self._server = ThreadedServer(self._handle)
        self.uri = f"{self._server.url}/"

    def close(self) -> None:
        self._server.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        recorded = Recorded(
            request.method, request.path, {k.lower(): v for k, v in request.headers.items()}
        )
        self.requests.append(recorded)
        body = await request.read()
        if recorded.is_item_call and self.throttle:
            self.throttle -= 1
            return web.json_response(
                {"code": "TooManyRequests"}, status=429, headers={"x-ms-retry-after-ms": "20"}
            )
        if recorded.is_item_call and self.stall:
            stall, self.stall = self.stall, 0.0
            await asyncio.sleep(stall)
        refusal = self._refusal(recorded)
        if refusal is not None:
            self.refused.append(recorded)
            status, code, message = refusal
            return web.json_response({"code": code, "message": message}, status=status)
        assert self._server.session is not None
        answer = await forward(self._server.session, request, self.upstream.rstrip("/") + request.path_qs, body)
        if self.session_tokens and recorded.is_item_call and recorded.method != "GET":
            self._lsn += 1
            answer.headers["x-ms-session-token"] = f"0:-1#{self._lsn}"
        return answer

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


def _policy() -> documents.ConnectionPolicy:
    policy = documents.ConnectionPolicy()
    policy.EnableEndpointDiscovery = False  # the emulator advertises https:// it does not serve
    return policy


@pytest.fixture
def admin(cosmos_emulator: CosmosEmulator) -> Iterator[CosmosClient]:
    """A client with every right, straight to the emulator: the portal, in effect."""
    with CosmosClient(cosmos_emulator.uri, COSMOS_EMULATOR_KEY, connection_policy=_policy()) as client:
        yield client


def _settings(backend_env: EnvFor, **overrides: str) -> CosmosSettings:
    env = backend_env("cosmos")
    env.update(overrides)
    return read_backend_settings("cosmos", env)


def _store(
    backend_env: EnvFor, proxy: CosmosProxy, **overrides: str
) -> Tuple[StateStorage, CosmosSettings]:
    """Our store, configured as the app configures it, talking through the proxy to a
    database of its own."""
    settings = _settings(
        backend_env, COSMOS_DB_URI=proxy.uri, COSMOS_DB_DATABASE_ID=unique_name("db"), **overrides
    )
    return StateStorage(open_items("cosmos", settings)), settings


def _sdk_store(settings: CosmosSettings) -> CosmosDbPartitionedStorage:
    """botbuilder's own store on the same settings, with its default throughput."""
    return CosmosDbPartitionedStorage(
        CosmosDbPartitionedConfig(
            cosmos_db_endpoint=settings.uri,
            auth_key=settings.key,
            database_id=settings.database,
            container_id=settings.container,
            cosmos_client_options={"connection_policy": _policy()},
        )
    )


# --- serverless: no throughput unless configured ---------------------------------------


async def test_no_throughput_is_sent_unless_configured(backend_env: EnvFor, proxy: CosmosProxy) -> None:
    """On a serverless account ours creates its database and container and works;
    botbuilder's store asks for 400 RU/s and is refused. Set, the throughput is sent."""
    proxy.serverless = True
    ours, _ = _store(backend_env, proxy)
    try:
        await ours.write({"user/1": {"name": "Ada"}})
        assert (await ours.read(["user/1"]))["user/1"]["name"] == "Ada"
    finally:
        await ours.close()
    ours_sent = proxy.create_throughput("colls")
    assert proxy.create_throughput("dbs") == [None]
    assert not [r for r in proxy.requests if THROUGHPUT in r.headers or AUTOSCALE in r.headers]

    proxy.requests.clear()
    _, other = _store(backend_env, proxy)
    with pytest.raises(cosmos_errors.CosmosHttpResponseError, match="serverless"):
        await _sdk_store(other).initialize()
    sdk_sent = proxy.create_throughput("colls")

    proxy.serverless = False
    proxy.requests.clear()
    configured, _ = _store(backend_env, proxy, COSMOS_DB_THROUGHPUT="400")
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
    backend_env: EnvFor, proxy: CosmosProxy, admin: CosmosClient
) -> None:
    """Reads come first, so nothing is created and the store works; botbuilder's
    store tries to create the container anyway and fails."""
    proxy.forbid_creates = True
    store, settings = _store(backend_env, proxy)
    database = admin.create_database(settings.database)
    database.create_container(settings.container, PartitionKey(path="/id"))
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
        await _sdk_store(settings).initialize()
    assert refused.value.status_code == 403


@pytest.mark.parametrize("missing", ["database", "container"])
async def test_missing_and_not_creatable_names_the_setting(
    missing: str, backend_env: EnvFor, proxy: CosmosProxy, admin: CosmosClient
) -> None:
    """The error names the setting to fix; once someone creates it, the same store works."""
    proxy.forbid_creates = True
    store, settings = _store(backend_env, proxy)
    setting = {"database": "COSMOS_DB_DATABASE_ID", "container": "COSMOS_DB_CONTAINER_ID"}[missing]
    value = {"database": settings.database, "container": settings.container}[missing]
    if missing == "container":
        admin.create_database(settings.database)
    try:
        with pytest.raises(StorageConfigurationError) as error:
            await store.ping()
        assert f"{setting}={value!r} does not exist and this key may not create it" in str(error.value)
        assert proxy.refused, "the create was attempted and refused"

        admin.create_database_if_not_exists(settings.database).create_container(
            settings.container, PartitionKey(path="/id")
        )
        await store.write({"user/1": {"name": "Ada"}})
        assert (await store.read(["user/1"]))["user/1"]["name"] == "Ada"
    finally:
        await store.close()


# --- a container it can use ---------------------------------------------------------------


async def test_a_container_partitioned_on_another_path_is_refused_by_name(
    backend_env: EnvFor, admin: CosmosClient
) -> None:
    settings = _settings(backend_env)
    admin.create_database_if_not_exists(settings.database).create_container(
        settings.container, PartitionKey(path="/userId")
    )
    store = StateStorage(open_items("cosmos", settings))
    try:
        with pytest.raises(StorageConfigurationError, match="COSMOS_DB_CONTAINER_ID") as refused:
            await store.ping()
        assert f"{settings.container!r}" in str(refused.value) and "/userId" in str(refused.value)
        with pytest.raises(StorageConfigurationError, match="COSMOS_DB_CONTAINER_ID"):
            await store.read(["user/1"])
    finally:
        await store.close()


async def test_a_container_that_vanished_makes_ping_name_the_setting(
    backend_env: EnvFor, admin: CosmosClient
) -> None:
    """Deleted under a running bot: /healthz says which setting; the next call looks the
    container up again (and creates it, as this key may)."""
    settings = _settings(backend_env)
    store = StateStorage(open_items("cosmos", settings))
    try:
        await store.write({"user/1": {"name": "Ada"}})
        admin.get_database_client(settings.database).delete_container(settings.container)
        with pytest.raises(StorageUnavailableError, match="COSMOS_DB_CONTAINER_ID") as vanished:
            await store.ping()
        assert f"{settings.container!r}" in str(vanished.value)
        await store.ping()
        assert await store.read(["user/1"]) == {}
    finally:
        await store.close()


# --- an endpoint that never answers ---------------------------------------------------


async def test_an_endpoint_that_never_answers_is_unavailable_not_a_hang(backend_env: EnvFor) -> None:
    """azure-core would wait 300 s for an answer; the store gives up after its request timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections (the kernel does), never answers
        settings = _settings(backend_env, COSMOS_DB_URI=f"http://127.0.0.1:{silent.getsockname()[1]}/")
        store = StateStorage(open_items("cosmos", settings, request_timeout=0.5))
        started = time.perf_counter()
        try:
            async with asyncio.timeout(10):
                with pytest.raises(StorageUnavailableError, match="COSMOS_DB_URI"):
                    await store.read(["anything"])
        except TimeoutError:
            pytest.fail("the read was still waiting for the silent endpoint after 10 s")
        finally:
            await store.close()
        assert time.perf_counter() - started < 5


# --- the event loop stays free ---------------------------------------------------------------


async def test_cosmos_calls_leave_the_event_loop_free(tmp_path: Path) -> None:
    """Every Cosmos call waits 200 ms (a slow network round trip). botbuilder's store
    blocks the loop for all of it; ours, on the async client, keeps the loop answering.
    (What lag remains is handling answers that arrive together, not waiting on Cosmos.
    The collector's full passes over this test process's large heap, tens of ms that any
    Python code pays, are kept out of the measurement by freezing what exists by then.)"""
    latency = 0.200
    server = start_cosmos(tmp_path, latency_ms=int(latency * 1000))
    env = {
        "COSMOS_DB_URI": server.uri,
        "COSMOS_DB_PRIMARY_KEY": COSMOS_EMULATOR_KEY,
        "COSMOS_DB_ENDPOINT_DISCOVERY": "false",
        "COSMOS_DB_CONTAINER_ID": "lag",
    }
    settings = read_backend_settings("cosmos", env)
    ours = create_storage("cosmos", settings)
    try:
        await ours.ping()

        async def our_turns() -> None:
            for round_ in range(3):
                keys = [f"user/{n}" for n in range(10)]
                await ours.write({key: {"round": round_} for key in keys})
                await ours.read(keys)

        await our_turns()  # warm-up: connections are opened once, on first use
        gc.collect()
        gc.freeze()
        try:
            our_lag, our_seconds = await max_loop_lag(our_turns())
        finally:
            gc.unfreeze()

        sdk_store = _sdk_store(settings)
        await sdk_store.initialize()
        sdk_lag, _ = await max_loop_lag(sdk_store.read(["user/0", "user/1"]))
    finally:
        await ours.close()
        server.stop()

    print(
        f"\nloop lag during our Cosmos calls of {latency * 1000:.0f} ms each "
        f"({our_seconds:.2f} s): ours max {our_lag * 1000:.1f} ms; "
        f"botbuilder's store reading 2 keys: {sdk_lag * 1000:.1f} ms"
    )
    assert sdk_lag >= latency  # the problem is real: the SDK's store blocks the loop
    assert our_seconds > 2 * latency
    # A call that blocked would stall the loop for a whole round trip; half of one leaves
    # room for a shared 2-core machine taking the process off its core for a while.
    assert our_lag < latency / 2, f"event loop blocked for {our_lag * 1000:.1f} ms"


# --- item calls on the REST API ------------------------------------------------------------


@dataclass
class _MasterKeyConnection:
    """What the SDK's signing reads of its client: the key, and no resource tokens."""

    master_key: str = COSMOS_EMULATOR_KEY
    resource_tokens: Optional[Dict[str, str]] = None


@pytest.mark.parametrize(
    ("verb", "resource_type", "link"),
    [
        ("GET", "docs", "dbs/bot-db/colls/bot-storage/docs/user 1 é%20*3f"),
        ("POST", "docs", "dbs/bot-db/colls/bot-storage"),
        ("PUT", "docs", "dbs/db/colls/c/docs/emulator/conv/users/u1"),
        ("DELETE", "docs", "dbs/db/colls/c/docs/x"),
    ],
)
def test_our_signature_is_the_one_the_sdk_sends(verb: str, resource_type: str, link: str) -> None:
    """The emulator checks signatures only because its launcher does (--key); this pins
    ours to the SDK's own for the same request, names with spaces and non-ASCII included."""
    date = "Thu, 03 Dec 2026 19:52:00 GMT"
    sdk = cosmos_auth._get_authorization_header(
        _MasterKeyConnection(), verb, "", link, True, resource_type, {"x-ms-date": date}
    )
    ours = master_key_token(base64.b64decode(COSMOS_EMULATOR_KEY), verb, resource_type, link, date)
    assert ours == urllib.parse.quote(sdk, "-_.!~*'()")


def test_session_tokens_keep_the_newest_of_each_range() -> None:
    tokens = SessionTokens()
    assert tokens.header is None
    tokens.update("0:-1#12")
    tokens.update("1:-1#5,0:-1#9")  # range 0 older than what was kept
    tokens.update("1:-1#7#1=3")
    tokens.update("2:garbage")
    assert tokens.header == "0:-1#12,1:-1#7#1=3"
    tokens.update("0:1#2")  # a newer version of the range (after a split) wins
    assert tokens.header == "0:1#2,1:-1#7#1=3"


async def test_a_wrong_key_is_refused_as_azure_refuses_it(backend_env: EnvFor) -> None:
    """The launcher checks signatures, so a request signed with another key gets Azure's 401."""
    settings = _settings(backend_env)
    wrong = base64.b64encode(b"not the account key" * 3).decode()
    requests = CosmosRequests(settings.uri, wrong, settings.database, settings.container, 3.0)
    try:
        assert (await requests.read("user/1")).status == 401
    finally:
        await requests.close()
    store = StateStorage(open_items("cosmos", _settings(backend_env, COSMOS_DB_PRIMARY_KEY=wrong)))
    try:
        with pytest.raises(StorageConfigurationError, match="COSMOS_DB_PRIMARY_KEY was refused"):
            await store.read(["user/1"])
    finally:
        await store.close()


async def test_a_throttled_call_is_sent_again_after_the_wait_cosmos_asks_for(
    backend_env: EnvFor, proxy: CosmosProxy
) -> None:
    """A 429 was not carried out: two in a row are waited out; a third is the turn's error."""
    store, _ = _store(backend_env, proxy)
    try:
        await store.write({"user/1": {"name": "Ada"}})
        proxy.throttle = 2
        assert (await store.read(["user/1"]))["user/1"]["name"] == "Ada"
        proxy.throttle = 2
        await store.write({"user/2": {"name": "Grace"}})
        assert (await store.read(["user/2"]))["user/2"]["name"] == "Grace"
        proxy.throttle = 3
        with pytest.raises(StorageUnavailableError, match="429"):
            await store.read(["user/1"])
    finally:
        await store.close()


async def test_a_read_that_timed_out_is_sent_again_and_a_write_never_is(
    backend_env: EnvFor, proxy: CosmosProxy
) -> None:
    """A stalled read is asked again. A stalled write may still land, so it is never sent
    again: it is read back, found not to have landed yet, and fenced off, so that when it
    does reach the emulator it is refused. The caller is told nothing was written, truly."""
    settings = _settings(
        backend_env, COSMOS_DB_URI=proxy.uri, COSMOS_DB_DATABASE_ID=unique_name("db")
    )
    store = StateStorage(open_items("cosmos", settings, request_timeout=0.5))
    try:
        await store.write({"user/1": {"n": 1}})
        proxy.requests.clear()
        proxy.stall = 1.0
        assert (await store.read(["user/1"]))["user/1"]["n"] == 1
        assert [r.method for r in proxy.requests if r.is_item_call] == ["GET", "GET"]

        current = (await store.read(["user/1"]))["user/1"]
        proxy.requests.clear()
        proxy.stall = 1.0
        with pytest.raises(StorageUnavailableError, match="fenced off") as refused:
            await store.write({"user/1": {**current, "n": 2}})
        assert not isinstance(refused.value, WriteOutcomeUnknownError)
        assert [r.method for r in proxy.requests if r.is_item_call] == ["PUT", "GET", "PUT"]
        await asyncio.sleep(1.0)  # the stalled write reaches the emulator, and is refused
        assert (await store.read(["user/1"]))["user/1"]["n"] == 1
    finally:
        await store.close()


async def test_the_session_token_of_each_write_is_sent_with_the_calls_after_it(
    backend_env: EnvFor, proxy: CosmosProxy
) -> None:
    """On session consistency a read sees this client's writes only if it carries the
    token the write was answered with; the emulator has no sessions, so the proxy plays one."""
    proxy.session_tokens = True
    store, _ = _store(backend_env, proxy)
    try:
        await store.write({"user/1": {"n": 1}})
        await store.read(["user/1"])
        current = (await store.read(["user/1"]))["user/1"]
        await store.write({"user/1": {**current, "n": 2}})
        await store.read(["user/1"])
    finally:
        await store.close()
    calls = [r for r in proxy.requests if r.is_item_call]
    sent = [(r.method, r.headers.get("x-ms-session-token")) for r in calls]
    first_write = next(i for i, r in enumerate(calls) if r.method != "GET")
    assert all(token is None for _, token in sent[: first_write + 1])
    after = sent[first_write + 1 :]
    second_write = next(i for i, (method, _) in enumerate(after) if method != "GET")
    assert {token for _, token in after[: second_write + 1]} == {"0:-1#1"}
    assert {token for _, token in after[second_write + 1 :]} == {"0:-1#2"}

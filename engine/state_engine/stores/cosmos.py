"""Azure Cosmos DB (NoSQL API), in the docs' container layout.

Items as ``CosmosDbPartitionedStorage`` lays them out (partition key ``/id``, the original
id kept as ``realId``, the content under ``document``), so a container created by the
SDK's store works. Setup, queries and health checks run on azure-cosmos' async client; a
turn's reads and writes are single REST calls (``cosmos_rest``). No thread pool: the event
loop never waits on Cosmos.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence
from urllib.parse import urlparse

from azure.core.exceptions import AzureError
from azure.cosmos import PartitionKey
from azure.cosmos import exceptions as cosmos_errors
from azure.cosmos.aio import ContainerProxy, CosmosClient
from botbuilder.azure import CosmosDbKeyEscape

from ..conditions import Expect
from ..errors import (
    ItemTooLargeError,
    PreconditionFailedError,
    StorageConfigurationError,
    StorageError,
    StorageUnavailableError,
    WriteOutcomeUnknownError,
)
from ..outbound import Response
from ..settings import setting
from .azure_logging import quiet_azure_logging
from .azure_transport import env_proxies, proxy_url, transport
from .cosmos_rest import CosmosRequests, sub_status
from .items import PORTABLE_ITEM_BYTES, Item, ItemStore, Put
from .rest_calls import UNREACHABLE, UNSURE_STATUSES, may_have_landed

logger = logging.getLogger(__name__)

#: Cosmos DB's limit for one item (its JSON, system properties included).
COSMOS_ITEM_LIMIT = PORTABLE_ITEM_BYTES
#: Room left for ``id``, ``realId`` and the system properties Cosmos adds.
_ITEM_OVERHEAD = 16 * 1024
_MAX_ID_LENGTH = 255
_HASH_LENGTH = 64


@dataclass(frozen=True)
class CosmosSettings:
    uri: str = setting(
        "COSMOS_DB_URI", str, "", "The account's URI (https://<account>.documents.azure.com:443/)."
    )
    key: str = setting("COSMOS_DB_PRIMARY_KEY", str, "", "The account's primary key.", secret=True)
    database: str = setting("COSMOS_DB_DATABASE_ID", str, "bot-db", "Database (created if missing and allowed).")
    container: str = setting(
        "COSMOS_DB_CONTAINER_ID", str, "bot-storage",
        "Container, partitioned on /id (created if missing and allowed; one made by the SDK's store works).",
    )
    throughput: Optional[int] = setting(
        "COSMOS_DB_THROUGHPUT", int, None,
        "RU/s for a container the bot creates. Empty for serverless accounts (they reject one).",
        minimum=400, maximum=1_000_000,
    )
    endpoint_discovery: bool = setting(
        "COSMOS_DB_ENDPOINT_DISCOVERY", bool, True,
        "true for Azure; false for a local emulator that advertises endpoints it does not serve.",
    )

    def check(self) -> None:
        """Refuse settings that cannot work, naming the setting (no network yet)."""
        uri = urlparse(self.uri)
        if not self.uri:
            raise StorageConfigurationError(
                "COSMOS_DB_URI is empty: set it to the account's URI "
                "(https://<account>.documents.azure.com:443/) to use STORAGE=cosmos"
            )
        if uri.scheme not in ("http", "https") or not uri.hostname:
            raise StorageConfigurationError(f"COSMOS_DB_URI={self.uri!r} is not an http(s) URI")
        if not self.key:
            raise StorageConfigurationError("COSMOS_DB_PRIMARY_KEY is empty")
        try:
            base64.b64decode(self.key, validate=True)
        except (binascii.Error, ValueError):
            raise StorageConfigurationError(
                "COSMOS_DB_PRIMARY_KEY is not a Cosmos DB key (base64 text); "
                "copy the primary key from the account's Keys page"
            ) from None
        for name, value in (("COSMOS_DB_DATABASE_ID", self.database), ("COSMOS_DB_CONTAINER_ID", self.container)):
            if not value or any(ch in value for ch in "/\\#?") or len(value) > _MAX_ID_LENGTH:
                raise StorageConfigurationError(
                    f"{name}={value!r}: ids are 1 to 255 characters without / \\ # ?"
                )


def cosmos_item_id(key: str) -> str:
    """The item id for a key: the SDK's escaping where it is safe, else a readable prefix
    plus a SHA-256 of the key (the SDK's escaping is ambiguous, and long or space-ended
    ids are refused), so distinct keys never share an item."""
    escaped = CosmosDbKeyEscape.sanitize_key(key, compatibility_mode=False)
    if escaped == key and len(key) <= _MAX_ID_LENGTH and not key.endswith(" "):
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return f"{escaped[: _MAX_ID_LENGTH - _HASH_LENGTH - 1]}-{digest}"


class CosmosItems(ItemStore):
    """Items in one Cosmos DB container partitioned on ``/id``."""

    max_item_bytes = COSMOS_ITEM_LIMIT - _ITEM_OVERHEAD

    def __init__(self, settings: CosmosSettings, request_timeout: float = 3.0) -> None:
        settings.check()
        quiet_azure_logging()
        self._settings = settings
        self._request_timeout = request_timeout
        self._proxies = env_proxies(settings.uri)
        self._client: Optional[CosmosClient] = None
        self._container: Optional[ContainerProxy] = None
        self._ready = asyncio.Lock()
        self._requests = CosmosRequests(
            settings.uri, settings.key, settings.database, settings.container, request_timeout,
            proxy=proxy_url(self._proxies),
        )

    # -- the container, found or created once ----------------------------------------

    async def _get_container(self) -> ContainerProxy:
        if self._container is not None:
            return self._container
        async with self._ready:
            if self._container is None:
                self._container = await self._provision()
        return self._container

    async def _provision(self) -> ContainerProxy:
        """Read the database and container, creating only what is missing (a key that may
        not create them works once they exist), and check the container's partition key."""
        if self._client is None:
            self._client = CosmosClient(
                self._settings.uri,
                self._settings.key,
                enable_endpoint_discovery=self._settings.endpoint_discovery,
                # The client's own timeout arguments do not reach its transport; this does.
                transport=transport(self._request_timeout, self._request_timeout),
                proxies=dict(self._proxies or {}),  # Cosmos updates it: never None
                retry_total=1,
                retry_backoff_max=1,
                retry_backoff_factor=0.2,
                logging_enable=False,
            )
        settings = self._settings
        database = self._client.get_database_client(settings.database)
        if not await self._exists(database.read):
            await self._create("COSMOS_DB_DATABASE_ID", settings.database, self._client.create_database(settings.database))
        container = database.get_container_client(settings.container)
        properties = await self._exists(container.read)
        if not properties:
            options = {} if settings.throughput is None else {"offer_throughput": settings.throughput}
            await self._create(
                "COSMOS_DB_CONTAINER_ID",
                settings.container,
                database.create_container(settings.container, PartitionKey(path="/id"), **options),
            )
            properties = await self._exists(container.read)
        paths = properties.get("partitionKey", {}).get("paths") if isinstance(properties, dict) else None
        if paths is not None and paths != ["/id"]:
            raise StorageConfigurationError(
                f"COSMOS_DB_CONTAINER_ID={settings.container!r} is partitioned on {paths}, "
                "not /id: use a container partitioned on /id"
            )
        return container

    async def _exists(self, read: Any) -> Any:
        """The resource's properties, None when it is missing. A 403 (this key may not read
        settings) counts as existing: the first item call then names the setting."""
        try:
            return await read()
        except cosmos_errors.CosmosResourceNotFoundError:
            return None
        except cosmos_errors.CosmosHttpResponseError as error:
            if error.status_code == 403:
                return True
            raise self._translate(error.status_code, "") from error
        except AzureError as error:
            raise self._unreachable(error) from error

    async def _create(self, setting_name: str, value: str, create: Any) -> None:
        try:
            await create
        except cosmos_errors.CosmosResourceExistsError:
            pass  # another instance created it first
        except cosmos_errors.CosmosHttpResponseError as error:
            if error.status_code == 403:
                raise StorageConfigurationError(
                    f"{setting_name}={value!r} does not exist and this key may not create it: "
                    "create it in the portal or give the key permission"
                ) from error
            raise self._translate(error.status_code, "") from error
        except AzureError as error:
            raise self._unreachable(error) from error

    # -- errors ---------------------------------------------------------------------------

    def _translate(self, status: Optional[int], item_id: str) -> StorageError:
        if status == 412:
            return PreconditionFailedError(item_id)
        if status == 413:
            return ItemTooLargeError(item_id, COSMOS_ITEM_LIMIT + 1, COSMOS_ITEM_LIMIT)
        if status == 401:
            return StorageConfigurationError("COSMOS_DB_PRIMARY_KEY was refused by the account (401)")
        if status == 403:
            return StorageConfigurationError(
                f"Cosmos DB refused access (403) to COSMOS_DB_DATABASE_ID={self._settings.database!r} "
                f"/ COSMOS_DB_CONTAINER_ID={self._settings.container!r}"
            )
        if status == 404:
            self._container = None  # the container went away: look it up again next time
            return StorageUnavailableError(
                f"COSMOS_DB_CONTAINER_ID={self._settings.container!r} does not exist (404)"
            )
        return StorageUnavailableError(f"Cosmos DB answered {status}")

    def _unreachable(self, error: BaseException) -> StorageUnavailableError:
        return StorageUnavailableError(
            f"Cosmos DB (COSMOS_DB_URI) cannot be reached: {type(error).__name__}"
        )

    @contextlib.contextmanager
    def _errors(self, item_id: str, write: bool = False) -> Iterator[None]:
        """The SDK's and the connection's errors inside the block, in the engine's vocabulary
        (a ``write`` that went out and got no answer may have landed)."""
        try:
            yield
        except StorageError:
            raise
        except cosmos_errors.CosmosHttpResponseError as error:
            raise self._translate(error.status_code, item_id) from error
        except UNREACHABLE as error:
            if write and may_have_landed(error):
                raise WriteOutcomeUnknownError(
                    f"Cosmos DB (COSMOS_DB_URI) did not answer a write of {item_id!r}: {type(error).__name__}"
                ) from error
            raise self._unreachable(error) from error

    # -- ItemStore -------------------------------------------------------------------------

    async def get(self, item_ids: Sequence[str]) -> Dict[str, Item]:
        await self._get_container()
        found = await asyncio.gather(*(self._read(item_id) for item_id in item_ids))
        return {item_id: item for item_id, item in zip(item_ids, found) if item is not None}

    async def _read(self, item_id: str) -> Optional[Item]:
        with self._errors(item_id):
            answer = await self._requests.read(cosmos_item_id(item_id))
        if answer.status == 404 and not _container_missing(answer):
            return None
        self._check(answer, item_id)
        body = _json(answer)
        # Back to JSON text, so that the engine (and only it) decides what the content becomes.
        return Item(json.dumps(body.get("document"), ensure_ascii=False), body["_etag"])

    async def put(self, put: Put) -> Optional[str]:
        await self._get_container()
        with self._errors(put.item_id, write=True):
            answer = await self._write(put)
        if answer.status in (404, 409, 412) and not _container_missing(answer):
            if put.text is None and put.condition.expect is Expect.ANYTHING:
                return None  # deleting what is not there
            raise PreconditionFailedError(put.item_id, put.condition.failure())
        if answer.status in UNSURE_STATUSES:
            raise WriteOutcomeUnknownError(f"Cosmos DB answered {answer.status} to a write of {put.item_id!r}")
        self._check(answer, put.item_id)
        if put.text is None:
            return None
        return answer.headers.get("etag") or _json(answer)["_etag"]

    async def _write(self, put: Put) -> Response:
        cosmos_id = cosmos_item_id(put.item_id)
        expect = put.condition.expect
        if put.text is None:
            return await self._requests.delete(cosmos_id, put.condition.e_tag if expect is Expect.MATCH else None)
        # The engine's text goes in as it is: no parse and dump again of the whole item.
        body = f'{{"id":{json.dumps(cosmos_id)},"realId":{json.dumps(put.item_id)},"document":{put.text}}}'
        if expect is Expect.MATCH:
            return await self._requests.replace(cosmos_id, body, put.condition.e_tag or "")
        return await self._requests.create(cosmos_id, body, upsert=expect is Expect.ANYTHING)

    def _check(self, answer: Response, item_id: str) -> None:
        """Raise the engine's error for an answer that is not a success."""
        if not 200 <= answer.status < 300:
            raise self._translate(answer.status, item_id)

    async def list_ids(self, prefix: str) -> List[str]:
        container = await self._get_container()
        query = "SELECT c.realId FROM c WHERE STARTSWITH(c.realId, @prefix)"
        with self._errors(prefix):
            rows = container.query_items(query, parameters=[{"name": "@prefix", "value": prefix}])
            return sorted([row["realId"] async for row in rows if isinstance(row.get("realId"), str)])

    async def ping(self) -> None:
        """The container must exist and answer (a read of its properties; a key that may
        not read them is judged by its first item call instead)."""
        container = await self._get_container()
        with self._errors(""):
            try:
                await container.read()
            except cosmos_errors.CosmosHttpResponseError as error:
                if error.status_code == 403:
                    return
                raise

    async def close(self) -> None:
        await self._requests.close()
        if self._client is not None:
            await self._client.close()
            self._client = None
            self._container = None


def _container_missing(answer: Response) -> bool:
    """A 404 for the container itself, not for an item in it (Cosmos' sub-status 1003)."""
    return answer.status == 404 and sub_status(answer) == 1003


def _json(answer: Response) -> Dict[str, Any]:
    """The item Cosmos DB answered with: a JSON object carrying its ``_etag``."""
    try:
        body = json.loads(answer.body)
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("_etag"), str):
        raise StorageUnavailableError(f"Cosmos DB answered {answer.status} without an item")
    return body

"""Azure Cosmos DB (NoSQL API), as the docs' ``CosmosDbPartitionedStorage`` stores it.

Same settings (``CosmosDbPartitionedConfig``), same container layout (partition
key ``/id``, one item per key, the original key kept as ``realId``, the state
under ``document``) and the SDK's own key escaping, with four things fixed:

- **The event loop stays free.** azure-cosmos' client is synchronous; the SDK
  calls it inside ``async def`` and the whole bot waits while Cosmos answers.
  Here every call runs on a small thread pool of its own.
- **No jsonpickle.** State is stored and read through our codec, so a planted
  document cannot make the bot import and call anything.
- **One error vocabulary.** A stale e_tag (412) or an item created by someone
  else first (409) is our ``PreconditionFailedError``; a network failure is
  ``StorageUnavailableError``.
- **Serverless and least-privilege accounts work.** No throughput is sent
  unless ``COSMOS_DB_THROUGHPUT`` is set (serverless accounts reject the SDK's
  default 400 RU/s), and the database and container are read before anything
  is created, so a key that may not create them works once they exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, TypeVar
from urllib.parse import urlparse

from azure.core import MatchConditions
from azure.core.exceptions import AzureError
from azure.core.pipeline.transport import RequestsTransport
from azure.cosmos import (
    ConnectionRetryPolicy,
    ContainerProxy,
    CosmosClient,
    PartitionKey,
    documents,
)
from azure.cosmos import exceptions as cosmos_errors
from botbuilder.azure import CosmosDbKeyEscape, CosmosDbPartitionedConfig

from typing import Any as DefaultConfig

from ..errors import (
    ItemTooLargeError,
    PreconditionFailedError,
    StorageConfigurationError,
    StorageError,
    StorageUnavailableError,
)
from .json_storage import CREATE_ONLY, Change, JsonStorage
from .preconditions import check_conditions, needs_precheck

T = TypeVar("T")

#: Cosmos DB's limit for one item (its JSON, system properties included).
COSMOS_ITEM_LIMIT = 2 * 1024 * 1024
#: Room left for ``id``, ``realId`` and the system properties Cosmos adds.
_ITEM_OVERHEAD = 16 * 1024
_MAX_ID_LENGTH = 255
_HASH_LENGTH = 64


def cosmos_item_id(key: str) -> str:
    """The item id for a state key: the SDK's escaping, made safe for every key.

    ``CosmosDbKeyEscape`` turns ``\\ ? / # * tab newline return`` into ``*<code>``
    but is ambiguous (``"\\t2"`` and ``"\\\\"`` both become ``*92``) and, with
    compatibility mode off, leaves keys over 255 characters (azure-cosmos then
    raises ``Id contains illegal chars``) and keys ending in a space (refused).
    Any key it changes, or that is too long or ends in a space, gets a readable
    prefix plus the SHA-256 of the original key, so distinct keys never share
    an item. Plain keys keep exactly the id the SDK's store gives them.
    """
    escaped = CosmosDbKeyEscape.sanitize_key(key, compatibility_mode=False)
    if escaped == key and len(key) <= _MAX_ID_LENGTH and not key.endswith(" "):
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return f"{escaped[: _MAX_ID_LENGTH - _HASH_LENGTH - 1]}-{digest}"


class CosmosDbStorage(JsonStorage):
    """``Storage`` on one Cosmos DB container partitioned on ``/id``."""

    max_item_bytes = COSMOS_ITEM_LIMIT - _ITEM_OVERHEAD

    def __init__(
        self,
        config: CosmosDbPartitionedConfig,
        max_workers: int = 10,
        read_timeout_seconds: float = 30.0,
    ) -> None:
        if config.compatibility_mode:
            raise StorageConfigurationError(
                "compatibility_mode is not supported: this store maps long keys itself"
            )
        self._config = config
        # azure-core waits 300 s for an answer by default: an endpoint that accepts
        # connections but never answers would hold a turn (and this store) that long.
        self._read_timeout = read_timeout_seconds
        # azure-core's requests session keeps 10 connections per host: one per thread.
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="cosmos-storage")
        self._lock = threading.Lock()
        self._client: Optional[CosmosClient] = None
        self._container: Optional[ContainerProxy] = None

    @classmethod
    def from_config(cls, config: DefaultConfig, **options: Any) -> "CosmosDbStorage":
        """Check the settings (no network yet) and build the store from them
        (``options``: the constructor's tuning arguments)."""
        uri = urlparse(config.COSMOS_DB_URI)
        if not config.COSMOS_DB_URI:
            raise StorageConfigurationError(
                "COSMOS_DB_URI is empty: set it to the account's URI "
                "(https://<account>.documents.azure.com:443/) to use STORAGE=cosmos"
            )
        if uri.scheme not in ("http", "https") or not uri.hostname:
            raise StorageConfigurationError(
                f"COSMOS_DB_URI={config.COSMOS_DB_URI!r} is not an http(s) URI"
            )
        if not config.COSMOS_DB_PRIMARY_KEY:
            raise StorageConfigurationError("COSMOS_DB_PRIMARY_KEY is empty")
        try:
            base64.b64decode(config.COSMOS_DB_PRIMARY_KEY, validate=True)
        except (binascii.Error, ValueError):
            raise StorageConfigurationError(
                "COSMOS_DB_PRIMARY_KEY is not a Cosmos DB key (base64 text); "
                "copy the primary key from the account's Keys page"
            ) from None
        for name in ("COSMOS_DB_DATABASE_ID", "COSMOS_DB_CONTAINER_ID"):
            value = getattr(config, name)
            if any(ch in value for ch in "/\\#?") or len(value) > _MAX_ID_LENGTH:
                raise StorageConfigurationError(
                    f"{name}={value!r}: ids may not contain / \\ # ? or exceed 255 characters"
                )
        policy = documents.ConnectionPolicy()
        # Azure advertises the account's regional endpoints; a local emulator
        # advertises https:// addresses it does not serve, so turn discovery off there.
        policy.EnableEndpointDiscovery = config.COSMOS_DB_ENDPOINT_DISCOVERY
        # Report "unavailable" within about a second, not after ten retries with backoff.
        policy.ConnectionRetryConfiguration = ConnectionRetryPolicy(
            retry_total=2, retry_backoff_factor=0.2
        )
        return cls(
            CosmosDbPartitionedConfig(
                cosmos_db_endpoint=config.COSMOS_DB_URI,
                auth_key=config.COSMOS_DB_PRIMARY_KEY,
                database_id=config.COSMOS_DB_DATABASE_ID,
                container_id=config.COSMOS_DB_CONTAINER_ID,
                cosmos_client_options={"connection_policy": policy},
                container_throughput=config.COSMOS_DB_THROUGHPUT,
                compatibility_mode=False,
            ),
            **options,
        )

    # -- running the synchronous client off the event loop -----------------------

    async def _run(self, work: Callable[[ContainerProxy], T], key: str = "") -> T:
        def call() -> T:
            try:
                return work(self._get_container())
            except StorageError:
                raise
            except cosmos_errors.CosmosHttpResponseError as error:
                raise self._translate(error, key) from error
            except AzureError as error:
                raise StorageUnavailableError(
                    f"Cosmos DB at COSMOS_DB_URI={self._config.cosmos_db_endpoint} "
                    f"cannot be reached: {type(error).__name__}"
                ) from error

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _translate(self, error: cosmos_errors.CosmosHttpResponseError, key: str) -> StorageError:
        status = error.status_code
        if status == 412:
            return PreconditionFailedError(key)
        if status == 413:
            return ItemTooLargeError(key, COSMOS_ITEM_LIMIT + 1, COSMOS_ITEM_LIMIT)
        if status == 401:
            return StorageConfigurationError(
                "COSMOS_DB_PRIMARY_KEY was refused by the account (401 Unauthorized)"
            )
        if status == 403:
            return StorageConfigurationError(
                f"Cosmos DB refused access (403) to COSMOS_DB_DATABASE_ID="
                f"{self._config.database_id!r} / COSMOS_DB_CONTAINER_ID={self._config.container_id!r}"
            )
        if status == 404:
            # The container went away (deleted?): look it up again on the next call.
            self._container = None
        return StorageUnavailableError(f"Cosmos DB answered {status}: {error.message}")

    def _get_container(self) -> ContainerProxy:
        """Connect once; read the database and container, creating only what is missing."""
        with self._lock:
            if self._container is None:
                if self._client is None:
                    policy = self._config.cosmos_client_options["connection_policy"]
                    verify = not policy.DisableSSLVerification
                    self._client = CosmosClient(
                        self._config.cosmos_db_endpoint,
                        self._config.auth_key,
                        connection_policy=policy,
                        connection_verify=verify,
                        transport=RequestsTransport(
                            read_timeout=self._read_timeout, connection_verify=verify
                        ),
                    )
                database = self._client.get_database_client(self._config.database_id)
                if not self._exists(database.read):
                    self._create(
                        "COSMOS_DB_DATABASE_ID",
                        lambda: self._client.create_database(self._config.database_id),
                    )
                container = database.get_container_client(self._config.container_id)
                if not self._exists(container.read):
                    self._create(
                        "COSMOS_DB_CONTAINER_ID",
                        lambda: database.create_container(
                            self._config.container_id,
                            PartitionKey(path="/id"),
                            offer_throughput=self._config.container_throughput,
                        ),
                    )
                self._check_partition_key(container)
                self._container = container
            return self._container

    @staticmethod
    def _exists(read: Callable[[], Any]) -> bool:
        """True when it exists. A 403 (this key may not read its settings) counts as
        "exists": creating it would be refused too, and the first item call then
        reports the 403 as a configuration error naming the settings."""
        try:
            read()
        except cosmos_errors.CosmosResourceNotFoundError:
            return False
        except cosmos_errors.CosmosHttpResponseError as error:
            if error.status_code != 403:
                raise
        return True

    def _create(self, setting: str, create: Callable[[], Any]) -> None:
        try:
            create()
        except cosmos_errors.CosmosResourceExistsError:
            pass  # another instance created it first
        except cosmos_errors.CosmosHttpResponseError as error:
            if error.status_code != 403:
                raise
            value = getattr(self._config, "database_id" if "DATABASE" in setting else "container_id")
            raise StorageConfigurationError(
                f"{setting}={value!r} does not exist and this key may not create it: "
                "create it in the portal or give the key permission"
            ) from error

    def _check_partition_key(self, container: ContainerProxy) -> None:
        try:
            paths = container.read()["partitionKey"]["paths"]
        except cosmos_errors.CosmosHttpResponseError as error:
            if error.status_code == 403:
                return  # cannot read its settings; the first write will tell
            raise
        if paths != ["/id"]:
            raise StorageConfigurationError(
                f"COSMOS_DB_CONTAINER_ID={self._config.container_id!r} is partitioned on "
                f"{paths}, not /id: use a container partitioned on /id"
            )

    # -- JsonStorage ---------------------------------------------------------------

    async def _read_documents(self, keys: List[str]) -> Dict[str, tuple[str, str]]:
        found = await asyncio.gather(*(self._read_one(key) for key in keys))
        return {key: item for key, item in zip(keys, found) if item is not None}

    async def _read_one(self, key: str) -> Optional[tuple[str, str]]:
        item_id = cosmos_item_id(key)

        def read(container: ContainerProxy) -> Optional[dict]:
            try:
                return container.read_item(item_id, partition_key=item_id)
            except cosmos_errors.CosmosResourceNotFoundError:
                return None

        item = await self._run(read, key)
        if item is None:
            return None
        # The state goes back to JSON text so that our codec, and only our
        # codec, decides what it becomes.
        document = json.dumps(item.get("document"), ensure_ascii=False)
        return document, item["_etag"]

    async def _write_documents(self, changes: List[Change]) -> None:
        bodies = [self._body(change) for change in changes]
        if needs_precheck(changes):
            current = await self._read_documents([change.key for change in changes])
            check_conditions(changes, {key: e_tag for key, (_, e_tag) in current.items()})
        results = await asyncio.gather(
            *(self._write_one(change, body) for change, body in zip(changes, bodies)),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _body(self, change: Change) -> Dict[str, Any]:
        """The item as the SDK's store lays it out; checked against Cosmos' limit first."""
        size = (
            len(change.document.encode("utf-8"))
            + len(json.dumps(change.key).encode("utf-8"))
            + _MAX_ID_LENGTH * 4
            + 1024
        )
        if size > COSMOS_ITEM_LIMIT:
            raise ItemTooLargeError(change.key, size, COSMOS_ITEM_LIMIT)
        return {
            "id": cosmos_item_id(change.key),
            "realId": change.key,
            "document": json.loads(change.document),
        }

    async def _write_one(self, change: Change, body: Dict[str, Any]) -> None:
        def write(container: ContainerProxy) -> None:
            if change.expected_etag is None:
                container.upsert_item(body)
            elif change.expected_etag == CREATE_ONLY:
                try:
                    container.create_item(body)
                except cosmos_errors.CosmosResourceExistsError:
                    raise PreconditionFailedError(change.key, "the item already exists") from None
            else:
                try:
                    container.replace_item(
                        body["id"],
                        body,
                        etag=change.expected_etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                except cosmos_errors.CosmosResourceNotFoundError:
                    raise PreconditionFailedError(change.key, "the item was deleted") from None

        await self._run(write, change.key)

    async def _delete_documents(self, keys: List[str]) -> None:
        async def delete_one(key: str) -> None:
            item_id = cosmos_item_id(key)

            def delete(container: ContainerProxy) -> None:
                try:
                    container.delete_item(item_id, partition_key=item_id)
                except cosmos_errors.CosmosResourceNotFoundError:
                    pass

            await self._run(delete, key)

        await asyncio.gather(*(delete_one(key) for key in keys))

    async def close(self) -> None:
        def close_client() -> None:
            with self._lock:
                if self._client is not None:
                    self._client.__exit__()
                    self._client = None
                    self._container = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close_client)
        self._executor.shutdown(wait=False)

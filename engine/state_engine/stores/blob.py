"""Azure Blob Storage, as the docs' ``BlobStorage`` uses it: one JSON blob per item.

Blob names are the item ids percent-encoded (``/ ? #`` and emoji cannot change the path;
very long ids are hashed), the id itself kept in the blob's metadata. Conditional
writes use the blob's ETag (``If-Match``) or ``If-None-Match: *`` for a new blob.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional
from urllib.parse import quote, unquote

from azure.core import MatchConditions
from azure.storage.blob.aio import BlobClient, BlobServiceClient, LinearRetry

from ..conditions import Expect
from ..errors import StorageConfigurationError
from ..settings import setting
from .azure_storage import AzureStorageItems, check_connection_string
from .azure_transport import env_proxies, transport
from .items import Item, Put

_MAX_NAME_LENGTH = 1024
_CONTAINER_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_ID_METADATA = "itemid"
_CLIENTS_KEPT = 256


@dataclass(frozen=True)
class BlobSettings:
    connection_string: str = setting(
        "BLOB_CONNECTION_STRING", str, "", "The storage account's connection string.", secret=True
    )
    container: str = setting(
        "BLOB_CONTAINER_NAME", str, "bot-storage", "Container (created on first use if allowed)."
    )

    def check(self) -> None:
        check_connection_string(self.connection_string, "BLOB_CONNECTION_STRING", "blob")
        if not _CONTAINER_NAME.match(self.container):
            raise StorageConfigurationError(
                f"BLOB_CONTAINER_NAME={self.container!r}: use 3-63 lowercase letters, digits and single hyphens"
            )


def blob_name(item_id: str) -> str:
    """The blob that holds an item: percent-encoded (``/`` too, so one flat folder), a
    trailing dot encoded (Azure trims it), hashed past 1024 characters."""
    name = quote(item_id, safe="")
    if name.endswith("."):
        name = name[:-1] + "%2E"
    if len(name) > _MAX_NAME_LENGTH:
        digest = hashlib.sha256(item_id.encode("utf-8")).hexdigest()
        name = f"{name[: _MAX_NAME_LENGTH - len(digest) - 1]}-{digest}"
    return name


class BlobItems(AzureStorageItems):
    """Items as blobs in one container (``BLOB_CONTAINER_NAME``)."""

    service_name = "Blob storage"
    connection_setting = "BLOB_CONNECTION_STRING"
    resource_setting = "BLOB_CONTAINER_NAME"
    missing_resource_code = "ContainerNotFound"
    # Blob takes far more; this is Cosmos DB's limit, so state that works here keeps
    # working if the bot moves to Cosmos DB.
    max_item_bytes = 2 * 1024 * 1024

    def __init__(self, settings: BlobSettings, request_timeout: float = 3.0) -> None:
        settings.check()
        super().__init__(settings.container)
        def service(proxies: Optional[Dict[str, str]] = None) -> BlobServiceClient:
            return BlobServiceClient.from_connection_string(
                settings.connection_string,
                retry_policy=LinearRetry(backoff=0.2, retry_total=1, random_jitter_range=0.1),
                transport=transport(request_timeout, request_timeout),
                proxies=proxies,
            )

        try:
            self._service = service()
            # The proxy for the account's endpoint, read from the environment once.
            proxies = env_proxies(self._service.url)
            if proxies is not None:
                self._service = service(proxies)
        except ValueError as error:
            raise StorageConfigurationError(
                f"BLOB_CONNECTION_STRING is not a storage connection string ({error})"
            ) from None
        self._container = self._service.get_container_client(settings.container)
        self._clients: "OrderedDict[str, BlobClient]" = OrderedDict()

    def _blob(self, item_id: str) -> BlobClient:
        """A client per blob, kept for reuse (building one costs more than a request)."""
        client = self._clients.get(item_id)
        if client is None:
            client = self._container.get_blob_client(blob_name(item_id))
            self._clients[item_id] = client
            if len(self._clients) > _CLIENTS_KEPT:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(item_id)
        return client

    async def _create_resource(self) -> None:
        await self._container.create_container()

    async def _get_item(self, item_id: str) -> Item:
        download = await self._blob(item_id).download_blob()
        content = await download.readall()
        try:
            return Item(content.decode("utf-8"), download.properties.etag)
        except UnicodeDecodeError:
            return Item("", download.properties.etag, problem="the stored blob is not UTF-8 text")

    async def _put_item(self, put: Put) -> Optional[str]:
        blob = self._blob(put.item_id)
        expect = put.condition.expect
        match = {"etag": put.condition.e_tag, "match_condition": MatchConditions.IfNotModified}
        if put.text is None:
            await blob.delete_blob(**(match if expect is Expect.MATCH else {}))
            return None
        data = put.text.encode("utf-8")
        metadata = {_ID_METADATA: quote(put.item_id, safe="")}
        if expect is Expect.ANYTHING:
            result = await blob.upload_blob(data, overwrite=True, metadata=metadata)
        elif expect is Expect.ABSENT:
            # overwrite=False sends If-None-Match: * (409 BlobAlreadyExists when it exists).
            result = await blob.upload_blob(data, overwrite=False, metadata=metadata)
        else:
            result = await blob.upload_blob(data, overwrite=True, metadata=metadata, **match)
        return result["etag"]

    async def _list(self, prefix: str) -> List[str]:
        name_prefix = blob_name(prefix)[: _MAX_NAME_LENGTH - 65]
        found = []
        async for blob in self._container.list_blobs(name_starts_with=name_prefix, include=["metadata"]):
            stored = (blob.metadata or {}).get(_ID_METADATA)
            found.append(unquote(stored) if stored else unquote(blob.name))
        return found

    async def close(self) -> None:
        """Close the aiohttp session under the client (the SDK's store never does)."""
        await self._service.close()

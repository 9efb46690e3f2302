"""Azure Blob Storage, as the docs' ``BlobStorage`` uses it: one JSON blob per item.

Names are the ids percent-encoded (long ones hashed), each id kept in its blob's metadata;
writes are conditional on the ETag, and each read or write is one REST call (``BlobRequests``);
creating the container and listing blobs stay on the SDK.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple
from urllib.parse import quote, unquote

from azure.core.exceptions import HttpResponseError
from azure.storage.blob.aio import BlobServiceClient, ContainerClient, LinearRetry

from ..conditions import Expect
from ..errors import StorageConfigurationError
from ..outbound import Response
from ..settings import setting
from .azure_storage import AzureStorageItems, check_connection_string
from .azure_transport import env_proxies, proxy_url, transport
from .items import Item, Put
from .storage_rest import StorageCalls

_MAX_NAME_LENGTH = 1024
_CONTAINER_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_ID_METADATA = "itemid"


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


class BlobRequests:
    """Get, put and delete of whole blobs in one container, each one REST call rather than a
    ``BlobClient`` per blob (``rest_calls.py``). A read downloads at most the store's
    limit: Blob storage takes blobs of terabytes."""

    def __init__(self, container: ContainerClient, request_timeout: float, proxy: Optional[str]) -> None:
        credential = container.credential  # None when the connection string has a SAS token
        account = (credential.account_name, credential.account_key) if credential is not None else None
        self._calls = StorageCalls(
            "blob", container.url, container.api_version, request_timeout, account=account, proxy=proxy
        )

    async def _send(
        self, method: str, name: str, headers: Dict[str, str], ok: Tuple[int, ...],
        body: Optional[bytes] = None,
    ) -> Response:
        # The name quoted as the SDK's BlobClient quotes it (our names hold "%": it becomes "%25").
        return await self._calls.send(method, quote(name, safe="~/"), headers, ok, body)

    async def get(self, name: str, max_bytes: int) -> Tuple[Optional[bytes], str]:
        """The blob's content and ETag (``ResourceNotFoundError`` when it is missing). At
        most ``max_bytes`` + 1 bytes are downloaded: a larger blob comes without content."""
        try:
            first_bytes = {"x-ms-range": f"bytes=0-{max_bytes}"}
            response = await self._send("GET", name, first_bytes, ok=(200, 206))
        except HttpResponseError as error:
            if error.status_code != 416:
                raise
            # An empty blob has no first byte for a range to start at: ask again without one.
            response = await self._send("GET", name, {}, ok=(200,))
        e_tag = response.headers["ETag"]
        size = response.headers.get("Content-Range", "").rpartition("/")[2]
        if size.isdigit() and int(size) > max_bytes:
            return None, e_tag
        return response.body, e_tag

    async def put(
        self, name: str, data: bytes, metadata: Dict[str, str], conditions: Dict[str, str]
    ) -> str:
        """Write a block blob in one call; its new ETag."""
        headers = {
            "x-ms-blob-type": "BlockBlob",
            "Content-Type": "application/octet-stream",
            **{f"x-ms-meta-{key}": value for key, value in metadata.items()},
            **conditions,
        }
        response = await self._send("PUT", name, headers, ok=(201,), body=data)
        return response.headers["ETag"]

    async def delete(self, name: str, conditions: Dict[str, str]) -> None:
        await self._send("DELETE", name, conditions, ok=(202,))

    async def close(self) -> None:
        await self._calls.close()


def _conditions(put: Put) -> Dict[str, str]:
    """The HTTP preconditions of a put: the ETag read, or none may exist yet, or none."""
    if put.condition.expect is Expect.MATCH:
        return {"If-Match": put.condition.e_tag or ""}
    if put.condition.expect is Expect.ABSENT:
        return {"If-None-Match": "*"}  # 409 BlobAlreadyExists when it exists
    return {}


class BlobItems(AzureStorageItems):
    """Items as blobs in one container (``BLOB_CONTAINER_NAME``)."""

    service_name = "Blob storage"
    connection_setting = "BLOB_CONNECTION_STRING"
    resource_setting = "BLOB_CONTAINER_NAME"
    missing_resource_code = "ContainerNotFound"

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
        self._requests = BlobRequests(self._container, request_timeout, proxy_url(proxies))

    async def _create_resource(self) -> None:
        await self._container.create_container()

    async def _get_item(self, item_id: str) -> Item:
        content, e_tag = await self._requests.get(blob_name(item_id), self.max_item_bytes)
        if content is None:
            return Item("", e_tag, problem="the stored blob is larger than this store's limit")
        try:
            return Item(content.decode("utf-8"), e_tag)
        except UnicodeDecodeError:
            return Item("", e_tag, problem="the stored blob is not UTF-8 text")

    async def _put_item(self, put: Put) -> Optional[str]:
        name = blob_name(put.item_id)
        if put.text is None:
            # A delete is conditional only on the version read (a new item is never deleted).
            match = put.condition.expect is Expect.MATCH
            await self._requests.delete(name, _conditions(put) if match else {})
            return None
        metadata = {_ID_METADATA: quote(put.item_id, safe="")}
        return await self._requests.put(name, put.text.encode("utf-8"), metadata, _conditions(put))

    async def _list(self, prefix: str) -> List[str]:
        name_prefix = blob_name(prefix)[: _MAX_NAME_LENGTH - 65]
        found = []
        async for blob in self._container.list_blobs(name_starts_with=name_prefix, include=["metadata"]):
            stored = (blob.metadata or {}).get(_ID_METADATA)
            found.append(unquote(stored) if stored else unquote(blob.name))
        return found

    async def close(self) -> None:
        """Close the connections, ours and the SDK's (the SDK's store never does)."""
        await self._requests.close()
        await self._service.close()

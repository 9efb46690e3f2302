"""Azure Blob Storage, as the docs' ``BlobStorage`` uses it: one JSON blob per key.

Built on the same settings (``BlobStorageSettings``) and the same async client
(azure-storage-blob's ``aio`` package) as botbuilder-azure's ``BlobStorage``,
with what that store lacks:

- **No jsonpickle**: blobs hold our codec's JSON and are read back through it.
- **One error vocabulary**: a stale conditional write is refused with 412, which
  Azurite reports as ``ResourceExistsError`` ("BlobAlreadyExists") and Azure as
  ``ResourceModifiedError``; we look at the status code and raise our
  ``PreconditionFailedError`` either way.
- **Create-only writes** (``If-None-Match: *``) for records that did not exist.
- **Safe blob names**: keys are percent-encoded, so ``/ ? # \\`` and emoji
  cannot change the blob's path; very long keys are hashed.
- **Closed on shutdown**: the SDK's store never closes its aiohttp session.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.storage.blob.aio import BlobServiceClient, LinearRetry
from botbuilder.azure import BlobStorageSettings

from typing import Any as DefaultConfig

from .azure_base import AzureStorageBase
from ..errors import PreconditionFailedError, StorageConfigurationError
from .json_storage import CREATE_ONLY, Change

_MAX_NAME_LENGTH = 1024
_CONTAINER_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def blob_name(key: str) -> str:
    """The blob that holds a key: percent-encoded (``/`` too, so one flat
    folder), a trailing dot encoded (Azure trims it), hashed past 1024 characters."""
    name = quote(key, safe="")
    if name.endswith("."):
        name = name[:-1] + "%2E"
    if len(name) > _MAX_NAME_LENGTH:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        name = f"{name[: _MAX_NAME_LENGTH - len(digest) - 1]}-{digest}"
    return name


class AzureBlobStorage(AzureStorageBase):
    """``Storage`` on one Blob container (``BLOB_CONTAINER_NAME``)."""

    service_name = "Blob storage"
    connection_setting = "BLOB_CONNECTION_STRING"
    resource_setting = "BLOB_CONTAINER_NAME"
    missing_resource_code = "ContainerNotFound"

    # Blob takes far more; this is Cosmos DB's limit, so state that works here
    # keeps working if the bot moves to Cosmos DB.
    max_item_bytes = 2 * 1024 * 1024

    def __init__(self, settings: BlobStorageSettings) -> None:
        try:
            self._service = BlobServiceClient.from_connection_string(
                settings.connection_string,
                # The storage SDK's default waits 15 s, then 18 s... before giving up.
                retry_policy=LinearRetry(backoff=0.5, retry_total=2, random_jitter_range=0.2),
            )
        except ValueError as error:
            raise StorageConfigurationError(
                f"BLOB_CONNECTION_STRING is not a storage connection string ({error})"
            ) from None
        super().__init__(settings.container_name)
        self._container = self._service.get_container_client(settings.container_name)

    @classmethod
    def from_config(cls, config: DefaultConfig) -> "AzureBlobStorage":
        if not config.BLOB_CONNECTION_STRING:
            raise StorageConfigurationError(
                "BLOB_CONNECTION_STRING is empty: copy it from the storage account's "
                "Access keys page to use STORAGE=blob"
            )
        if not _CONTAINER_NAME.match(config.BLOB_CONTAINER_NAME):
            raise StorageConfigurationError(
                f"BLOB_CONTAINER_NAME={config.BLOB_CONTAINER_NAME!r}: use 3-63 lowercase "
                "letters, digits and single hyphens"
            )
        return cls(
            BlobStorageSettings(
                container_name=config.BLOB_CONTAINER_NAME,
                connection_string=config.BLOB_CONNECTION_STRING,
            )
        )

    async def _create_resource(self) -> None:
        await self._container.create_container()

    async def _get_item(self, key: str) -> tuple[str, str]:
        download = await self._container.get_blob_client(blob_name(key)).download_blob()
        content = await download.readall()
        return content.decode("utf-8"), download.properties.etag

    async def _put_item(self, change: Change) -> None:
        blob = self._container.get_blob_client(blob_name(change.key))
        data = change.document.encode("utf-8")
        try:
            if change.expected_etag is None:
                await blob.upload_blob(data, overwrite=True)
            elif change.expected_etag == CREATE_ONLY:
                # overwrite=False sends If-None-Match: * (409 when the blob exists).
                await blob.upload_blob(data, overwrite=False)
            else:
                await blob.upload_blob(
                    data,
                    overwrite=True,
                    etag=change.expected_etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except HttpResponseError as error:
            if error.status_code == 409 and change.expected_etag == CREATE_ONLY:
                raise PreconditionFailedError(change.key, "the item already exists") from None
            raise

    async def _delete_item(self, key: str) -> None:
        await self._container.delete_blob(blob_name(key))

    async def close(self) -> None:
        """Close the aiohttp session under the client (app.py calls this on shutdown)."""
        await self._service.close()

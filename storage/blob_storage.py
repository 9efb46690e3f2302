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

import asyncio
import hashlib
import re
from typing import Dict, List, Optional
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.storage.blob.aio import BlobServiceClient, LinearRetry
from botbuilder.azure import BlobStorageSettings

from config import DefaultConfig

from .errors import (
    PreconditionFailedError,
    StorageConfigurationError,
    StorageError,
    StorageUnavailableError,
)
from .json_storage import CREATE_ONLY, Change, JsonStorage
from .preconditions import check_conditions, needs_precheck

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


class AzureBlobStorage(JsonStorage):
    """``Storage`` on one Blob container (``BLOB_CONTAINER_NAME``)."""

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
        self._settings = settings
        self._container = self._service.get_container_client(settings.container_name)
        self._ready = False
        self._ready_lock = asyncio.Lock()

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

    def _translate(self, error: Exception, key: str) -> StorageError:
        if isinstance(error, HttpResponseError):
            if error.status_code == 412:
                return PreconditionFailedError(key)
            if error.status_code in (401, 403):
                return StorageConfigurationError(
                    f"BLOB_CONNECTION_STRING: the account refused the request ({error.error_code}): "
                    "check its key, or the permissions of its SAS token"
                )
            if error.error_code == "ContainerNotFound":
                self._ready = False  # deleted under us: create it again next time
            return StorageUnavailableError(
                f"Blob storage answered {error.status_code} ({error.error_code}) "
                f"for BLOB_CONTAINER_NAME={self._settings.container_name!r}"
            )
        return StorageUnavailableError(
            f"Blob storage (BLOB_CONNECTION_STRING) cannot be reached: {type(error).__name__}"
        )

    async def _ensure_container(self) -> None:
        """Create the container once; an existing one (or a key that may not create
        containers, e.g. a container-scoped SAS) is fine."""
        if self._ready:
            return
        async with self._ready_lock:
            if self._ready:
                return
            try:
                await self._container.create_container()
            except HttpResponseError as error:
                if error.status_code != 409 and (
                    error.status_code != 403 or error.error_code == "AuthenticationFailed"
                ):
                    raise self._translate(error, "") from error
            except AzureError as error:
                raise self._translate(error, "") from error
            self._ready = True

    async def _read_documents(self, keys: List[str]) -> Dict[str, tuple[str, str]]:
        await self._ensure_container()
        found = await asyncio.gather(*(self._read_one(key) for key in keys))
        return {key: item for key, item in zip(keys, found) if item is not None}

    async def _read_one(self, key: str) -> Optional[tuple[str, str]]:
        blob = self._container.get_blob_client(blob_name(key))
        try:
            download = await blob.download_blob()
            content = await download.readall()
        except ResourceNotFoundError as error:
            if error.error_code == "ContainerNotFound":
                raise self._translate(error, key) from error
            return None
        except AzureError as error:
            raise self._translate(error, key) from error
        return content.decode("utf-8"), download.properties.etag

    async def _write_documents(self, changes: List[Change]) -> None:
        await self._ensure_container()
        if needs_precheck(changes):
            current = await self._read_documents([change.key for change in changes])
            check_conditions(changes, {key: e_tag for key, (_, e_tag) in current.items()})
        results = await asyncio.gather(
            *(self._write_one(change) for change in changes), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _write_one(self, change: Change) -> None:
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
            raise self._translate(error, change.key) from error
        except AzureError as error:
            raise self._translate(error, change.key) from error

    async def _delete_documents(self, keys: List[str]) -> None:
        await self._ensure_container()

        async def delete_one(key: str) -> None:
            try:
                await self._container.delete_blob(blob_name(key))
            except ResourceNotFoundError:
                pass
            except AzureError as error:
                raise self._translate(error, key) from error

        await asyncio.gather(*(delete_one(key) for key in keys))

    async def close(self) -> None:
        """Close the aiohttp session under the client (app.py calls this on shutdown)."""
        await self._service.close()

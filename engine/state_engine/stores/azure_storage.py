"""What the two Azure Storage account backends (Blob and Table) do alike.

Both keep items in one container or table, created once on first use (a SAS scoped to
it, which may not create it, is fine), check the connection string before any call,
and translate azure-core's errors into the engine's, naming the setting to fix.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from abc import abstractmethod
from typing import Dict, List, Optional, Sequence

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from ..errors import (
    PreconditionFailedError,
    StorageConfigurationError,
    StorageError,
    StorageUnavailableError,
    WriteOutcomeUnknownError,
)
from .azure_logging import quiet_azure_logging
from .items import Item, ItemStore, Put
from .rest_calls import UNREACHABLE, may_have_landed


def check_connection_string(value: str, setting_name: str, service: str) -> None:
    """Refuse a connection string that cannot work (empty, not key=value pairs, a key
    that is not base64), naming the setting, before any request is signed with it."""
    if not value:
        raise StorageConfigurationError(
            f"{setting_name} is empty: copy it from the storage account's Access keys page "
            f"to use STORAGE={service}"
        )
    parts = dict(part.split("=", 1) for part in value.strip(";").split(";") if "=" in part)
    if not parts:
        raise StorageConfigurationError(f"{setting_name} is not a storage connection string")
    key = parts.get("AccountKey")
    if key is not None:
        try:
            base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            raise StorageConfigurationError(
                f"{setting_name}: its AccountKey is not a storage account key (base64 text)"
            ) from None


class AzureStorageItems(ItemStore):
    """An ``ItemStore`` on one container or table of an Azure Storage account."""

    #: The service, as messages name it ("Blob storage"), and the settings they point to.
    service_name: str
    connection_setting: str
    resource_setting: str
    #: The error code the service answers when the container or table is gone.
    missing_resource_code: str

    def __init__(self, resource_name: str) -> None:
        quiet_azure_logging()
        self._resource_name = resource_name
        self._ready = False
        self._ready_lock = asyncio.Lock()

    def translate(self, error: BaseException, item_id: str) -> StorageError:
        """An Azure SDK error in the engine's vocabulary, naming the setting to look at."""
        if isinstance(error, StorageError):
            return error
        if isinstance(error, HttpResponseError) and error.status_code is not None:
            code = getattr(error, "error_code", None)
            if error.status_code == 412:
                return PreconditionFailedError(item_id)
            if error.status_code in (401, 403):
                return StorageConfigurationError(
                    f"{self.connection_setting}: the account refused the request ({code}): "
                    "check its key, or the permissions of its SAS token"
                )
            if code == self.missing_resource_code:
                self._ready = False  # deleted under us: create it again next time
                return StorageUnavailableError(
                    f"{self.resource_setting}={self._resource_name!r} does not exist ({code})"
                )
            return StorageUnavailableError(
                f"{self.service_name} answered {error.status_code} ({code}) "
                f"for {self.resource_setting}={self._resource_name!r}"
            )
        if type(error).__name__ == "AzureSigningError":
            return StorageConfigurationError(f"{self.connection_setting}: its key cannot sign requests")
        return StorageUnavailableError(
            f"{self.service_name} ({self.connection_setting}) cannot be reached: {type(error).__name__}"
        )

    async def ensure_resource(self) -> None:
        """Create the container or table once; an existing one (or a key that may not
        create it, e.g. a SAS scoped to it) is fine."""
        if self._ready:
            return
        async with self._ready_lock:
            if self._ready:
                return
            try:
                await self._create_resource()
            except ResourceExistsError:
                pass
            except HttpResponseError as error:
                code = getattr(error, "error_code", None)
                if error.status_code != 403 or code == "AuthenticationFailed":
                    raise self.translate(error, "") from error
            except UNREACHABLE as error:
                raise self.translate(error, "") from error
            self._ready = True

    async def get(self, item_ids: Sequence[str]) -> Dict[str, Item]:
        await self.ensure_resource()
        found = await asyncio.gather(*(self._read(item_id) for item_id in item_ids))
        return {item_id: item for item_id, item in zip(item_ids, found) if item is not None}

    async def _read(self, item_id: str) -> Optional[Item]:
        try:
            return await self._get_item(item_id)
        except ResourceNotFoundError as error:
            if getattr(error, "error_code", None) == self.missing_resource_code:
                raise self.translate(error, item_id) from error
            return None
        except UNREACHABLE as error:
            raise self.translate(error, item_id) from error

    async def put(self, put: Put) -> Optional[str]:
        await self.ensure_resource()
        try:
            return await self._put_item(put)
        except (ResourceExistsError, ResourceNotFoundError) as error:
            if getattr(error, "error_code", None) == self.missing_resource_code:
                raise self.translate(error, put.item_id) from error
            if put.text is None and put.condition.e_tag is None:
                return None  # deleting what is not there
            raise PreconditionFailedError(put.item_id, put.condition.failure()) from None
        except UNREACHABLE as error:
            if may_have_landed(error):
                raise WriteOutcomeUnknownError(
                    f"{self.service_name} ({self.connection_setting}) did not say whether a write of "
                    f"{put.item_id!r} was carried out: {type(error).__name__}"
                ) from error
            raise self.translate(error, put.item_id) from error

    async def list_ids(self, prefix: str) -> List[str]:
        await self.ensure_resource()
        try:
            return sorted(item_id for item_id in await self._list(prefix) if item_id.startswith(prefix))
        except UNREACHABLE as error:
            raise self.translate(error, prefix) from error

    async def ping(self) -> None:
        """The container or table must exist (or be creatable) and answer a read."""
        await self.ensure_resource()
        await self._read("healthz-probe")

    @abstractmethod
    async def _create_resource(self) -> None:
        """Create the container or table (raising the SDK's error if it exists)."""

    @abstractmethod
    async def _get_item(self, item_id: str) -> Item:
        """One item; let the SDK's ``ResourceNotFoundError`` out."""

    @abstractmethod
    async def _put_item(self, put: Put) -> Optional[str]:
        """Write or delete one item under its condition; a lost condition surfaces as the
        SDK's 412 (or 409 / 404) error."""

    @abstractmethod
    async def _list(self, prefix: str) -> List[str]:
        """Item ids that may start with ``prefix`` (filtered again by the caller)."""

"""What the two Azure Storage account stores (Blob and Table) do alike.

Both keep one item per key in one resource (a container, a table) that the
store creates on first use, and both fail through azure-core's exceptions.
So the rules live here once:

- **One error vocabulary**, with messages that name the setting to fix:
  412 is ``PreconditionFailedError``, 401/403 is ``StorageConfigurationError``
  on the connection string, anything else ``StorageUnavailableError``.
- **The resource is created once**, under a lock; one that already exists, or
  a key that may not create it (a SAS scoped to it answers 403), is fine. If it
  is deleted under us, the next call creates it again.
- **Multi-key writes are prechecked** (see ``preconditions``), then written in
  parallel, each write still conditional.

A backend says what differs: its settings, how it names a key, and how it
gets, puts and deletes one item with its SDK.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from typing import Dict, List, Optional

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)

from ..errors import (
    PreconditionFailedError,
    StorageConfigurationError,
    StorageError,
    StorageUnavailableError,
)
from .json_storage import Change, JsonStorage
from .preconditions import check_conditions, needs_precheck


class AzureStorageBase(JsonStorage):
    """A ``JsonStorage`` on one container or table of an Azure Storage account."""

    #: The service, as error messages name it ("Blob storage").
    service_name: str
    #: The settings error messages point to.
    connection_setting: str
    resource_setting: str
    #: The error code the service answers when the container or table is gone.
    missing_resource_code: str

    def __init__(self, resource_name: str) -> None:
        self._resource_name = resource_name
        self._ready = False
        self._ready_lock = asyncio.Lock()

    def _translate(self, error: Exception, key: str) -> StorageError:
        """An Azure SDK error in our vocabulary, naming the setting to look at."""
        if isinstance(error, HttpResponseError):
            if error.status_code == 412:
                return PreconditionFailedError(key)
            if error.status_code in (401, 403):
                return StorageConfigurationError(
                    f"{self.connection_setting}: the account refused the request ({error.error_code}): "
                    "check its key, or the permissions of its SAS token"
                )
            if error.error_code == self.missing_resource_code:
                self._ready = False  # deleted under us: create it again next time
            return StorageUnavailableError(
                f"{self.service_name} answered {error.status_code} ({error.error_code}) "
                f"for {self.resource_setting}={self._resource_name!r}"
            )
        return StorageUnavailableError(
            f"{self.service_name} ({self.connection_setting}) cannot be reached: {type(error).__name__}"
        )

    async def _ensure_resource(self) -> None:
        """Create the container or table once; an existing one (or a key that may
        not create it, e.g. a SAS scoped to it) is fine."""
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
                if error.status_code != 403 or error.error_code == "AuthenticationFailed":
                    raise self._translate(error, "") from error
            except AzureError as error:
                raise self._translate(error, "") from error
            self._ready = True

    async def _read_documents(self, keys: List[str]) -> Dict[str, tuple[str, str]]:
        await self._ensure_resource()
        found = await asyncio.gather(*(self._read_one(key) for key in keys))
        return {key: item for key, item in zip(keys, found) if item is not None}

    async def _read_one(self, key: str) -> Optional[tuple[str, str]]:
        """A missing item is None; a missing container or table is an error."""
        try:
            return await self._get_item(key)
        except ResourceNotFoundError as error:
            if error.error_code == self.missing_resource_code:
                raise self._translate(error, key) from error
            return None
        except AzureError as error:
            raise self._translate(error, key) from error

    async def _write_documents(self, changes: List[Change]) -> None:
        await self._ensure_resource()
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
        try:
            await self._put_item(change)
        except AzureError as error:
            raise self._translate(error, change.key) from error

    async def _delete_documents(self, keys: List[str]) -> None:
        await self._ensure_resource()

        async def delete_one(key: str) -> None:
            try:
                await self._delete_item(key)
            except ResourceNotFoundError:
                pass
            except AzureError as error:
                raise self._translate(error, key) from error

        await asyncio.gather(*(delete_one(key) for key in keys))

    @abstractmethod
    async def _create_resource(self) -> None:
        """Create the container or table (raising the SDK's error if it exists)."""

    @abstractmethod
    async def _get_item(self, key: str) -> tuple[str, str]:
        """Return ``(json_text, e_tag)``; let the SDK's ``ResourceNotFoundError`` out."""

    @abstractmethod
    async def _put_item(self, change: Change) -> None:
        """Write one change under its condition. Raise ``PreconditionFailedError``
        where this service reports a lost condition in its own way; let other
        SDK errors out to be translated."""

    @abstractmethod
    async def _delete_item(self, key: str) -> None:
        """Delete one item; let the SDK's ``ResourceNotFoundError`` out."""

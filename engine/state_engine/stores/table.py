"""Azure Table storage: "Implement custom storage for your bot" on a real service.

The SDK has no Table store for Python, so this is the lesson in full: three
methods (``read``, ``write``, ``delete``) on ``azure-data-tables``' async client.

- **Keys.** Each state key is one entity: PartitionKey = the key made safe,
  RowKey = "" (each item is its own partition, so Table can spread them out).
  Table forbids ``/ \\ # ?`` and control characters in keys (Azurite even
  answers ``/`` with a 500), so those and ``*`` itself become ``*xx`` (hex);
  keys over 255 characters keep a prefix plus a SHA-256 of the whole key. The
  original key is kept in the ``Key`` property.
- **Documents.** The JSON text is split over ``Document0``, ``Document1``... because
  a string property holds at most 64 KiB (as UTF-16) and an entity 1 MiB.
- **e_tags** are Table's ETags: updates send ``If-Match`` and fail with 412 when
  someone else wrote first; records that must be new use ``create_entity``
  (409 if it exists); unconditional writes upsert.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Dict

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from typing import Any as DefaultConfig

from .azure_base import AzureStorageBase
from ..errors import PreconditionFailedError, StorageConfigurationError
from .json_storage import CREATE_ONLY, Change

ROW_KEY = ""
KEY_PROPERTY = "Key"
PARTS_PROPERTY = "DocumentParts"
#: Characters per property: even if every one needs two UTF-16 units, 16,000
#: of them stay under Table's 64 KiB per string property.
PART_CHARS = 16_000
_MAX_KEY_LENGTH = 255
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_FORBIDDEN = re.compile(r"[/\\#?*\x00-\x1f\x7f-\x9f]")


def table_partition_key(key: str) -> str:
    """The PartitionKey for a state key (see the module docstring)."""
    escaped = _FORBIDDEN.sub(lambda match: f"*{ord(match.group()):02x}", key)
    if len(escaped) <= _MAX_KEY_LENGTH:
        return escaped
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return f"{escaped[: _MAX_KEY_LENGTH - len(digest) - 1]}-{digest}"


def document_properties(document: str) -> Dict[str, Any]:
    """The JSON text spread over as many properties as it needs."""
    parts = [document[i : i + PART_CHARS] for i in range(0, len(document), PART_CHARS)] or [""]
    properties: Dict[str, Any] = {PARTS_PROPERTY: len(parts)}
    properties.update({f"Document{index}": part for index, part in enumerate(parts)})
    return properties


class AzureTableStorage(AzureStorageBase):
    """``Storage`` on one table (``TABLE_NAME``)."""

    service_name = "Table storage"
    connection_setting = "TABLE_CONNECTION_STRING"
    resource_setting = "TABLE_NAME"
    missing_resource_code = "TableNotFound"

    # An entity holds 1 MiB. Azure counts strings as UTF-16 (2 bytes per ASCII
    # character); Azurite counts the request, where the SDK escapes every
    # non-ASCII character as \uXXXX (up to 3x its UTF-8 size). 320 KiB of UTF-8
    # JSON fits either way, with room for the keys and property names.
    max_item_bytes = 320 * 1024

    def __init__(self, connection_string: str, table_name: str) -> None:
        try:
            self._table = TableClient.from_connection_string(
                connection_string,
                table_name,
                # Report "unavailable" within about a second, not after minutes of retries.
                retry_total=2,
                retry_backoff_factor=0.2,
            )
        except ValueError as error:
            raise StorageConfigurationError(
                f"TABLE_CONNECTION_STRING is not a storage connection string ({error})"
            ) from None
        super().__init__(table_name)

    @classmethod
    def from_config(cls, config: DefaultConfig) -> "AzureTableStorage":
        if not config.TABLE_CONNECTION_STRING:
            raise StorageConfigurationError(
                "TABLE_CONNECTION_STRING is empty: copy it from the storage account's "
                "Access keys page to use STORAGE=table"
            )
        if not _TABLE_NAME.match(config.TABLE_NAME):
            raise StorageConfigurationError(
                f"TABLE_NAME={config.TABLE_NAME!r}: use 3-63 letters and digits, starting with a letter"
            )
        return cls(config.TABLE_CONNECTION_STRING, config.TABLE_NAME)

    async def _create_resource(self) -> None:
        await self._table.create_table()

    async def _get_item(self, key: str) -> tuple[str, str]:
        entity = await self._table.get_entity(table_partition_key(key), ROW_KEY)
        parts = int(entity.get(PARTS_PROPERTY, 0))
        document = "".join(entity.get(f"Document{index}", "") for index in range(parts))
        return document, entity.metadata["etag"]

    async def _put_item(self, change: Change) -> None:
        entity = {
            "PartitionKey": table_partition_key(change.key),
            "RowKey": ROW_KEY,
            KEY_PROPERTY: change.key,
            **document_properties(change.document),
        }
        try:
            if change.expected_etag is None:
                # REPLACE, not MERGE: a shorter document must not keep old parts.
                await self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
            elif change.expected_etag == CREATE_ONLY:
                await self._table.create_entity(entity)
            else:
                await self._table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=change.expected_etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except ResourceExistsError:
            raise PreconditionFailedError(change.key, "the item already exists") from None
        except ResourceNotFoundError as error:
            if error.error_code == self.missing_resource_code:
                raise  # the table is gone, not the entity: translated like any SDK error
            raise PreconditionFailedError(change.key, "the item was deleted") from None

    async def _delete_item(self, key: str) -> None:
        await self._table.delete_entity(table_partition_key(key), ROW_KEY)

    async def close(self) -> None:
        await self._table.close()

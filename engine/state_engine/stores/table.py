"""Azure Table storage: "Implement custom storage for your bot" on a service the SDK lacks.

Each item is one entity: PartitionKey = the id made safe (``/ \\ # ?``, control characters
and ``*`` become ``*xx``; ids over 255 characters keep a prefix plus a SHA-256), RowKey "",
the id in ``Key``, and the JSON split over ``Document0..N`` (64 KiB per string property).
Each read or write is one REST call (``storage_rest``); creating the table and queries stay
on the SDK.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional
from urllib.parse import quote

from azure.core.credentials import AzureNamedKeyCredential
from azure.data.tables.aio import TableClient

from ..conditions import Expect
from ..errors import StorageConfigurationError
from ..settings import setting
from .azure_storage import AzureStorageItems, check_connection_string
from .azure_transport import env_proxies, proxy_url, transport
from .items import Item, Put
from .storage_rest import StorageCalls

ROW_KEY = ""
KEY_PROPERTY = "Key"
PARTS_PROPERTY = "DocumentParts"
#: Characters per property: even if every one needs two UTF-16 units, 16,000 of them
#: stay under Table's 64 KiB per string property.
PART_CHARS = 16_000
_MAX_KEY_LENGTH = 255
#: Characters of an id kept readable when it is hashed (the rest is "-" + 64 hex digits).
_KEPT_PREFIX = _MAX_KEY_LENGTH - 65
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_FORBIDDEN = re.compile(r"[/\\#?*\x00-\x1f\x7f-\x9f]")
#: Entities as plain JSON: strings and 32-bit integers need no type annotations.
_JSON = "application/json;odata=nometadata"


@dataclass(frozen=True)
class TableSettings:
    connection_string: str = setting(
        "TABLE_CONNECTION_STRING", str, "", "The storage account's connection string.", secret=True
    )
    table: str = setting("TABLE_NAME", str, "botstorage", "Table (created on first use if allowed).")

    def check(self) -> None:
        check_connection_string(self.connection_string, "TABLE_CONNECTION_STRING", "table")
        if not _TABLE_NAME.match(self.table):
            raise StorageConfigurationError(
                f"TABLE_NAME={self.table!r}: use 3-63 letters and digits, starting with a letter"
            )


def _escaped(item_id: str) -> str:
    return _FORBIDDEN.sub(lambda match: f"*{ord(match.group()):02x}", item_id)


def table_partition_key(item_id: str) -> str:
    """The PartitionKey of an item (see the module docstring)."""
    escaped = _escaped(item_id)
    if len(escaped) <= _MAX_KEY_LENGTH:
        return escaped
    digest = hashlib.sha256(item_id.encode("utf-8")).hexdigest()
    return f"{escaped[:_KEPT_PREFIX]}-{digest}"


def _key_literal(key: str) -> str:
    """A key as an entity's address holds it: quoted (a quote doubled), percent-encoded."""
    doubled = key.replace("'", "''")
    return f"'{quote(doubled, safe='')}'"


def document_properties(document: str) -> Dict[str, Any]:
    """The JSON text spread over as many properties as it needs."""
    parts = [document[i : i + PART_CHARS] for i in range(0, len(document), PART_CHARS)] or [""]
    properties: Dict[str, Any] = {PARTS_PROPERTY: len(parts)}
    properties.update({f"Document{index}": part for index, part in enumerate(parts)})
    return properties


class TableItems(AzureStorageItems):
    """Items as entities of one table (``TABLE_NAME``)."""

    service_name = "Table storage"
    connection_setting = "TABLE_CONNECTION_STRING"
    resource_setting = "TABLE_NAME"
    missing_resource_code = "TableNotFound"
    # An entity holds 1 MiB. Azure counts strings as UTF-16 (2 bytes per ASCII character);
    # Azurite counts the request, where the SDK escapes non-ASCII as \uXXXX (up to 3x its
    # UTF-8 size). 320 KiB of UTF-8 JSON fits either way, with room for keys and names.
    max_item_bytes = 320 * 1024

    def __init__(self, settings: TableSettings, request_timeout: float = 3.0) -> None:
        settings.check()
        super().__init__(settings.table)
        def table(proxies: Optional[Dict[str, str]] = None) -> TableClient:
            return TableClient.from_connection_string(
                settings.connection_string,
                settings.table,
                retry_total=1,
                retry_backoff_factor=0.2,
                transport=transport(request_timeout, request_timeout),
                proxies=proxies,
            )

        try:
            self._table = table()
            # The proxy for the account's endpoint, read from the environment once.
            proxies = env_proxies(self._table.url)
            if proxies is not None:
                self._table = table(proxies)
        except ValueError as error:
            raise StorageConfigurationError(
                f"TABLE_CONNECTION_STRING is not a storage connection string ({error})"
            ) from None
        credential = self._table.credential
        if isinstance(credential, AzureNamedKeyCredential):
            account, url = (credential.named_key.name, credential.named_key.key), self._table.url
        else:  # a SAS token, sent as the URL's query
            account, url = None, f"{self._table.url}?{credential.signature.lstrip('?')}"
        self._calls = StorageCalls(
            "table", url, self._table.api_version, request_timeout, account=account, proxy=proxy_url(proxies)
        )
        self._table_path = quote(settings.table, safe="")

    def _entity_path(self, partition_key: str) -> str:
        return f"{self._table_path}(PartitionKey={_key_literal(partition_key)},RowKey={_key_literal(ROW_KEY)})"

    async def _create_resource(self) -> None:
        await self._table.create_table()

    async def _get_item(self, item_id: str) -> Item:
        answer = await self._calls.send(
            "GET", self._entity_path(table_partition_key(item_id)), {"Accept": _JSON}, ok=(200,)
        )
        e_tag = answer.headers["ETag"]
        try:
            entity = json.loads(answer.body)
        except ValueError:
            return Item("", e_tag, problem="the entity is not JSON")
        parts = entity.get(PARTS_PROPERTY) if isinstance(entity, dict) else None
        # Checked before anything is allocated: a planted DocumentParts=10**9 must not
        # make the bot build a billion-part string.
        most = math.ceil(self.max_item_bytes / PART_CHARS) + 1
        if not isinstance(parts, int) or isinstance(parts, bool) or not 1 <= parts <= most:
            return Item("", e_tag, problem=f"the entity's {PARTS_PROPERTY} is not 1 to {most}")
        texts = [entity.get(f"Document{index}") for index in range(parts)]
        if not all(isinstance(text, str) for text in texts):
            return Item("", e_tag, problem="the entity's document parts are not all text")
        return Item("".join(texts), e_tag)

    async def _put_item(self, put: Put) -> Optional[str]:
        partition_key = table_partition_key(put.item_id)
        path = self._entity_path(partition_key)
        expect = put.condition.expect
        match = put.condition.e_tag if expect is Expect.MATCH else None
        if put.text is None:
            await self._calls.send("DELETE", path, {"If-Match": match or "*"}, ok=(204,))
            return None
        entity = {
            "PartitionKey": partition_key,
            "RowKey": ROW_KEY,
            KEY_PROPERTY: put.item_id,
            **document_properties(put.text),
        }
        headers = {"Content-Type": _JSON, "Accept": _JSON, "Prefer": "return-no-content"}
        body = json.dumps(entity).encode("utf-8")
        if expect is Expect.ABSENT:  # insert: 409 EntityAlreadyExists when it exists
            answer = await self._calls.send("POST", self._table_path, headers, ok=(204,), body=body)
        else:
            # A PUT replaces the whole entity (a shorter document keeps no old parts); with
            # If-Match only the version read, without it an insert or a replace.
            conditions = {"If-Match": match} if match is not None else {}
            answer = await self._calls.send("PUT", path, {**headers, **conditions}, ok=(204,), body=body)
        return answer.headers["ETag"]

    async def _list(self, prefix: str) -> List[str]:
        low = _escaped(prefix)[:_KEPT_PREFIX]
        high = low + "\uffff"
        entities = self._table.query_entities(
            "PartitionKey ge @low and PartitionKey lt @high",
            parameters={"low": low, "high": high},
            select=[KEY_PROPERTY],
        )
        return [entity[KEY_PROPERTY] async for entity in entities if isinstance(entity.get(KEY_PROPERTY), str)]

    async def close(self) -> None:
        await self._calls.close()
        await self._table.close()

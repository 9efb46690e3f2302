"""The part of "Implement custom storage for your bot" that every store shares.

The SDK's ``Storage`` interface is three methods: ``read(keys)``, ``write(changes)``
and ``delete(keys)``. A store item may carry an ``e_tag``: write it back with the
e_tag you read and the store refuses the write if someone else changed the item
in between (optimistic concurrency). ``"*"`` or no e_tag means "write anyway".

``JsonStorage`` does the common work once (the safe codec, e_tags on items,
the size guard) so a backend only moves JSON text and e_tags: one module each.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from botbuilder.core import Storage

from .. import codec
from ..errors import ItemTooLargeError

# The e_tag the turn runner writes for a record that did not exist when the turn
# read it: "create it, but only if nobody else created it first". Without it two
# first turns of a new conversation would both write unconditionally and one
# would silently win. No backend ever hands out this value as a real e_tag.
CREATE_ONLY = "<create-only>"


@dataclass(frozen=True)
class Change:
    """One document to write. ``expected_etag``: None = unconditional,
    CREATE_ONLY = must not exist yet, anything else = must still match."""

    key: str
    document: str
    expected_etag: Optional[str]


def etag_of(item: Any) -> Optional[str]:
    """The e_tag a store item carries, as the SDK's stores find it (dict key or attribute)."""
    e_tag = item.get("e_tag") if isinstance(item, dict) else getattr(item, "e_tag", None)
    if e_tag == "":
        raise ValueError("e_tag is empty: use '*' (or leave it out) to write unconditionally")
    return None if e_tag in (None, "*") else e_tag


def with_etag(item: Any, e_tag: str) -> Any:
    """Hand the stored e_tag to the item that was read, where the SDK expects it:
    a dict key, or an attribute (set even on objects that are not declared
    StoreItems, so writing back what was read is always conditional)."""
    if isinstance(item, dict):
        item["e_tag"] = e_tag
    elif isinstance(item, list):
        return item
    else:
        try:
            item.e_tag = e_tag
        except AttributeError:
            pass
    return item


def _without_etag(item: Any) -> Any:
    if isinstance(item, dict) and "e_tag" in item:
        return {key: value for key, value in item.items() if key != "e_tag"}
    return item


class JsonStorage(Storage):
    """A ``Storage`` that keeps every item as a JSON document with its e_tag."""

    #: Largest stored document this backend accepts, in bytes of UTF-8 JSON.
    max_item_bytes: int = 2 * 1024 * 1024

    async def read(self, keys: List[str]) -> Dict[str, Any]:
        if not keys:
            return {}
        found = await self._read_documents(list(dict.fromkeys(keys)))
        return {
            key: with_etag(codec.loads(document), e_tag)
            for key, (document, e_tag) in found.items()
        }

    async def write(self, changes: Dict[str, Any]) -> None:
        if not changes:
            return
        prepared = []
        for key, item in changes.items():
            document = codec.dumps(_without_etag(item))
            size = len(document.encode("utf-8"))
            if size > self.max_item_bytes:
                raise ItemTooLargeError(key, size, self.max_item_bytes)
            prepared.append(Change(key, document, etag_of(item)))
        await self._write_documents(prepared)

    async def delete(self, keys: List[str]) -> None:
        if keys:
            await self._delete_documents(list(dict.fromkeys(keys)))

    async def close(self) -> None:
        """Release connections; the app calls it on shutdown."""

    async def ping(self) -> None:
        """Raise StorageUnavailableError when the store cannot answer (for /healthz)."""
        await self._read_documents(["healthz-probe"])

    @abstractmethod
    async def _read_documents(self, keys: List[str]) -> Dict[str, tuple[str, str]]:
        """Return ``{key: (json_text, e_tag)}`` for the keys that exist."""

    @abstractmethod
    async def _write_documents(self, changes: List[Change]) -> None:
        """Write all changes, raising PreconditionFailedError for a failed condition.

        Backends that can (SQLite, memory) check every condition before writing
        anything, so a failed turn leaves nothing half-written."""

    @abstractmethod
    async def _delete_documents(self, keys: List[str]) -> None:
        """Delete the keys that exist; missing keys are not an error."""

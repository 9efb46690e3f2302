"""What a backend does: keep JSON items by id, and write one only if its condition holds.

That single-item compare-and-swap is all every service offers alike (a SQLite row, a
Cosmos DB item, a blob, a Table entity), so it is all a backend implements: the state
layer above (``state_storage``) builds atomic multi-record turns on it, once for all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from ..conditions import WriteCondition

#: Cosmos DB's limit for one item. Stores that take more keep to it, so that state that
#: works on one store keeps working after a move to another.
PORTABLE_ITEM_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Item:
    """One stored item: its JSON text and the backend's version of it. ``problem`` says
    why a backend could not even get the text out (it is then unreadable, not missing)."""

    text: str
    e_tag: str
    problem: Optional[str] = None


@dataclass(frozen=True)
class Put:
    """Write ``text`` to ``item_id`` (``None``: delete it) if ``condition`` holds."""

    item_id: str
    text: Optional[str]
    condition: WriteCondition


class ItemStore(ABC):
    """A backend: items by id, each written under a condition.

    ``put`` raises ``PreconditionFailedError`` when the condition does not hold and
    nothing was written; any failure of the service is ``StorageUnavailableError``
    or ``StorageConfigurationError`` (``state_engine.errors``)."""

    #: Largest item text this backend accepts, in bytes of UTF-8.
    max_item_bytes: int = PORTABLE_ITEM_BYTES
    #: True when ``put_all`` writes several items all-or-nothing (a SQL transaction).
    atomic_batch: bool = False

    @abstractmethod
    async def get(self, item_ids: Sequence[str]) -> Dict[str, Item]:
        """The items that exist among ``item_ids``, read together (one round trip)."""

    @abstractmethod
    async def put(self, put: Put) -> Optional[str]:
        """Write or delete one item under its condition; the new e_tag (None after a delete)."""

    async def put_all(self, puts: Sequence[Put]) -> Dict[str, Optional[str]]:
        """Write several items all-or-nothing; only where ``atomic_batch`` is True."""
        raise NotImplementedError(f"{type(self).__name__} has no atomic batch")

    @abstractmethod
    async def list_ids(self, prefix: str) -> List[str]:
        """Every item id that starts with ``prefix``."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise ``StorageError`` saying why when the backend could not save a turn now."""

    async def erase_deleted(self) -> None:
        """Make what was deleted unrecoverable from files this store keeps itself (``forget
        me`` calls it last); a service erases on its own, so by default nothing to do."""

    async def close(self) -> None:
        """Release connections; the app calls it on shutdown."""

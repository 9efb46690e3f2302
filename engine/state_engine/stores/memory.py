"""An in-process backend that behaves like the persistent ones (for tests and demos).

The SDK's MemoryStorage keeps live Python objects, so a bot tested on it can pass
objects between turns that no real store could persist. This one keeps JSON text and
versions every item, exactly as SQLite or Cosmos DB would; nothing survives a restart.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from ..errors import PreconditionFailedError
from .items import Item, ItemStore, Put


@dataclass(frozen=True)
class MemorySettings:
    """The memory backend has no settings."""


class MemoryItems(ItemStore):
    atomic_batch = True

    def __init__(self, settings: MemorySettings = MemorySettings(), request_timeout: float = 0) -> None:
        """``request_timeout`` is accepted like every backend's; nothing here ever waits."""
        self._items: Dict[str, Item] = {}
        self._versions = itertools.count(1)

    async def get(self, item_ids: Sequence[str]) -> Dict[str, Item]:
        return {item_id: self._items[item_id] for item_id in item_ids if item_id in self._items}

    async def put(self, put: Put) -> Optional[str]:
        return (await self.put_all([put]))[put.item_id]

    async def put_all(self, puts: Sequence[Put]) -> Dict[str, Optional[str]]:
        # No await between the checks and the writes: on one event loop this is atomic.
        for put in puts:
            current = self._items.get(put.item_id)
            if not put.condition.holds(current.e_tag if current else None):
                raise PreconditionFailedError(put.item_id, put.condition.failure())
        e_tags: Dict[str, Optional[str]] = {}
        for put in puts:
            if put.text is None:
                self._items.pop(put.item_id, None)
                e_tags[put.item_id] = None
            else:
                e_tag = f"m{next(self._versions)}"
                self._items[put.item_id] = Item(put.text, e_tag)
                e_tags[put.item_id] = e_tag
        return e_tags

    async def list_ids(self, prefix: str) -> List[str]:
        return sorted(item_id for item_id in self._items if item_id.startswith(prefix))

    async def ping(self) -> None:
        """Always available."""

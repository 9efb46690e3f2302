"""An in-process store that behaves like the persistent ones.

The SDK's MemoryStorage keeps live Python objects, so a bot tested on it can
pass objects between turns that no real store could persist, and it treats a
write to a missing item as always allowed. This one stores JSON text through
the same codec and versions e_tags like the cloud stores: a bot that works here
behaves the same on SQLite, Cosmos DB, Blob or Table storage.
"""

from __future__ import annotations

import itertools
from typing import Dict, List

from ..errors import PreconditionFailedError
from .json_storage import CREATE_ONLY, Change, JsonStorage


class MemoryStore(JsonStorage):
    def __init__(self) -> None:
        self._documents: Dict[str, tuple[str, str]] = {}
        self._versions = itertools.count(1)

    async def _read_documents(self, keys: List[str]) -> Dict[str, tuple[str, str]]:
        return {key: self._documents[key] for key in keys if key in self._documents}

    async def _write_documents(self, changes: List[Change]) -> None:
        # No await between check and write: on one event loop this is atomic.
        for change in changes:
            current = self._documents.get(change.key)
            if change.expected_etag == CREATE_ONLY:
                if current is not None:
                    raise PreconditionFailedError(change.key, "the item already exists")
            elif change.expected_etag is not None:
                if current is None or current[1] != change.expected_etag:
                    raise PreconditionFailedError(change.key)
        for change in changes:
            self._documents[change.key] = (change.document, f"m{next(self._versions)}")

    async def _delete_documents(self, keys: List[str]) -> None:
        for key in keys:
            self._documents.pop(key, None)

    def keys(self) -> List[str]:
        return list(self._documents)

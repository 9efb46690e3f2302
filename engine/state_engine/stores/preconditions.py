"""Check every write condition before writing anything (the cloud stores).

Cosmos DB, Blob and Table storage make one item's write conditional at a time.
A turn saves up to three scopes in one ``write``; if the second condition fails
after the first item was written, the turn runner retries the turn on top of
its own half-saved change and applies it twice (a message counted twice). So
before a write of several items with conditions, the cloud stores read the
current e_tags and refuse the whole write if any condition already fails. Each
write stays conditional too: a writer that slips in between is still caught,
though what was written before it then stays written (no cross-item transactions).
"""

from __future__ import annotations

from typing import List, Mapping

from ..errors import PreconditionFailedError
from .json_storage import CREATE_ONLY, Change


def needs_precheck(changes: List[Change]) -> bool:
    """Only a write of several items, at least one conditional, can be half-done."""
    return len(changes) > 1 and any(change.expected_etag is not None for change in changes)


def check_conditions(changes: List[Change], current_etags: Mapping[str, str]) -> None:
    """Raise PreconditionFailedError for the first change whose condition fails now."""
    for change in changes:
        current = current_etags.get(change.key)
        if change.expected_etag == CREATE_ONLY and current is not None:
            raise PreconditionFailedError(change.key, "the item already exists")
        if change.expected_etag not in (None, CREATE_ONLY) and current != change.expected_etag:
            raise PreconditionFailedError(change.key)

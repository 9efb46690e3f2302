"""Write conditions: when a write may land (optimistic concurrency, "Implement custom storage").

The SDK says it with an item's ``e_tag``: none or ``"*"`` writes anyway, anything else
must still match. Inside the engine a condition is this small type instead, with a third
case the SDK cannot say: "only if it does not exist yet" (a record the turn read as absent).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Optional


class Expect(enum.Enum):
    """What the writer expects to find."""

    ANYTHING = "anything"  # write unconditionally
    ABSENT = "absent"  # create only: nobody else created it first
    MATCH = "match"  # the version (e_tag) the writer read


@dataclass(frozen=True)
class WriteCondition:
    """A write's condition; ``e_tag`` is set only when ``expect`` is MATCH."""

    expect: Expect
    e_tag: Optional[str] = None

    def holds(self, current_etag: Optional[str]) -> bool:
        """Would the write land on an item whose e_tag is ``current_etag`` (None: absent)?"""
        if self.expect is Expect.ANYTHING:
            return True
        if self.expect is Expect.ABSENT:
            return current_etag is None
        return current_etag is not None and current_etag == self.e_tag

    def failure(self) -> str:
        """Why the write did not land, in words for error messages."""
        if self.expect is Expect.ABSENT:
            return "the item already exists"
        return "the item was changed or deleted by another writer"


ANY = WriteCondition(Expect.ANYTHING)
ABSENT = WriteCondition(Expect.ABSENT)


def if_match(e_tag: str) -> WriteCondition:
    return WriteCondition(Expect.MATCH, e_tag)


def etag_of(item: Any) -> Optional[str]:
    """The e_tag a store item carries, where the SDK's stores look (dict key or attribute)."""
    return item.get("e_tag") if isinstance(item, dict) else getattr(item, "e_tag", None)


def condition_of(item: Any) -> WriteCondition:
    """The SDK's convention for an item handed to ``Storage.write``."""
    e_tag = etag_of(item)
    if e_tag == "":
        raise ValueError("e_tag is empty: use '*' (or leave it out) to write unconditionally")
    if e_tag is None or e_tag == "*":
        return ANY
    return if_match(e_tag)

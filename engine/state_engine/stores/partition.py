"""One stored item holds a partition: the records a turn usually saves together.

``{"$partition": 1, "records": {key: {"e_tag", "value"}}, "pending", "commits"}``: each
record keeps its own e_tag, as the SDK promises; ``pending`` and ``commits`` carry the
commit protocol. An earlier version's item (one record) reads as a partition of one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Dict, Optional

from .items import Item

FORMAT_TAG = "$partition"
FORMAT_VERSION = 1


#: Items longer than this are parsed, and their records decoded, off the event loop.
LARGE_ITEM_CHARS = 256 * 1024


@dataclass(frozen=True)
class Record:
    """One record: its codec JSON value and its own e_tag; ``large`` when it came from an
    item long enough that decoding it belongs off the event loop."""

    e_tag: str
    value: Any
    large: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class Pending:
    """Changes prepared by transaction ``tx``: they count once ``home`` records its commit.

    ``records`` maps each changed key to its new record, or None for a delete."""

    tx: str
    home: str
    expires: float
    records: Dict[str, Optional[Record]]


@dataclass(frozen=True)
class Partition:
    """A partition as read: its records, any prepared transaction, and the item's e_tag
    (None: no item is stored). ``unreadable`` says why the item could not be read."""

    item_id: str
    item_etag: Optional[str] = None
    records: Dict[str, Record] = field(default_factory=dict)
    pending: Optional[Pending] = None
    commits: Dict[str, str] = field(default_factory=dict)
    unreadable: Optional[str] = None

    @property
    def is_empty(self) -> bool:
        return not self.records and self.pending is None and not self.commits

    def with_records(self, records: Dict[str, Record]) -> "Partition":
        return replace(self, records=records)

    def applied(self) -> "Partition":
        """The partition with its pending transaction counted (it committed)."""
        if self.pending is None:
            return self
        return replace(self, records=apply_changes(self.records, self.pending.records), pending=None)

    @cached_property
    def text(self) -> str:
        """The item's JSON (computed once per partition value)."""
        document: Dict[str, Any] = {
            FORMAT_TAG: FORMAT_VERSION,
            "records": {key: _record_json(record) for key, record in self.records.items()},
        }
        if self.pending is not None:
            document["pending"] = {
                "tx": self.pending.tx,
                "home": self.pending.home,
                "expires": self.pending.expires,
                "records": {
                    key: None if record is None else _record_json(record)
                    for key, record in self.pending.records.items()
                },
            }
        if self.commits:
            document["commits"] = self.commits
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def apply_changes(
    records: Dict[str, Record], changes: Dict[str, Optional[Record]]
) -> Dict[str, Record]:
    """``records`` with each change written (a record) or deleted (None)."""
    result = dict(records)
    for key, record in changes.items():
        if record is None:
            result.pop(key, None)
        else:
            result[key] = record
    return result


def parse(item_id: str, item: Optional[Item]) -> Partition:
    """The partition stored in ``item``; never raises (what cannot be read says why)."""
    if item is None:
        return Partition(item_id)
    if item.problem:
        return Partition(item_id, item.e_tag, unreadable=item.problem)
    try:
        document = json.loads(item.text)
    except (ValueError, RecursionError):
        return Partition(item_id, item.e_tag, unreadable="the stored item is not valid JSON")
    large = len(item.text) > LARGE_ITEM_CHARS
    if not isinstance(document, dict) or FORMAT_TAG not in document:
        # An item of an earlier version: the whole item is one record under its own key.
        return Partition(item_id, item.e_tag, records={item_id: Record(item.e_tag, document, large)})
    try:
        return Partition(
            item_id,
            item.e_tag,
            records=_records(document["records"], large),
            pending=_pending(document.get("pending")),
            commits=_commits(document.get("commits", {})),
        )
    except (KeyError, TypeError, ValueError) as error:
        return Partition(item_id, item.e_tag, unreadable=f"the stored partition is malformed ({error})")


def _record_json(record: Record) -> Dict[str, Any]:
    return {"e_tag": record.e_tag, "value": record.value}


def _record(data: Any, large: bool = False) -> Record:
    if not isinstance(data, dict) or not isinstance(data.get("e_tag"), str) or "value" not in data:
        raise ValueError("a record needs an e_tag and a value")
    return Record(data["e_tag"], data["value"], large)


def _records(data: Any, large: bool) -> Dict[str, Record]:
    if not isinstance(data, dict):
        raise ValueError("records must be an object")
    return {str(key): _record(value, large) for key, value in data.items()}


def _pending(data: Any) -> Optional[Pending]:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError("pending must be an object")
    tx, home, expires, records = data["tx"], data["home"], data["expires"], data["records"]
    if not isinstance(tx, str) or not isinstance(home, str) or not isinstance(records, dict):
        raise ValueError("pending needs tx, home and records")
    changes = {str(k): None if v is None else _record(v) for k, v in records.items()}
    return Pending(tx, home, float(expires), changes)


def _commits(data: Any) -> Dict[str, str]:
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError("commits must map partition ids to transaction ids")
    return {str(key): value for key, value in data.items()}

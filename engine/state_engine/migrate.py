"""Bring a store written by the earlier layout (one item per record) into partitions, once.

Every item that is not a partition of its own is folded into its partition (unless that
already holds a newer record of the key) and deleted; a private state found this way also
gets its user's membership entry, so ``forget me`` finds it. Safe to run twice, or halfway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from . import keys
from .conditions import if_match
from .errors import PreconditionFailedError, UnsafeDocumentError
from .stores.items import Put
from .stores.partition import FORMAT_TAG, Partition, Record, parse
from .stores.state_storage import Change, StateStorage, decode_record


@dataclass(frozen=True)
class MigrationReport:
    moved: int = 0  # records folded into their partition
    dropped: int = 0  # items the current data models cannot read (deleted)
    kept_newer: int = 0  # items whose partition already had a newer record (deleted)


async def migrate(storage: StateStorage) -> MigrationReport:
    """Fold every earlier-layout item of ``storage`` into its partition."""
    report = MigrationReport()
    for item_id in await storage.items.list_ids(""):
        partition_id = keys.partition_of(item_id)
        if partition_id == item_id:
            continue  # a partition, or an earlier record that already reads as one
        item = (await storage.items.get([item_id])).get(item_id)
        if item is None or _is_partition(item.text):
            continue
        outcome = await _fold(storage, item_id, partition_id, parse(item_id, item).records.get(item_id))
        try:
            await storage.items.put(Put(item_id, None, if_match(item.e_tag)))
        except PreconditionFailedError:
            continue  # written since by an earlier version still running: the next run moves it
        report = MigrationReport(
            report.moved + (outcome == "moved"),
            report.dropped + (outcome == "dropped"),
            report.kept_newer + (outcome == "newer"),
        )
    return report


def _is_partition(text: str) -> bool:
    return f'"{FORMAT_TAG}"' in text[:32]


async def _fold(storage: StateStorage, key: str, partition_id: str, record: Optional[Record]) -> str:
    """Put one earlier record into its partition; what became of it."""
    try:
        if record is None:
            return "dropped"
        decode_record(key, record)
    except UnsafeDocumentError:
        return "dropped"

    def add(partition: Partition) -> Tuple[Partition, str]:
        if key in partition.records:
            return partition, "newer"
        return partition.with_records({**partition.records, key: record}), "moved"

    outcome = await storage.rewrite(partition_id, add)
    user = _private_state_user(key, partition_id)
    if outcome == "moved" and user is not None:
        channel, conversation = _conversation_of(partition_id)
        membership = keys.membership(channel, user, conversation)
        if not await storage.read_records([membership]):
            await storage.commit([Change(membership, {"conversation": conversation})])
    return outcome


def _conversation_of(partition_id: str) -> Tuple[str, str]:
    channel, _, conversation = partition_id.partition(keys.CONVERSATIONS)
    return channel, conversation


def _private_state_user(key: str, partition_id: str) -> Optional[str]:
    channel, conversation = _conversation_of(partition_id)
    return keys.user_of_private_key(channel, conversation, key) if conversation else None

"""The SDK's ``Storage`` on any backend, with every write of several records all-or-nothing.

Records live in partitions (``keys.partition_of``), each with its own e_tag. A write within
one partition is one compare-and-swap of its item; across partitions it is one SQL
transaction where the backend has one, and otherwise the commit of ``transactions``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar

from botbuilder.core import Storage

from .. import codec, keys
from ..conditions import ANY, WriteCondition, condition_of
from ..errors import PreconditionFailedError, UnsafeDocumentError
from .items import ItemStore
from .partition import Partition, Record, apply_changes
from .partitions import Partitions, new_etag
from .transactions import PartitionMoved, commit_across, settle

T = TypeVar("T")

#: Times a write is tried again when its partition changed but its own records did not.
MERGE_ATTEMPTS = 4

__all__ = ["Change", "StateStorage", "decode_off_loop", "decode_record", "new_etag"]


@dataclass(frozen=True)
class Change:
    """One record to write (``value``, encoded by the codec) or delete, under ``condition``."""

    key: str
    value: Any = None
    condition: WriteCondition = ANY
    delete: bool = False


class StateStorage(Storage):
    """``Storage`` (read, write, delete) over an ``ItemStore``, plus ``commit`` of typed changes.

    ``commit_timeout_seconds`` bounds a cross-partition commit: a marker older than that is
    abandoned, and a reader may fence it off. Use the turn deadline."""

    def __init__(
        self,
        items: ItemStore,
        *,
        partition_of: Callable[[str], str] = keys.partition_of,
        commit_timeout_seconds: float = 15.0,
        cache_size: int = 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.items = items
        self._partitions = Partitions(items, clock, cache_size)
        self._partition_of = partition_of
        self._commit_timeout = commit_timeout_seconds
        self._clock = clock

    @property
    def max_item_bytes(self) -> int:
        return self.items.max_item_bytes

    # -- the SDK's interface ---------------------------------------------------------

    async def read(self, keys: List[str]) -> Dict[str, Any]:
        if keys is None:
            raise Exception("Keys are required when reading")
        records = await self.read_records(keys)
        return {key: await decode_off_loop(key, record) for key, record in records.items()}

    async def write(self, changes: Dict[str, Any]) -> None:
        if changes is None:
            raise Exception("Changes are required when writing")
        if changes:
            await self.commit(
                [Change(key, _without_etag(item), condition_of(item)) for key, item in changes.items()]
            )

    async def delete(self, keys: List[str]) -> None:
        await self.commit([Change(key, delete=True) for key in dict.fromkeys(keys)])

    # -- the engine's interface --------------------------------------------------------

    async def read_records(self, keys: Iterable[str]) -> Dict[str, Record]:
        """The stored records of ``keys`` (undecoded), all read in one round trip."""
        found, unreadable = await self.read_records_and_problems(keys)
        if unreadable:
            raise UnsafeDocumentError(next(iter(unreadable.values())))
        return found

    async def read_records_and_problems(self, keys: Iterable[str]) -> Tuple[Dict[str, Record], Dict[str, str]]:
        """Like ``read_records``, but a key whose partition cannot be read is not an error
        here: it is returned with the reason, so that only using it is refused."""
        by_partition = self._group(dict.fromkeys(keys))
        partitions = await self._partitions.load(by_partition) if by_partition else {}
        found: Dict[str, Record] = {}
        unreadable: Dict[str, str] = {}
        for item_id, wanted in by_partition.items():
            partition = partitions[item_id]
            if partition.unreadable:
                unreadable.update(dict.fromkeys(wanted, f"{item_id!r}: {partition.unreadable}"))
            else:
                found.update({key: partition.records[key] for key in wanted if key in partition.records})
        return found, unreadable

    async def commit(self, changes: Sequence[Change]) -> Dict[str, str]:
        """Write every change, each under its condition, all-or-nothing; the new e_tags.
        Raises ``PreconditionFailedError`` (nothing written) when a condition fails."""
        if not changes:
            return {}
        planned, conditions = self._plan(changes)
        for _ in range(MERGE_ATTEMPTS):
            bases = await self._bases(planned)
            updated = {
                item_id: _updated(bases[item_id], records, conditions) for item_id, records in planned.items()
            }
            try:
                await self._write(bases, updated, list(planned))
            except PartitionMoved as moved:
                for item_id in moved.item_ids:
                    self._partitions.evict(item_id)
                continue
            return {key: r.e_tag for records in planned.values() for key, r in records.items() if r}
        raise PreconditionFailedError(changes[0].key, "its records kept changing while it was being saved")

    async def list_keys(self, prefix: str) -> List[str]:
        """Every stored key starting with ``prefix`` in partitions whose id starts with it."""
        item_ids = await self.items.list_ids(prefix)
        partitions = await self._partitions.load(item_ids) if item_ids else {}
        return sorted(key for p in partitions.values() for key in p.records if key.startswith(prefix))

    async def rewrite(
        self, item_id: str, edit: Callable[..., Tuple[Partition, T]], read_with: Sequence[str] = ()
    ) -> T:
        """Apply ``edit`` to a partition as stored (readable or not) and write the result
        back under its e_tag, again on conflict; ``edit`` returns the new partition and a
        result to hand back. The ``read_with`` partitions are read just after it (a commit
        across partitions marks ``item_id`` before it changes them, so either the edit sees
        their change or its write fails) and passed to ``edit`` after it. For maintenance
        such as ``forget me``, not for turns."""
        for attempt in range(MERGE_ATTEMPTS * 2):
            current = (await self._partitions.load([item_id]))[item_id]
            if current.pending is not None:
                await asyncio.sleep(0.05 * 2**attempt)  # a commit in flight: let it land
                continue
            others = await self._partitions.load(read_with) if read_with else {}
            updated, result = edit(current, *(others[other] for other in read_with))
            if updated != current:
                try:
                    await self._partitions.put(updated, current)
                except PreconditionFailedError:
                    continue
            return result
        raise PreconditionFailedError(item_id, "it kept changing while it was being rewritten")

    async def ping(self) -> None:
        await self.items.ping()

    async def close(self) -> None:
        await settle()
        await self.items.close()

    # -- writing -------------------------------------------------------------------------

    def _group(self, keys: Iterable[str]) -> Dict[str, List[str]]:
        groups: Dict[str, List[str]] = {}
        for key in keys:
            groups.setdefault(self._partition_of(key), []).append(key)
        return groups

    def _plan(
        self, changes: Sequence[Change]
    ) -> Tuple[Dict[str, Dict[str, Optional[Record]]], Dict[str, WriteCondition]]:
        """Each partition's new records (encoded once, new e_tags) and each key's condition."""
        planned: Dict[str, Dict[str, Optional[Record]]] = {}
        conditions: Dict[str, WriteCondition] = {}
        for change in changes:
            record = None if change.delete else Record(new_etag(), codec.encode_value(change.value))
            planned.setdefault(self._partition_of(change.key), {})[change.key] = record
            conditions[change.key] = change.condition
        return planned, conditions

    async def _bases(self, planned: Dict[str, Any]) -> Dict[str, Partition]:
        """The partitions a write starts from: as last read here, else read now.
        (A stale copy only costs a retry: every item write is itself conditional.)"""
        bases: Dict[str, Partition] = {}
        for item_id in planned:
            known = self._partitions.known(item_id)
            if known is not None and known.pending is None:
                bases[item_id] = known
        missing = [item_id for item_id in planned if item_id not in bases]
        if missing:
            bases.update(await self._partitions.load(missing))
        return bases

    async def _write(self, bases: Dict[str, Partition], updated: Dict[str, Partition], order: List[str]) -> None:
        order = [item_id for item_id in order if updated[item_id].records != bases[item_id].records]
        for item_id in order:
            self._partitions.check_size(updated[item_id])
        if len(order) == 1:
            try:
                await self._partitions.put(updated[order[0]], bases[order[0]])
            except PreconditionFailedError:
                raise PartitionMoved(order) from None
        elif len(order) > 1 and self.items.atomic_batch:
            try:
                await self._partitions.put_all([updated[i] for i in order], bases)
            except PreconditionFailedError:
                raise PartitionMoved(order) from None
        elif order:
            changed = {item_id: updated[item_id] for item_id in order}
            await commit_across(self._partitions, bases, changed, order, self._commit_timeout, self._clock)


def _updated(
    base: Partition, records: Dict[str, Optional[Record]], conditions: Dict[str, WriteCondition]
) -> Partition:
    """``base`` with ``records`` written, if every one's condition holds on ``base``."""
    if base.unreadable:
        raise UnsafeDocumentError(f"{base.item_id!r}: {base.unreadable}")
    if base.pending is not None:
        raise PreconditionFailedError(next(iter(records)), "another turn is saving these records right now")
    for key in records:
        current = base.records.get(key)
        if not conditions[key].holds(current.e_tag if current else None):
            raise PreconditionFailedError(key, conditions[key].failure())
    return base.with_records(apply_changes(base.records, records))


def _without_etag(item: Any) -> Any:
    if isinstance(item, dict) and "e_tag" in item:
        return {key: value for key, value in item.items() if key != "e_tag"}
    return item


async def decode_off_loop(key: str, record: Record) -> Any:
    """``decode_record``, on a thread for a record from a large item (the loop stays free)."""
    if record.large:
        return await asyncio.to_thread(decode_record, key, record)
    return decode_record(key, record)


def decode_record(key: str, record: Record) -> Any:
    """The stored value rebuilt by the codec, carrying its e_tag where the SDK expects it."""
    if not isinstance(record.value, dict):
        raise UnsafeDocumentError(f"record {key!r} is not a JSON object")
    item = codec.decode_value(record.value)
    if isinstance(item, dict):
        item["e_tag"] = record.e_tag
    else:
        try:
            item.e_tag = record.e_tag
        except AttributeError:
            pass
    return item

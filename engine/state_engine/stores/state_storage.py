"""The SDK's ``Storage`` on any backend, with every write of several records all-or-nothing.

Records live in partitions (``keys.partition_of``): a write within one partition is one
compare-and-swap of its item. A write across partitions is one SQL transaction where the
backend has one; elsewhere it is prepared on the other partitions (a pending marker),
decided by one compare-and-swap on the home partition, then rolled forward. A reader
that meets a marker asks the home partition whether it committed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar

from botbuilder.core import Storage

from .. import codec, keys
from ..conditions import ABSENT, ANY, WriteCondition, condition_of, if_match
from ..errors import ItemTooLargeError, PreconditionFailedError, StorageError, UnsafeDocumentError
from .items import ItemStore, Put
from .partition import Partition, Pending, Record, apply_changes, parse

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: How far apart two instances' clocks may be; a marker counts as abandoned only after it.
CLOCK_MARGIN_SECONDS = 2.0
#: Times a write is tried again when its partition changed but its own records did not.
MERGE_ATTEMPTS = 4


@dataclass(frozen=True)
class Change:
    """One record to write (``value``, encoded by the codec) or delete, under ``condition``."""

    key: str
    value: Any = None
    condition: WriteCondition = ANY
    delete: bool = False


class _PartitionMoved(Exception):
    """A partition's item changed under a write whose own records still matched: try again."""

    def __init__(self, item_ids: Iterable[str]) -> None:
        super().__init__(", ".join(item_ids))
        self.item_ids = list(item_ids)


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
        self._partition_of = partition_of
        self._commit_timeout = commit_timeout_seconds
        self._clock = clock
        self._cache: "OrderedDict[str, Partition]" = OrderedDict()
        self._cache_size = cache_size

    @property
    def max_item_bytes(self) -> int:
        return self.items.max_item_bytes

    # -- the SDK's interface ---------------------------------------------------------

    async def read(self, keys: List[str]) -> Dict[str, Any]:
        if keys is None:
            raise Exception("Keys are required when reading")
        records = await self.read_records(keys)
        return {key: decode_record(key, record) for key, record in records.items()}

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
        by_partition = self._group(dict.fromkeys(keys))
        if not by_partition:
            return {}
        partitions = await self._load(by_partition)
        found: Dict[str, Record] = {}
        for item_id, wanted in by_partition.items():
            partition = partitions[item_id]
            if partition.unreadable:
                raise UnsafeDocumentError(f"{item_id!r}: {partition.unreadable}")
            found.update({key: partition.records[key] for key in wanted if key in partition.records})
        return found

    async def commit(self, changes: Sequence[Change]) -> Dict[str, str]:
        """Write every change, each under its condition, all-or-nothing; the new e_tags.

        Raises ``PreconditionFailedError`` (nothing written) when a condition fails."""
        if not changes:
            return {}
        planned, conditions = self._plan(changes)
        for _ in range(MERGE_ATTEMPTS):
            bases = await self._bases(planned)
            updated = {
                item_id: self._updated(bases[item_id], records, conditions)
                for item_id, records in planned.items()
            }
            try:
                await self._write(bases, updated, list(planned))
            except _PartitionMoved as moved:
                for item_id in moved.item_ids:
                    self._cache.pop(item_id, None)
                continue
            return {
                key: record.e_tag
                for records in planned.values()
                for key, record in records.items()
                if record is not None
            }
        first = changes[0].key
        raise PreconditionFailedError(first, "its records kept changing while it was being saved")

    async def list_keys(self, prefix: str) -> List[str]:
        """Every stored key starting with ``prefix`` in partitions whose id starts with it."""
        item_ids = await self.items.list_ids(prefix)
        if not item_ids:
            return []
        partitions = await self._load({item_id: [] for item_id in item_ids})
        return sorted(
            key
            for partition in partitions.values()
            for key in partition.records
            if key.startswith(prefix)
        )

    async def rewrite(self, item_id: str, edit: Callable[[Partition], Tuple[Partition, T]]) -> T:
        """Apply ``edit`` to a partition as stored (readable or not) and write the result
        back under its e_tag, again on conflict; ``edit`` returns the new partition and a
        result to hand back. For maintenance such as ``forget me``, not for turns."""
        for attempt in range(MERGE_ATTEMPTS * 2):
            current = (await self._load([item_id]))[item_id]
            if current.pending is not None:
                await asyncio.sleep(0.05 * 2**attempt)  # a commit in flight: let it land
                continue
            updated, result = edit(current)
            if updated != current:
                try:
                    await self._put(updated, current.item_etag)
                except PreconditionFailedError:
                    continue
            return result
        raise PreconditionFailedError(item_id, "it kept changing while it was being rewritten")

    async def ping(self) -> None:
        await self.items.ping()

    async def close(self) -> None:
        await self.items.close()

    # -- reading -------------------------------------------------------------------------

    def _group(self, keys: Iterable[str]) -> Dict[str, List[str]]:
        groups: Dict[str, List[str]] = {}
        for key in keys:
            groups.setdefault(self._partition_of(key), []).append(key)
        return groups

    async def _load(self, item_ids: Iterable[str]) -> Dict[str, Partition]:
        """Read partitions in one round trip, resolving any transaction marker they carry."""
        wanted = list(item_ids)
        items = await self.items.get(wanted)
        partitions = {item_id: parse(item_id, items.get(item_id)) for item_id in wanted}
        for item_id in wanted:
            if partitions[item_id].pending is not None and not partitions[item_id].unreadable:
                partitions[item_id] = await self._resolve(partitions[item_id], partitions)
        for partition in partitions.values():
            self._remember(partition)
        return partitions

    async def _resolve(self, partition: Partition, known: Dict[str, Partition]) -> Partition:
        """A partition with a transaction's marker, as it stands: applied if the home
        partition committed it, unchanged if it is in flight or was abandoned."""
        pending = partition.pending
        assert pending is not None
        # The home as read with this partition, else read now: an older copy could still
        # say "not committed" about a transaction that has committed since.
        home = known.get(pending.home)
        for _ in range(MERGE_ATTEMPTS):
            if home is None:
                home = parse(pending.home, (await self.items.get([pending.home])).get(pending.home))
            if home.commits.get(partition.item_id) == pending.tx:
                return await self._rolled_forward(partition)
            if self._clock() < pending.expires + CLOCK_MARGIN_SECONDS:
                return partition  # in flight: its changes are not visible, and writes must wait
            try:
                await self._fence(home)
            except PreconditionFailedError:
                home = None  # the home moved: it may have committed after all, look again
                continue
            logger.info("abandoned commit %s on %r fenced off", pending.tx, partition.item_id)
            return replace(partition, pending=None)
        return partition

    async def _rolled_forward(self, partition: Partition) -> Partition:
        """A committed marker, applied; also written back (best effort, someone may be first)."""
        applied = partition.applied()
        try:
            return await self._put(applied, partition.item_etag)
        except StorageError:
            return applied

    async def _fence(self, home: Partition) -> None:
        """Rewrite the home partition unchanged: an abandoned commit, made against its
        earlier version, can then never land. A home that does not exist is created empty
        (and stays: deleting it would let a create-only commit land again). An unreadable
        home needs no fence: it changed after any commit in flight read it."""
        if not home.unreadable:
            await self._put(home, home.item_etag, fence=True)

    # -- writing -------------------------------------------------------------------------

    def _plan(
        self, changes: Sequence[Change]
    ) -> tuple[Dict[str, Dict[str, Optional[Record]]], Dict[str, WriteCondition]]:
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
        missing = []
        for item_id in planned:
            cached = self._cache.get(item_id)
            if cached is None or cached.pending is not None:
                missing.append(item_id)
            else:
                bases[item_id] = cached
        if missing:
            bases.update(await self._load(missing))
        return bases

    @staticmethod
    def _updated(
        base: Partition, records: Dict[str, Optional[Record]], conditions: Dict[str, WriteCondition]
    ) -> Partition:
        """``base`` with ``records`` written, if every one's condition holds on ``base``."""
        first = next(iter(records))
        if base.unreadable:
            raise UnsafeDocumentError(f"{base.item_id!r}: {base.unreadable}")
        if base.pending is not None:
            raise PreconditionFailedError(first, "another turn is saving these records right now")
        for key in records:
            current = base.records.get(key)
            condition = conditions[key]
            if not condition.holds(current.e_tag if current else None):
                raise PreconditionFailedError(key, condition.failure())
        return base.with_records(apply_changes(base.records, records))

    async def _write(
        self, bases: Dict[str, Partition], updated: Dict[str, Partition], order: List[str]
    ) -> None:
        order = [i for i in order if updated[i].records != bases[i].records]
        updated = {item_id: updated[item_id] for item_id in order}
        for partition in updated.values():
            self._check_size(partition)
        if not order:
            return
        if len(order) == 1:
            item_id = order[0]
            try:
                await self._put(updated[item_id], bases[item_id].item_etag)
            except PreconditionFailedError:
                raise _PartitionMoved([item_id]) from None
        elif self.items.atomic_batch:
            await self._put_all(bases, updated)
        else:
            await self._commit_across(bases, updated, order)

    def _check_size(self, partition: Partition) -> None:
        size = len(partition.text.encode("utf-8"))
        if size > self.items.max_item_bytes:
            raise ItemTooLargeError(partition.item_id, size, self.items.max_item_bytes)

    async def _put_all(self, bases: Dict[str, Partition], updated: Dict[str, Partition]) -> None:
        puts = [self._put_of(updated[item_id], bases[item_id].item_etag) for item_id in updated]
        try:
            e_tags = await self.items.put_all([put for put in puts if put is not None])
        except PreconditionFailedError:
            raise _PartitionMoved(updated) from None
        for item_id, partition in updated.items():
            self._remember(replace(partition, item_etag=e_tags.get(item_id)))

    async def _commit_across(
        self, bases: Dict[str, Partition], updated: Dict[str, Partition], order: List[str]
    ) -> None:
        """Prepare every other partition, commit on the home one, roll forward.

        Until the home's compare-and-swap lands, a reader sees none of the changes; once
        it has, every reader sees all of them (the home names the transaction)."""
        home, others = order[0], order[1:]
        tx = new_etag()
        expires = self._clock() + self._commit_timeout
        markers = {
            item_id: replace(
                bases[item_id],
                pending=Pending(tx, home, expires, _changed(bases[item_id], updated[item_id])),
            )
            for item_id in others
        }
        results = await asyncio.gather(
            *(self._put(markers[i], bases[i].item_etag) for i in others), return_exceptions=True
        )
        prepared = {i: r for i, r in zip(others, results) if isinstance(r, Partition)}
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures or self._clock() > expires:
            await self._withdraw(prepared, bases)
            if any(isinstance(f, PreconditionFailedError) for f in failures):
                raise _PartitionMoved([i for i, r in zip(others, results) if not isinstance(r, Partition)])
            if failures:
                raise failures[0]
            raise PreconditionFailedError(home, "saving took longer than the turn's deadline")
        committed = replace(updated[home], commits={**updated[home].commits, **dict.fromkeys(others, tx)})
        try:
            await self._put(committed, bases[home].item_etag)
        except PreconditionFailedError:
            await self._withdraw(prepared, bases)
            raise _PartitionMoved([home]) from None
        await asyncio.gather(*(self._rolled_forward(marker) for marker in prepared.values()))

    async def _withdraw(self, prepared: Dict[str, Partition], bases: Dict[str, Partition]) -> None:
        """Take back markers of a transaction that will not commit (best effort: a marker
        left behind is fenced off by the next reader once it expires)."""
        for item_id, marker in prepared.items():
            try:
                await self._put(replace(bases[item_id], item_etag=marker.item_etag), marker.item_etag)
            except StorageError as error:
                logger.info("marker on %r left to expire: %s", item_id, error)

    def _put_of(self, partition: Partition, expected: Optional[str], fence: bool = False) -> Optional[Put]:
        condition = if_match(expected) if expected else ABSENT
        if partition.is_empty and not fence:
            return Put(partition.item_id, None, condition) if expected else None
        return Put(partition.item_id, partition.text, condition)

    async def _put(self, partition: Partition, expected: Optional[str], fence: bool = False) -> Partition:
        """Write one partition if its item is still at ``expected`` (None: absent)."""
        put = self._put_of(partition, expected, fence)
        e_tag = None if put is None else await self.items.put(put)
        written = replace(partition, item_etag=e_tag)
        self._remember(written)
        return written

    def _remember(self, partition: Partition) -> None:
        self._cache[partition.item_id] = partition
        self._cache.move_to_end(partition.item_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _changed(base: Partition, updated: Partition) -> Dict[str, Optional[Record]]:
    """The records ``updated`` writes or deletes compared with ``base``."""
    changes: Dict[str, Optional[Record]] = {
        key: record for key, record in updated.records.items() if base.records.get(key) != record
    }
    changes.update({key: None for key in base.records if key not in updated.records})
    return changes


def new_etag() -> str:
    return secrets.token_hex(8)


def _without_etag(item: Any) -> Any:
    if isinstance(item, dict) and "e_tag" in item:
        return {key: value for key, value in item.items() if key != "e_tag"}
    return item


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

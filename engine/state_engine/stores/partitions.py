"""Partitions read and written as wholes: the layer between records and a backend's items.

A transaction's marker is resolved on reading by asking its home partition: committed,
it counts; in flight, not yet; abandoned, the home is fenced so it can never commit. A
write that got no answer is settled the same way: read back, and fenced if it has not
landed. The last version of each partition is kept as the base for the next write.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from dataclasses import replace
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple

from ..conditions import ABSENT, if_match
from ..errors import (
    ItemTooLargeError,
    PreconditionFailedError,
    StorageError,
    StorageUnavailableError,
    WriteOutcomeUnknownError,
)
from .items import Item, ItemStore, Put
from .partition import LARGE_ITEM_CHARS, Partition, parse

logger = logging.getLogger(__name__)

#: How far apart two instances' clocks may be; a marker counts as abandoned only after it.
CLOCK_MARGIN_SECONDS = 2.0
#: Times a reader looks again at a home partition that moved while it was deciding.
RESOLVE_ATTEMPTS = 4
#: The cache of last versions holds no partition whose item is longer than this, and at
#: most this many characters of items in all (it is a hint: a partition not kept is read).
CACHE_ITEM_CHARS = LARGE_ITEM_CHARS
CACHE_TOTAL_CHARS = 32 * 1024 * 1024


def new_etag() -> str:
    """A fresh version for a record or a transaction id."""
    return secrets.token_hex(8)


class Partitions:
    """Partitions on one ``ItemStore``, with the last known version of each kept."""

    def __init__(self, items: ItemStore, clock: Callable[[], float], cache_size: int = 1024) -> None:
        self.items = items
        self._clock = clock
        self._cache: "OrderedDict[str, Partition]" = OrderedDict()
        self._cache_size = cache_size
        self._chars: Dict[str, int] = {}
        self._cached_chars = 0

    def known(self, item_id: str) -> Optional[Partition]:
        """The partition as last read or written here (a hint: writes are conditional)."""
        return self._cache.get(item_id)

    def evict(self, item_id: str) -> None:
        self._cache.pop(item_id, None)
        self._cached_chars -= self._chars.pop(item_id, 0)

    async def load(self, item_ids: Iterable[str]) -> Dict[str, Partition]:
        """Read partitions in one round trip, resolving any transaction marker they carry."""
        wanted = list(item_ids)
        items = await self.items.get(wanted)
        partitions = {item_id: await self._parse(item_id, items.get(item_id)) for item_id in wanted}
        for item_id in wanted:
            if partitions[item_id].pending is not None and not partitions[item_id].unreadable:
                partitions[item_id] = await self._resolve(partitions[item_id], partitions)
        for partition in partitions.values():
            self._remember(partition, _length(items.get(partition.item_id)))
        return partitions

    async def _parse(self, item_id: str, item: Optional[Item]) -> Partition:
        """An item larger than any this store writes was planted: refused before parsing,
        so it can neither stall the loop nor fill memory; a large one is parsed on a thread."""
        if item is None or len(item.text) <= LARGE_ITEM_CHARS:
            return parse(item_id, item)
        if len(item.text) > self.items.max_item_bytes:
            return Partition(item_id, item.e_tag, unreadable="the stored item is larger than this store's limit")
        return await asyncio.to_thread(parse, item_id, item)

    async def _resolve(self, partition: Partition, known: Dict[str, Partition]) -> Partition:
        """A partition with a transaction's marker, as it stands: applied if the home
        partition committed it, unchanged if it is in flight or was abandoned."""
        pending = partition.pending
        assert pending is not None
        # The home as read with this partition, else read now: an older copy could still
        # say "not committed" about a transaction that has committed since.
        home = known.get(pending.home)
        for _ in range(RESOLVE_ATTEMPTS):
            if home is None:
                home = await self._parse(pending.home, (await self.items.get([pending.home])).get(pending.home))
            if home.commits.get(partition.item_id) == pending.tx:
                return await self.rolled_forward(partition)
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

    async def rolled_forward(self, partition: Partition) -> Partition:
        """A committed marker, applied; also written back (best effort, someone may be first)."""
        applied = partition.applied()
        try:
            return await self.put(applied, partition)
        except StorageError:
            return applied

    async def _fence(self, home: Partition) -> None:
        """Rewrite the home partition unchanged: an abandoned commit, made against its
        earlier version, can then never land. A home that does not exist is created empty
        (and stays: deleting it would let a create-only commit land again). An unreadable
        home needs no fence: it changed after any commit in flight read it."""
        if not home.unreadable:
            await self.put(home, home, fence=True)

    def check_size(self, partition: Partition) -> None:
        size = len(partition.text.encode("utf-8"))
        if size > self.items.max_item_bytes:
            raise ItemTooLargeError(partition.item_id, size, self.items.max_item_bytes)

    def _put_of(self, partition: Partition, expected: Optional[str], fence: bool = False) -> Optional[Put]:
        condition = if_match(expected) if expected else ABSENT
        if partition.is_empty and not fence:
            return Put(partition.item_id, None, condition) if expected else None
        return Put(partition.item_id, partition.text, condition)

    async def put(self, partition: Partition, base: Partition, fence: bool = False) -> Partition:
        """Write one partition if its item is still at ``base``'s version (None: absent); an
        empty partition deletes its item (``fence`` keeps it, written empty). What is
        returned is the partition as now stored."""
        put = self._put_of(partition, base.item_etag, fence)
        try:
            e_tag = None if put is None else await self.items.put(put)
        except WriteOutcomeUnknownError as unknown:
            return (await self._settle([(partition, base)], unknown))[0]
        written = replace(partition, item_etag=e_tag)
        self._remember(written, len(put.text or "") if put is not None else 0)
        return written

    async def put_all(self, partitions: Sequence[Partition], bases: Dict[str, Partition]) -> None:
        """Write several partitions all-or-nothing (a backend with an atomic batch)."""
        puts = [self._put_of(partition, bases[partition.item_id].item_etag) for partition in partitions]
        try:
            e_tags = await self.items.put_all([put for put in puts if put is not None])
        except WriteOutcomeUnknownError as unknown:
            await self._settle([(partition, bases[partition.item_id]) for partition in partitions], unknown)
            return
        for partition, put in zip(partitions, puts):
            chars = len(put.text or "") if put is not None else 0
            self._remember(replace(partition, item_etag=e_tags.get(partition.item_id)), chars)

    async def _settle(
        self, writes: List[Tuple[Partition, Partition]], unknown: WriteOutcomeUnknownError
    ) -> List[Partition]:
        """What became of a write (one partition, or an atomic batch) that got no answer,
        given as (written, base) pairs. Read back: it landed if the store holds any of what
        it wrote. If every item is still at its base version, one of them is rewritten
        unchanged, so the write, conditional on that version, can never land: then nothing
        was written (``StorageUnavailableError``). Anything else stays ``unknown``."""
        item_ids = [written.item_id for written, _ in writes]
        for _ in range(RESOLVE_ATTEMPTS):
            try:
                items = await self.items.get(item_ids)
                current = {item_id: await self._parse(item_id, items.get(item_id)) for item_id in item_ids}
            except StorageError:
                raise unknown from None
            if any(_landed(written, base, current[base.item_id]) for written, base in writes):
                for partition in current.values():
                    self._remember(partition, _length(items.get(partition.item_id)))
                return [current[item_id] for item_id in item_ids]
            if any(current[base.item_id].item_etag != base.item_etag for _, base in writes):
                raise unknown
            witness = current[item_ids[0]]
            if witness.unreadable:
                raise unknown
            condition = if_match(witness.item_etag) if witness.item_etag else ABSENT
            try:
                fenced = await self.items.put(Put(witness.item_id, witness.text, condition))
            except PreconditionFailedError:
                continue  # it moved after all: perhaps the write has landed just now
            except StorageError:
                raise unknown from None
            self._remember(replace(witness, item_etag=fenced), len(witness.text))
            raise StorageUnavailableError(f"{unknown} It was then fenced off: nothing of it was written.")
        raise unknown

    def _remember(self, partition: Partition, chars: int) -> None:
        """Keep ``partition`` (its item ``chars`` long) as the last version known here."""
        self.evict(partition.item_id)
        if chars > CACHE_ITEM_CHARS:
            return
        self._cache[partition.item_id] = partition
        self._chars[partition.item_id] = chars
        self._cached_chars += chars
        while len(self._cache) > self._cache_size or self._cached_chars > CACHE_TOTAL_CHARS:
            oldest, _ = self._cache.popitem(last=False)
            self._cached_chars -= self._chars.pop(oldest)


def _length(item: Optional[Item]) -> int:
    return 0 if item is None else len(item.text)


def _landed(written: Partition, base: Partition, current: Partition) -> bool:
    """Whether ``current``, the item as stored now, shows that ``written`` (made from
    ``base``) landed: it is stored as written, or it keeps a record version, a commit or a
    marker that only this write made (each is a fresh random id)."""
    if current.unreadable or current.item_etag == base.item_etag:
        return False
    if current.item_etag is None:
        return written.is_empty  # deleted, as this write would have
    if (current.records, current.pending, current.commits) == (written.records, written.pending, written.commits):
        return True
    return bool((_marks(written) - _marks(base)) & _marks(current))


def _marks(partition: Partition) -> FrozenSet[Tuple[str, ...]]:
    """The versions a partition carries: each record's e_tag, each commit, its marker."""
    marks = {("record", key, record.e_tag) for key, record in partition.records.items()}
    marks.update(("commit", item_id, tx) for item_id, tx in partition.commits.items())
    if partition.pending is not None:
        marks.add(("pending", partition.pending.tx))
    return frozenset(marks)

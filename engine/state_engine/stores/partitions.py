"""Partitions read and written as wholes: the layer between records and a backend's items.

A transaction's marker is resolved on reading by asking its home partition: committed,
it counts; in flight, not yet; abandoned, the home is fenced so it can never commit.
The last version of each partition is kept as the base for the next write.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from dataclasses import replace
from typing import Callable, Dict, Iterable, Optional, Sequence

from ..conditions import ABSENT, if_match
from ..errors import ItemTooLargeError, PreconditionFailedError, StorageError
from .items import Item, ItemStore, Put
from .partition import LARGE_ITEM_CHARS, Partition, parse

logger = logging.getLogger(__name__)

#: How far apart two instances' clocks may be; a marker counts as abandoned only after it.
CLOCK_MARGIN_SECONDS = 2.0
#: Times a reader looks again at a home partition that moved while it was deciding.
RESOLVE_ATTEMPTS = 4


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

    def known(self, item_id: str) -> Optional[Partition]:
        """The partition as last read or written here (a hint: writes are conditional)."""
        return self._cache.get(item_id)

    def evict(self, item_id: str) -> None:
        self._cache.pop(item_id, None)

    async def load(self, item_ids: Iterable[str]) -> Dict[str, Partition]:
        """Read partitions in one round trip, resolving any transaction marker they carry."""
        wanted = list(item_ids)
        items = await self.items.get(wanted)
        partitions = {item_id: await self._parse(item_id, items.get(item_id)) for item_id in wanted}
        for item_id in wanted:
            if partitions[item_id].pending is not None and not partitions[item_id].unreadable:
                partitions[item_id] = await self._resolve(partitions[item_id], partitions)
        for partition in partitions.values():
            self._remember(partition)
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
            return await self.put(applied, partition.item_etag)
        except StorageError:
            return applied

    async def _fence(self, home: Partition) -> None:
        """Rewrite the home partition unchanged: an abandoned commit, made against its
        earlier version, can then never land. A home that does not exist is created empty
        (and stays: deleting it would let a create-only commit land again). An unreadable
        home needs no fence: it changed after any commit in flight read it."""
        if not home.unreadable:
            await self.put(home, home.item_etag, fence=True)

    def check_size(self, partition: Partition) -> None:
        size = len(partition.text.encode("utf-8"))
        if size > self.items.max_item_bytes:
            raise ItemTooLargeError(partition.item_id, size, self.items.max_item_bytes)

    def _put_of(self, partition: Partition, expected: Optional[str], fence: bool = False) -> Optional[Put]:
        condition = if_match(expected) if expected else ABSENT
        if partition.is_empty and not fence:
            return Put(partition.item_id, None, condition) if expected else None
        return Put(partition.item_id, partition.text, condition)

    async def put(self, partition: Partition, expected: Optional[str], fence: bool = False) -> Partition:
        """Write one partition if its item is still at ``expected`` (None: absent); an
        empty partition deletes its item (``fence`` keeps it, written empty)."""
        put = self._put_of(partition, expected, fence)
        e_tag = None if put is None else await self.items.put(put)
        written = replace(partition, item_etag=e_tag)
        self._remember(written)
        return written

    async def put_all(self, partitions: Sequence[Partition], expected: Dict[str, Optional[str]]) -> None:
        """Write several partitions all-or-nothing (a backend with an atomic batch)."""
        puts = [self._put_of(partition, expected[partition.item_id]) for partition in partitions]
        e_tags = await self.items.put_all([put for put in puts if put is not None])
        for partition in partitions:
            self._remember(replace(partition, item_etag=e_tags.get(partition.item_id)))

    def _remember(self, partition: Partition) -> None:
        self._cache[partition.item_id] = partition
        self._cache.move_to_end(partition.item_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

"""A write across partitions on a backend without transactions: prepare, commit, roll forward.

The other partitions get a pending marker; one compare-and-swap on the home partition
decides, naming the transaction; the markers are then replaced by what they carry. Until
the home's write lands no reader sees any of it, and afterwards every reader sees all.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Awaitable, Callable, Dict, List, Optional, Set

from ..errors import PreconditionFailedError, StorageError, StorageUnavailableError, WriteOutcomeUnknownError
from .partition import Partition, Pending, Record
from .partitions import Partitions, new_etag

logger = logging.getLogger(__name__)
#: Roll-forwards and clean-ups still running (kept referenced until done).
_rolling: Set["asyncio.Task[object]"] = set()


class PartitionMoved(Exception):
    """A partition's item changed under a write whose own records still matched: try again."""

    def __init__(self, item_ids: List[str]) -> None:
        super().__init__(", ".join(item_ids))
        self.item_ids = item_ids


async def commit_across(
    partitions: Partitions,
    bases: Dict[str, Partition],
    updated: Dict[str, Partition],
    order: List[str],
    timeout_seconds: float,
    clock: Callable[[], float],
) -> None:
    """Write ``updated`` (every partition changed from its ``bases`` version) as one
    transaction whose home is ``order[0]``; raises ``PartitionMoved`` when another writer
    got there first (nothing of this write is then visible)."""
    home, others = order[0], order[1:]
    tx = new_etag()
    expires = clock() + timeout_seconds
    markers = {
        item_id: replace(
            bases[item_id], pending=Pending(tx, home, expires, _changed(bases[item_id], updated[item_id]))
        )
        for item_id in others
    }
    for marker in markers.values():  # a marker holds both versions: it may not fit
        partitions.check_size(marker)
    try:
        await _prepare_and_commit(partitions, bases, updated, markers, home, tx, expires, clock)
    except asyncio.CancelledError:
        # Cut off (the turn's deadline): settled in the background, so that its markers do
        # not make the next turns of these partitions wait until they expire.
        _in_background(_cut_off(partitions, bases, markers, home, tx))
        raise


async def _prepare_and_commit(
    partitions: Partitions,
    bases: Dict[str, Partition],
    updated: Dict[str, Partition],
    markers: Dict[str, Partition],
    home: str,
    tx: str,
    expires: float,
    clock: Callable[[], float],
) -> None:
    others = list(markers)
    results = await asyncio.gather(
        *(partitions.put(markers[i], bases[i]) for i in others), return_exceptions=True
    )
    prepared = {i: r for i, r in zip(others, results) if isinstance(r, Partition)}
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures or clock() > expires:
        await _withdraw(partitions, prepared, bases)
        if any(isinstance(failure, PreconditionFailedError) for failure in failures):
            raise PartitionMoved([i for i, r in zip(others, results) if not isinstance(r, Partition)])
        if failures:
            raise _uncommitted(failures[0])
        raise PreconditionFailedError(home, "saving took longer than the turn's deadline")
    committed = replace(updated[home], commits={**updated[home].commits, **dict.fromkeys(others, tx)})
    try:
        await partitions.put(committed, bases[home])
    except WriteOutcomeUnknownError:
        raise  # the markers count if the home's write landed: they stay, for readers to judge
    except StorageError as error:
        await _withdraw(partitions, prepared, bases)
        if isinstance(error, PreconditionFailedError):
            raise PartitionMoved([home]) from None
        raise
    for marker in prepared.values():
        # Off the turn's critical path: the home names the transaction, so any reader
        # already counts the markers' changes, and rolls them forward itself if need be.
        _in_background(partitions.rolled_forward(marker))


def _in_background(work: Awaitable[object]) -> None:
    task = asyncio.ensure_future(work)
    _rolling.add(task)
    task.add_done_callback(_rolling.discard)


async def _cut_off(
    partitions: Partitions,
    bases: Dict[str, Partition],
    markers: Dict[str, Partition],
    home: str,
    tx: str,
) -> None:
    """Settle a commit that was cancelled: fence its home, so that it can never land, and
    take its markers back; if the home had already taken it, roll them forward instead.
    Best effort: what is left is fenced off by readers once it expires."""
    try:
        try:
            await partitions.put(bases[home], bases[home], fence=True)
            committed = False
        except PreconditionFailedError:  # the home moved: by this commit, or by another writer
            current = (await partitions.load([home]))[home]
            committed = any(current.commits.get(item_id) == tx for item_id in markers)
        found = await partitions.load(markers)
        for item_id, partition in found.items():
            if partition.pending is None or partition.pending.tx != tx:
                continue  # never written, or already settled by a reader
            if committed:
                await partitions.rolled_forward(partition)
            else:
                await _withdraw(partitions, {item_id: partition}, bases)
    except StorageError as error:
        logger.info("a cut-off commit's markers are left to expire: %s", error)


async def settle() -> None:
    """Wait for the roll-forwards still running (before a store closes)."""
    if _rolling:
        await asyncio.gather(*list(_rolling), return_exceptions=True)


async def _withdraw(
    partitions: Partitions, prepared: Dict[str, Partition], bases: Dict[str, Partition]
) -> None:
    """Take back the markers of a transaction that will not commit (best effort: a marker
    left behind is fenced off by the next reader once it expires)."""
    for item_id, marker in prepared.items():
        try:
            await partitions.put(replace(bases[item_id], item_etag=marker.item_etag), marker)
        except StorageError as error:
            logger.info("marker on %r left to expire: %s", item_id, error)


def _uncommitted(failure: BaseException) -> BaseException:
    """A failure while preparing: the home was never written, so nothing of the
    transaction counts, even if a marker whose write got no answer lands later."""
    if isinstance(failure, WriteOutcomeUnknownError):
        return StorageUnavailableError(f"{failure} The save was not committed: nothing of it counts.")
    return failure


def _changed(base: Partition, updated: Partition) -> Dict[str, Optional[Record]]:
    """The records ``updated`` writes or deletes compared with ``base``."""
    changes: Dict[str, Optional[Record]] = {
        key: record for key, record in updated.records.items() if base.records.get(key) != record
    }
    changes.update({key: None for key in base.records if key not in updated.records})
    return changes

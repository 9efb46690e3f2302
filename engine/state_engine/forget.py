"""``forget me``: delete every record of one user, and nothing of anyone else's.

Their user state, their membership index (no limit on conversations), and in each of
those conversations their private state, their entries in shared records, or the whole
conversation if it was theirs alone. Nothing needs decoding, so bad records go too.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable, List, Optional, Protocol, Set, Tuple, runtime_checkable

from . import codec, keys
from .errors import StorageError, UnsafeDocumentError
from .stores.partition import Partition, Record
from .stores.state_storage import StateStorage, decode_record, new_etag

logger = logging.getLogger(__name__)

#: Conversations rewritten at the same time.
CONCURRENCY = 8


@runtime_checkable
class Forgettable(Protocol):
    """A shared record holding entries by several users (the sample's utterance log)."""

    def forget_user(self, user_id: str) -> int:
        """Remove this user's entries; how many there were."""


@dataclass(frozen=True)
class ForgetReport:
    """What ``forget_user`` deleted."""

    conversations: int = 0  # conversations the user had records in
    whole_conversations: int = 0  # of those, the ones that were theirs alone (deleted whole)
    records: int = 0  # records deleted
    entries: int = 0  # their entries removed from records shared with others
    unreadable: int = 0  # of the records deleted, those that could not be read

    def __add__(self, other: "ForgetReport") -> "ForgetReport":
        return ForgetReport(*(a + b for a, b in zip(self._values(), other._values())))

    def _values(self) -> Tuple[int, ...]:
        return (self.conversations, self.whole_conversations, self.records, self.entries, self.unreadable)


async def forget_user(
    storage: StateStorage, channel: str, user: str, also_in: Iterable[str] = ()
) -> ForgetReport:
    """Delete everything stored about ``user`` on ``channel`` (and in the ``also_in``
    conversations, e.g. the current one, even if the index does not name them)."""
    prefix = keys.membership_prefix(channel, user)
    memberships = await storage.items.list_ids(prefix)
    conversations: Set[str] = {item_id[len(prefix) :] for item_id in memberships} | set(also_in)

    async def in_conversation(conversation: str) -> ForgetReport:
        partition = keys.conversation_state(channel, conversation)
        return await storage.rewrite(
            partition, lambda found: _forget_here(found, channel, conversation, user)
        )

    async def entry_of(conversation: str) -> ForgetReport:
        return await storage.rewrite(
            keys.membership(channel, user, conversation),
            lambda entry, home: _entry_emptied(entry, home, channel, conversation, user),
            read_with=[keys.conversation_state(channel, conversation)],
        )

    report = ForgetReport(conversations=len(conversations))
    report = await _each(sorted(conversations), in_conversation, report)
    report += await storage.rewrite(keys.user_state(channel, user), _emptied)
    # The index goes last, so that forgetting again after a crash finds what is left.
    report = await _each([item_id[len(prefix) :] for item_id in memberships], entry_of, report)
    try:
        await storage.items.erase_deleted()
    except StorageError as error:  # deleted all the same; the store's next checkpoint erases it
        logger.warning("forget me: deleted data not yet erased from the store's files: %s", error)
    return report


async def _each(
    conversations: List[str], work: Callable[[str], Awaitable[ForgetReport]], report: ForgetReport
) -> ForgetReport:
    """``report`` plus ``work`` done on every conversation, ``CONCURRENCY`` at a time by as
    many tasks, however many conversations there are."""
    pending = iter(conversations)

    async def worker() -> ForgetReport:
        done = ForgetReport()
        for conversation in pending:  # shared: each conversation is taken by one worker
            done += await work(conversation)
        return done

    return sum(await asyncio.gather(*(worker() for _ in range(CONCURRENCY))), report)


def _entry_emptied(
    entry: Partition, home: Partition, channel: str, conversation: str, user: str
) -> Tuple[Partition, ForgetReport]:
    """The user's index entry for ``conversation``, deleted, unless they are among its
    participants again (``home``: the conversation's partition): a turn of theirs saved
    there since (on another instance) must stay findable by the next ``forget me``. The
    entry is read first and the conversation just after (``StateStorage.rewrite``), and
    the entry is deleted only if it is still as read."""
    try:
        back = user in participants(home.records.get(keys.PARTICIPANTS.key(channel, conversation)))
    except (UnsafeDocumentError, AttributeError, TypeError):
        back = False  # an unreadable record was planted since: it holds nothing of theirs we could find
    return (entry, ForgetReport()) if back else _emptied(entry)


def _emptied(partition: Partition) -> Tuple[Partition, ForgetReport]:
    """The partition with nothing left in it (its item is then deleted)."""
    gone = 1 if partition.unreadable else len(partition.records)
    return Partition(partition.item_id, partition.item_etag), ForgetReport(
        records=gone, unreadable=1 if partition.unreadable else 0
    )


def _forget_here(
    partition: Partition, channel: str, conversation: str, user: str
) -> Tuple[Partition, ForgetReport]:
    """One conversation's partition without ``user``: whole, if nobody else has records in it."""
    if partition.unreadable or not _others(partition, channel, conversation, user):
        emptied, report = _emptied(partition)
        return emptied, report + ForgetReport(whole_conversations=1 if report.records else 0)
    records = dict(partition.records)
    mine = keys.private_state(channel, conversation, user)
    deleted = 1 if records.pop(mine, None) is not None else 0
    entries = unreadable = 0
    for key, record in list(records.items()):
        if keys.partition_of(key) != partition.item_id or keys.user_of_private_key(channel, conversation, key):
            continue
        try:
            value = decode_record(key, record)
        except UnsafeDocumentError:
            del records[key]  # unreadable for everyone: its entries of this user go with it
            deleted, unreadable = deleted + 1, unreadable + 1
            continue
        removed = _without_user(key, value, user, channel, conversation)
        if removed:
            records[key] = Record(new_etag(), codec.encode_value(value))
            entries += removed
    commits = {
        item_id: tx
        for item_id, tx in partition.commits.items()
        if item_id != keys.user_state(channel, user) and not item_id.startswith(keys.membership_prefix(channel, user))
    }
    updated = Partition(partition.item_id, partition.item_etag, records, partition.pending, commits)
    return updated, ForgetReport(records=deleted, entries=entries, unreadable=unreadable)


def _without_user(key: str, value: object, user: str, channel: str, conversation: str) -> int:
    """Remove ``user`` from one shared record in place; how many entries went."""
    if key == keys.PARTICIPANTS.key(channel, conversation) and isinstance(value, dict):
        users = value.get("users", [])
        if user in users:
            value["users"] = [other for other in users if other != user]
            value.pop("e_tag", None)
            return 1
        return 0
    if isinstance(value, Forgettable):
        return value.forget_user(user)
    return 0


def _others(partition: Partition, channel: str, conversation: str, user: str) -> bool:
    """Does anyone but ``user`` have records here (by the participants record or a private state)?"""
    users = {keys.user_of_private_key(channel, conversation, key) for key in partition.records} - {None}
    try:
        users.update(participants(partition.records.get(keys.PARTICIPANTS.key(channel, conversation))))
    except (UnsafeDocumentError, AttributeError, TypeError):
        return True  # cannot tell who else is here: keep what is shared
    return bool(users - {user})


def participants(record: Optional[Record]) -> List[str]:
    """Who a conversation's participants record (``keys.PARTICIPANTS``) lists; nobody when
    there is none. The turn runner keeps it; ``forget me`` asks it who else is there."""
    return [] if record is None else list(decode_record("participants", record).get("users", []))

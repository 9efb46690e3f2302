"""The storage a turn's scopes and bot see: one snapshot per attempt, writes held back.

What a turn touches is read in one round trip before the bot runs, and later reads come
from it, so each write is conditional on what the turn first read (or create-only),
however often the SDK reloads a scope; writes wait for the runner's one save.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional

from botbuilder.core import Storage
from botbuilder.schema import Activity

from ..forget import ForgetReport, forget_user
from ..keys import TurnIds
from ..errors import UnsafeDocumentError
from ..conditions import ABSENT, WriteCondition, condition_of, if_match
from ..stores.partition import Record
from ..stores.state_storage import Change, StateStorage, decode_off_loop


@dataclass
class AttemptSnapshot:
    """What one attempt of a turn read (a record, or None for absent) and holds back."""

    read: Dict[str, Optional[Record]] = field(default_factory=dict)
    unreadable: Dict[str, str] = field(default_factory=dict)
    staged: Dict[str, Change] = field(default_factory=dict)

    def condition_for(self, key: str, item: Any = None) -> WriteCondition:
        """Conditional on the first read of ``key``; a key never read keeps the item's own e_tag."""
        if key in self.read:
            record = self.read[key]
            return ABSENT if record is None else if_match(record.e_tag)
        return condition_of(item) if item is not None else condition_of({})

    def exists(self, key: str) -> bool:
        return self.read.get(key) is not None


# The attempt running in this task (each aiohttp request runs in a task of its own).
_current: ContextVar[Optional[AttemptSnapshot]] = ContextVar("current_attempt", default=None)


class TurnScopedStorage(Storage):
    """Outside a turn run by the ``TurnRunner``, the store itself; inside one, the attempt's
    snapshot and held-back writes (a retried or busy turn thus leaves nothing behind)."""

    def __init__(self, storage: StateStorage) -> None:
        self.storage = storage

    def begin(self, snapshot: AttemptSnapshot) -> Any:
        return _current.set(snapshot)

    @staticmethod
    def end(token: Any) -> None:
        _current.reset(token)

    async def prefetch(self, keys: Iterable[str]) -> None:
        """Read every key the turn will touch, in one round trip, into the attempt's snapshot."""
        snapshot = _current.get()
        assert snapshot is not None, "prefetch runs inside an attempt"
        wanted = [key for key in dict.fromkeys(keys) if key not in snapshot.read and key not in snapshot.unreadable]
        found, unreadable = await self.storage.read_records_and_problems(wanted)
        snapshot.read.update({key: found.get(key) for key in wanted if key not in unreadable})
        snapshot.unreadable.update(unreadable)

    async def read(self, keys: List[str]) -> Dict[str, Any]:
        snapshot = _current.get()
        if snapshot is None:
            return await self.storage.read(keys)
        await self.prefetch(key for key in keys if key not in snapshot.staged)
        items: Dict[str, Any] = {}
        for key in keys:
            if key in snapshot.unreadable and key not in snapshot.staged:
                raise UnsafeDocumentError(snapshot.unreadable[key])
            staged = snapshot.staged.get(key)
            if staged is not None:
                if not staged.delete:
                    items[key] = staged.value
            elif snapshot.read.get(key) is not None:
                items[key] = await decode_off_loop(key, snapshot.read[key])
        return items

    async def write(self, changes: Dict[str, Any]) -> None:
        snapshot = _current.get()
        if snapshot is None:
            await self.storage.write(changes)
            return
        for key, item in changes.items():
            value = {k: v for k, v in item.items() if k != "e_tag"} if isinstance(item, dict) else item
            snapshot.staged[key] = Change(key, value, snapshot.condition_for(key, item))

    async def forget_user(self, activity: Activity) -> ForgetReport:
        """Delete everything stored about the activity's user (``state_engine.forget``), now:
        deleting is not part of the turn's save, and running it twice deletes nothing more."""
        ids = TurnIds.of(activity)
        snapshot = _current.get()
        if snapshot is not None:
            snapshot.staged.clear()
        return await forget_user(self.storage, ids.channel, ids.user, also_in=[ids.conversation])

    async def delete(self, keys: List[str]) -> None:
        snapshot = _current.get()
        if snapshot is None:
            await self.storage.delete(keys)
            return
        for key in keys:
            snapshot.staged[key] = Change(key, delete=True, condition=snapshot.condition_for(key))

"""Optimistic concurrency around a turn: the docs' scale-out pattern, made safe.

One read round, the bot with its replies held back, one all-or-nothing save conditional
on what was read; a conflict runs the turn again (bounded, jittered), replies go out only
after the save, and the whole turn fits in its deadline. The bot does not know it exists.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import weakref
from copy import copy
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from botbuilder.core import Bot, BotState, MessageFactory, TurnContext
from botbuilder.dialogs.memory import DialogStateManagerConfiguration
from botbuilder.schema import Activity, ActivityTypes, ResourceResponse

from .. import keys
from ..activity_json import copy_model
from ..errors import (
    ItemTooLargeError,
    PreconditionFailedError,
    StorageError,
    UnsafeDocumentError,
    WriteOutcomeUnknownError,
)
from ..forget import participants
from ..stores.state_storage import Change
from .dialog_memory import TURN_STATE_KEY, dialog_memory
from .turn_storage import AttemptSnapshot, TurnScopedStorage

logger = logging.getLogger(__name__)

#: A turn's deadline unless one is configured; channels wait about 15 s for the answer.
DEADLINE_SECONDS = 10.0
#: Share of the deadline kept for saving: an attempt that has used more does not start to save.
SAVE_RESERVE = 0.3
#: How long the one message after a missed deadline may take to send.
LAST_WORD_SECONDS = 3.0


@dataclass(frozen=True)
class TurnMessages:
    """What the user is told when a turn cannot end normally."""

    busy: str = "Sorry, I'm busy with other messages in this conversation. Please try again."
    unavailable: str = (
        "Sorry, I can't reach my storage right now, so nothing was saved. Please try again in a moment."
    )
    too_large: str = (
        "Sorry, that would make what I store for this conversation too large, so I did not save it."
    )
    unsafe: str = (
        "Sorry, the data stored for this conversation could not be read safely, so I did not use it. "
        "Type `forget me` to delete what I stored about you."
    )
    too_slow: str = "Sorry, that took me too long, so I did not save it. Please try again."
    unsure: str = (
        "Sorry, my storage did not confirm the save, so I can't tell whether your last message "
        "was saved. Please check before sending it again."
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How often a conflicting turn is run again (``max_retries`` after the first attempt),
    and the base of the jittered, capped backoff between attempts."""

    max_retries: int = 5
    base_delay_seconds: float = 0.02
    max_delay_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay_seconds < 0 or self.max_delay_seconds < 0:
            raise ValueError(f"a retry policy counts and waits from 0 up, not {self}")

    def delay(self, attempt: int) -> float:
        """Full jitter: a random wait up to base * 2^attempt (capped), so retriers spread out."""
        ceiling = min(self.max_delay_seconds, self.base_delay_seconds * 2 ** min(attempt, 32))
        return random.uniform(0, ceiling)


#: Where ``on_turn`` leaves a ``FailedTurn`` in the context's turn_state for the error handler.
FAILED_TURN = "state_engine.failed_turn"


@dataclass(frozen=True)
class FailedTurn:
    """A turn that ended in an error, as the error handler may act on it: whether its state
    was saved (then its replies failed, and the state stands), and the version of each
    record its failed attempt read (None: absent), so that nothing saved since is undone."""

    saved: bool
    read: Dict[str, Optional[str]]


class _Phase(enum.Enum):
    RUNNING = "running"
    SAVING = "saving"
    SENDING = "sending"


class _OutOfTime(Exception):
    """The attempt used the time it had before saving; nothing was written."""


class _HeldReply(Activity):
    """A reply held until the turn is saved: a shallow copy of what the bot sent. The
    SDK deep-copies every activity it sends; this one's deep copy is the plain Activity
    ``copy.deepcopy`` would make, built field by field (a fraction of its cost)."""

    def __deepcopy__(self, memo: Dict[int, Any]) -> Activity:
        return copy_model(self, Activity, memo)

    @classmethod
    def of(cls, activity: Activity) -> "_HeldReply":
        held = cls.__new__(cls)
        held.__dict__.update(activity.__dict__)
        return held


class _AttemptContext(TurnContext):
    """One attempt's context: fresh state caches, replies held in ``outbox``.

    They are sent later through the turn's real context, which addresses and copies them
    as the SDK always does (and runs its send handlers), so here they are copied shallowly."""

    def __init__(self, context: TurnContext) -> None:
        super().__init__(context.adapter, context.activity)
        self.turn_state.update(context.turn_state)
        self.outbox: List[Activity] = []

    async def send_activities(self, activities: List[Activity]) -> List[ResourceResponse]:
        self.outbox.extend(
            _HeldReply.of(activity) if type(activity) is Activity else copy(activity)
            for activity in activities
        )
        if any(activity.type != ActivityTypes.trace for activity in activities):
            self.responded = True
        return [ResourceResponse() for _ in activities]


class TurnRunner(Bot):
    """Runs the bot's turns: one read round, buffered replies, one atomic save, retries, a deadline.

    Turns of one conversation in this process queue behind each other (the lock is not
    re-entrant: a bot must not start another turn of its own conversation from a turn)."""

    def __init__(
        self,
        bot: Bot,
        states: Sequence[BotState],
        storage: TurnScopedStorage,
        policy: RetryPolicy = RetryPolicy(),
        deadline_seconds: float = DEADLINE_SECONDS,
        messages: TurnMessages = TurnMessages(),
    ) -> None:
        self._bot = bot
        self._states = list(states)
        self._storage = storage
        self._policy = policy
        self._deadline = deadline_seconds
        self._messages = messages
        self._conversation_locks: "weakref.WeakValueDictionary[str, asyncio.Lock]" = (
            weakref.WeakValueDictionary()
        )
        self._dialog_memory: Optional[DialogStateManagerConfiguration] = None

    async def on_turn(self, context: TurnContext) -> None:
        """Run the turn until its state is saved, then send its replies. A StorageError
        ends it with one message saying why; any other error from the bot goes to the
        adapter's ``on_turn_error`` with the failed attempt's replies and changes dropped.
        The conversation is free for its next turn once the state is saved: a slow channel
        delays only this turn's replies."""
        # Built on the first turn, once the bot has registered any components of its own.
        if self._dialog_memory is None:
            self._dialog_memory = dialog_memory()
        context.turn_state.setdefault(TURN_STATE_KEY, self._dialog_memory)
        loop = asyncio.get_running_loop()
        save_by = loop.time() + self._deadline * (1 - SAVE_RESERVE)
        phase = [_Phase.RUNNING]
        deadline = asyncio.timeout(self._deadline)
        try:
            async with deadline:
                async with self._lock_for(context):
                    replies = await self._outcome(context, save_by, phase)
                phase[0] = _Phase.SENDING
                if replies:
                    await context.send_activities(replies)
        except TimeoutError:
            if not deadline.expired():
                raise
            logger.warning("turn missed its %.1f s deadline while %s", self._deadline, phase[0].value)
            if phase[0] is not _Phase.SENDING:
                message = self._messages.unsure if phase[0] is _Phase.SAVING else self._messages.too_slow
                await self._last_word(context, message)
        except Exception:
            if phase[0] is _Phase.SENDING:
                context.turn_state[FAILED_TURN] = FailedTurn(saved=True, read={})
            raise

    def _lock_for(self, context: TurnContext) -> asyncio.Lock:
        """One lock per conversation, kept only while a turn holds or awaits it."""
        ids = keys.TurnIds.of(context.activity)
        key = keys.conversation_state(ids.channel, ids.conversation)
        lock = self._conversation_locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._conversation_locks[key] = lock
        return lock

    async def _outcome(self, context: TurnContext, save_by: float, phase: List[_Phase]) -> List[Activity]:
        """What the user is told: the saved attempt's replies, or why nothing was saved."""
        try:
            return await self._run_with_retries(context, save_by, phase)
        except _OutOfTime:
            return [MessageFactory.text(self._messages.too_slow)]
        except StorageError as error:
            return [MessageFactory.text(self._explain(error))]

    async def _run_with_retries(self, context: TurnContext, save_by: float, phase: List[_Phase]) -> List[Activity]:
        loop = asyncio.get_running_loop()
        for attempt in range(self._policy.max_retries + 1):
            if attempt:
                await asyncio.sleep(min(self._policy.delay(attempt), max(0.0, save_by - loop.time())))
            attempt_context = _AttemptContext(context)
            snapshot = AttemptSnapshot()
            token = self._storage.begin(snapshot)
            try:
                await self._storage.prefetch(self._turn_keys(context))
                await self._bot.on_turn(attempt_context)
                changes = self._changes(attempt_context, snapshot)
                # The reserve is for saving: a turn with nothing to save may still answer.
                if changes and loop.time() > save_by:
                    raise _OutOfTime()
                phase[0] = _Phase.SAVING
                await self._storage.storage.commit(changes)
            except PreconditionFailedError as conflict:
                phase[0] = _Phase.RUNNING
                logger.info("turn conflict (attempt %d): %s", attempt + 1, conflict)
                continue
            except Exception:
                read = {key: record and record.e_tag for key, record in snapshot.read.items()}
                context.turn_state[FAILED_TURN] = FailedTurn(saved=False, read=read)
                raise
            finally:
                self._storage.end(token)
            return attempt_context.outbox
        logger.warning("turn gave up after %d attempts", self._policy.max_retries + 1)
        return [MessageFactory.text(self._messages.busy)]

    def _turn_keys(self, context: TurnContext) -> List[str]:
        """Every record this turn may touch: its state scopes and the records the keys module names."""
        found = [state.get_storage_key(context) for state in self._states]
        return found + list(keys.TurnIds.of(context.activity).records().values())

    def _changes(self, context: TurnContext, snapshot: AttemptSnapshot) -> List[Change]:
        """Every changed scope and held-back write, each conditional on its first read.
        A turn that writes in its conversation also rewrites the participants record as it
        read it, listing the user, with the user's index entry if either was missing: a
        ``forget me`` that took them out meanwhile makes the save fail and run again."""
        # What the bot wrote to storage itself, then the scopes: a scope saved mid-turn
        # (``save_changes``) and changed again after counts as it is now.
        changes: Dict[str, Change] = dict(snapshot.staged)
        for state in self._states:
            cached = state.get_cached_state(context)
            if cached is None or not cached.is_changed:
                continue
            key = state.get_storage_key(context)
            document = {name: value for name, value in cached.state.items() if name != "e_tag"}
            if not document and not snapshot.exists(key):
                changes.pop(key, None)  # nothing to create (the SDK marks a new scope "changed")
                continue
            changes[key] = Change(key, document, snapshot.condition_for(key))
        ids = keys.TurnIds.of(context.activity)
        membership = keys.membership(ids.channel, ids.user, ids.conversation)
        conversation = keys.conversation_state(ids.channel, ids.conversation)
        writes_here = any(
            not change.delete and keys.partition_of(key) == conversation for key, change in changes.items()
        )
        if writes_here and membership not in changes:
            listed, joined = self._participants(ids, snapshot)
            changes.setdefault(listed.key, listed)
            if joined or not snapshot.exists(membership):
                entry = {"conversation": ids.conversation}
                changes[membership] = Change(membership, entry, snapshot.condition_for(membership))
        return sorted(changes.values(), key=lambda change: keys.partition_of(change.key) != conversation)

    @staticmethod
    def _participants(ids: keys.TurnIds, snapshot: AttemptSnapshot) -> Tuple[Change, bool]:
        """The conversation's participants as read, with this user added if they were not
        listed (and whether they were added), conditional on the version read."""
        key = keys.PARTICIPANTS.key(ids.channel, ids.conversation)
        users = participants(snapshot.read.get(key))
        joined = ids.user not in users
        listed = users + [ids.user] if joined else users
        return Change(key, {"users": listed}, snapshot.condition_for(key)), joined

    def _explain(self, error: StorageError) -> str:
        logger.error("turn not saved: %s: %s", type(error).__name__, error)
        if isinstance(error, ItemTooLargeError):
            return self._messages.too_large
        if isinstance(error, UnsafeDocumentError):
            return self._messages.unsafe
        if isinstance(error, WriteOutcomeUnknownError):
            return self._messages.unsure  # the save went out, and no answer said whether it landed
        return self._messages.unavailable  # unreachable, locked, or refusing our credentials

    @staticmethod
    async def _last_word(context: TurnContext, message: str) -> None:
        """One message after a missed deadline, if the channel answers in time."""
        try:
            await asyncio.wait_for(context.send_activity(message), LAST_WORD_SECONDS)
        except Exception as error:  # the channel may be what is slow
            logger.warning("could not tell the user the turn was too slow: %s", type(error).__name__)


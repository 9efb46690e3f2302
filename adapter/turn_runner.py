"""Optimistic concurrency around a turn: the docs' scale-out pattern, made safe.

When a bot runs on several instances (or one instance handles two messages of
one conversation at once), two turns can read the same state, both change it,
and the last save silently wins: one user adds mushrooms, another adds cheese,
both are told "added", and one topping is gone. "Implement custom storage for
your bot" answers with three ideas, all here:

1. **Optimistic concurrency**: every scope is saved with the e_tag it was read
   with (or create-only if it did not exist), so a stale save fails instead of
   overwriting someone else's change.
2. **Buffered replies**: the bot's replies are held back until its state is
   saved, so nobody is told something that was not stored.
3. **Retry**: on a conflict the replies are dropped, the state reloaded and the
   whole turn run again (bounded, with jittered backoff). If it still cannot
   save, the user gets one clear "busy" message and nothing changes.

Turns of one conversation in this process also queue behind each other, so
conflicts (and retries) only come from other processes.

The bot does not know this exists: it reads and writes state through accessors
as the docs show. This runner is the ``save_changes`` at the end of the turn.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
import weakref
from dataclasses import dataclass
from typing import Dict, List, Sequence

from botbuilder.core import Bot, BotAdapter, BotState, TurnContext
from botbuilder.schema import Activity, ConversationReference, ResourceResponse

from storage import (
    CREATE_ONLY,
    ItemTooLargeError,
    PreconditionFailedError,
    StorageError,
    StorageUnavailableError,
    UnsafeDocumentError,
)
from storage.json_storage import JsonStorage

logger = logging.getLogger(__name__)

BUSY_MESSAGE = "Sorry, I'm busy with other messages in this conversation. Please try again."
UNAVAILABLE_MESSAGE = (
    "Sorry, I can't reach my storage right now, so nothing was saved. "
    "Please try again in a moment."
)
TOO_LARGE_MESSAGE = (
    "Sorry, that would make what I store for this conversation too large, so I did not save it."
)
UNSAFE_MESSAGE = (
    "Sorry, the data stored for this conversation could not be read safely, so I did not use it."
)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    base_delay_seconds: float = 0.02

    def delay(self, attempt: int) -> float:
        """Full jitter: a random wait up to base * 2^attempt, so retriers spread out."""
        return random.uniform(0, self.base_delay_seconds * (2**attempt))


class _BufferingAdapter(BotAdapter):
    """Collects what the bot sends during one attempt instead of sending it."""

    def __init__(self) -> None:
        super().__init__()
        self.outbox: List[Activity] = []

    async def send_activities(
        self, context: TurnContext, activities: List[Activity]
    ) -> List[ResourceResponse]:
        self.outbox.extend(activities)
        return [ResourceResponse(id=activity.id or str(uuid.uuid4())) for activity in activities]

    async def update_activity(self, context: TurnContext, activity: Activity):
        raise NotImplementedError("this sample's bot does not update sent activities")

    async def delete_activity(self, context: TurnContext, reference: ConversationReference):
        raise NotImplementedError("this sample's bot does not delete sent activities")


class TurnRunner(Bot):
    """Runs the bot's turns with buffered replies, conditional saves and retries."""

    def __init__(
        self,
        bot: Bot,
        states: Sequence[BotState],
        storage: JsonStorage,
        policy: RetryPolicy = RetryPolicy(),
    ) -> None:
        self._bot = bot
        self._states = list(states)
        self._storage = storage
        self._policy = policy
        self._conversation_locks: "weakref.WeakValueDictionary[str, asyncio.Lock]" = (
            weakref.WeakValueDictionary()
        )

    async def on_turn(self, context: TurnContext) -> None:
        async with self._lock_for(context):
            try:
                await self._run_with_retries(context)
            except StorageError as error:
                await self._explain_storage_error(context, error)

    def _lock_for(self, context: TurnContext) -> asyncio.Lock:
        conversation = context.activity.conversation
        key = f"{context.activity.channel_id}/{conversation.id if conversation else ''}"
        lock = self._conversation_locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._conversation_locks[key] = lock
        return lock

    async def _run_with_retries(self, context: TurnContext) -> None:
        for attempt in range(self._policy.max_retries + 1):
            if attempt:
                await asyncio.sleep(self._policy.delay(attempt))
            attempt_context, outbox = self._attempt_context(context)
            try:
                await self._bot.on_turn(attempt_context)
                await self._save(attempt_context)
            except PreconditionFailedError as conflict:
                logger.info("turn conflict (attempt %d): %s", attempt + 1, conflict)
                continue
            replies = outbox.outbox + attempt_context.buffered_reply_activities
            if replies:
                await context.send_activities(replies)
            return
        logger.warning("turn gave up after %d attempts", self._policy.max_retries + 1)
        await context.send_activity(BUSY_MESSAGE)

    @staticmethod
    def _attempt_context(context: TurnContext) -> tuple[TurnContext, _BufferingAdapter]:
        """A fresh context per attempt: empty state caches, replies held in an outbox."""
        outbox = _BufferingAdapter()
        attempt = TurnContext(outbox, context.activity)
        attempt.turn_state.update(context.turn_state)
        return attempt, outbox

    async def _save(self, context: TurnContext) -> None:
        """Save every changed scope in one write, each conditional on what was read."""
        changes: Dict[str, dict] = {}
        for state in self._states:
            cached = state.get_cached_state(context)
            if cached is None or not cached.is_changed:
                continue
            document = dict(cached.state)
            document.setdefault("e_tag", CREATE_ONLY)
            changes[state.get_storage_key(context)] = document
        await self._storage.write(changes)

    @staticmethod
    async def _explain_storage_error(context: TurnContext, error: StorageError) -> None:
        logger.error("turn not saved: %s: %s", type(error).__name__, error)
        if isinstance(error, StorageUnavailableError):
            message = UNAVAILABLE_MESSAGE
        elif isinstance(error, ItemTooLargeError):
            message = TOO_LARGE_MESSAGE
        elif isinstance(error, UnsafeDocumentError):
            message = UNSAFE_MESSAGE
        else:
            message = UNAVAILABLE_MESSAGE
        await context.send_activity(message)

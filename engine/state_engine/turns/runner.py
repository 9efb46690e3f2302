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
conflicts (and retries) only come from other processes. The lock is not
re-entrant: a bot must not start another turn of its own conversation (e.g. a
proactive ``continue_conversation``) from inside a turn.

The bot does not know this exists: it reads and writes state through accessors
as the docs show. This runner is the ``save_changes`` at the end of the turn.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from contextvars import ContextVar
from copy import copy
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from botbuilder.core import Bot, BotState, Storage, TurnContext
from botbuilder.schema import Activity, ActivityTypes, ResourceResponse

from state_engine.stores import (
    CREATE_ONLY,
    ItemTooLargeError,
    PreconditionFailedError,
    StorageError,
    UnsafeDocumentError,
)
from state_engine.stores.json_storage import JsonStorage, etag_of

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
    """How often a conflicting turn is run again, and how long to wait in between.

    ``max_retries`` is retries after the first attempt (0 = never retry). The wait
    is capped so that a generous retry count cannot turn into minutes of sleep."""

    max_retries: int = 5
    base_delay_seconds: float = 0.02
    max_delay_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"TURN_MAX_RETRIES must be 0 or more, got {self.max_retries}")
        if self.base_delay_seconds < 0:
            raise ValueError(
                f"TURN_RETRY_BASE_DELAY must be 0 or more, got {self.base_delay_seconds}"
            )

    def delay(self, attempt: int) -> float:
        """Full jitter: a random wait up to base * 2^attempt (capped), so retriers spread out."""
        ceiling = min(self.max_delay_seconds, self.base_delay_seconds * 2 ** min(attempt, 32))
        return random.uniform(0, ceiling)


@dataclass
class _AttemptStorage:
    """What one attempt of a turn read and wrote through TurnScopedStorage."""

    read_etags: Dict[str, str] = field(default_factory=dict)
    staged_writes: Dict[str, Any] = field(default_factory=dict)


# The attempt running in this task (each aiohttp request runs in a task of its own).
_current_attempt: ContextVar[Optional[_AttemptStorage]] = ContextVar(
    "current_attempt", default=None
)


class TurnScopedStorage(Storage):
    """The storage the state scopes and the bot use during a turn.

    During a turn run by TurnRunner it notes the e_tag of every item read (or that
    it did not exist), and it holds the bot's direct writes ("Write directly to
    storage") so the runner saves them in the same conditional write as the state
    scopes: a turn that is retried, or ends busy, leaves nothing behind. Outside
    such a turn, and for deletes, it is the store itself."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def read(self, keys: List[str]) -> Dict[str, Any]:
        items = await self._storage.read(keys)
        attempt = _current_attempt.get()
        if attempt is not None:
            for key in keys:
                if key in attempt.staged_writes:
                    items[key] = attempt.staged_writes[key]
                elif key not in attempt.read_etags:
                    attempt.read_etags[key] = etag_of(items[key]) if key in items else CREATE_ONLY
        return items

    async def write(self, changes: Dict[str, Any]) -> None:
        attempt = _current_attempt.get()
        if attempt is None:
            await self._storage.write(changes)
        else:
            attempt.staged_writes.update(changes)

    async def delete(self, keys: List[str]) -> None:
        attempt = _current_attempt.get()
        if attempt is not None:
            for key in keys:
                attempt.staged_writes.pop(key, None)
                attempt.read_etags[key] = CREATE_ONLY
        await self._storage.delete(keys)


class _AttemptContext(TurnContext):
    """The context of one attempt: a fresh one each time (empty state caches),
    whose replies are held in ``outbox`` instead of being sent.

    The replies are sent later through the turn's real context, which addresses
    and copies them as the SDK always does (and runs its send handlers), so here
    they are only copied shallowly, not addressed and deep-copied twice."""

    def __init__(self, context: TurnContext) -> None:
        super().__init__(context.adapter, context.activity)
        self.turn_state.update(context.turn_state)
        self.outbox: List[Activity] = []

    async def send_activities(self, activities: List[Activity]) -> List[ResourceResponse]:
        self.outbox.extend(copy(activity) for activity in activities)
        if any(activity.type != ActivityTypes.trace for activity in activities):
            self.responded = True
        return [ResourceResponse() for _ in activities]


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
        """Run the turn until its state is saved, then send its replies.

        A StorageError (reading or saving) ends the turn with one message that
        says why: the failed attempt's replies are dropped, its scopes unsaved. Any other
        exception from the bot propagates to the adapter's ``on_turn_error``,
        with the failed attempt's replies and state changes dropped."""
        async with self._lock_for(context):
            try:
                await self._run_with_retries(context)
            except StorageError as error:
                await self._explain_storage_error(context, error)

    def _lock_for(self, context: TurnContext) -> asyncio.Lock:
        """One lock per conversation, kept only while a turn holds or awaits it:
        every holder keeps a strong reference, so an idle lock is collected and
        the table cannot grow with the number of conversations ever seen."""
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
            attempt_context = _AttemptContext(context)
            attempt_storage = _AttemptStorage()
            token = _current_attempt.set(attempt_storage)
            try:
                await self._bot.on_turn(attempt_context)
                await self._save(attempt_context, attempt_storage)
            except PreconditionFailedError as conflict:
                logger.info("turn conflict (attempt %d): %s", attempt + 1, conflict)
                continue
            finally:
                _current_attempt.reset(token)
            if attempt_context.outbox:
                await context.send_activities(attempt_context.outbox)
            return
        logger.warning("turn gave up after %d attempts", self._policy.max_retries + 1)
        await context.send_activity(BUSY_MESSAGE)

    async def _save(self, context: TurnContext, attempt: _AttemptStorage) -> None:
        """Save every changed scope, and the bot's direct writes, in one write,
        each conditional on the e_tag it was read with.

        The e_tag comes from the cached state, or from what TurnScopedStorage noted
        at read time when the bot replaced the cache (``clear_state`` drops it). A
        scope replaced without being read this turn is saved unconditionally ("*"):
        nothing was read that could be stale. A scope the bot deleted has no cached
        state and is not written back."""
        changes: Dict[str, Any] = dict(attempt.staged_writes)
        for state in self._states:
            cached = state.get_cached_state(context)
            if cached is None or not cached.is_changed:
                continue
            key = state.get_storage_key(context)
            expected = cached.state.get("e_tag") or attempt.read_etags.get(key, "*")
            document = {name: value for name, value in cached.state.items() if name != "e_tag"}
            if not document and expected == CREATE_ONLY:
                continue  # the SDK marks a scope that was never stored "changed"; nothing to create
            changes[key] = {**document, "e_tag": expected}
        await self._storage.write(changes)

    @staticmethod
    async def _explain_storage_error(context: TurnContext, error: StorageError) -> None:
        logger.error("turn not saved: %s: %s", type(error).__name__, error)
        if isinstance(error, ItemTooLargeError):
            message = TOO_LARGE_MESSAGE
        elif isinstance(error, UnsafeDocumentError):
            message = UNSAFE_MESSAGE
        else:  # unreachable, locked, or refusing our credentials
            message = UNAVAILABLE_MESSAGE
        await context.send_activity(message)

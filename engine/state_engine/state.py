"""The SDK's three state scopes, deciding "changed?" on the JSON we store.

A ``BotState`` caches each scope for the turn in a ``CachedBotState``, which
takes a fingerprint of the scope when it is loaded and again at save time: a
scope whose fingerprint did not change is not written. The SDK fingerprints
with jsonpickle, walking every object reflectively: six walks a turn, the
largest single cost of a turn in the benchmark (without them the bot on the
memory store went from 0.34× to 0.50× the bare handler's turns/s).

Here the fingerprint is the scope's JSON from ``storage.codec``, the exact text
our stores save. That is cheaper, and it is the right question: a scope counts
as changed exactly when what would be stored differs. Everything else (property
accessors, keys, ``clear_state``, ``delete``) is the SDK's own code; these are
drop-in subclasses of the classes the docs use.
"""

from __future__ import annotations

from typing import Any

from botbuilder.core import ConversationState as SdkConversationState
from botbuilder.core import PrivateConversationState as SdkPrivateConversationState
from botbuilder.core import TurnContext
from botbuilder.core import UserState as SdkUserState
from botbuilder.core.bot_state import CachedBotState

from state_engine import codec


class StoredJsonCache(CachedBotState):
    """A scope cached for one turn, fingerprinted by its stored JSON."""

    def compute_hash(self, obj: Any) -> str:
        return codec.dumps(obj)


class StoredJsonChangeDetection:
    """Mixin for a ``BotState``: the SDK's ``load``, caching a ``StoredJsonCache``
    (the SDK builds its ``CachedBotState`` inside ``load``, so ``load`` is the hook)."""

    async def load(self, turn_context: TurnContext, force: bool = False) -> None:
        cached = self.get_cached_state(turn_context)
        if force or not cached or not cached.state:
            key = self.get_storage_key(turn_context)
            items = await self._storage.read([key])
            turn_context.turn_state[self._context_service_key] = StoredJsonCache(items.get(key))


class ConversationState(StoredJsonChangeDetection, SdkConversationState):
    """Per conversation, shared by everyone in it."""


class UserState(StoredJsonChangeDetection, SdkUserState):
    """Per user, on every conversation of the channel."""


class PrivateConversationState(StoredJsonChangeDetection, SdkPrivateConversationState):
    """Per user within one conversation."""

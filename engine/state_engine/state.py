"""The SDK's three state scopes, read once per turn and compared on the JSON they store.

Drop-in subclasses of the classes the docs use. Two changes: a scope is read from storage
once per turn (the SDK reads again whenever the scope is still empty, so a new user's
``get`` with a default could pick up another turn's record half-way), and "changed?" is
decided on the codec's JSON, the exact text a store saves, instead of jsonpickle walks.
"""

from __future__ import annotations

from typing import Any

from botbuilder.core import ConversationState as SdkConversationState
from botbuilder.core import PrivateConversationState as SdkPrivateConversationState
from botbuilder.core import TurnContext
from botbuilder.core import UserState as SdkUserState
from botbuilder.core.bot_state import CachedBotState

from . import codec


class StoredJsonCache(CachedBotState):
    """A scope cached for one turn, fingerprinted by its stored JSON."""

    def compute_hash(self, obj: Any) -> str:
        return codec.dumps(obj)


class ReadOncePerTurn:
    """Mixin for a ``BotState``: load only when this turn has no copy yet (or ``force``)."""

    async def load(self, turn_context: TurnContext, force: bool = False) -> None:
        if force or self.get_cached_state(turn_context) is None:
            key = self.get_storage_key(turn_context)
            items = await self._storage.read([key])
            turn_context.turn_state[self._context_service_key] = StoredJsonCache(items.get(key))


class ConversationState(ReadOncePerTurn, SdkConversationState):
    """Per conversation, shared by everyone in it."""


class UserState(ReadOncePerTurn, SdkUserState):
    """Per user, on every conversation of the channel."""


class PrivateConversationState(ReadOncePerTurn, SdkPrivateConversationState):
    """Per user within one conversation."""

"""The SDK's three state scopes as drop-ins: read once per turn (the SDK reads an empty one
again on every ``get``), "changed?" decided on the codec's JSON instead of jsonpickle,
and ``get(context, SomeClass)`` refusing a stored value that is not a ``SomeClass``.
"""

from __future__ import annotations

from typing import Any

from botbuilder.core import ConversationState as SdkConversationState
from botbuilder.core import PrivateConversationState as SdkPrivateConversationState
from botbuilder.core import TurnContext
from botbuilder.core import UserState as SdkUserState
from botbuilder.core.bot_state import BotStatePropertyAccessor, CachedBotState

from . import codec
from .errors import UnsafeDocumentError


class StoredJsonCache(CachedBotState):
    """A scope cached for one turn, fingerprinted by its stored JSON."""

    def compute_hash(self, obj: Any) -> str:
        return codec.dumps(obj)


class CheckedProperty(BotStatePropertyAccessor):
    """A property accessor whose ``get`` with a class as default returns only that class."""

    async def get(self, turn_context: TurnContext, default_value_or_factory: Any = None) -> Any:
        value = await super().get(turn_context, default_value_or_factory)
        expected = default_value_or_factory
        if isinstance(expected, type) and value is not None and not isinstance(value, expected):
            raise UnsafeDocumentError(
                f"stored {self.name!r} is a {type(value).__name__}, not a {expected.__name__}"
            )
        return value


class ReadOncePerTurn:
    """Mixin for a ``BotState``: load only when this turn has no copy yet (or ``force``),
    and hand out checked property accessors."""

    def create_property(self, name: str) -> CheckedProperty:
        if not name:
            raise TypeError("BotState.create_property(): name cannot be None or empty.")
        return CheckedProperty(self, name)

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

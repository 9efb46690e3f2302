"""The SDK's state scopes, with change detection on the JSON we store."""

from .scopes import ConversationState, PrivateConversationState, UserState

__all__ = ["ConversationState", "PrivateConversationState", "UserState"]

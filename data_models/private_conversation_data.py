from __future__ import annotations

from dataclasses import dataclass

from state_engine.codec import register_dataclass


@register_dataclass
@dataclass
class PrivateConversationData:
    """Private conversation state: one user *in* one conversation."""

    message_count: int = 0
    # The docs keep this flag in ConversationData; here it is private, because in
    # a group "I asked you your name" is about one user: shared, Bo's next
    # message would be taken as the name Ann was asked for.
    prompted_for_user_name: bool = False

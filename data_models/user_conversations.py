from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from state_engine.codec import register_dataclass

MAX_REMEMBERED_CONVERSATIONS = 100


@register_dataclass
@dataclass
class UserConversations:
    """User state: the conversations this user has talked in, so that
    `forget me` can delete what was stored about them in each one."""

    conversation_ids: List[str] = field(default_factory=list)

    def add(self, conversation_id: str) -> None:
        if conversation_id not in self.conversation_ids:
            self.conversation_ids = (self.conversation_ids + [conversation_id])[
                -MAX_REMEMBERED_CONVERSATIONS:
            ]

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from state_engine.codec import register_dataclass


@register_dataclass
@dataclass
class ConversationData:
    """Conversation state: shared by everyone in the conversation."""

    timestamp: Optional[str] = None
    channel_id: Optional[str] = None
    # Set once the welcome was sent, so a client whose conversationUpdate names
    # nobody (Web Chat through offline-directline) is still greeted once.
    welcomed: bool = False

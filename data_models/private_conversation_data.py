from __future__ import annotations

from dataclasses import dataclass

from state_engine.codec import register_dataclass


@register_dataclass
@dataclass
class PrivateConversationData:
    """Private conversation state: one user *in* one conversation."""

    message_count: int = 0

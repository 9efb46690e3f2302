from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from state_engine import keys
from state_engine.codec import register_dataclass

#: Where the log is stored: a record of the conversation, saved with its state (state_engine.keys).
UTTERANCE_LOG = keys.conversation_record("log")


@register_dataclass
@dataclass
class UtteranceLog:
    """A store item written directly to storage ("Write directly to storage").

    ``e_tag`` is how the store tells us which version we read; writing it back
    makes the write fail if another turn changed the log in between. ``"*"``
    means "new item, write unconditionally"."""

    utterances: List[str] = field(default_factory=list)
    turn_number: int = 0
    e_tag: str = "*"

    def append(self, text: str, keep_last: int) -> None:
        """Count the turn and keep only the last ``keep_last`` utterances, so a long
        conversation never grows the record without limit."""
        self.turn_number += 1
        self.utterances = (self.utterances + [text])[-keep_last:] if keep_last > 0 else []

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from state_engine import keys
from state_engine.codec import register_dataclass

#: Where the log is stored: a record of the conversation, saved with its state (state_engine.keys).
UTTERANCE_LOG = keys.conversation_record("log", "utterance log")


@register_dataclass
@dataclass
class Utterance:
    """One message of the log, and who sent it (so `forget me` can take it out)."""

    user_id: str
    text: str


@register_dataclass
@dataclass
class UtteranceLog:
    """A store item written directly to storage ("Write directly to storage").

    ``e_tag`` is how the store tells us which version we read; writing it back
    makes the write fail if another turn changed the log in between. ``"*"``
    means "new item, write unconditionally"."""

    utterances: List[Utterance] = field(default_factory=list)
    turn_number: int = 0
    e_tag: str = "*"

    def append(self, user_id: str, text: str, keep_last: int) -> None:
        """Count the turn and keep only the last ``keep_last`` utterances, so a long
        conversation never grows the record without limit."""
        self.turn_number += 1
        kept = self.utterances + [Utterance(user_id, text)]
        self.utterances = kept[-keep_last:] if keep_last > 0 else []

    def forget_user(self, user_id: str) -> int:
        """Take out every utterance of ``user_id`` (for `forget me`); how many there were."""
        kept = [utterance for utterance in self.utterances if utterance.user_id != user_id]
        removed, self.utterances = len(self.utterances) - len(kept), kept
        return removed

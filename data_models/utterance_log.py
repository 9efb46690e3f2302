from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from storage.codec import register_dataclass


@register_dataclass
@dataclass
class UtteranceLog:
    """A store item written directly to storage ("Write directly to storage").

    ``e_tag`` is how the store tells us which version we read; writing it back
    makes the write fail if another turn changed the log in between. ``"*"``
    means "new item, write unconditionally"."""

    utterances: List[str] = field(default_factory=list)
    turn_number: int = 0
    # The activity last appended: a turn that the turn runner retries finds its
    # utterance already logged and does not log it twice.
    last_activity_id: Optional[str] = None
    e_tag: str = "*"

    def append(self, text: str, activity_id: Optional[str], keep_last: int) -> None:
        if activity_id is not None and activity_id == self.last_activity_id:
            return
        self.turn_number += 1
        self.utterances = (self.utterances + [text])[-keep_last:] if keep_last > 0 else []
        self.last_activity_id = activity_id

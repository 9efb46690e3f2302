from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from state_engine.codec import register_dataclass


@register_dataclass
@dataclass
class UserProfile:
    """User state ("Managing state"): follows the user into every conversation."""

    name: Optional[str] = None
    age: Optional[int] = None

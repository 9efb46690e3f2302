from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from state_engine.codec import register_dataclass


@register_dataclass
@dataclass
class PizzaOrder:
    """The docs' scale-out example: one order shared by a group conversation.

    Two people adding toppings at the same moment is the race that loses an
    update without optimistic concurrency (see adapter/turn_runner.py)."""

    toppings: List[str] = field(default_factory=list)

    def describe(self) -> str:
        return "Order: " + (", ".join(self.toppings) if self.toppings else "(empty)")

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from state_engine.codec import register_dataclass


@register_dataclass
@dataclass
class PizzaOrder:
    """The docs' scale-out example: one order shared by a group conversation.

    Two people adding toppings at the same moment is the race that loses an
    update without optimistic concurrency (state_engine.turns saves each turn
    with the e_tag it read, and runs a turn again when that write fails)."""

    toppings: List[str] = field(default_factory=list)

    def add(self, topping: str) -> bool:
        """Add a topping unless it is already on the order (in any letter case)."""
        if topping.casefold() in (t.casefold() for t in self.toppings):
            return False
        self.toppings.append(topping)
        return True

    def describe(self) -> str:
        return "Order: " + (", ".join(self.toppings) if self.toppings else "(empty)")

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, List

from state_engine.codec import register_dataclass


@register_dataclass
@dataclass
class PizzaOrder:
    """The docs' scale-out example: one order shared by a group conversation.

    Two people adding toppings at the same moment is the race that loses an
    update without optimistic concurrency (state_engine.turns saves each turn
    with the e_tag it read, and runs a turn again when that write fails)."""

    #: Room on one pizza, and the longest topping name kept: what one conversation stores
    #: (and every reply repeats) stays small whatever the group types.
    MAX_TOPPINGS: ClassVar[int] = 50
    MAX_TOPPING_LENGTH: ClassVar[int] = 50

    toppings: List[str] = field(default_factory=list)

    def has(self, topping: str) -> bool:
        """Is it on the order already (in any letter case)?"""
        return topping.casefold() in (t.casefold() for t in self.toppings)

    @property
    def full(self) -> bool:
        return len(self.toppings) >= self.MAX_TOPPINGS

    def add(self, topping: str) -> None:
        self.toppings.append(topping)

    def describe(self) -> str:
        return "Order: " + (", ".join(self.toppings) if self.toppings else "(empty)")

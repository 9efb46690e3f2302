"""Between the adapter and the bot: the turn runner, its storage view and the error handler."""

from .error_handler import make_on_turn_error
from .runner import DEADLINE_SECONDS, FAILED_TURN, FailedTurn, RetryPolicy, TurnMessages, TurnRunner
from .turn_storage import TurnScopedStorage

__all__ = [
    "DEADLINE_SECONDS",
    "FAILED_TURN",
    "FailedTurn",
    "RetryPolicy",
    "TurnMessages",
    "TurnRunner",
    "TurnScopedStorage",
    "make_on_turn_error",
]

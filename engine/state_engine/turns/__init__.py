"""Between the adapter and the bot: the turn runner and the error handler."""

from .error_handler import make_on_turn_error
from .runner import RetryPolicy, TurnRunner, TurnScopedStorage

__all__ = ["RetryPolicy", "TurnRunner", "TurnScopedStorage", "make_on_turn_error"]

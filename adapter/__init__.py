"""What sits between the HTTP endpoint and the bot: the error handler and the turn runner."""

from .error_handler import make_on_turn_error
from .turn_runner import RetryPolicy, TurnRunner, TurnScopedStorage

__all__ = ["RetryPolicy", "TurnRunner", "TurnScopedStorage", "make_on_turn_error"]

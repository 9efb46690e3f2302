"""Replies over one pooled HTTP client: the SDK's connector factory, made cheap.
An app wraps its ``BotFrameworkAuthentication`` in ``PooledBotFrameworkAuthentication``;
``SendLimits`` bounds each reply, and a channel that fails one raises ``ChannelRequestError``.
"""

from .factory import PooledConnectorFactory
from .pooled_authentication import PooledBotFrameworkAuthentication
from .replies import (
    ATTEMPT_TIMEOUT_SECONDS,
    SEND_BUDGET_SECONDS,
    ChannelRequestError,
    SendLimits,
)

__all__ = [
    "ATTEMPT_TIMEOUT_SECONDS",
    "SEND_BUDGET_SECONDS",
    "ChannelRequestError",
    "PooledBotFrameworkAuthentication",
    "PooledConnectorFactory",
    "SendLimits",
]

"""The data the bot keeps. Each is a dataclass registered with the storage codec,
so it is stored as plain JSON and only these types are ever rebuilt from it."""

from .conversation_data import ConversationData
from .pizza_order import PizzaOrder
from .private_conversation_data import PrivateConversationData
from .user_conversations import UserConversations
from .user_profile import UserProfile
from .utterance_log import UTTERANCE_LOG, UtteranceLog

__all__ = [
    "ConversationData",
    "PizzaOrder",
    "PrivateConversationData",
    "UserConversations",
    "UserProfile",
    "UtteranceLog",
    "UTTERANCE_LOG",
]

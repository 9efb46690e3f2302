"""The data the bot keeps. Each is a dataclass registered with the storage codec,
so it is stored as plain JSON and only these types are ever rebuilt from it."""

from .conversation_data import ConversationData
from .pizza_order import PizzaOrder
from .private_conversation_data import PrivateConversationData
from .user_profile import UserProfile
from .utterance_log import UTTERANCE_LOG, Utterance, UtteranceLog

__all__ = [
    "ConversationData",
    "PizzaOrder",
    "PrivateConversationData",
    "UserProfile",
    "Utterance",
    "UtteranceLog",
    "UTTERANCE_LOG",
]

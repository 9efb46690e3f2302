"""Every storage key, built in one place, and the id checks that keep keys apart.

The scopes' keys are the SDK's; a record the bot writes directly is declared here once
(``conversation_record``), and its partition, ``forget me``, the state page and the id
checks follow. A conversation's records share one partition: one atomic write a turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

from botbuilder.schema import Activity

USERS = "/users/"
CONVERSATIONS = "/conversations/"
#: PrivateConversationState's namespace, as the SDK's class has it by default.
PRIVATE_NAMESPACE = ""


def user_state(channel: str, user: str) -> str:
    """UserState's key: follows the user into every conversation of the channel."""
    return f"{channel}{USERS}{user}"


def conversation_state(channel: str, conversation: str) -> str:
    """ConversationState's key: shared by everyone in the conversation."""
    return f"{channel}{CONVERSATIONS}{conversation}"


def private_state(channel: str, conversation: str, user: str) -> str:
    """PrivateConversationState's key: one user within one conversation."""
    return f"{conversation_state(channel, conversation)}{USERS}{user}/{PRIVATE_NAMESPACE}"


def membership(channel: str, user: str, conversation: str) -> str:
    """The user's index entry for a conversation they have records in (for ``forget me``)."""
    return f"{membership_prefix(channel, user)}{conversation}"


def membership_prefix(channel: str, user: str) -> str:
    """Every membership key of one user starts with this."""
    return f"{user_state(channel, user)}{CONVERSATIONS}"


def private_prefix(channel: str, conversation: str) -> str:
    """Every private state key of a conversation starts with this."""
    return f"{conversation_state(channel, conversation)}{USERS}"


def user_of_private_key(channel: str, conversation: str, key: str) -> Optional[str]:
    """The user a private state key belongs to, or None if it is not one."""
    prefix, suffix = private_prefix(channel, conversation), f"/{PRIVATE_NAMESPACE}"
    if key.startswith(prefix) and key.endswith(suffix) and len(key) > len(prefix) + len(suffix):
        return key[len(prefix) : len(key) - len(suffix)]
    return None


@dataclass(frozen=True)
class ConversationRecord:
    """A record written directly to storage that belongs to one conversation (the
    sample's utterance log). Its key sits under the conversation's key; ``label`` is
    what people call it; ``bookkeeping`` marks the engine's own records."""

    name: str
    label: str
    bookkeeping: bool = False

    def key(self, channel: str, conversation: str) -> str:
        return f"{conversation_state(channel, conversation)}/{self.name}"

    def key_for(self, activity: Activity) -> str:
        ids = TurnIds.of(activity)
        return self.key(ids.channel, ids.conversation)


_CONVERSATION_RECORDS: Dict[str, ConversationRecord] = {}


def conversation_record(name: str, label: str = "", bookkeeping: bool = False) -> ConversationRecord:
    """Declare a directly-written conversation record; conversation ids that would
    collide with its key are refused from then on."""
    if not name or "/" in name:
        raise ValueError(f"a record name is one path segment, not {name!r}")
    return _CONVERSATION_RECORDS.setdefault(name, ConversationRecord(name, label or name, bookkeeping))


def conversation_records() -> List[ConversationRecord]:
    return list(_CONVERSATION_RECORDS.values())


#: Who has records in a conversation (kept by the turn runner): ``forget me`` asks it
#: whether a conversation was the user's alone.
PARTICIPANTS = conversation_record("participants", bookkeeping=True)


@dataclass(frozen=True)
class TurnIds:
    """The three ids every key of a turn is built from."""

    channel: str
    conversation: str
    user: str

    @classmethod
    def of(cls, activity: Activity) -> "TurnIds":
        conversation = activity.conversation.id if activity.conversation else ""
        user = activity.from_property.id if activity.from_property else ""
        return cls(activity.channel_id or "", conversation or "", user or "")

    def records(self, bookkeeping: bool = True) -> Dict[str, str]:
        """Every record of this user in this conversation, by what it is; without the
        engine's own bookkeeping records when ``bookkeeping`` is False (the state page)."""
        found = {
            "user state": user_state(self.channel, self.user),
            "conversation state": conversation_state(self.channel, self.conversation),
            "private conversation state": private_state(self.channel, self.conversation, self.user),
        }
        for record in conversation_records():
            if bookkeeping or not record.bookkeeping:
                found[record.label] = record.key(self.channel, self.conversation)
        if bookkeeping:
            found["membership"] = membership(self.channel, self.user, self.conversation)
        return found


def partition_of(key: str) -> str:
    """The partition a key is saved in: a conversation's records (its state, each
    user's private state in it, its directly-written records) share the conversation's
    key; every other key is a partition of its own."""
    channel, separator, rest = key.partition(CONVERSATIONS)
    if not separator or "/" in channel:
        return key
    prefix_length = len(channel) + len(CONVERSATIONS)
    users_at = rest.find(USERS)
    if users_at >= 0:
        return key[: prefix_length + users_at]
    for name in _CONVERSATION_RECORDS:
        if rest.endswith(f"/{name}") and len(rest) > len(name) + 1:
            return key[: -(len(name) + 1)]
    return key


def id_problem(channel: str, conversation: str, user: str) -> Optional[str]:
    """Why these ids would make one record's key name another's, or None when they are safe."""
    if "/" in channel:
        return "'channelId' holds a '/'"
    if USERS in conversation or conversation.endswith("/"):
        return "'conversation.id' would name another conversation's stored state"
    for name in _CONVERSATION_RECORDS:
        if conversation.endswith(f"/{name}"):
            return "'conversation.id' would name another conversation's stored state"
    if CONVERSATIONS in user:
        return "'from.id' would name another user's stored state"
    return None

"""What the bot says besides the docs' own lines: the welcome, the help, the
short answers, and the `state` summary. Kept apart so the bot file reads like
the docs' walkthrough."""

from __future__ import annotations

from typing import Optional

from data_models import ConversationData, PizzaOrder, PrivateConversationData
from data_models import UserProfile, UtteranceLog
from state_engine.forget import ForgetReport

WELCOME = (
    "Welcome to State Bot Sample. Type anything to get started.\n\n"
    "Commands: profile, add (topping), order, clear order, state, forget me, cancel, help."
)
HELP = "\n".join(
    [
        "Commands (anything else is the docs' conversation: I ask your name, then echo you):",
        "- `profile`: set your name and age, one question at a time",
        "- `add <topping>`: add a topping to this conversation's shared pizza order",
        "- `order`: show the order",
        "- `clear order`: empty the order",
        "- `state`: show what I store about you and this conversation",
        "- `forget me`: delete everything I stored about you",
        "- `cancel` (or `stop`): leave the profile questions, changing nothing",
        "- `help`: show this list (during the profile questions, then ask again)",
    ]
)
NO_TEXT = "I can only read text, and that message had none. Type anything to continue."
CANCELLED = "Cancelled the profile; nothing was changed."
NOTHING_TO_CANCEL = "There is nothing to cancel: no question is waiting for your answer."
ADD_USAGE = "Tell me what to add, e.g. `add mushrooms`."
ORDER_FULL = "The order has {limit} toppings already, as many as fit; `clear order` starts again."
CLEARED = "Cleared the order."
STATE_OFF = "The state command is turned off on this bot."


def _count(number: int, noun: str, plural: str = "") -> str:
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def forgotten(report: ForgetReport) -> str:
    """The `forget me` answer: what was deleted, counted."""
    said = [f"{_count(report.records, 'record')} in {_count(report.conversations, 'conversation')}"]
    if report.whole_conversations:
        said.append(f"{report.whole_conversations} of them only you were in, deleted whole")
    if report.entries:
        said.append(
            f"{_count(report.entries, 'entry', 'entries')} of yours removed from records shared "
            "with others (what the group shares stays)"
        )
    return "I have deleted everything I stored about you: " + "; ".join(said) + "."


def state_summary(
    profile: UserProfile,
    conversation_data: ConversationData,
    order: PizzaOrder,
    private_data: PrivateConversationData,
    waiting_for: Optional[str],
    log: UtteranceLog,
) -> str:
    """The `state` answer: one sentence per place the bot keeps data, naming the
    data class, so a learner can match what they read to the code and the store."""
    name = f"your name is {profile.name}" if profile.name else "I don't know your name yet"
    age = "not given" if profile.age is None else str(profile.age)
    toppings = ", ".join(order.toppings) if order.toppings else "empty"
    waiting = [f"the profile is waiting for {waiting_for}"] if waiting_for else []
    if private_data.prompted_for_user_name:
        waiting.append("I asked your name and will take your next message as it")
    return "\n".join(
        [
            "What I store for you and this conversation:",
            f"- User state (UserProfile, follows you into every conversation): "
            f"{name}; your age is {age}.",
            f"- Conversation state (ConversationData and PizzaOrder, shared by everyone here): "
            f"the last message arrived at {conversation_data.timestamp} from the "
            f"{conversation_data.channel_id} channel; the pizza order is {toppings}.",
            f"- Private conversation state (PrivateConversationData and the dialog stack, "
            f"you in this conversation only): you sent "
            f"{_count(private_data.message_count, 'message')} here; "
            f"{'; '.join(waiting) or 'no question is waiting for your answer'}.",
            f"- Utterance log (written directly to storage): this is turn {log.turn_number} "
            f"of this conversation, and the log keeps its "
            f"{_count(len(log.utterances), 'most recent message')}.",
        ]
    )

"""The state-management bot: the docs' conversation, an echo, and commands.

State is read and written only through property accessors of the three scopes of
"Managing state", plus one record written directly to storage (the utterance log).
Whoever runs the turn saves ``states`` after it: the bot never calls ``save_changes``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import List, Optional

from botbuilder.core import (
    ActivityHandler,
    BotState,
    ConversationState,
    MessageFactory,
    PrivateConversationState,
    TurnContext,
    UserState,
)
from botbuilder.dialogs import DialogContext, DialogSet
from botbuilder.schema import ActivityTypes, ChannelAccount

from data_models import (
    ConversationData,
    PizzaOrder,
    PrivateConversationData,
    UTTERANCE_LOG,
    UserProfile,
    UtteranceLog,
)
from dialogs import ProfileDialog
from state_engine.turns import TurnScopedStorage

from .texts import ADD_USAGE, CANCELLED, CLEARED, HELP, NO_TEXT, NOTHING_TO_CANCEL, forgotten
from .texts import ORDER_FULL, STATE_OFF, WELCOME, state_summary

# Interruptions: understood at any step of the profile questions.
CANCEL_COMMANDS = ("cancel", "stop")


@dataclass(frozen=True)
class BotSettings:
    """The bot's limits and switches: app.py reads them from config, whose defaults these are."""

    utterance_log_size: int = 20
    max_text_length: int = 2000
    max_name_length: int = 100
    state_command_enabled: bool = True


class StateBot(ActivityHandler):
    def __init__(
        self,
        conversation_state: ConversationState,
        user_state: UserState,
        private_conversation_state: PrivateConversationState,
        storage: TurnScopedStorage,
        profile_dialog: ProfileDialog,
        settings: BotSettings = BotSettings(),
    ) -> None:
        self._conversation_state = conversation_state
        self._user_state = user_state
        self._private_state = private_conversation_state
        self._storage = storage
        self._settings = settings

        # Property accessors: the only way the bot reads or writes state.
        self.profile_accessor = user_state.create_property("UserProfile")
        # Conversation state holds what everyone in the conversation shares: when
        # the last message came and from where, and the group's pizza order.
        self.conversation_data_accessor = conversation_state.create_property("ConversationData")
        self.order_accessor = conversation_state.create_property("PizzaOrder")
        # Private conversation state holds what is one user's in this conversation.
        # The dialog stack belongs here: in a group, each user answers their own
        # questions, and Bo's message never lands in the dialog waiting for Ann.
        self.private_data_accessor = private_conversation_state.create_property(
            "PrivateConversationData"
        )
        self.dialog_state_accessor = private_conversation_state.create_property("DialogState")

        self._dialogs = DialogSet(self.dialog_state_accessor)
        self._dialogs.add(profile_dialog)
        self._profile_dialog = profile_dialog

    @property
    def states(self) -> List[BotState]:
        """The state scopes this bot uses, for whoever saves them at the end of the turn."""
        return [self._conversation_state, self._user_state, self._private_state]

    async def on_members_added_activity(
        self, members_added: List[ChannelAccount], turn_context: TurnContext
    ) -> None:
        recipient_id = turn_context.activity.recipient.id if turn_context.activity.recipient else None
        if any(member.id != recipient_id for member in members_added):
            await self._welcome(turn_context)

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        text = (turn_context.activity.text or "").strip()
        command = " ".join(text.lower().split())

        if command == "forget me":
            report = await self._storage.forget_user(turn_context.activity)
            await turn_context.send_activity(forgotten(report))
            return
        if not text:
            await turn_context.send_activity(NO_TEXT)
            return

        text = text[: self._settings.max_text_length]
        conversation_data: ConversationData = await self.conversation_data_accessor.get(
            turn_context, ConversationData
        )
        if not conversation_data.welcomed:
            await self._welcome(turn_context)
        conversation_data.timestamp = _received_at(turn_context)
        conversation_data.channel_id = turn_context.activity.channel_id

        private_data = await self.private_data_accessor.get(turn_context, PrivateConversationData)
        private_data.message_count += 1
        log = await self._append_to_log(turn_context, text)

        # Interruptions come before continue_dialog, so they work at every step of
        # a dialog; reprompt_dialog asks the waiting question again, if there is one.
        dialog_context = await self._dialogs.create_context(turn_context)
        in_dialog = dialog_context.active_dialog is not None
        if command in CANCEL_COMMANDS:
            await dialog_context.cancel_all_dialogs()
            await turn_context.send_activity(CANCELLED if in_dialog else NOTHING_TO_CANCEL)
        elif command == "help":
            await turn_context.send_activity(HELP)
            await dialog_context.reprompt_dialog()
        elif command == "state":
            await self._show_state(dialog_context, conversation_data, private_data, log)
            await dialog_context.reprompt_dialog()
        elif in_dialog:
            await dialog_context.continue_dialog()
        elif command == "profile":
            await dialog_context.begin_dialog(self._profile_dialog.id)
        elif command == "order":
            order = await self.order_accessor.get(turn_context, PizzaOrder)
            await turn_context.send_activity(order.describe())
        elif command == "clear order":
            await self.order_accessor.set(turn_context, PizzaOrder())
            await turn_context.send_activity(CLEARED)
        elif command == "add" or command.startswith("add "):
            await self._add_topping(turn_context, " ".join(text.split()[1:]))
        else:
            await self._converse(turn_context, text, conversation_data, private_data, log)

    async def on_unrecognized_activity_type(self, turn_context: TurnContext) -> None:
        # Channels send deleteUserData when a user asks to be forgotten.
        if turn_context.activity.type == ActivityTypes.delete_user_data:
            await self._storage.forget_user(turn_context.activity)

    async def on_teams_signin_token_exchange(self, turn_context: TurnContext) -> None:
        # botbuilder 4.17's ActivityHandler calls this Teams-only method for every
        # signin/tokenExchange invoke; this bot has no sign-in, so it gets the same 501
        # as the other sign-in invoke instead of an AttributeError.
        await self.on_sign_in_invoke(turn_context)

    async def _converse(
        self,
        turn_context: TurnContext,
        text: str,
        conversation_data: ConversationData,
        private_data: PrivateConversationData,
        log: UtteranceLog,
    ) -> None:
        """The docs' "Save user and conversation data" conversation, word for word
        (except that the "asked for the name" flag is private, see PrivateConversationData)."""
        profile: UserProfile = await self.profile_accessor.get(turn_context, UserProfile)
        if profile.name is None:
            if private_data.prompted_for_user_name:
                profile.name = text[: self._settings.max_name_length]
                await turn_context.send_activity(
                    f"Thanks {profile.name}. To see conversation data, type anything."
                )
                private_data.prompted_for_user_name = False
            else:
                await turn_context.send_activity("What is your name?")
                private_data.prompted_for_user_name = True
            return
        await turn_context.send_activities(
            [
                MessageFactory.text(f"{profile.name} sent: {text}"),
                MessageFactory.text(f"Message received at: {conversation_data.timestamp}"),
                MessageFactory.text(f"Message received from: {conversation_data.channel_id}"),
                MessageFactory.text(f"Turn {log.turn_number} of this conversation's utterance log."),
            ]
        )

    async def _add_topping(self, turn_context: TurnContext, topping: str) -> None:
        """Add to the group's order (conversation state), once per topping."""
        if not topping:
            await turn_context.send_activity(ADD_USAGE)
            return
        topping = topping[: PizzaOrder.MAX_TOPPING_LENGTH]
        order: PizzaOrder = await self.order_accessor.get(turn_context, PizzaOrder)
        if order.has(topping):
            said = f"{topping} is already on the order."
        elif order.full:
            said = ORDER_FULL.format(limit=PizzaOrder.MAX_TOPPINGS)
        else:
            order.add(topping)
            said = f"Added {topping}."
        await turn_context.send_activity(f"{said} {order.describe()}")

    async def _welcome(self, turn_context: TurnContext) -> None:
        conversation_data = await self.conversation_data_accessor.get(
            turn_context, ConversationData
        )
        conversation_data.welcomed = True
        await turn_context.send_activity(WELCOME)

    async def _append_to_log(self, turn_context: TurnContext, text: str) -> UtteranceLog:
        """ "Write directly to storage": read the item, change it, write it back with
        the e_tag it was read with (a new log has e_tag "*", and is saved create-only
        because the turn read it as absent). If another turn changed the log in
        between, the save fails and the turn runner runs the turn again."""
        key = UTTERANCE_LOG.key_for(turn_context.activity)
        stored = await self._storage.read([key])
        log: UtteranceLog = stored.get(key) or UtteranceLog()
        log.append(turn_context.activity.from_property.id, text, self._settings.utterance_log_size)
        await self._storage.write({key: log})
        return log

    async def _show_state(
        self,
        dialog_context: DialogContext,
        conversation_data: ConversationData,
        private_data: PrivateConversationData,
        log: UtteranceLog,
    ) -> None:
        """Tell the user, scope by scope, what the bot keeps about them right now."""
        turn_context = dialog_context.context
        if not self._settings.state_command_enabled:
            await turn_context.send_activity(STATE_OFF)
            return
        profile: UserProfile = await self.profile_accessor.get(turn_context, UserProfile)
        order: PizzaOrder = await self.order_accessor.get(turn_context, PizzaOrder)
        waiting_for = self._profile_dialog.waiting_for(dialog_context)
        await turn_context.send_activity(
            state_summary(profile, conversation_data, order, private_data, waiting_for, log)
        )


def _received_at(turn_context: TurnContext) -> str:
    """When the message arrived. Some clients (offline-directline) send no
    timestamp, so fall back to the time the bot received it, never ``None``."""
    timestamp: Optional[dt.datetime] = turn_context.activity.timestamp
    if timestamp is None:
        timestamp = dt.datetime.now(dt.timezone.utc)
    return timestamp.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
